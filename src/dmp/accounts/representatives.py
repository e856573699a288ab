"""Legal representatives of minors (AC-19) and the end of their access at majority (LC-08)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select, update

from dmp.accounts.keys import keys_for
from dmp.accounts.model import (
    MAJORITY_AGE,
    PENDING,
    PERSON,
    REPRESENTATIVE,
    SYSTEM_AGENT,
    Issued,
    _contact,
    _new_activation,
    _new_person_account,
    _patient_row,
    _preferred_channel,
    _send_activation,
    find,
    normalize_login,
    patient_account,
    patient_display_name,
)
from dmp.audit.actions import AuditAction
from dmp.domain.actor import Actor, ActorKind
from dmp.errors import DmpError
from dmp.outbox import NO_RECORD, enqueue
from dmp.outbox.templates import PARIS
from dmp.services import consents, trail
from dmp.settings import Settings
from dmp.store import sealed_fields
from dmp.store.schema import patient
from dmp.store.schema_accounts import account
from dmp.store.schema_policy import record_consent


def majority_date(birth: date) -> date:
    try:
        return birth.replace(year=birth.year + MAJORITY_AGE)
    except ValueError:  # born on 29 February
        return date(birth.year + MAJORITY_AGE, 3, 1)


def _today(now: datetime) -> date:
    return now.astimezone(PARIS).date() if PARIS is not None else now.date()


def is_minor(birth: date, now: datetime) -> bool:
    return _today(now) < majority_date(birth)


def add_representative(
    conn: Connection,
    patient_id: UUID,
    now: datetime,
    *,
    settings: Settings,
    email: str,
    phone: str | None = None,
    name: str | None = None,
    agent: str,
) -> Issued:
    """Declare a legal representative of a minor (desk operation).

    Creates the representative's account if needed (identifier: the e-mail address; one
    account for all the children they represent) and the active ``representative`` consent row
    of the record. A new or not yet activated account gets an activation code, also sent by
    e-mail; an active account gets none (it simply sees one more record).
    """
    keys = keys_for(settings)
    row = _patient_row(conn, patient_id)
    if row.record_status != "open":
        raise DmpError("RECORD_CLOSED", "dossier fermé")
    if not is_minor(row.birth_date, now):
        raise DmpError(
            "INVALID_VALUE", "le titulaire du dossier est majeur : il n'a pas de représentant légal"
        )
    email_n, phone_n = _contact(email, phone)
    if email_n is None:
        raise DmpError("MISSING_ELEMENT", "adresse électronique du représentant légal")
    login = normalize_login(PERSON, email_n)
    existing = find(conn, PERSON, login)
    created = existing is None
    code: str | None = None
    if existing is not None:
        if existing.kind != REPRESENTATIVE:
            raise DmpError("INVALID_VALUE", "cette adresse est déjà l'identifiant d'un autre type de compte")
        acc_id = existing.id
        if phone_n and not existing.phone:
            conn.execute(update(account).where(account.c.id == acc_id).values(phone=phone_n, updated_at=now))
        if existing.status == PENDING:
            code = _new_activation(conn, keys, acc_id, now)
    else:
        acc_id = _new_person_account(
            conn, REPRESENTATIVE, login, name or email_n or login, email_n, phone_n, now
        )
        code = _new_activation(conn, keys, acc_id, now)
    if code is not None:
        _send_activation(conn, settings, acc_id, NO_RECORD, code, email_n, None, now, "/activation")
    active = conn.execute(
        select(record_consent.c.id).where(
            record_consent.c.patient_id == patient_id,
            record_consent.c.kind == "representative",
            record_consent.c.subject_id == str(acc_id),
            record_consent.c.status == "active",
        )
    ).first()
    if active is None:
        cid = consents.insert_consent(
            conn, patient_id, kind="representative", subject_id=str(acc_id), status="active",
            accepted=True, designated=True, created_by=f"guichet:{agent}", now=now,
        )
        _trace_representatives(
            conn, desk_actor(agent), AuditAction.REPRESENTATIVE_ADD, patient_id, [cid], now,
            "représentant légal déclaré au guichet",
        )
    return Issued(acc_id, created, code)


def remove_representative(
    conn: Connection, patient_id: UUID, email: str, now: datetime, *, agent: str
) -> bool:
    """End a representative's access to one record; True if they had one."""
    acc = find(conn, PERSON, email)
    if acc is None or acc.kind != REPRESENTATIVE:
        return False
    ended = _end_representatives(
        conn,
        patient_id,
        f"guichet:{agent}",
        now,
        record_consent.c.subject_id == str(acc.id),
    )
    if not ended:
        return False
    _trace_representatives(
        conn, desk_actor(agent), AuditAction.REPRESENTATIVE_REMOVE, patient_id, ended, now,
        "accès du représentant légal retiré au guichet",
    )
    return True


