"""The synthesis-first record page (CS-07, CT-04, CT-05): what the record says, before its documents.

Built only from what the viewer may see: the record is opened once for the actor (the policy
decides, a refusal is traced as on any search), then the facts are read filtered as their source
documents (``facts.opened_facts``, the policy condition in the SQL) and the last « Synthèse
médicale » under the same condition; the page's reading is one search of the record naming the
documents it draws on. Grouping, merging of duplicates and trends are ``dmp.clinical.synthesis``
(pure).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, and_, select

from dmp.clinical import synthesis as pure
from dmp.domain.actor import Actor
from dmp.domain.document import FHIR_STATUS_TO_AVAILABILITY
from dmp.fhir.searchparams import FACT_TYPES
from dmp.services import access, documents, facts, search
from dmp.services.context import Runtime
from dmp.services.trail import AuditAction
from dmp.store.schema import clinical_fact, document

# Type codes of a « Synthèse médicale » (JDV J66: LOINC 60591-5 and the DMP's own SYNTH, the VSM).
SUMMARY_TYPES = ("60591-5", "SYNTH")
STALE_AFTER = timedelta(days=365)
_CURRENT = [a.value for a in FHIR_STATUS_TO_AVAILABILITY["current"]]


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


EMPTY = RecordSynthesis(pure.synthesis([]), {}, None, False)


def _open(conn: Connection, rt: Runtime, actor: Actor, pid: UUID) -> access.Opened | None:
    params: search.Params = [("patient", f"Patient/{pid}")]
    opened = search.open_records(conn, rt, actor, params, clinical_fact, AuditAction.RECORD_SEARCH)
    return opened[0] if opened else None


def _documents(conn: Connection, pid: UUID, ids: Iterable[str | UUID]) -> dict[str, SourceDocument]:
    uuids = []
    for raw in ids:
        try:
            uuids.append(raw if isinstance(raw, UUID) else UUID(raw))
        except ValueError:
            continue
    rows = documents.list_lines(conn, pid, uuids) if uuids else []
    return {str(r.id): SourceDocument(str(r.id), r.title, r.creation_time) for r in rows}


def _last_summary_id(conn: Connection, o: access.Opened) -> UUID | None:
    """The newest current « Synthèse médicale » the opening's actor may see."""
    d = document.c
    found: UUID | None = conn.execute(
        select(d.id)
        .where(
            and_(d.patient_id == o.patient_id, o.condition()),
            d.type_code.in_(SUMMARY_TYPES),
            d.availability.in_(_CURRENT),
        )
        .order_by(d.creation_time.desc(), d.id.desc())
        .limit(1)
    ).scalar()
    return found


def _sources(s: pure.Synthesis) -> set[str]:
    lines = [*s.allergies, *s.problems, *s.medications, *s.immunizations]
    named = {src.document_id for line in lines for src in line.sources}
    return named | {r.source.document_id for r in s.results}


def record_synthesis(
    conn: Connection, rt: Runtime, actor: Actor, pid: UUID, now: datetime
) -> RecordSynthesis:
    o = _open(conn, rt, actor, pid)
    if o is None:
        return EMPTY
    s = pure.synthesis([json.loads(r.resource_json) for r in facts.opened_facts(conn, rt, o, FACT_TYPES)])
    summary_id = _last_summary_id(conn, o)
    shown = _sources(s) | ({str(summary_id)} if summary_id else set())
    docs = _documents(conn, pid, shown)
    o.trace(conn, AuditAction.RECORD_SEARCH, sorted(docs))
    summary = docs.get(str(summary_id)) if summary_id else None
    return RecordSynthesis(s, docs, summary, summary is not None and now - summary.date > STALE_AFTER)


@dataclass(frozen=True)
class AnalyteHistory:
    label: str
    points: list[pure.Point]  # oldest first
    documents: dict[str, SourceDocument]


def analyte_history(conn: Connection, rt: Runtime, actor: Actor, pid: UUID, key: str) -> AnalyteHistory:
    """Every value of one analyte (a ``Result.key``) the actor may see, oldest first; traced as a
    search of the record naming the documents the values come from."""
    o = _open(conn, rt, actor, pid)
    if o is None:
        return AnalyteHistory("", [], {})
    rows = facts.opened_facts(conn, rt, o, ("Observation",))
    points = pure.history([json.loads(r.resource_json) for r in rows], key)
    docs = _documents(conn, pid, {p.source.document_id for p in points})
    o.trace(conn, AuditAction.RECORD_SEARCH, sorted(docs))
    return AnalyteHistory(points[-1].label if points else "", points, docs)
