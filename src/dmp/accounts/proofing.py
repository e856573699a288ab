"""Online identity proofing: a new activation code sent to the contact on file."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from dmp.accounts.keys import keys_for
from dmp.accounts.model import (
    PENDING,
    _new_activation,
    _send_activation,
    patient_account,
)
from dmp.settings import Settings


def proof_identity(
    conn: Connection, patient_id_or_none: UUID | None, now: datetime, *, settings: Settings
) -> bool:
    """After the INS and strict traits matched a record: send a new activation code to the
    contact known for its (not yet activated) account. Nothing is shown on the page: the
    code only reaches the contact on file. True if a code was sent."""
    if patient_id_or_none is None:
        return False
    acc = patient_account(conn, patient_id_or_none)
    if acc is None or acc.status != PENDING or not (acc.email or acc.phone):
        return False
    keys = keys_for(settings)
    code = _new_activation(conn, keys, acc.id, now)
    _send_activation(
        conn, settings, acc.id, patient_id_or_none, code, acc.email, acc.phone, now, "/activation"
    )
    return True
