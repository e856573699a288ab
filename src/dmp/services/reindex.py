"""Index the documents the full-text index does not know yet (published before it existed).

An operator's job (``dmp documents index``), one record per transaction: each document without a
``document_text`` row is read from the blob store, opened with its record's key, its text read as
ingestion reads it (``dmp.services.ingest.readable_text``) and indexed (``dmp.services.fulltext``).
Its facts are not touched. A document whose bytes cannot be read is counted and left out (retried
on the next run); nothing is refused. Not traced as a read: no person reads anything, as at
ingestion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, exists, insert, not_, select

from dmp.services import fulltext
from dmp.services.context import Runtime
from dmp.services.ingest import readable_text
from dmp.services.publish import record_dek
from dmp.store import crypto, sealed_fields
from dmp.store.schema import document, document_text, document_token

_log = logging.getLogger(__name__)


@dataclass
class Report:
    records: int = 0
    indexed: int = 0
    unreadable: int = 0


def _not_indexed() -> ColumnElement[bool]:
    t = document_text.c
    return not_(exists().where(t.patient_id == document.c.patient_id, t.document_id == document.c.id))


def records_to_index(conn: Connection) -> list[UUID]:
    rows = conn.execute(select(document.c.patient_id).where(_not_indexed()).distinct())
    return sorted(rows.scalars())


def index_record(conn: Connection, rt: Runtime, pid: UUID, report: Report) -> None:
    d = document.c
    rows = list(
        conn.execute(
            select(d.id, d.title, d.sha256_hex, d.blob_key).where(d.patient_id == pid, _not_indexed())
        )
    )
    if not rows:
        return
    dek = record_dek(conn, rt, pid)
    report.records += 1
    for r in rows:
        try:
            content = crypto.open_sealed(dek, pid, r.sha256_hex, rt.blobs.get(r.blob_key))
        except Exception:  # a missing or damaged blob: said, counted, retried next time
            _log.exception("document %s unreadable for the full-text index", r.id)
            report.unreadable += 1
            continue
        title = sealed_fields.open_text(dek, pid, "document.title", r.id, r.title)  # SE-02
        index = fulltext.index_rows(pid, r.id, dek, readable_text(title, content))
        if index.tokens:
            conn.execute(insert(document_token), index.tokens)
        conn.execute(insert(document_text), index.text)
        report.indexed += 1


def index_missing(rt: Runtime, transaction: Callable[[], AbstractContextManager[Connection]]) -> Report:
    """Every record with unindexed documents, each in its own transaction (``transaction()``)."""
    report = Report()
    with transaction() as conn:
        pids = records_to_index(conn)
    for pid in pids:
        with transaction() as conn:
            index_record(conn, rt, pid, report)
    return report
