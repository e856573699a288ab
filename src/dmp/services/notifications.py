"""The patient's notification centre (emergency sessions: ``emergency.py``).

A leaf of the services: it imports no other service, so that ``accounts`` may notify a patient
without an import cycle.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, insert, select, update

from dmp.store import sealed_fields
from dmp.store.schema_policy import patient_notification


def notify(conn: Connection, patient_id: UUID, kind: str, text: str, now: datetime) -> None:
    # SE-02: the text may quote a justification or a title, sealed under the record's key
    note_id = uuid.uuid4()
    sealed = sealed_fields.seal_text(
        sealed_fields.write_dek(conn, patient_id), patient_id, "patient_notification.text", note_id, text
    )
    conn.execute(
        insert(patient_notification).values(
            patient_id=patient_id, id=note_id, at=now, kind=kind, text=sealed, read=False
        )
    )


def list_for(conn: Connection, patient_id: UUID) -> list[tuple[datetime, str, str]]:
    rows = conn.execute(
        select(
            patient_notification.c.patient_id,
            patient_notification.c.id,
            patient_notification.c.at,
            patient_notification.c.kind,
            patient_notification.c.text,
        )
        .where(patient_notification.c.patient_id == patient_id)
        .order_by(patient_notification.c.at)
    ).all()
    opened = sealed_fields.open_rows(conn, rows, "patient_notification", ("text",))
    return [(r.at, r.kind, r.text) for r in opened]


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
