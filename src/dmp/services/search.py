"""ITI-67 (DocumentReference) and ITI-66 (List) searches, compiled to SQL.

Parameters follow PDSm: a search names its patient (``patient`` or
``patient.identifier``). Unknown parameters are refused rather than ignored, so a
client never takes a partial filter for a complete one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import ColumnElement, Connection, and_, exists, false, func, not_, or_, select, true

from dmp.audit import AuditRecord, append
from dmp.clinical import text as words_of
from dmp.domain.actor import Actor
from dmp.domain.document import FHIR_STATUS_TO_AVAILABILITY, Availability, DmpFlag
from dmp.domain.ins import parse_ins
from dmp.errors import DmpError
from dmp.fhir import searchparams
from dmp.policy import Decision, RecordFacts, Transparency, learns_record_exists
from dmp.services import access, consents, fulltext
from dmp.services.context import Runtime
from dmp.services.policy_sql import hidden_by_mask_condition
from dmp.services.publish import record_dek
from dmp.services.subjects import parse_uuid
from dmp.services.trail import AuditAction
from dmp.store import locator, sealed_fields
from dmp.store.schema import document, document_event, submission_set
from dmp.terminology import valueset

Params = Sequence[tuple[str, str]]
PREFIXES = searchparams.DATE_PREFIXES
TOTAL_MODES = {"none", "estimate", "accurate", "count"}  # _totalMethod (fhirpy) says "count"


@dataclass
class Page:
    patient_id: UUID | None
    rows: list[Any]
    total: int | None
    next_offset: int | None
    offset: int
    count: int
    decision: Decision | None = None  # the policy decision that opened the record
    notice: str | None = None  # masking transparency message (count/category modes)
    snippets: dict[UUID, list[fulltext.Segment]] | None = None  # _content searches asked for them


def _values(raw: str) -> list[str]:
    return [v for v in raw.split(",") if v != ""]


def _token(raw: str) -> tuple[str | None, str]:
    if "|" in raw:
        system, _, code = raw.partition("|")
        return system or None, code
    return None, raw


def date_condition(col: Any, raw: str, name: str) -> ColumnElement[bool]:
    prefix, lo, hi = searchparams.date_range(raw, name)
    cond: ColumnElement[bool] = {
        "eq": and_(col >= lo, col < hi),
        "ne": or_(col < lo, col >= hi),
        "lt": col < lo,
        "eb": col < lo,
        "le": col < hi,
        "gt": col >= hi,
        "sa": col >= hi,
        "ge": col >= lo,
    }[prefix]
    return cond


def resolve_patient(conn: Connection, rt: Runtime, params: Params) -> tuple[Any, RecordFacts | None] | None:
    """The record a search names (None when it names an unknown patient), with its facts
    when they came in the same round trip."""
    named = [(k, v) for k, v in params if k in ("patient", "patient.identifier", "subject")]
    if len(named) != 1:
        raise DmpError(
            "INVALID_SEARCH", "indiquez le patient par « patient » ou « patient.identifier » (une fois)"
        )
    key, value = named[0]
    if key == "patient.identifier":
        system, code = _token(value)
        ins = parse_ins(system or "", code, allow_test=rt.settings.test_instance)
        return consents.record_by_ins(conn, ins.oid, ins.value)
    pid = parse_uuid(value.removeprefix("Patient/"))
    return consents.record_by_id(conn, pid) if pid else None


PATIENT_KEYS = ("patient", "patient.identifier", "subject")


def _id_values(params: Params) -> list[UUID] | None:
    """Every uuid named by ``_id`` (None without ``_id``); an invalid one names nothing."""
    raw = [v for k, v in params if k == "_id"]
    if not raw:
        return None
    return sorted({u for r in raw for v in _values(r) if (u := parse_uuid(v)) is not None})


# Tables whose rows the resource locator finds by id without a scatter (ADR 0009).
_LOCATED = {document.name: locator.DOCUMENT, submission_set.name: locator.LIST}


def _records_of(conn: Connection, table: Any, ids: list[UUID]) -> set[UUID]:
    """The records holding the rows ``ids`` of ``table``."""
    kind = _LOCATED.get(table.name)
    if kind is None:
        return set(conn.execute(select(table.c.patient_id).where(table.c.id.in_(ids)).distinct()).scalars())
    return {pid for i in ids if (pid := locator.locate(conn, kind, i)) is not None}


def open_records(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    params: Params,
    table: Any,
    attempted: AuditAction,
    history: bool = False,
) -> list[access.Opened]:
    """The records a search reads, opened by the access policy.

    A search names its patient; one by ``_id`` alone reads the records of those resources,
    and a record the actor may not open is then left out (its refusal traced), so that the
    answer is the empty searchset of an unknown id rather than a 403 revealing the resource.
    """
    ids = _id_values(params)
    if ids is not None and not any(k in PATIENT_KEYS for k, _ in params):
        pids = _records_of(conn, table, ids)
        opened: list[access.Opened] = []
        for pid in sorted(pids):
            found = consents.record_by_id(conn, pid)
            if found is None:
                continue
            try:
                opened.append(
                    access.open_record(
                        conn,
                        rt,
                        actor,
                        found[0],
                        attempted=attempted,
                        history=history,
                        hide_refusal=True,
                        facts=found[1],
                    )
                )
            except DmpError as err:
                if err.code != "NOT_FOUND":
                    raise
                if isinstance(err.audit_record, AuditRecord):
                    append(conn, err.audit_record)
        return opened
    named = resolve_patient(conn, rt, params)
    if named is None:
        return []
    row, facts = named
    told = learns_record_exists(actor)
    try:
        opened_one = access.open_record(
            conn, rt, actor, row, attempted=attempted, history=history, hide_refusal=not told, facts=facts
        )
    except DmpError as err:
        if told or err.code != "NOT_FOUND":
            raise
        # The empty searchset of an unknown record; the refusal is traced all the same.
        if isinstance(err.audit_record, AuditRecord):
            append(conn, err.audit_record)
        return []
    return [opened_one]


def _trace_each(
    conn: Connection,
    opened: list[access.Opened],
    action: AuditAction,
    rows: list[Any],
    params: Params,
    table: Any = document,
) -> None:
    """One entry per record read, naming what was shown.

    A search by ``_id`` alone opened the records of the asked resources: an entry naming nothing
    would tell the actor that an id they asked for exists in that record, though hidden. So there,
    what was asked and not shown gets an entry of its own naming it (and, for a submission set,
    its documents): hidden from the actor's view of the trail whenever it names a document hidden
    from them (``trail_read.scope``), seen whole by the patient and the security role.
    """
    asked = _id_values(params) if not any(k in PATIENT_KEYS for k, _ in params) else None
    def ref(i: UUID) -> str | UUID:  # a UUID is traced as DocumentReference/<id>
        return f"List/{i}" if table is submission_set else i

    shown = {r.id for r in rows}
    for o in opened:
        mine = [r.id for r in rows if r.patient_id == o.patient_id]
        if asked is None or mine:
            o.trace(conn, action, [ref(i) for i in mine])
        if asked is None:
            continue
        unshown = list(
            conn.execute(
                select(table.c.id).where(
                    table.c.id.in_([i for i in asked if i not in shown]), table.c.patient_id == o.patient_id
                )
            ).scalars()
        )
        if not unshown:
            continue
        targets: list[str | UUID] = [ref(i) for i in unshown]
        if table is submission_set:
            targets += list(
                conn.execute(select(document.c.id).where(document.c.submission_set_id.in_(unshown))).scalars()
            )
        o.trace(conn, action, targets)


def paging(params: Params, rt: Runtime) -> tuple[int, int]:
    count, offset = rt.settings.page_size_default, 0
    for k, v in params:
        if k == "_count":
            count = searchparams.integer(v, "_count", 0, rt.settings.page_size_max)
        elif k == "_offset":
            offset = searchparams.integer(v, "_offset", 0, 10_000_000)
        elif k == "_summary":
            if v not in ("count", "false"):
                raise DmpError("INVALID_SEARCH", f"_summary={v} (count ou false)")
            if v == "count":
                count = 0  # the total alone, no entries (FHIR R4 search §3.1.1.5.7)
        elif k in ("_total", "_totalMethod") and v not in TOTAL_MODES:
            raise DmpError("INVALID_SEARCH", f"{k}={v} (none, estimate ou accurate)")
    return count, offset


def total_wanted(params: Params) -> bool:
    """Bundle.total is given unless the client asks for none (_total=none)."""
    return not any(k in ("_total", "_totalMethod") and v == "none" for k, v in params)


def page_total(
    conn: Connection,
    counted: Callable[[], Any],
    rows: int,
    more: bool,
    offset: int,
    count: int,
    wanted: bool,
) -> int | None:
    """The match count; a COUNT statement (built only then) when the page alone does not tell it."""
    if count > 0 and not more and (rows > 0 or offset == 0):
        return offset + rows
    if not wanted and count > 0:
        return None
    return int(conn.execute(counted()).scalar_one())


Filter = Callable[[list[str], str], ColumnElement[bool]]  # (values, the name as sent) → SQL


def _in(col: Any) -> Filter:
    """A token parameter matching ``col`` against the codes given (systems are not compared)."""
    return lambda values, _key: col.in_([_token(v)[1] for v in values])


def _status(values: list[str], _key: str) -> ColumnElement[bool]:
    avail: list[str] = []
    for v in values:
        if v not in FHIR_STATUS_TO_AVAILABILITY:
            raise DmpError("INVALID_SEARCH", f"status={v} (current, superseded ou entered-in-error)")
        avail += [a.value for a in FHIR_STATUS_TO_AVAILABILITY[v]]
    return document.c.availability.in_(avail)


def _security_label(values: list[str], _key: str) -> ColumnElement[bool]:
    d = document.c
    ors: list[ColumnElement[bool]] = []
    for v in values:
        code = _token(v)[1]
        if code in ("N", "R", "V"):
            ors.append(d.confidentiality == code)
        elif code in DmpFlag.__members__ and code != "NONE":
            ors.append(d.flags.op("&")(int(DmpFlag[code])) != 0)
        else:
            raise DmpError("INVALID_SEARCH", f"security-label={code} inconnu")
    return or_(*ors)


def _event(values: list[str], _key: str) -> ColumnElement[bool]:
    return exists().where(
        document_event.c.patient_id == document.c.patient_id,
        document_event.c.document_id == document.c.id,
        document_event.c.code.in_([_token(v)[1] for v in values]),
    )


def _author(values: list[str], _key: str) -> ColumnElement[bool]:
    return document.c.author_id.in_([_token(v)[1].removeprefix("Practitioner/") for v in values])


def _specialty(values: list[str], _key: str) -> ColumnElement[bool]:
    """CS-03: by the author's specialty, whichever form the publisher gave (SM26 or G15_10/SM26)."""
    d = document.c
    ors: list[ColumnElement[bool]] = []
    for v in values:
        code = _token(v)[1]
        ors.append(d.author_specialty == code)
        if "/" not in code:  # a savoir-faire alone also finds the TRE_A02 form carrying it
            ors.append(
                and_(
                    d.author_specialty.startswith("G15_", autoescape=True),
                    d.author_specialty.endswith(f"/{code}", autoescape=True),
                )
            )
    return or_(*ors)


