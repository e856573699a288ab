"""LC-10: the holder closes their record online (the portal). The policy decides (CLOSE_RECORD);
a refusal is traced; the closure is ``records.close``, traced with the holder's reason.

Reactivation stays at the insurer's desk (``dmp record reactivate``): whoever reopens a closed
record must be identified there, since a closed record grants nothing online.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.policy import Action, decide
from dmp.services import access, consents, records
from dmp.services.context import Runtime


def may_close(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID) -> bool:
    """Would the policy let ``actor`` close the record? To offer the form or not; closing still
    asks the policy again (``close_at_holder_request``)."""
    row = records.get(conn, patient_id)
    if row is None:
        return False
    return decide(actor, Action.CLOSE_RECORD, consents.facts(conn, row), None, access.context(rt)).permitted


def close_at_holder_request(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, reason: str
) -> None:
    row = records.get(conn, patient_id, for_update=True)
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    access.require(conn, rt, actor, row, Action.CLOSE_RECORD, targets=(f"Patient/{patient_id}",))
    records.close(conn, actor, patient_id, reason, rt.now())
