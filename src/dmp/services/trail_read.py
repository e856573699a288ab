"""Reading the trail (TR-01/TR-02): who may read which entries, as FHIR AuditEvents.

The patient and their legal representatives read the whole trail of the record since its
creation; a professional reads the entries of their own actions; the operator's security
role (an OPERATOR actor with the ``audit`` scope) reads everything. Every read of the
trail is itself traced.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from dmp.audit import AuditAction, iter_entries, to_audit_event
from dmp.domain.actor import Actor, ActorKind
from dmp.errors import DmpError
from dmp.services import consents, records, trail
from dmp.services.context import Runtime

AUDIT_SCOPE = "audit"


def audit_events(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_id: UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    count: int,
    offset: int,
) -> tuple[list[dict[str, Any]], bool]:
    row = records.get(conn, patient_id)  # closed records keep their trail (retention)
    if row is None:
        raise DmpError("NOT_FOUND")
    facts = consents.facts(conn, row)
    only_actor: str | None
    if (
        (actor.kind is ActorKind.PATIENT and actor.id == str(patient_id))
        or (actor.kind is ActorKind.REPRESENTATIVE and actor.id in facts.consents.representatives)
        or (actor.kind is ActorKind.OPERATOR and AUDIT_SCOPE in actor.scopes)
    ):
        only_actor = None
    elif actor.kind is ActorKind.PROFESSIONAL:
        only_actor = actor.id  # their own actions only
    else:
        raise DmpError("NOT_FOUND")
    entries = list(
        iter_entries(
            conn,
            patient_id,
            start,
            end,
            newest_first=True,
            limit=count + 1,
            offset=offset,
            actor_id=only_actor,
        )
    )
    more = len(entries) > count
    entries = entries[:count]
    trail.record(
        conn,
        actor,
        AuditAction.AUDIT_READ,
        patient_id=patient_id,
        at=rt.now(),
        detail=f"{len(entries)} entrée(s) consultée(s)",
    )
    return [to_audit_event(e, rt.fhir_base) for e in entries], more