def _created(values: list[str], key: str) -> ColumnElement[bool]:
    return and_(*(date_condition(document.c.creation_time, v, key) for v in values))


def _period(values: list[str], key: str) -> ColumnElement[bool]:
    d = document.c
    conds: list[ColumnElement[bool]] = []
    for v in values:
        prefix = v[:2] if v[:2] in PREFIXES else "eq"
        if prefix in ("ge", "gt", "sa"):  # an act still running (no end) is matched on its start
            conds.append(
                or_(
                    date_condition(d.period_end, v, key),
                    and_(d.period_end.is_(None), date_condition(d.period_start, v, key)),
                )
            )
        else:
            conds.append(date_condition(d.period_start, v, key))
    return and_(*conds)


def _identifier(table: Any) -> Filter:
    """A uniqueId, or the entry's own id as urn:uuid."""

    def condition(values: list[str], _key: str) -> ColumnElement[bool]:
        ors: list[ColumnElement[bool]] = []
        for v in values:
            code = _token(v)[1]
            ors.append(table.c.unique_id == code)
            if (uid := parse_uuid(code.removeprefix("urn:uuid:"))) is not None:
                ors.append(table.c.id == uid)
        return or_(*ors)

    return condition


def _ids(col: Any, prefix: str = "") -> Filter:
    def condition(values: list[str], _key: str) -> ColumnElement[bool]:
        ids = [u for v in values if (u := parse_uuid(v.removeprefix(prefix))) is not None]
        return col.in_(ids) if ids else false()

    return condition


