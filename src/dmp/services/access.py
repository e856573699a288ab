"""Where the use cases meet the policy: load the record's facts, ask ``dmp.policy``,
turn refusals into errors, and apply the decision's obligations.

Nothing else decides access: every rule lives in ``dmp.policy.rules`` (and its SQL
compilation); this module only gathers inputs and enforces outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.policy import (
    AccessMode,
    Action,
    Context,
    Decision,
    DocumentFacts,
    RecordAccess,
    RecordFacts,
    Transparency,
    closes_record,
    decide,
    document_visible,
    health_professional,
    read_patient,
    record_access,
)
from dmp.services import alerts, consents, emergency, records, trail
from dmp.services.context import Runtime
from dmp.services.policy_sql import visible_condition
from dmp.services.trail import AuditAction


@dataclass(frozen=True)
class Opened:
    """A record opened for reading by an actor, with the decision that allowed it."""

    patient_id: UUID
    facts: RecordFacts
    access: RecordAccess
    ctx: Context
    actor: Actor
    # The record's wrapped data key when its row carried it (read with the record): a search then
    # opens its sealed rows without reading the key again.
    wrapped_key: bytes | None = None

    @property
    def decision(self) -> Decision:
        return self.access.decision

    def condition(self) -> ColumnElement[bool]:
        return visible_condition(self.access, self.ctx)

    def trace(self, conn: Connection, action: AuditAction, targets: Iterable[str | UUID] = ()) -> None:
        """The trail entry of a read this opening allowed, in the caller's transaction."""
        trail.record(
            conn,
            self.actor,
            action,
            patient_id=self.patient_id,
            at=self.ctx.now,
            decision=self.decision,
            targets=targets,
        )


def context(rt: Runtime, *, history: bool = False) -> Context:
    return Context(
        now=rt.now(),
        transparency=Transparency(rt.settings.masking_transparency),
        majority_grace_days=rt.settings.majority_grace_days,
        history=history,
    )


def document_facts(row: Any) -> DocumentFacts:
    return DocumentFacts(
        type_code=row.type_code,
        class_code=row.class_code,
        flags=row.flags,
        availability=row.availability,
        author_id=row.author_id,
        published_by=row.published_by,
        submitted=row.submission_time,
        occupational=row.occupational,
    )


def open_record(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_row: Any,
    attempted: AuditAction,
    history: bool = False,
    hide_refusal: bool = False,
    targets: tuple[str | UUID, ...] = (),
    facts: RecordFacts | None = None,
) -> Opened:
    """Record-level READ: 403 with the reason (or 404 when ``hide_refusal``) if denied.

    Refusals carry their trail entry; an emergency session that opens is traced here.
    """
    facts = facts or consents.facts(conn, patient_row)
    now = rt.now()
    # Decide as if the record were open: someone who may not see it must not learn it is
    # closed (ADR 0004); someone who may is told why nothing is served.
    access = record_access(actor, replace(facts, open=True), context(rt))
    if not access.decision.permitted:
        err = _refusal(access.decision, hide_refusal)
        raise trail.refused(
            err,
            actor,
            attempted,
            patient_id=patient_row.id,
            at=now,
            decision=access.decision,
            targets=targets,
        )
    if not facts.open:
        records.require_open(patient_row)
    if emergency.apply_emergency_obligations(conn, actor, patient_row.id, access.decision, now):
        action = (
            AuditAction.CENTRE_15 if access.decision.mode is AccessMode.CENTRE_15 else AuditAction.BREAK_GLASS
        )
        trail.record(conn, actor, action, patient_id=patient_row.id, at=now, decision=access.decision)
    elif not access.decision.obligations:
        alerts.first_access(conn, actor, patient_row.id, now)
    wrapped = getattr(patient_row, "wrapped_key", None)
    return Opened(
        patient_row.id, facts, access, context(rt, history=history), actor,
        bytes(wrapped) if wrapped is not None else None,
    )


def _refusal(decision: Decision, hide_refusal: bool = False) -> DmpError:
    """The error of a refusal: a closed record's answer for LC-08 (as for LC-10), else 403/404."""
    if closes_record(decision):
        return DmpError("RECORD_CLOSED", decision.reason + ".")
    return DmpError("NOT_FOUND") if hide_refusal else DmpError("FORBIDDEN", decision.reason)


def check_document(opened: Opened, doc_row: Any, attempted: AuditAction) -> Decision:
    """Document-level READ: the same 404 as a missing document when denied."""
    decision = document_visible(opened.access, document_facts(doc_row), opened.ctx)
    if not decision.permitted:
        raise trail.refused(
            DmpError("NOT_FOUND"),
            opened.actor,
            attempted,
            patient_id=opened.patient_id,
            at=opened.ctx.now,
            decision=decision,
            targets=(doc_row.id,),
        )
    return decision


def document_visible_for(opened: Opened, doc_row: Any) -> bool:
    return document_visible(opened.access, document_facts(doc_row), opened.ctx).permitted


_ATTEMPTED = {
    Action.WRITE: AuditAction.DOCUMENT_PUBLISH,
    Action.MASK: AuditAction.DOCUMENT_MASK,
    Action.ARCHIVE: AuditAction.DOCUMENT_ARCHIVE,
    Action.DELETE: AuditAction.DOCUMENT_DELETE,
    Action.MANAGE_CONSENTS: AuditAction.CONSENT_CHANGE,
    Action.ATTEST_AUTHORISATION: AuditAction.CONSENT_CHANGE,
    Action.DECLARE_CARE_TEAM: AuditAction.CONSENT_CHANGE,
    Action.BLOCK_PROFESSIONAL: AuditAction.CONSENT_CHANGE,
    Action.REVOKE_CONSENT: AuditAction.CONSENT_CHANGE,
    Action.CLOSE_RECORD: AuditAction.RECORD_CLOSE,
}


def require(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_row: Any,
    action: Action,
    doc: DocumentFacts | None = None,
    targets: tuple[str | UUID, ...] = (),
    record: RecordFacts | None = None,
) -> Decision:
    """The policy's decision on ``action``, or the refusal (traced) it stands for. ``record``: the
    record's facts when the caller already loaded them (a publication decides once per document)."""
    record = record or consents.facts(conn, patient_row)
    decision = decide(actor, action, record, doc, context(rt))
    if not decision.permitted:
        attempted = _ATTEMPTED.get(action, AuditAction.DOCUMENT_STATUS)
        raise trail.refused(
            _refusal(decision),
            actor,
            attempted,
            patient_id=patient_row.id,
            at=rt.now(),
            decision=decision,
            targets=targets,
        )
    return decision


def require_health_professional(actor: Actor) -> None:
    """For the record-level operations every health professional may call (TD0.2, TD1):
    ``policy.health_professional`` decides."""
    decision = health_professional(actor)
    if not decision.permitted:
        raise DmpError("FORBIDDEN", decision.reason)


def may_attest(conn: Connection, rt: Runtime, actor: Actor, patient_row: Any) -> bool:
    """Would the policy let ``actor`` attest the patient's authorisation (« le patient m'a autorisé »)?"""
    facts = consents.facts(conn, patient_row)
    return decide(actor, Action.ATTEST_AUTHORISATION, facts, None, context(rt)).permitted


def may_see_patient(actor: Actor, patient_row: Any, facts: RecordFacts) -> bool:
    """Who may read the Patient resource (the record's identity and status): the policy's
    ``READ_PATIENT`` decision."""
    return read_patient(actor, facts).permitted
