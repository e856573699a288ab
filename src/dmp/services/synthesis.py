"""The synthesis-first record page (CS-07, CT-04, CT-05): what the record says, before its documents.

Built only from what the viewer may see: the facts come from ``facts.record_facts`` (each filtered
as its source document, in the SQL) and the last « Synthèse médicale » from ``search_documents``
(the same policy condition); both reads are traced as searches of the record. Grouping, merging
of duplicates and trends are ``dmp.clinical.synthesis`` (pure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection

from dmp.clinical import synthesis as pure
from dmp.domain.actor import Actor
from dmp.fhir.searchparams import FACT_TYPES
from dmp.services import documents, facts, search
from dmp.services.context import Runtime

# Type codes of a « Synthèse médicale » (JDV J66: LOINC 60591-5 and the DMP's own SYNTH, the VSM).
SUMMARY_TYPES = ("60591-5", "SYNTH")
STALE_AFTER = timedelta(days=365)


@dataclass(frozen=True)
class SourceDocument:
    id: str
    title: str
    date: datetime


@dataclass(frozen=True)
class RecordSynthesis:
    synthesis: pure.Synthesis
    documents: dict[str, SourceDocument]  # every source document a line names, by id
    last_summary: SourceDocument | None
    summary_stale: bool  # the last « Synthèse médicale » is more than a year old


def _resources(
    conn: Connection, rt: Runtime, actor: Actor, pid: UUID, types: tuple[str, ...]
) -> list[pure.Json]:
    return [json.loads(row.resource_json) for row in facts.record_facts(conn, rt, actor, pid, types)]


def _documents(conn: Connection, pid: UUID, ids: set[str]) -> dict[str, SourceDocument]:
    uuids = []
    for raw in ids:
        try:
            uuids.append(UUID(raw))
        except ValueError:
            continue
    rows = documents.list_lines(conn, pid, uuids) if uuids else []
    return {str(r.id): SourceDocument(str(r.id), r.title, r.creation_time) for r in rows}


def last_summary(conn: Connection, rt: Runtime, actor: Actor, pid: UUID) -> SourceDocument | None:
    """The newest current « Synthèse médicale » the actor may see."""
    page = search.search_documents(
        conn,
        rt,
        actor,
        [
            ("patient", f"Patient/{pid}"),
            ("type", ",".join(SUMMARY_TYPES)),
            ("status", "current"),
            ("_sort", "-date"),
            ("_count", "1"),
        ],
    )
    if not page.rows:
        return None
    return _documents(conn, pid, {str(page.rows[0].id)}).get(str(page.rows[0].id))


def _sources(s: pure.Synthesis) -> set[str]:
    lines = [*s.allergies, *s.problems, *s.medications, *s.immunizations]
    named = {src.document_id for line in lines for src in line.sources}
    return named | {r.source.document_id for r in s.results}


def record_synthesis(
    conn: Connection, rt: Runtime, actor: Actor, pid: UUID, now: datetime
) -> RecordSynthesis:
    s = pure.synthesis(_resources(conn, rt, actor, pid, FACT_TYPES))
    summary = last_summary(conn, rt, actor, pid)
    return RecordSynthesis(
        s,
        _documents(conn, pid, _sources(s)),
        summary,
        summary is not None and now - summary.date > STALE_AFTER,
    )


@dataclass(frozen=True)
class AnalyteHistory:
    label: str
    points: list[pure.Point]  # oldest first
    documents: dict[str, SourceDocument]


def analyte_history(conn: Connection, rt: Runtime, actor: Actor, pid: UUID, key: str) -> AnalyteHistory:
    """Every value of one analyte (a ``Result.key``) the actor may see, oldest first."""
    points = pure.history(_resources(conn, rt, actor, pid, ("Observation",)), key)
    docs = _documents(conn, pid, {p.source.document_id for p in points})
    return AnalyteHistory(points[-1].label if points else "", points, docs)