def _archived(values: list[str], _key: str) -> ColumnElement[bool]:
    if values not in (["true"], ["false"]):
        raise DmpError("INVALID_SEARCH", "isArchived vaut true ou false")
    arch = document.c.availability == Availability.ARCHIVED.value
    return arch if values == ["true"] else not_(arch)


# How each DocumentReference parameter of the registry (dmp.fhir.searchparams) becomes SQL; the
# record itself (patient, patient.identifier) is opened by the policy, not filtered here.
DOCUMENT_FILTERS: dict[str, Filter | None] = {
    "patient": None,
    "patient.identifier": None,
    "status": _status,
    "category": _in(document.c.class_code),
    "type": _in(document.c.type_code),
    "format": _in(document.c.format_code),
    "setting": _in(document.c.practice_code),
    "facility": _in(document.c.facility_code),
    "event": _event,
    "security-label": _security_label,
    "author.identifier": _author,
    "author.role": _in(document.c.author_role),
    "author.specialty": _specialty,
    "date": _created,
    "creation": _created,
    "period": _period,
    "identifier": _identifier(document),
    "_id": _ids(document.c.id),
    "isArchived": _archived,
    "relatesto": _ids(document.c.replaces_id, "DocumentReference/"),
    "_content": None,  # needs the record's key: compiled once the record is opened (document_query)
}


