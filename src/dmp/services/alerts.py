"""Alerts to people through the outbox (issue 5, part 4; LC-16).

The patient is told, by the channel of their account (e-mail or SMS), of every
break-glass or centre 15 access, of the first access by a professional who never
accessed the record before, and — if they opted in — of every new document. The
médecin traitant is told when the record of a patient who designated them is opened.
Every alert is written in the same transaction as the event (transactional outbox):
it exists if and only if the event happened.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from dmp.domain.actor import Actor, ActorKind
from dmp.outbox import EMAIL, SMS, ParamValue, enqueue
from dmp.store.schema_policy import alert_preference, professional_seen


def _patient_contact(conn: Connection, patient_id: UUID) -> tuple[str, str] | None:
    from dmp.accounts.service import patient_account

    acc = patient_account(conn, patient_id)
    if acc is None or acc.status == "suspended":
        return None
    if acc.second_factor == "sms" and acc.phone:
        return SMS, acc.phone
    if acc.email:
        return EMAIL, acc.email
    if acc.phone:
        return SMS, acc.phone
    return None


def channel_of(conn: Connection, patient_id: UUID) -> tuple[str, str] | None:
    """The channel (``EMAIL`` or ``SMS``) and address every alert to the patient uses, or None
    when the record has no reachable contact (shown on the alert preferences page)."""
    return _patient_contact(conn, patient_id)


def professional_label(actor: Actor) -> str:
    """« Name (structure) », as patients read it in alerts and notifications."""
    return actor.name + (f" ({actor.structure_name})" if actor.structure_name else "")


def to_patient(
    conn: Connection,
    patient_id: UUID,
    template: str,
    params: dict[str, ParamValue],
    now: datetime,
    dedup_key: str | None = None,
) -> bool:
    """Queue an alert to the patient if they have a contact; True if queued."""
    contact = _patient_contact(conn, patient_id)
    if contact is None:
        return False
    channel, recipient = contact
    enqueue(
        conn,
        patient_id=patient_id,
        channel=channel,
        recipient=recipient,
        template=template,
        params=params,
        now=now,
        dedup_key=dedup_key,
    )
    return True


def emergency_access(
    conn: Connection, actor: Actor, patient_id: UUID, mode: str, session_id: UUID, now: datetime
) -> None:
    if mode == "centre_15":
        to_patient(
            conn,
            patient_id,
            "centre15_alert",
            {"professional": professional_label(actor), "at": now},
            now,
            dedup_key=f"centre15:{session_id}",
        )
    else:
        to_patient(
            conn,
            patient_id,
            "break_glass_alert",
            {
                "professional": professional_label(actor),
                "at": now,
                "reason": actor.justification or "non précisé",
            },
            now,
            dedup_key=f"break-glass:{session_id}",
        )


class _Seen:
    """(record, professional) pairs known to have accessed: a positive cache, never stale."""

    def __init__(self, size: int = 100_000) -> None:
        self._data: OrderedDict[tuple[UUID, str], None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[UUID, str]) -> bool:
        with self._lock:
            return key in self._data

    def add(self, key: tuple[UUID, str]) -> None:
        with self._lock:
            self._data[key] = None
            if len(self._data) > self._size:
                self._data.popitem(last=False)


_seen = _Seen()


def first_access(conn: Connection, actor: Actor, patient_id: UUID, now: datetime) -> bool:
    """Alert the patient the first time a professional accesses their record."""
    if actor.kind is not ActorKind.PROFESSIONAL or (patient_id, actor.id) in _seen:
        return False
    known = conn.execute(
        select(professional_seen.c.actor_id).where(
            professional_seen.c.patient_id == patient_id, professional_seen.c.actor_id == actor.id
        )
    ).first()
    if known is not None:
        _seen.add((patient_id, actor.id))
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                insert(professional_seen).values(patient_id=patient_id, actor_id=actor.id, first_at=now)
            )
    except IntegrityError:  # a concurrent first access won the race
        return False
    to_patient(
        conn,
        patient_id,
        "new_professional_access",
        {"professional": professional_label(actor), "at": now},
        now,
        dedup_key=f"first-access:{actor.id}",
    )
    return True


def wants_new_document_alerts(conn: Connection, patient_id: UUID) -> bool:
    return bool(
        conn.execute(
            select(alert_preference.c.new_documents).where(alert_preference.c.patient_id == patient_id)
        ).scalar()
    )


def set_new_document_alerts(conn: Connection, patient_id: UUID, enabled: bool) -> None:
    from sqlalchemy import update

    done = conn.execute(
        update(alert_preference)
        .where(alert_preference.c.patient_id == patient_id)
        .values(new_documents=enabled)
    )
    if done.rowcount == 0:
        conn.execute(insert(alert_preference).values(patient_id=patient_id, new_documents=enabled))


def new_documents(conn: Connection, actor: Actor, patient_id: UUID, set_id: UUID, now: datetime) -> None:
    if wants_new_document_alerts(conn, patient_id):
        to_patient(
            conn,
            patient_id,
            "new_document",
            {"author": professional_label(actor), "at": now},
            now,
            dedup_key=f"new-document:{set_id}",
        )


def medecin_traitant_record_opened(
    conn: Connection, patient_row: Any, doctor_idnps: str, now: datetime
) -> bool:
    """LC-16: tell the médecin traitant the record is open, so that they write the synthesis."""
    from dmp.accounts.service import PRO, find
    from dmp.domain.professional import rpps_from_idnps

    try:
        acc = find(conn, PRO, rpps_from_idnps(doctor_idnps))
    except Exception:  # not an IDNPS built on an RPPS: no directory entry to reach
        return False
    if acc is None or not acc.email or acc.status == "suspended":
        return False
    given = patient_row.birth_given_names.split()[0] if patient_row.birth_given_names else ""
    enqueue(
        conn,
        patient_id=patient_row.id,
        channel=EMAIL,
        recipient=acc.email,
        template="medecin_traitant_record_opened",
        params={"patient": f"{given} {patient_row.birth_family_name}".strip(), "at": now},
        now=now,
        dedup_key=f"mt-opened:{doctor_idnps}:{now.date().isoformat()}",
    )
    return True
