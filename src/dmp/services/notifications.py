"""The patient's notification centre (emergency sessions: ``emergency.py``).

A leaf of the services: it imports no other service, so that ``accounts`` may notify a patient
without an import cycle.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, insert, select, update

from dmp.store.schema_policy import patient_notification


def notify(conn: Connection, patient_id: UUID, kind: str, text: str, now: datetime) -> None:
    conn.execute(
        insert(patient_notification).values(
            patient_id=patient_id, id=uuid.uuid4(), at=now, kind=kind, text=text, read=False
        )
    )


def list_for(conn: Connection, patient_id: UUID) -> list[tuple[datetime, str, str]]:
    rows = conn.execute(
        select(patient_notification.c.at, patient_notification.c.kind, patient_notification.c.text)
        .where(patient_notification.c.patient_id == patient_id)
        .order_by(patient_notification.c.at)
    ).all()
    return [(r.at, r.kind, r.text) for r in rows]


def unread_count(conn: Connection, patient_id: UUID) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                patient_notification.c.patient_id == patient_id, patient_notification.c.read.is_(False)
            )
        ).scalar_one()
    )


def mark_all_read(conn: Connection, patient_id: UUID) -> None:
    conn.execute(
        update(patient_notification)
        .where(patient_notification.c.patient_id == patient_id, patient_notification.c.read.is_(False))
        .values(read=True)
    )
