"""Global uniqueness as reservations (ADR 0009 b): uniqueIds (``document_uid``) and INS (``ins_index``).

These tables are keyed by the uniqueId / the INS, not by the record: written inside a record's
transaction they would make it span two shards. So a use case reserves its keys first, in a
short transaction of its own (the unit of work's reservation phase), and then writes the
record in its per-patient transaction. A reservation whose per-patient row (the document, the
patient) exists is simply valid; one whose row does not exist is *pending* while its
transaction may still commit, then *stale*: older than the reservation timeout, a later
reservation of the same key takes it over, and :func:`sweep` deletes it. A failed per-patient
transaction releases its reservations at once (:func:`release_unique_ids`, :func:`release_ins`):
the timeout only covers a crash between the two transactions.

The timeout must exceed the longest per-patient transaction: a reservation taken over while its
transaction still runs would let both commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, and_, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from dmp.store.schema import document, document_uid, ins_index, patient


def _insert_unless_taken(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose key is free; a taken key (even by a concurrent, uncommitted
    reservation, which PostgreSQL waits for) leaves its row out instead of failing."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(table).on_conflict_do_nothing(), rows)


def _document_exists(conn: Connection, patient_id: UUID, document_id: UUID) -> bool:
    q = select(document.c.id).where(document.c.patient_id == patient_id, document.c.id == document_id)
    return conn.execute(q).first() is not None


def _patient_exists(conn: Connection, patient_id: UUID) -> bool:
    return conn.execute(select(patient.c.id).where(patient.c.id == patient_id)).first() is not None


def reserve_unique_ids(
    conn: Connection,
    wanted: Mapping[str, UUID],
    patient_id: UUID,
    now: datetime,
    *,
    stale_before: datetime,
) -> list[str]:
    """Reserve each uniqueId of ``wanted`` for its document id; return those held by another
    document (a valid one, or a pending reservation), in ``wanted``'s order."""
    keys = list(wanted)
    _take_over_stale_unique_ids(conn, keys, stale_before)
    _insert_unless_taken(
        conn,
        document_uid,
        [
            {"unique_id": k, "patient_id": patient_id, "document_id": wanted[k], "reserved_at": now}
            for k in keys
        ],
    )
    held = dict(
        conn.execute(
            select(document_uid.c.unique_id, document_uid.c.document_id).where(
                document_uid.c.unique_id.in_(keys)
            )
        ).all()
    )
    return [k for k in keys if held.get(k) != wanted[k]]


def _take_over_stale_unique_ids(conn: Connection, keys: list[str], stale_before: datetime) -> None:
    old = conn.execute(
        select(document_uid).where(
            document_uid.c.unique_id.in_(keys), document_uid.c.reserved_at < stale_before
        )
    ).all()
    for row in old:
        if not _document_exists(conn, row.patient_id, row.document_id):
            # Conditional on the very reservation read: a concurrent takeover wins once.
            conn.execute(
                delete(document_uid).where(
                    document_uid.c.unique_id == row.unique_id, document_uid.c.document_id == row.document_id
                )
            )


def release_unique_ids(conn: Connection, document_ids: Iterable[UUID]) -> None:
    """Delete the reservations of ``document_ids``, whose transaction failed (compensation)."""
    ids = list(document_ids)
    if ids:
        conn.execute(delete(document_uid).where(document_uid.c.document_id.in_(ids)))


def reserve_ins(
    conn: Connection, oid: str, value: str, patient_id: UUID, now: datetime, *, stale_before: datetime
) -> bool:
    """Reserve the INS for the record ``patient_id``; False if another record holds it (an
    existing one, or a creation still pending)."""
    key = and_(ins_index.c.ins_oid == oid, ins_index.c.ins_value == value)
    old = conn.execute(select(ins_index).where(key, ins_index.c.reserved_at < stale_before)).first()
    if old is not None and not _patient_exists(conn, old.patient_id):
        conn.execute(delete(ins_index).where(key, ins_index.c.patient_id == old.patient_id))
    _insert_unless_taken(
        conn, ins_index, [{"ins_oid": oid, "ins_value": value, "patient_id": patient_id, "reserved_at": now}]
    )
    holder = conn.execute(select(ins_index.c.patient_id).where(key)).scalar()
    return bool(holder == patient_id)


def release_ins(conn: Connection, oid: str, value: str, patient_id: UUID) -> None:
    """Delete the reservation of the INS by ``patient_id``, whose creation failed (compensation)."""
    conn.execute(
        delete(ins_index).where(
            ins_index.c.ins_oid == oid, ins_index.c.ins_value == value, ins_index.c.patient_id == patient_id
        )
    )


def sweep(conn: Connection, *, stale_before: datetime) -> tuple[list[UUID], int]:
    """Delete every stale reservation; the ids of the documents they were for, and how many INS."""
    documents: list[UUID] = []
    stale_uids = select(document_uid).where(
        document_uid.c.reserved_at < stale_before,
        ~exists().where(
            document.c.patient_id == document_uid.c.patient_id, document.c.id == document_uid.c.document_id
        ),
    )
    for row in conn.execute(stale_uids).all():
        conn.execute(
            delete(document_uid).where(
                document_uid.c.unique_id == row.unique_id, document_uid.c.document_id == row.document_id
            )
        )
        documents.append(row.document_id)
    stale_ins = select(ins_index).where(
        ins_index.c.reserved_at < stale_before, ~exists().where(patient.c.id == ins_index.c.patient_id)
    )
    records = conn.execute(stale_ins).all()
    for row in records:
        release_ins(conn, row.ins_oid, row.ins_value, row.patient_id)
    return documents, len(records)
