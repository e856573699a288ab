"""TD1 as one use case: the record and its holder's account, in the caller's transaction.

Used alike by the FHIR API (a professional, ``POST /fhir/Patient``) and the desk (``dmp record
create``): the record is created (``records.create``: policy, identity checks, trail), then the
holder's account, pending, whose activation code is returned to hand to the patient and sent to
their contact when one is given (docs/accounts.md).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.fhir.patient import CreationRequest
from dmp.services import records
from dmp.services.context import Runtime


def open_record(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    req: CreationRequest,
    now: datetime,
    *,
    email: str | None = None,
    phone: str | None = None,
    reserved: records.ReservedIns | None = None,
) -> tuple[UUID, str]:
    """The new record's id and the activation code of its holder's account. ``reserved``: the INS
    reserved before this transaction (``records.reserve`` in ``unit_of_work.reserved_transaction``)."""
    from dmp.accounts import create_patient_account

    pid = records.create(conn, rt, actor, req, now, reserved)
    try:
        code = create_patient_account(conn, pid, now, settings=rt.settings, email=email, phone=phone)
    except ValueError as exc:  # an invalid contact: the whole creation is refused
        raise DmpError("INVALID_VALUE", str(exc)) from exc
    return pid, code
