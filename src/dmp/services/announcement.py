"""AC-10: reminding authors of the documents still awaiting their consultation d'annonce.

An ``INVISIBLE_PATIENT`` document stays hidden from the patient (and their representatives)
until its author or the médecin traitant lifts the flag — no delay reveals it
(``rules.awaiting_announcement``). ``DMP_INVISIBLE_PATIENT_MAX_DAYS`` after its submission,
its author is reminded by e-mail through the outbox (« Un document déposé le … attend toujours
sa consultation d'annonce »), once per document (dedup key ``announcement-reminder:<id>``).
The address is the author's in the professionals' directory; when the directory has none (or
the author is not a professional known by an RPPS), the reminder is recorded as undeliverable
(``failed``, empty recipient) — no address is ever guessed. Run by
``dmp documents announcement-reminders``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from dmp.domain.document import DmpFlag
from dmp.outbox import EMAIL, enqueue
from dmp.outbox.messages import record_undeliverable
from dmp.store.schema import document
from dmp.store.schema_outbox import outbox_message

TEMPLATE = "announcement_reminder"
AWAITING = ("approved", "archived")  # the versions the patient would read once announced


@dataclass
class ReminderReport:
    queued: list[UUID] = field(default_factory=list)  # e-mail queued to the author
    undeliverable: list[UUID] = field(default_factory=list)  # no known contact: recorded failed
    already: int = 0  # reminded by an earlier run


def dedup_key(doc_id: UUID) -> str:
    return f"announcement-reminder:{doc_id}"


def _author_email(conn: Connection, author_id: str | None) -> str | None:
    """The directory's address of the author (an IDNPS ``8`` + RPPS), if it has one."""
    from dmp.accounts.service import PRO, find
    from dmp.domain.professional import rpps_from_idnps
    from dmp.errors import DmpError

    if not author_id:
        return None
    try:
        acc = find(conn, PRO, rpps_from_idnps(author_id))
    except DmpError:  # not an IDNPS built on an RPPS: no directory entry to reach
        return None
    if acc is None or acc.status == "suspended":
        return None
    return acc.email or None


def _reminded(conn: Connection, row: Any) -> bool:
    o = outbox_message.c
    found = conn.execute(
        select(o.id).where(o.patient_id == row.patient_id, o.dedup_key == dedup_key(row.id))
    ).first()
    return found is not None


def send_reminders(conn: Connection, *, now: datetime, max_days: int) -> ReminderReport:
    """Queue a reminder for every document flagged INVISIBLE_PATIENT for ``max_days`` or more."""
    d = document.c
    rows = conn.execute(
        select(d.patient_id, d.id, d.author_id, d.submission_time)
        .where(
            d.flags.op("&")(int(DmpFlag.INVISIBLE_PATIENT)) != 0,
            d.availability.in_(AWAITING),
            d.submission_time <= now - timedelta(days=max_days),
        )
        .order_by(d.submission_time, d.id)
    ).all()
    report = ReminderReport()
    for row in rows:
        if _reminded(conn, row):
            report.already += 1
            continue
        params = {"submitted": row.submission_time, "reference": f"DocumentReference/{row.id}"}
        email = _author_email(conn, row.author_id)
        if email is None:
            record_undeliverable(
                conn,
                patient_id=row.patient_id,
                channel=EMAIL,
                template=TEMPLATE,
                params=params,
                now=now,
                dedup_key=dedup_key(row.id),
                reason="aucune adresse de l'auteur dans l'annuaire des professionnels",
            )
            report.undeliverable.append(row.id)
            continue
        enqueue(
            conn,
            patient_id=row.patient_id,
            channel=EMAIL,
            recipient=email,
            template=TEMPLATE,
            params=params,
            now=now,
            dedup_key=dedup_key(row.id),
        )
        report.queued.append(row.id)
    return report
