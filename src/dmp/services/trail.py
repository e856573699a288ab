"""The use cases' one way into the audit trail (issue 5).

``record`` appends in the caller's transaction: if the entry cannot be written the
action fails with it, so nothing is served untraced. ``refused`` builds the entry of a
refusal; the route layer writes it in a transaction of its own because the action's
transaction rolls back (see ``api.fhir_routes._in_transaction``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from dmp.audit import AuditAction, AuditRecord, Outcome, append
from dmp.audit.entry import nil_chain
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.policy import Decision

__all__ = ["AuditAction", "chain_of", "record", "refused"]


def chain_of(actor: Actor, patient_id: UUID | None) -> UUID:
    """The chain an entry goes to: the record's, or (no record) one of the record-less chains
    chosen by the actor, so that record-less entries do not all lock one chain head (ADR 0009)."""
    return patient_id if patient_id is not None else nil_chain(actor.kind.value, actor.id)


def record(
    conn: Connection,
    actor: Actor,
    action: AuditAction,
    *,
    patient_id: UUID | None,
    at: datetime,
    decision: Decision | None = None,
    targets: Iterable[str | UUID] = (),
    detail: str | None = None,
    outcome: Outcome | None = None,
) -> None:
    append(
        conn,
        AuditRecord.for_actor(
            actor,
            action,
            patient_id=chain_of(actor, patient_id),
            at=at,
            decision=decision,
            targets=targets,
            detail=detail,
            outcome=outcome,
            source_address=actor.source_address,
        ),
    )


def refused(
    err: DmpError,
    actor: Actor,
    attempted: AuditAction,
    *,
    patient_id: UUID | None,
    at: datetime,
    decision: Decision | None,
    targets: Iterable[str | UUID] = (),
) -> DmpError:
    """Attach the refusal's trail entry to the error the caller is about to raise."""
    detail = f"{attempted.value} refusé : {decision.reason if decision else err.message}"
    err.audit_record = AuditRecord.for_actor(
        actor,
        AuditAction.ACCESS_REFUSED,
        patient_id=chain_of(actor, patient_id),
        at=at,
        decision=decision,
        rule_id=decision.rule_id if decision else err.code,
        targets=targets,
        detail=detail,
        source_address=actor.source_address,
    )
    return err