def conditions(
    resource_type: str, filters: dict[str, Filter | None], params: Params
) -> list[ColumnElement[bool]]:
    """Every parameter checked against the registry, then compiled by its filter."""
    conds: list[ColumnElement[bool]] = []
    for (name, raw), (key, _) in zip(
        searchparams.check(resource_type, params),
        [(k, v) for k, v in params if k not in searchparams.RESULT_PARAMETERS],
        strict=True,
    ):
        compile_ = filters[name]
        if compile_ is None:
            continue
        values = _values(raw)
        if not values:
            raise DmpError("INVALID_SEARCH", f"{key} sans valeur")
        conds.append(compile_(values, key))
    return conds


def document_conditions(params: Params) -> list[ColumnElement[bool]]:
    return conditions("DocumentReference", DOCUMENT_FILTERS, params)


_SORTS = {
    "date": document.c.creation_time,
    "creation": document.c.creation_time,
    "period": document.c.period_start,
    "_lastUpdated": document.c.last_updated,
}


def _order(params: Params) -> list[Any]:
    raw = next((v for k, v in params if k == "_sort"), "-date")
    order: list[Any] = []
    for part in _values(raw):
        desc = part.startswith("-")
        col = _SORTS.get(part.lstrip("-"))
        if col is None:
            raise DmpError("INVALID_SEARCH", f"_sort={part} (date, period, _lastUpdated)")
        order.append(col.desc() if desc else col.asc())
    # The tie-breaker follows the first key's direction so that the (patient_id,
    # creation_time, id) index yields the order directly, scanned forward or backward.
    first_desc = _values(raw)[0].startswith("-") if _values(raw) else True
    order.append(document.c.id.desc() if first_desc else document.c.id.asc())
    return order


def _asks_history(params: Params) -> bool:
    return any(k == "status" and "superseded" in _values(v) for k, v in params)


def _masked_notice(conn: Connection, opened: access.Opened, where: ColumnElement[bool]) -> str | None:
    """AC-09: in the count/category modes, tell the professional what is masked from them."""
    mode = opened.ctx.transparency
    if mode is Transparency.HIDDEN:
        return None
    hidden = and_(
        document.c.patient_id == opened.patient_id, hidden_by_mask_condition(opened.access, opened.ctx), where
    )
    if mode is Transparency.COUNT:
        n = conn.execute(select(func.count()).select_from(document).where(hidden)).scalar_one()
        return f"{n} document(s) masqué(s) par le patient ne sont pas affichés." if n else None
    rows = conn.execute(
        select(document.c.class_code, func.count())
        .where(hidden)
        .group_by(document.c.class_code)
        .order_by(document.c.class_code)
    ).all()
    if not rows:
        return None
    vs = valueset("J57")
    parts = [f"{vs.lookup(code)[0].display if vs.lookup(code) else code} ({n})" for code, n in rows]
    return "Documents masqués par le patient, par classe : " + ", ".join(parts) + "."


def _content_stems(params: Params) -> list[str] | None:
    """The stems every document found must hold (None without ``_content``)."""
    raw = [v for k, v in params if k == "_content"]
    if not raw:
        return None
    if not any(k in PATIENT_KEYS for k, _ in params):
        raise DmpError("INVALID_SEARCH", "« _content » cherche dans un dossier : indiquez le patient")
    stems = words_of.query_stems(" ".join(raw))
    if not stems:
        raise DmpError("INVALID_SEARCH", "_content ne contient aucun mot à chercher")
    if len(stems) > fulltext.MAX_QUERY_TERMS:
        raise DmpError("INVALID_SEARCH", f"_content : {fulltext.MAX_QUERY_TERMS} mots au plus")
    return stems


