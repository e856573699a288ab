"""The patient's access choices (authorisations, blocks, médecin traitant, administrators,
care teams, emergency consents) and the professional's attestations.

Stored as rows of ``record_consent``; served as FHIR ``Consent`` resources
(docs/api/consents.md). Who may change what is decided by ``dmp.policy``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, insert, select, update

from dmp.domain.actor import Actor, ActorKind
from dmp.domain.consent import SUBJECT_KINDS, ConsentKind, ConsentRow
from dmp.errors import DmpError
from dmp.policy import (
    Action,
    ConsentFacts,
    EmergencyConsents,
    RecordConsents,
    RecordFacts,
    consents_view,
    decide,
)
from dmp.policy.model import Context, Decision
from dmp.services import trail
from dmp.services.record_status import require_open
from dmp.store import locator, sealed_fields
from dmp.store.schema_policy import record_consent


def _record_with_consents(by_ins: bool) -> Any:
    """The patient row, one row per active consent (outer join), in one statement: by INS (every
    search) or by record id, with the record's wrapped data key (reads by document id open the
    blob with it; both open the sealed identity with it, SE-02, without another query)."""
    from sqlalchemy import bindparam

    from dmp.store.schema import ins_index, patient, record_key

    base = patient.join(ins_index, ins_index.c.patient_id == patient.c.id) if by_ins else patient
    columns: list[Any] = [patient, record_key.c.wrapped_key]
    base = base.outerjoin(record_key, record_key.c.patient_id == patient.c.id)
    joined = base.outerjoin(
        record_consent,
        and_(record_consent.c.patient_id == patient.c.id, record_consent.c.status == "active"),
    )
    where = (
        and_(ins_index.c.ins_oid == bindparam("oid"), ins_index.c.ins_value == bindparam("value"))
        if by_ins
        else patient.c.id == bindparam("pid")
    )
    return (
        select(
            *columns,
            record_consent.c.kind.label("c_kind"),
            record_consent.c.subject_id.label("c_subject"),
            record_consent.c.permit.label("c_permit"),
        )
        .select_from(joined)
        .where(where)
        .order_by(record_consent.c.created_at)
    )


_RECORD_BY_INS = _record_with_consents(by_ins=True)
_RECORD_BY_ID = _record_with_consents(by_ins=False)


def load(conn: Connection, patient_id: UUID) -> RecordConsents:
    rows = conn.execute(
        select(record_consent.c.kind, record_consent.c.subject_id, record_consent.c.permit)
        .where(record_consent.c.patient_id == patient_id, record_consent.c.status == "active")
        .order_by(record_consent.c.created_at)
    ).all()
    return build(rows)


def build(rows: Iterable[Any]) -> RecordConsents:
    """RecordConsents from active (kind, subject_id, permit) rows, oldest first."""
    sets: dict[str, set[str]] = {k.value: set() for k in SUBJECT_KINDS}
    emergency = {"samu": True, "break_glass": True, "masked": False}
    medecin: str | None = None
    for kind, subject, allowed in rows:
        if kind is None:  # the outer join of a record without consents
            continue
        if kind == ConsentKind.MEDECIN_TRAITANT:
            medecin = subject  # the latest active one
        elif kind == ConsentKind.EMERGENCY_SAMU:
            emergency["samu"] = bool(allowed)
        elif kind == ConsentKind.EMERGENCY_BREAK_GLASS:
            emergency["break_glass"] = bool(allowed)
        elif kind == ConsentKind.EMERGENCY_MASKED:
            emergency["masked"] = bool(allowed)
        elif subject is not None:
            sets[kind].add(subject)
    return RecordConsents(
        authorised=frozenset(sets[ConsentKind.AUTHORISATION]),
        blocked=frozenset(sets[ConsentKind.BLOCK]),
        medecin_traitant=medecin,
        administrators=frozenset(sets[ConsentKind.ADMINISTRATOR]),
        care_teams=frozenset(sets[ConsentKind.CARE_TEAM]),
        care_team_objections=frozenset(sets[ConsentKind.CARE_TEAM_OBJECTION]),
        representatives=frozenset(sets[ConsentKind.REPRESENTATIVE]),
        emergency=EmergencyConsents(**emergency),
    )


def record_by_ins(conn: Connection, ins_oid: str, ins_value: str) -> tuple[Any, RecordFacts] | None:
    """The record of an INS and its facts in one round trip (the hot path of every search)."""
    return _with_facts(conn, conn.execute(_RECORD_BY_INS, {"oid": ins_oid, "value": ins_value}).all())


def insert_consent(
    conn: Connection,
    patient_id: UUID,
    *,
    kind: str,
    subject_id: str | None,
    status: str,
    accepted: bool,
    designated: bool,
    created_by: str,
    now: datetime,
    permit: bool = True,
) -> UUID:
    """A new consent row of the record, registered in the resource locator (ADR 0009): every
    consent is written here, so that none can be read by id without its record."""
    cid = uuid.uuid4()
    locator.register(conn, locator.CONSENT, [cid], patient_id)
    conn.execute(
        insert(record_consent).values(
            patient_id=patient_id,
            id=cid,
            kind=kind,
            subject_id=subject_id,
            permit=permit,
            status=status,
            accepted=accepted,
            designated=designated,
            created_at=now,
            created_by=created_by,
        )
    )
    return cid


def record_by_id(conn: Connection, patient_id: UUID) -> tuple[Any, RecordFacts] | None:
    """The record, its facts and its wrapped data key (``row.wrapped_key``) in one round trip
    (the hot path of every read by document id)."""
    return _with_facts(conn, conn.execute(_RECORD_BY_ID, {"pid": patient_id}).all())


def _with_facts(conn: Connection, rows: Sequence[Any]) -> tuple[Any, RecordFacts] | None:
    if not rows:
        return None
    # SE-02: the identity columns open (lazily) under the record's key
    names = sealed_fields.SEALED["patient"]
    first = sealed_fields.open_row(conn, rows[0], "patient", names, patient_id=rows[0].id)
    consents = build((r.c_kind, r.c_subject, r.c_permit) for r in rows)
    return first, RecordFacts(
        str(first.id), first.record_status == "open", consents, first.majority_pending_since
    )


def facts(conn: Connection, patient_row: Any) -> RecordFacts:
    return RecordFacts(
        str(patient_row.id),
        patient_row.record_status == "open",
        load(conn, patient_row.id),
        patient_row.majority_pending_since,
    )


def _required_action(actor: Actor, kind: ConsentKind, subject: str | None) -> Action:
    if actor.kind is ActorKind.PROFESSIONAL:
        if kind is ConsentKind.AUTHORISATION and subject == actor.id:
            return Action.ATTEST_AUTHORISATION
        if kind is ConsentKind.CARE_TEAM and subject == actor.structure_id:
            return Action.DECLARE_CARE_TEAM
        if kind is ConsentKind.MEDECIN_TRAITANT and subject == actor.id:
            return Action.ATTEST_AUTHORISATION  # the doctor accepts the designation
        if kind is ConsentKind.BLOCK:
            return Action.BLOCK_PROFESSIONAL
    if kind is ConsentKind.BLOCK:
        return Action.BLOCK_PROFESSIONAL
    return Action.MANAGE_CONSENTS


def add(
    conn: Connection,
    actor: Actor,
    record: RecordFacts,
    kind: ConsentKind,
    subject: str | None,
    permit_: bool,
    ctx: Context,
) -> tuple[UUID, Decision]:
    """Record a consent; returns its id and the decision that allowed it. ``ctx`` is the policy
    context built from the settings (``access.context``): the decision sees the configured grace."""
    now = ctx.now
    if kind in SUBJECT_KINDS and not subject:
        raise DmpError("MISSING_ELEMENT", "Consent.provision.actor (professionnel ou structure concerné)")
    if kind is ConsentKind.REPRESENTATIVE:
        raise DmpError(
            "FORBIDDEN", "les représentants légaux sont déclarés par l'organisme d'assurance maladie"
        )
    decision = decide(actor, _required_action(actor, kind, subject), record, None, ctx)
    if not decision.permitted:
        raise trail.refused(
            DmpError("FORBIDDEN", decision.reason),
            actor,
            trail.AuditAction.CONSENT_CHANGE,
            patient_id=UUID(record.patient_id),
            at=now,
            decision=decision,
        )
    pid = UUID(record.patient_id)
    cid = _store(conn, actor, pid, kind, subject, permit_, now)
    _trace_change(conn, actor, pid, decision, cid, f"{kind.value} ajouté", now)
    return cid, decision


def _store(
    conn: Connection,
    actor: Actor,
    pid: UUID,
    kind: ConsentKind,
    subject: str | None,
    permit_: bool,
    now: datetime,
) -> UUID:
    if kind is ConsentKind.MEDECIN_TRAITANT:
        return _medecin_traitant(conn, actor, pid, subject or "", now)
    # One active row per (kind, subject): a new choice replaces the previous one.
    _end(
        conn,
        pid,
        and_(
            record_consent.c.kind == kind.value,
            record_consent.c.subject_id == subject if subject else record_consent.c.subject_id.is_(None),
        ),
        actor,
        now,
    )
    if kind is ConsentKind.BLOCK:
        # A block ends the professional's authorisation and administrator role.
        _end(
            conn,
            pid,
            and_(
                record_consent.c.kind.in_([ConsentKind.AUTHORISATION.value, ConsentKind.ADMINISTRATOR.value]),
                record_consent.c.subject_id == subject,
            ),
            actor,
            now,
        )
    return insert_consent(
        conn, pid, kind=kind.value, subject_id=subject, permit=permit_, status="active",
        accepted=True, designated=True, created_by=actor.id, now=now,
    )


def read_visible(conn: Connection, actor: Actor, patient_id: UUID, ctx: Context) -> list[ConsentRow]:
    """GET /fhir/Consent: the consents ``actor`` may read (``policy.consents_view``), traced.

    Someone who may not read the record's Patient gets the answer of a record that does not
    exist; a closed record is told only to whoever may read it.
    """
    found = record_by_id(conn, patient_id)
    if found is None:
        raise DmpError("RECORD_NOT_FOUND")
    row, facts = found
    view = consents_view(actor, facts, ctx)
    if not view.decision.permitted:
        raise DmpError("RECORD_NOT_FOUND")
    require_open(row)
    rows = list_rows(conn, row.id)
    if not view.everything:
        rows = [r for r in rows if r.subject_id in (actor.id, actor.structure_id)]
    trace_read(conn, actor, row.id, rows, ctx.now)
    return rows


def trace_read(conn: Connection, actor: Actor, pid: UUID, rows: Sequence[Any], now: datetime) -> None:
    """Reading the consents reveals who is authorised or blocked: it is traced like any read."""
    trail.record(
        conn,
        actor,
        trail.AuditAction.CONSENT_READ,
        patient_id=pid,
        at=now,
        targets=[f"Consent/{r.id}" for r in rows],
    )


def _trace_change(
    conn: Connection, actor: Actor, pid: UUID, decision: Decision, cid: UUID, detail: str, now: datetime
) -> None:
    """Every change of the patient's choices is in the trail, whichever channel made it
    (FHIR Consent, the professionals' portal)."""
    trail.record(
        conn,
        actor,
        trail.AuditAction.CONSENT_CHANGE,
        patient_id=pid,
        at=now,
        decision=decision,
        targets=[f"Consent/{cid}"],
        detail=detail,
    )


def _medecin_traitant(conn: Connection, actor: Actor, pid: UUID, doctor: str, now: datetime) -> UUID:
    """Designated by the patient AND accepted by the doctor; active once both happened."""
    by_doctor = actor.kind is ActorKind.PROFESSIONAL
    pending = conn.execute(
        select(record_consent).where(
            record_consent.c.patient_id == pid,
            record_consent.c.kind == ConsentKind.MEDECIN_TRAITANT.value,
            record_consent.c.subject_id == doctor,
            record_consent.c.status == "proposed",
        )
    ).first()
    completes = pending is not None and (
        (by_doctor and pending.designated and not pending.accepted)
        or (not by_doctor and pending.accepted and not pending.designated)
    )
    if pending is not None and completes:
        _end(
            conn,
            pid,
            and_(
                record_consent.c.kind == ConsentKind.MEDECIN_TRAITANT.value,
                record_consent.c.status == "active",
            ),
            actor,
            now,
        )
        conn.execute(
            update(record_consent)
            .where(
                record_consent.c.patient_id == pid,
                record_consent.c.id == pending.id,
            )
            .values(status="active", accepted=True, designated=True)
        )
        return pending.id  # type: ignore[no-any-return]
    return insert_consent(
        conn, pid, kind=ConsentKind.MEDECIN_TRAITANT.value, subject_id=doctor, status="proposed",
        accepted=by_doctor, designated=not by_doctor, created_by=actor.id, now=now,
    )


def revoke(conn: Connection, actor: Actor, record: RecordFacts, consent_id: UUID, ctx: Context) -> Decision:
    now = ctx.now
    pid = UUID(record.patient_id)
    row = conn.execute(
        select(record_consent).where(
            record_consent.c.patient_id == pid,
            record_consent.c.id == consent_id,
            record_consent.c.status != "inactive",
        )
    ).first()
    if row is None:
        raise DmpError("NOT_FOUND")
    decision = decide(
        actor, Action.REVOKE_CONSENT, record, None, ctx, ConsentFacts(row.kind, row.subject_id)
    )
    if not decision.permitted:
        raise trail.refused(
            DmpError("FORBIDDEN", decision.reason),
            actor,
            trail.AuditAction.CONSENT_CHANGE,
            patient_id=pid,
            at=now,
            decision=decision,
            targets=[f"Consent/{consent_id}"],
        )
    _end(conn, pid, record_consent.c.id == consent_id, actor, now)
    _trace_change(conn, actor, pid, decision, consent_id, "consentement retiré", now)
    return decision


def _end(conn: Connection, pid: UUID, cond: Any, actor: Actor, now: datetime) -> None:
    conn.execute(
        update(record_consent)
        .where(
            record_consent.c.patient_id == pid,
            record_consent.c.status != "inactive",
            cond,
        )
        .values(status="inactive", ended_at=now, ended_by=actor.id)
    )


def list_rows(conn: Connection, patient_id: UUID, *, subject: str | None = None) -> list[ConsentRow]:
    q = select(record_consent).where(
        record_consent.c.patient_id == patient_id, record_consent.c.status != "inactive"
    )
    if subject is not None:
        q = q.where(record_consent.c.subject_id == subject)
    return [
        ConsentRow(
            r.id,
            r.patient_id,
            ConsentKind(r.kind),
            r.subject_id,
            r.permit,
            r.status,
            r.created_at,
            r.created_by,
        )
        for r in conn.execute(q.order_by(record_consent.c.created_at))
    ]


def patient_of(conn: Connection, consent_id: UUID) -> UUID | None:
    """The record a consent row belongs to, whatever its status; None if there is no such row.
    Found through the resource locator, without a scatter (ADR 0009)."""
    return locator.locate(conn, locator.CONSENT, consent_id)
