"""Export of the trail as NDJSON of FHIR AuditEvents (one per line), for a record or a period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import IO
from uuid import UUID

import orjson
from sqlalchemy import Connection

from dmp.audit.fhir import to_audit_event
from dmp.audit.trail import iter_entries, opened


def export_ndjson(
    conn: Connection,
    out: IO[bytes],
    patient_id: UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    base_url: str = "http://127.0.0.1:8080",
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write the entries (record order, then position) with ``start <= at < end``; return their number."""
    n = 0
    for stored in iter_entries(conn, patient_id, start, end):
        entry = opened(conn, [stored])[0]
        out.write(orjson.dumps(to_audit_event(entry, base_url)))
        out.write(b"\n")
        n += 1
        if progress is not None:
            progress(1)
    return n