@dataclass(frozen=True)
class DocumentQuery:
    source: Any  # document, or document joined to its full-text matches
    where: ColumnElement[bool]
    order: list[Any]


def document_query(
    opened: list[access.Opened],
    filters: ColumnElement[bool],
    params: Params,
    stems: list[str] | None = None,
    dek: bytes = b"",
) -> DocumentQuery:
    """The documents of the opened records the policy lets the actor see, matching ``filters`` and,
    with ``stems``, holding every one of them in the (single) record's index: one statement, the
    policy condition in it (tests/policy/test_fulltext_policy.py)."""
    visible = or_(*(and_(document.c.patient_id == o.patient_id, o.condition()) for o in opened))
    where = and_(visible, filters)
    if stems is None:
        return DocumentQuery(document, where, _order(params))
    match = fulltext.matching(opened[0].patient_id, dek, stems)
    source = document.join(match, match.c.document_id == document.c.id)
    order = _order(params)
    if not any(k == "_sort" for k, _ in params):
        order = [match.c.score.desc(), document.c.creation_time.desc(), document.c.id.desc()]
    return DocumentQuery(source, and_(where, document.c.patient_id == opened[0].patient_id), order)


def search_documents(
    conn: Connection, rt: Runtime, actor: Actor, params: Params, *, snippets: bool = False
) -> Page:
    """ITI-67; with ``_content``, only the documents whose text holds every word, ranked by how often
    they hold them (unless ``_sort``), and, when ``snippets``, a marked passage of each one found."""
    count, offset = paging(params, rt)
    conds = document_conditions(params)  # validate every parameter before any lookup
    stems = _content_stems(params)
    opened = open_records(
        conn, rt, actor, params, document, AuditAction.RECORD_SEARCH, history=_asks_history(params)
    )
    if not opened:
        return Page(None, [], 0, None, offset, count)
    filters = and_(*conds) if conds else true()
    # With _content, one record (a patient is named): its key hashes the words.
    dek = record_dek(conn, rt, opened[0].patient_id) if stems is not None else b""
    q = document_query(opened, filters, params, stems, dek)
    source, where = q.source, q.where
    rows: list[Any] = sealed_fields.open_rows(
        conn,
        conn.execute(
            select(document.c.id, document.c.resource_json, document.c.patient_id)
            .select_from(source)
            .where(where)
            .order_by(*q.order)
            .limit(count + 1)
            .offset(offset)
        ),
        "document",
        ("resource_json",),
    )
    more = count > 0 and len(rows) > count
    # Counts use the same policy condition: hidden documents are never counted.
    total = page_total(
        conn,
        lambda: select(func.count()).select_from(source).where(where),
        len(rows[:count]),
        more,
        offset,
        count,
        total_wanted(params),
    )
    _trace_each(conn, opened, AuditAction.RECORD_SEARCH, rows[:count], params)
    single = opened[0] if len(opened) == 1 else None
    page = Page(
        single.patient_id if single else None,
        rows[:count],
        total,
        offset + count if more else None,
        offset,
        count,
        single.decision if single else None,
    )
    if single is not None:
        # The words searched for are left out: the notice never tells what a masked document says.
        page.notice = _masked_notice(conn, single, filters)
    if stems is not None and snippets and single is not None:
        query = " ".join(v for k, v in params if k == "_content")
        page.snippets = fulltext.snippets(conn, single.patient_id, dek, [r.id for r in page.rows], query)
    return page


def _submitted(values: list[str], key: str) -> ColumnElement[bool]:
    return and_(*(date_condition(submission_set.c.submission_time, v, key) for v in values))


def _only_submission_sets(values: list[str], _key: str) -> ColumnElement[bool]:
    """Only submission sets are kept (no folders): another code finds nothing."""
    return true() if any(_token(v)[1] == "submissionset" for v in values) else false()


def _current(values: list[str], _key: str) -> ColumnElement[bool]:
    return true() if "current" in values else false()