def desk_actor(agent: str) -> Actor:
    """The desk agent (CLI ``--agent``) as the trail's actor; ``created_by`` of their consent rows."""
    return Actor(kind=ActorKind.OPERATOR, id=f"guichet:{agent}", name=agent)


MAJORITY_ACTOR = Actor(kind=ActorKind.SYSTEM, id=SYSTEM_AGENT, name="Service DMP")


def _end_representatives(
    conn: Connection, patient_id: UUID, ended_by: str, now: datetime, *cond: Any
) -> list[UUID]:
    """End the record's active representative consents matching ``cond``; their ids."""
    where = (
        record_consent.c.patient_id == patient_id,
        record_consent.c.kind == "representative",
        record_consent.c.status == "active",
        *cond,
    )
    ids = list(conn.execute(select(record_consent.c.id).where(*where)).scalars())
    if ids:
        conn.execute(
            update(record_consent)
            .where(*where, record_consent.c.id.in_(ids))
            .values(status="inactive", ended_at=now, ended_by=ended_by)
        )
    return ids


def _trace_representatives(
    conn: Connection,
    actor: Actor,
    action: AuditAction,
    patient_id: UUID,
    consent_ids: list[UUID],
    now: datetime,
    detail: str,
) -> None:
    """The representatives' changes are in the record's trail like the patient's own consents:
    the representative is named by the ``Consent/<id>`` of their ``representative`` row."""
    trail.record(
        conn,
        actor,
        action,
        patient_id=patient_id,
        at=now,
        targets=[f"Consent/{cid}" for cid in consent_ids],
        detail=detail,
    )


@dataclass(frozen=True)
class RepresentedRecord:
    patient_id: UUID
    name: str
    birth_date: date


def represented_records(conn: Connection, account_id: UUID) -> list[RepresentedRecord]:
    rows = conn.execute(
        select(
            patient.c.id,
            patient.c.birth_given_names,
            patient.c.birth_family_name,
            patient.c.usual_given_name,
            patient.c.usual_family_name,
            patient.c.birth_date,
        )
        .join(record_consent, record_consent.c.patient_id == patient.c.id)
        .where(
            record_consent.c.kind == "representative",
            record_consent.c.subject_id == str(account_id),
            record_consent.c.status == "active",
            patient.c.record_status == "open",
        )
        .order_by(patient.c.birth_date, patient.c.id)
    ).all()
    names = sealed_fields.SEALED["patient"]
    opened = [sealed_fields.open_row(conn, r, "patient", names, patient_id=r.id) for r in rows]
    return [RepresentedRecord(r.id, patient_display_name(r), r.birth_date) for r in opened if r is not None]


