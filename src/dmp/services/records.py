"""Record lifecycle: creation with the consent attestation, closure, reactivation (LC-01…LC-12)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, insert, select, update

from dmp.accounts import representatives
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import check_ins_against_traits, traits_conflict
from dmp.domain.ins import Ins
from dmp.errors import DmpError
from dmp.fhir.patient import CreationRequest
from dmp.services import consents, uniqueness
from dmp.services.context import Runtime
from dmp.services.record_status import CLOSED as CLOSED
from dmp.services.record_status import OPEN as OPEN
from dmp.services.record_status import require_open as require_open
from dmp.store import reservations, sealed_fields
from dmp.store.crypto import KeyRing
from dmp.store.schema import ins_index, patient, record_event, record_key

_BY_INS = (
    select(patient)
    .join(ins_index, ins_index.c.patient_id == patient.c.id)
    .where(ins_index.c.ins_oid == bindparam("oid"), ins_index.c.ins_value == bindparam("value"))
)


_SEALED = sealed_fields.SEALED["patient"]


def _opened(conn: Connection, row: Any) -> Any | None:
    """The patient row with its identity opened (SE-02: the names are sealed under the record's key)."""
    return sealed_fields.open_row(conn, row, "patient", _SEALED, patient_id=row.id) if row else None


def find_by_ins(conn: Connection, ins: Ins) -> Any | None:
    return _opened(conn, conn.execute(_BY_INS, {"oid": ins.oid, "value": ins.value}).first())


def find_by_ins_value(conn: Connection, ins_value: str) -> Any | None:
    """The record whose INS value (NIR/NIA, any OID) is ``ins_value``: the patients' proofing form."""
    return _opened(conn, conn.execute(select(patient).where(patient.c.ins_value == ins_value)).first())


def get(conn: Connection, patient_id: UUID, *, for_update: bool = False) -> Any | None:
    q = select(patient).where(patient.c.id == patient_id)
    if for_update and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return _opened(conn, conn.execute(q).first())


def traits_index(keyring: KeyRing, traits_key: str) -> str:
    """The keyed blind index of the strict traits (the names stay sealed; equality still works)."""
    return sealed_fields.blind_index(keyring, "patient.traits_key", traits_key)


def _same_traits_other_ins(conn: Connection, rt: Runtime, req: CreationRequest) -> Any | None:
    # Normalised in Python (accents, hyphens, case) the same way on both engines; a row not yet
    # resealed (`dmp keys reseal`) still carries the clear key.
    keys = (traits_index(rt.keyring, req.traits.key), req.traits.key)
    return conn.execute(select(patient.c.id).where(patient.c.traits_key.in_(keys))).first()


@dataclass(frozen=True)
class ReservedIns:
    """A creation's reservation phase (ADR 0009 b): the INS reserved for the new record's id;
    ``held`` False when another record holds it (an existing one, or a creation still pending)."""

    ins: Ins
    patient_id: UUID
    held: bool

    def release(self, conn: Connection) -> None:
        """The creation failed: give the INS back (compensation)."""
        reservations.release_ins(conn, self.ins.oid, self.ins.value, self.patient_id)


def reserve(conn: Connection, rt: Runtime, req: CreationRequest, now: datetime) -> ReservedIns:
    """The reservation phase, in a short transaction of its own before the record's."""
    pid = uuid.uuid4()
    stale_before = uniqueness.stale_before(rt.settings, now)
    held = reservations.reserve_ins(conn, req.ins.oid, req.ins.value, pid, now, stale_before=stale_before)
    return ReservedIns(req.ins, pid, held)


def create(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    req: CreationRequest,
    now: datetime,
    reserved: ReservedIns | None = None,
) -> UUID:
    """Open a record; refuse a second record for an INS and contradictory identities.
    ``reserved``: the INS reserved by :func:`reserve` before this transaction
    (``unit_of_work.reserved_transaction``); None: reserved here, in the caller's transaction."""
    existing = find_by_ins(conn, req.ins)
    if existing is not None:
        conflicts = traits_conflict(_traits_of(existing), req.traits)
        suffix = f" ; de plus les traits diffèrent : {', '.join(conflicts)}" if conflicts else ""
        raise DmpError("RECORD_EXISTS", f"Patient/{existing.id}{suffix}")
    check_ins_against_traits(req.ins, req.traits)
    twin = _same_traits_other_ins(conn, rt, req)
    if twin is not None:
        raise DmpError(
            "IDENTITY_MISMATCH",
            f"une identité aux mêmes traits stricts existe déjà sous un autre INS (Patient/{twin.id})",
        )
    if reserved is None:
        reserved = reserve(conn, rt, req, now)
    if not reserved.held:
        raise DmpError("RECORD_EXISTS", "créé en parallèle par une autre transaction")
    pid = reserved.patient_id
    t = req.traits
    dek, wrapped = rt.keyring.new_record_key()
    rt.keyring.remember(pid, wrapped, dek)
    conn.execute(
        insert(patient).values(
            id=pid,
            ins_oid=req.ins.oid,
            ins_value=req.ins.value,
            **sealed_fields.seal_columns(
                dek, pid, "patient", pid,
                birth_family_name=t.birth_family_name,
                birth_given_names=" ".join(t.birth_given_names),
                usual_family_name=req.usual_family_name,
                usual_given_name=req.usual_given_name,
            ),
            sex=t.sex.value,
            birth_date=t.birth_date,
            birth_place_insee=t.birth_place_insee,
            identity_status=req.identity_status.value,
            traits_key=traits_index(rt.keyring, t.key),
            record_status=OPEN,
            created_at=now,
            updated_at=now,
            version=1,
        )
    )
    conn.execute(insert(record_key).values(patient_id=pid, wrapped_key=wrapped, kek_id=rt.keyring.kek_id))
    if req.medecin_traitant:
        # Designated by the patient at creation; active at once when that doctor opens the
        # record, otherwise once the doctor accepts (POST Consent medecin-traitant).
        by_doctor = actor.id == req.medecin_traitant
        consents.insert_consent(
            conn, pid, kind="medecin-traitant", subject_id=req.medecin_traitant,
            status="active" if by_doctor else "proposed", accepted=by_doctor, designated=True,
            created_by=actor.id, now=now,
        )
        from dmp.services import alerts

        alerts.medecin_traitant_record_opened(conn, get(conn, pid), req.medecin_traitant, now)
    if actor.kind is ActorKind.PROFESSIONAL:
        # The professional who opens the record with the patient is authorised by that consent.
        consents.insert_consent(
            conn, pid, kind="authorisation", subject_id=actor.id, status="active", accepted=True,
            designated=True, created_by=actor.id, now=now,
        )
    _event(
        conn,
        pid,
        now,
        "created",
        actor,
        req.consent_channel,
        f"consentement recueilli le {req.consent_at.isoformat()} et attesté par {actor.name}",
    )
    return pid


def refuse_at_majority(conn: Connection, account_id: UUID, actor: Actor, now: datetime) -> UUID:
    """LC-08: the holder, of age, refuses the record's continuation: traced, and the record
    closes (LC-10: it can be reactivated at their request). One use case for every adapter."""
    pid = representatives.refuse_majority(conn, account_id, now, actor)
    close(conn, actor, pid, representatives.MAJORITY_REFUSAL_REASON, now)
    return pid


def close(conn: Connection, actor: Actor, patient_id: UUID, reason: str | None, now: datetime) -> None:
    row = get(conn, patient_id, for_update=True)
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    require_open(row)
    conn.execute(
        update(patient)
        .where(patient.c.id == patient_id)
        .values(
            record_status=CLOSED,
            closed_at=now,
            closure_reason=sealed_fields.seal_text(
                sealed_fields.write_dek(conn, patient_id),
                patient_id,
                "patient.closure_reason",
                patient_id,
                reason,
            ),
            updated_at=now,
            version=patient.c.version + 1,
        )
    )
    _event(conn, patient_id, now, "closed", actor, None, reason)


def reactivate(conn: Connection, actor: Actor, patient_id: UUID, now: datetime) -> None:
    row = get(conn, patient_id, for_update=True)
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    if row.record_status != CLOSED:
        raise DmpError("RECORD_NOT_CLOSED")
    conn.execute(
        update(patient)
        .where(patient.c.id == patient_id)
        .values(
            record_status=OPEN,
            closed_at=None,
            closure_reason=None,
            updated_at=now,
            version=patient.c.version + 1,
        )
    )
    _event(conn, patient_id, now, "reactivated", actor, None, None)

    medecin = consents.load(conn, patient_id).medecin_traitant
    if medecin:
        from dmp.services import alerts

        alerts.medecin_traitant_record_opened(conn, get(conn, patient_id), medecin, now)


def history(conn: Connection, patient_id: UUID) -> list[Any]:
    rows = conn.execute(
        select(record_event).where(record_event.c.patient_id == patient_id).order_by(record_event.c.at)
    )
    return sealed_fields.open_rows(conn, rows, "record_event", sealed_fields.SEALED["record_event"])


_TRAIL = {"created": "RECORD_CREATE", "closed": "RECORD_CLOSE", "reactivated": "RECORD_REACTIVATE"}


def _event(
    conn: Connection,
    pid: UUID,
    now: datetime,
    kind: str,
    actor: Actor,
    channel: str | None,
    detail: str | None,
) -> None:
    """The record's lifecycle history, and its entry in the audit trail."""
    from dmp.services import trail

    trail.record(
        conn,
        actor,
        trail.AuditAction[_TRAIL[kind]],
        patient_id=pid,
        at=now,
        detail=f"canal : {channel}" if channel else None,
    )
    event_id = uuid.uuid4()
    conn.execute(
        insert(record_event).values(
            patient_id=pid,
            id=event_id,
            at=now,
            kind=kind,
            actor_id=actor.id,
            actor_name=actor.name,
            channel=channel,
            detail=sealed_fields.seal_text(
                sealed_fields.write_dek(conn, pid), pid, "record_event.detail", event_id, detail
            ),
        )
    )


def _traits_of(row: Any) -> Any:
    from dmp.domain.identity import Sex, StrictTraits

    return StrictTraits(
        birth_family_name=row.birth_family_name,
        birth_given_names=tuple(row.birth_given_names.split()),
        sex=Sex(row.sex),
        birth_date=row.birth_date,
        birth_place_insee=row.birth_place_insee,
    )
