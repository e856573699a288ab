"""Searching a record's clinical facts (CS-10: the history of one lab value across documents).

A fact is served exactly when its source document is (docs/access-policy.md): the query joins
each fact to its document under the same policy condition the document search uses, in the SQL
itself — a masked document's facts are masked, a document awaiting its announcement hides its
facts from the patient, a replaced or deleted document retires its facts (only an approved
document's facts are current). Facts are stored sealed with the record's key and opened here
for the rows served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, and_, exists, false, func, or_, select, true

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.fhir.searchparams import FACT_TYPES as FACT_TYPES
from dmp.services import access, search
from dmp.services.context import Runtime
from dmp.services.publish import record_dek
from dmp.services.search import Page, Params
from dmp.services.trail import AuditAction
from dmp.store import crypto
from dmp.store.schema import clinical_fact, document


@dataclass(frozen=True)
class FactRow:
    id: str  # <document id>-<ordinal>
    resource_json: bytes
    document_id: UUID | None = None  # its source document


Filter = Callable[[list[str], str], ColumnElement[bool]]
_CATEGORIES = {"laboratory": "lab_result", "vital-signs": "vital_sign"}  # Observation.category → kind


def _code(values: list[str], _key: str) -> ColumnElement[bool]:
    """A code, with or without its system (``http://loinc.org|2345-7`` or ``2345-7``)."""
    ors: list[ColumnElement[bool]] = []
    for v in values:
        system, _, code = v.rpartition("|") if "|" in v else ("", "", v)
        ors.append(and_(clinical_fact.c.code == code, clinical_fact.c.code_system == system) if system
                   else clinical_fact.c.code == code)
    return or_(*ors)


def _date(values: list[str], key: str) -> ColumnElement[bool]:
    return and_(*(search.date_condition(clinical_fact.c.effective_time, v, key) for v in values))


def _stored(values: list[str], key: str) -> ColumnElement[bool]:
    return and_(*(search.date_condition(clinical_fact.c.created, v, key) for v in values))


def _category(values: list[str], _key: str) -> ColumnElement[bool]:
    kinds = [_CATEGORIES[v.rpartition("|")[2]] for v in values if v.rpartition("|")[2] in _CATEGORIES]
    return clinical_fact.c.kind.in_(kinds) if kinds else false()


# How each fact search parameter of the registry (dmp.fhir.searchparams) becomes SQL.
FACT_FILTERS: dict[str, Filter | None] = {
    "patient": None,
    "patient.identifier": None,
    "code": _code,
    "date": _date,
    "_lastUpdated": _stored,
    "category": _category,
}


def _order(params: Params) -> list[Any]:
    raw = next((v for k, v in params if k == "_sort"), "-date")
    if raw not in ("date", "-date"):
        raise DmpError("INVALID_SEARCH", f"_sort={raw[:40]} (date ou -date)")
    when = clinical_fact.c.effective_time
    if raw == "date":  # a trend reads oldest first; undated facts last either way
        return [when.is_(None), when.asc(), clinical_fact.c.id.asc()]
    return [when.is_(None), when.desc(), clinical_fact.c.id.desc()]


def _visible(o: access.Opened, resource_types: Sequence[str]) -> ColumnElement[bool]:
    """The facts of these types of the opened record whose source document the actor may see."""
    f, d = clinical_fact.c, document.c
    source_visible = exists().where(d.patient_id == f.patient_id, d.id == f.document_id, o.condition())
    return and_(f.patient_id == o.patient_id, f.resource_type.in_(resource_types), source_visible)


def opened_facts(
    conn: Connection, rt: Runtime, o: access.Opened, resource_types: Sequence[str]
) -> list[FactRow]:
    """The facts of these types of a record already opened by ``o`` whose source document its
    actor may see, opened with the record's key; not traced (the caller traces the read)."""
    f = clinical_fact.c
    rows = list(
        conn.execute(
            select(f.id, f.document_id, f.sha256_hex, f.resource_sealed)
            .where(_visible(o, resource_types))
            .order_by(f.resource_type, *_order([]))
        )
    )
    dek = record_dek(conn, rt, o.patient_id) if rows else b""
    return [
        FactRow(r.id, crypto.open_sealed(dek, o.patient_id, r.sha256_hex, r.resource_sealed), r.document_id)
        for r in rows
    ]


def record_facts(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, resource_types: Sequence[str] = FACT_TYPES
) -> list[FactRow]:
    """Every fact of these types of one record that the actor may see (the patient summary),
    filtered as ``search_facts`` filters them and traced the same way: one search of the record
    naming the source documents."""
    params: Params = [("patient", f"Patient/{patient_id}")]
    opened = search.open_records(conn, rt, actor, params, clinical_fact, AuditAction.RECORD_SEARCH)
    if not opened:
        return []
    (o,) = opened
    shown = opened_facts(conn, rt, o, resource_types)
    sources: list[str | UUID] = sorted({r.document_id for r in shown if r.document_id is not None}, key=str)
    o.trace(conn, AuditAction.RECORD_SEARCH, sources)
    return shown


def search_facts(conn: Connection, rt: Runtime, actor: Actor, resource_type: str, params: Params) -> Page:
    """``GET /fhir/<resource_type>?patient=…``: the facts of one record whose documents the actor
    may see, traced as a search of the record naming those documents."""
    if resource_type not in FACT_TYPES:
        raise DmpError("UNKNOWN_RESOURCE_TYPE", resource_type)
    count, offset = search.paging(params, rt)
    conds = search.conditions(resource_type, FACT_FILTERS, params)
    if not any(k in search.PATIENT_KEYS for k, _ in params):
        raise DmpError("INVALID_SEARCH", "indiquez le patient par « patient » ou « patient.identifier »")
    opened = search.open_records(conn, rt, actor, params, clinical_fact, AuditAction.RECORD_SEARCH)
    if not opened:
        return Page(None, [], 0, None, offset, count)
    (o,) = opened
    f = clinical_fact.c
    where = and_(_visible(o, [resource_type]), *conds if conds else (true(),))
    rows = list(
        conn.execute(
            select(f.id, f.document_id, f.sha256_hex, f.resource_sealed)
            .where(where)
            .order_by(*_order(params))
            .limit(count + 1)
            .offset(offset)
        )
    )
    more = count > 0 and len(rows) > count
    rows = rows[:count]
    counted = lambda: select(func.count()).select_from(clinical_fact).where(where)  # noqa: E731
    total = search.page_total(conn, counted, len(rows), more, offset, count, search.total_wanted(params))
    dek = record_dek(conn, rt, o.patient_id) if rows else b""
    shown = [
        FactRow(r.id, crypto.open_sealed(dek, o.patient_id, r.sha256_hex, r.resource_sealed), r.document_id)
        for r in rows
    ]
    sources: list[str | UUID] = sorted({r.document_id for r in rows}, key=str)
    o.trace(conn, AuditAction.RECORD_SEARCH, sources)
    return Page(o.patient_id, shown, total, offset + count if more else None, offset, count, o.decision)