def check_majority(conn: Connection, patient_id: UUID, now: datetime) -> bool:
    """At 18 the representatives lose access and the holder is asked to confirm the record.

    Representatives' consents become inactive, the patient is notified (notification centre,
    and ``majority_notice`` through the outbox when a contact is known) and the patient
    account is flagged so that its next login asks for confirmation. True if this happened now.
    """
    row = conn.execute(select(patient.c.id, patient.c.birth_date).where(patient.c.id == patient_id)).first()
    if row is None or is_minor(row.birth_date, now):
        return False
    ended = _end_representatives(conn, patient_id, SYSTEM_AGENT, now)
    if not ended:
        return False
    # LC-08: until the holder confirms, professionals keep access for the grace period only.
    conn.execute(
        update(patient)
        .where(patient.c.id == patient_id, patient.c.majority_pending_since.is_(None))
        .values(majority_pending_since=now, updated_at=now)
    )
    _trace_representatives(
        conn, MAJORITY_ACTOR, AuditAction.REPRESENTATIVE_END_AT_MAJORITY, patient_id, ended, now,
        "titulaire du dossier devenu majeur",
    )
    from dmp.services.notifications import notify

    when = majority_date(row.birth_date)
    notify(
        conn,
        patient_id,
        "majority",
        f"Depuis le {when:%d/%m/%Y}, vous êtes majeur(e) : vous gérez seul(e) votre DMP. Vos représentants "
        "légaux n'y ont plus accès. Confirmez la poursuite de votre dossier à votre prochaine connexion.",
        now,
    )
    acc = patient_account(conn, patient_id)
    if acc is not None:
        conn.execute(
            update(account).where(account.c.id == acc.id).values(majority_confirmation=True, updated_at=now)
        )
        target = _preferred_channel(acc.email, acc.phone)
        if target is not None:
            channel, recipient = target
            enqueue(
                conn,
                patient_id=patient_id,
                channel=channel,
                recipient=recipient,
                template="majority_notice",
                params={"majority_date": when},
                now=now,
                dedup_key=f"majority:{when.isoformat()}",
            )
    return True


def majority_check_all(conn: Connection, now: datetime) -> list[UUID]:
    """Run ``check_majority`` on every record that still has representatives and an adult holder."""
    today = _today(now)
    # Everyone born on or before this date is an adult (29 February handled by check_majority).
    cutoff = date(
        today.year - MAJORITY_AGE, today.month, 28 if (today.month, today.day) == (2, 29) else today.day
    )
    ids = (
        conn.execute(
            select(patient.c.id)
            .distinct()
            .join(record_consent, record_consent.c.patient_id == patient.c.id)
            .where(
                record_consent.c.kind == "representative",
                record_consent.c.status == "active",
                patient.c.birth_date <= cutoff,
            )
        )
        .scalars()
        .all()
    )
    return [pid for pid in ids if check_majority(conn, pid, now)]


MAJORITY_REFUSAL_REASON = "refus du titulaire à sa majorité"


def _settle_majority(conn: Connection, account_id: UUID, now: datetime) -> UUID | None:
    """Clear the account's confirmation request and the record's pending majority; the record's
    id if a majority was pending (None: nothing to trace)."""
    pid = conn.execute(select(account.c.patient_id).where(account.c.id == account_id)).scalar()
    conn.execute(
        update(account).where(account.c.id == account_id).values(majority_confirmation=False, updated_at=now)
    )
    if pid is None:
        return None
    pending = conn.execute(
        update(patient)
        .where(patient.c.id == pid, patient.c.majority_pending_since.is_not(None))
        .values(majority_pending_since=None, updated_at=now)
    ).rowcount
    return pid if pending else None


def confirm_majority(conn: Connection, account_id: UUID, now: datetime, actor: Actor | None = None) -> None:
    """LC-08: the holder, of age, confirms the record: normal access resumes (traced)."""
    pid = _settle_majority(conn, account_id, now)
    if pid is not None:
        trail.record(
            conn, actor or MAJORITY_ACTOR, AuditAction.MAJORITY_CONFIRMED, patient_id=pid, at=now,
            detail="poursuite du dossier confirmée par le titulaire devenu majeur",
        )


def refuse_majority(conn: Connection, account_id: UUID, now: datetime, actor: Actor) -> UUID:
    """LC-08: the holder, of age, refuses the record's continuation (traced); the record's id.
    Adapters call ``services.records.refuse_at_majority``, which also closes the record."""
    pid: UUID | None = conn.execute(select(account.c.patient_id).where(account.c.id == account_id)).scalar()
    if pid is None:
        raise DmpError("RECORD_NOT_FOUND")
    _settle_majority(conn, account_id, now)
    trail.record(
        conn, actor, AuditAction.MAJORITY_REFUSED, patient_id=pid, at=now,
        detail=MAJORITY_REFUSAL_REASON,
    )
    return pid