LIST_FILTERS: dict[str, Filter | None] = {
    "patient": None,
    "patient.identifier": None,
    "_id": _ids(submission_set.c.id),
    "code": _only_submission_sets,
    "status": _current,
    "date": _submitted,
    "identifier": _identifier(submission_set),
    "sourceId": _in(submission_set.c.source_id),
    "designationType": _in(submission_set.c.content_type_code),
}


def search_lists(conn: Connection, rt: Runtime, actor: Actor, params: Params) -> Page:
    count, offset = paging(params, rt)
    conds = conditions("List", LIST_FILTERS, params)
    opened = open_records(conn, rt, actor, params, submission_set, AuditAction.SUBMISSION_SEARCH)
    if not opened:
        return Page(None, [], 0, None, offset, count)
    return lists_page(conn, opened, params, conds, count, offset)


def lists_page(
    conn: Connection,
    opened: list[access.Opened],
    params: Params,
    conds: list[ColumnElement[bool]],
    count: int,
    offset: int,
) -> Page:
    """One page of the submission sets of records already opened, each with the documents the
    actor may see (traced)."""
    s = submission_set.c
    visible = _visible_documents(opened)
    matching = (*_lists_with_visible_members(opened, visible), *conds)
    rows: list[Any] = sealed_fields.open_rows(
        conn,
        conn.execute(
            select(s.id, s.resource_json, s.patient_id)
            .where(*matching)
            .order_by(s.submission_time.desc(), s.id)
            .limit(count + 1)
            .offset(offset)
        ),
        "submission_set",
        ("resource_json",),
    )
    more = count > 0 and len(rows) > count
    rows = rows[:count]
    total = page_total(
        conn,
        lambda: select(func.count()).select_from(submission_set).where(*matching),
        len(rows),
        more,
        offset,
        count,
        total_wanted(params),
    )
    shown = _shown_lists(conn, visible, rows)
    _trace_each(conn, opened, AuditAction.SUBMISSION_SEARCH, rows, params, submission_set)
    single = opened[0] if len(opened) == 1 else None
    return Page(
        single.patient_id if single else None,
        shown,
        total,
        offset + count if more else None,
        offset,
        count,
        single.decision if single else None,
    )


@dataclass
class ListRow:
    id: UUID
    resource_json: bytes


def _visible_documents(opened: list[access.Opened]) -> ColumnElement[bool]:
    return or_(*(and_(document.c.patient_id == o.patient_id, o.condition()) for o in opened))


def _lists_with_visible_members(
    opened: list[access.Opened], visible: ColumnElement[bool]
) -> tuple[ColumnElement[bool], ...]:
    """A submission set is shown with the documents the actor may see, and only if there is at
    least one: a list must not reveal that masked documents exist."""
    s = submission_set.c
    has_visible = exists().where(visible, document.c.submission_set_id == s.id)
    return s.patient_id.in_([o.patient_id for o in opened]), has_visible


def _shown_lists(conn: Connection, visible: ColumnElement[bool], rows: Sequence[Any]) -> list[ListRow]:
    """The submission sets found, each naming only its members the actor may see."""
    members: dict[UUID, list[UUID]] = {}
    if rows:
        for set_id, doc_id in conn.execute(
            select(document.c.submission_set_id, document.c.id)
            .where(visible, document.c.submission_set_id.in_([r.id for r in rows]))
            .order_by(document.c.id)
        ):
            members.setdefault(set_id, []).append(doc_id)
    return [ListRow(r.id, _with_members(r.resource_json, members.get(r.id, []))) for r in rows]


def record_lists(conn: Connection, opened: access.Opened) -> list[ListRow]:
    """Every submission set of a record already opened, as ``search_lists`` shows them (oldest
    first), untraced: the caller traces the use case it serves (an export)."""
    s = submission_set.c
    visible = _visible_documents([opened])
    rows: list[Any] = sealed_fields.open_rows(
        conn,
        conn.execute(
            select(s.id, s.resource_json, s.patient_id)
            .where(*_lists_with_visible_members([opened], visible))
            .order_by(s.submission_time, s.id)
        ),
        "submission_set",
        ("resource_json",),
    )
    return _shown_lists(conn, visible, rows)


def _with_members(resource_json: Any, doc_ids: list[UUID]) -> bytes:
    resource = orjson.loads(resource_json)
    wanted = {f"DocumentReference/{d}" for d in doc_ids}
    resource["entry"] = [e for e in resource.get("entry", []) if e["item"]["reference"] in wanted]
    return orjson.dumps(resource)
