"""The operator's view of ingestion (``dmp ingestion status``): how many documents had their
clinical facts read, partly read, not read, and the last failures.

What it shows is safe for an operator's terminal: document ids, dates, statuses and the French
reason recorded by ``dmp.services.ingest`` (the parser's complaint, an entry's type and index),
never a fact nor a patient's name: health content stays sealed in ``clinical_fact``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, select

from dmp.store.schema import clinical_ingestion

STATUSES = ("ok", "partial", "skipped", "error")
FAILED = ("error", "partial")


@dataclass(frozen=True)
class Failure:
    document_id: UUID
    at: datetime
    status: str  # error | partial
    detail: str | None  # French


@dataclass(frozen=True)
class IngestionStatus:
    counts: dict[str, int]  # every status, 0 when none
    last_failures: list[Failure]  # newest first


def ingestion_status(conn: Connection, *, limit: int = 10) -> IngestionStatus:
    c = clinical_ingestion.c
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in conn.execute(select(c.status, func.count()).group_by(c.status)).all():
        counts[str(status)] = int(count)
    rows = conn.execute(
        select(c.document_id, c.at, c.status, c.detail)
        .where(c.status.in_(FAILED))
        .order_by(c.at.desc(), c.document_id)
        .limit(limit)
    ).all()
    return IngestionStatus(counts, [Failure(r.document_id, r.at, r.status, r.detail) for r in rows])
