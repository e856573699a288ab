"""The /fhir routes: thin adapters from HTTP to the use cases."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import orjson
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts.oauth import ALLOWED_SCOPES
from dmp.api.auth import CREATE, DELETE, UPDATE, authenticate, require_write_scope
from dmp.api.http import (
    JSON_TYPES,
    PATCH_TYPES,
    FhirResponse,
    check_params,
    query_params,
    read_body,
    read_json,
)
from dmp.api.state import AppState
from dmp.auth.assertion import ALLOWED_ALGORITHMS
from dmp.domain.actor import Actor
from dmp.domain.ins import parse_ins
from dmp.errors import DmpError
from dmp.fhir import FHIR_JSON, searchparams
from dmp.fhir import consent as fhir_consent
from dmp.fhir import smart as fhir_smart
from dmp.fhir.bundle import ProvideRequest, parse_provide_bundle
from dmp.fhir.capability import capability_statement
from dmp.fhir.common import dumps, instant, is_media_type
from dmp.fhir.patient import parse_creation, patient_resource
from dmp.fhir.searchparams import FACT_TYPES
from dmp.fhir.searchset import searchset as render_searchset
from dmp.fhir.simplified import parse_simplified_publish, relocated
from dmp.fhir.summary import summary_bundle
from dmp.fhir.validate import validate
from dmp.policy import RecordFacts
from dmp.services import (
    access,
    blob_hygiene,
    consents,
    documents,
    facts,
    publish,
    record_opening,
    records,
    search,
    trail,
    unit_of_work,
)
from dmp.services.subjects import parse_uuid
from dmp.services.trail import AuditAction

T = TypeVar("T")


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.dmp
    return state


def _id(raw: str) -> UUID:
    value = parse_uuid(raw)
    if value is None:
        raise DmpError("NOT_FOUND")
    return value


async def _in_transaction(state: AppState, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one database transaction, off the event loop."""

    def run() -> T:
        with unit_of_work.transaction(state.runtime.engine) as conn:
            return work(conn)

    return await run_in_threadpool(run)


def _params(request: Request) -> list[tuple[str, str]]:
    return query_params(request, _state(request).runtime.settings.max_search_parameters)


async def smart_configuration(request: Request) -> Response:
    """SMART discovery, public (SMART App Launch 2.x §2.1), at the server root and the FHIR base."""
    settings = _state(request).runtime.settings
    document = fhir_smart.smart_configuration(settings.base_url, ALLOWED_SCOPES, ALLOWED_ALGORITHMS)
    return Response(dumps(document), media_type="application/json")


async def metadata(request: Request) -> Response:
    state = _state(request)
    rt = state.runtime
    return FhirResponse(capability_statement(rt.fhir_base, rt.settings.token_audience, state.started))


async def transaction(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    require_write_scope(actor, "DocumentReference", CREATE)
    rt = state.runtime
    bundle = await read_json(request, rt.settings.max_request_bytes)
    req = parse_provide_bundle(
        bundle,
        max_document_bytes=rt.settings.max_document_bytes,
        allow_test=rt.settings.test_instance,
        max_entries=rt.settings.max_bundle_entries,
        max_total_bytes=rt.settings.submission_bytes,
    )
    now = rt.now()
    result = await _publishing(
        state, req, now, lambda conn, work_rt, held: publish.publish(conn, work_rt, actor, req, now, held)
    )
    return FhirResponse(result.response, 200)


async def _publishing(
    state: AppState,
    req: ProvideRequest,
    now: datetime,
    work: Callable[[Connection, Any, publish.Reserved], T],
) -> T:
    """A publication: its uniqueIds reserved in a transaction of their own, then its per-patient
    transaction (ADR 0009 b); the blobs it wrote before a rollback are removed after it."""
    rt = state.runtime
    tracked = blob_hygiene.TrackedBlobs(rt.blobs)
    work_rt = replace(rt, blobs=tracked)

    def run() -> T:
        reserve = lambda conn: publish.reserve(conn, rt, req, now)  # noqa: E731
        with unit_of_work.reserved_transaction(rt.engine, reserve) as (conn, held):
            return work(conn, work_rt, held)

    try:
        return await run_in_threadpool(run)
    except Exception:
        if tracked.written:
            await run_in_threadpool(blob_hygiene.discard_after_rollback, rt, list(tracked.written))
        raise


async def create_document_reference(request: Request) -> Response:
    """ITI-105 Simplified Publish: the ITI-65 publication of one DocumentReference whose
    ``attachment.data`` carries the document, the server building the SubmissionSet."""
    state = _state(request)
    actor = authenticate(request, state)
    require_write_scope(actor, "DocumentReference", CREATE)
    rt = state.runtime
    body = await read_json(request, rt.settings.max_request_bytes)
    now = rt.now()
    req = parse_simplified_publish(
        body, now, max_document_bytes=rt.settings.max_document_bytes, allow_test=rt.settings.test_instance
    )
    def work(conn: Connection, work_rt: Any, held: publish.Reserved) -> tuple[UUID, bytes]:
        result = publish.publish(conn, work_rt, actor, req, now, held)
        (doc_id,) = result.document_ids
        return doc_id, documents.stored_resource(conn, result.patient_id, doc_id)

    try:
        doc_id, stored = await _publishing(state, req, now, work)
    except DmpError as err:
        raise relocated(err) from None
    return FhirResponse(
        stored,
        201,
        headers={
            "Location": f"{rt.fhir_base}/DocumentReference/{doc_id}/_history/1",
            "ETag": 'W/"1"',
            "Last-Modified": instant(now),
        },
    )


async def _searchset(request: Request, resource_type: str, run: Callable[..., search.Page]) -> Response:
    """ITI-67 / ITI-66: one search use case in one transaction, rendered as a searchset."""
    state = _state(request)
    actor = authenticate(request, state)
    rt = state.runtime
    params = _params(request)
    page = await _in_transaction(state, lambda c: run(c, rt, actor, params))
    return FhirResponse(render_searchset(page, rt.fhir_base, resource_type, params))


async def search_document_references(request: Request) -> Response:
    return await _searchset(request, "DocumentReference", search.search_documents)


async def read_document_reference(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    doc_id = _id(request.path_params["id"])
    body = await _in_transaction(state, lambda c: documents.read_document(c, state.runtime, actor, doc_id))
    return FhirResponse(body)


async def patch_document_reference(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    require_write_scope(actor, "DocumentReference", UPDATE)
    rt = state.runtime
    ops = await read_json(request, 1024 * 1024, PATCH_TYPES)
    raw_id = request.path_params.get("id")
    ident = next((v for k, v in _params(request) if k == "identifier"), None)

    def work(conn: Connection) -> bytes:
        if raw_id is not None:
            doc_id = _id(raw_id)
        elif ident:
            doc_id = documents.find_by_identifier(conn, ident)
        else:
            raise DmpError("INVALID_SEARCH", "PATCH conditionnel : paramètre identifier attendu")
        return documents.patch(conn, rt, actor, doc_id, ops, rt.now())

    return FhirResponse(await _in_transaction(state, work))


async def search_lists(request: Request) -> Response:
    return await _searchset(request, "List", search.search_lists)


async def read_list(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    list_id = _id(request.path_params["id"])
    return FhirResponse(
        await _in_transaction(state, lambda c: documents.read_list(c, state.runtime, actor, list_id))
    )


async def read_binary(request: Request) -> Response:
    """ITI-68: raw bytes in their own type, or a FHIR Binary when asked for FHIR JSON."""
    state = _state(request)
    actor = authenticate(request, state)
    rt = state.runtime
    doc_id = _id(request.path_params["id"])
    content = await _in_transaction(state, lambda c: documents.retrieve(c, rt, actor, doc_id))
    accept = request.headers.get("accept", "")
    if FHIR_JSON in accept or "application/json" in accept.split(",")[0]:
        return FhirResponse(
            {
                "resourceType": "Binary",
                "id": str(doc_id),
                "contentType": content.mime_type,
                "data": base64.b64encode(content.data).decode(),
            }
        )
    # The exact type the producer declared (Starlette would append a charset to text/*), if it
    # can stand in a header: one stored before contentType was checked falls back to bytes.
    mime = content.mime_type if is_media_type(content.mime_type) else "application/octet-stream"
    return Response(
        content.data,
        headers={
            "Content-Type": mime,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "attachment",
        },
    )


async def search_patients(request: Request) -> Response:
    """TD0.2 by INS (``identifier``, professionals only) and/or by ``_id``: a patient is found
    by ``_id`` only if its read would be served, otherwise the searchset is empty, as for an
    unknown id (the read's 404)."""
    state = _state(request)
    actor = authenticate(request, state)
    rt = state.runtime
    params = _params(request)
    searchparams.check("Patient", [(k, v) for k, v in params if k != "_format"])
    idents = [v for k, v in params if k == "identifier"]
    id_params = [v for k, v in params if k == "_id"]
    if len(idents) > 1 or not (idents or id_params):
        raise DmpError("INVALID_SEARCH", "identifier=<système>|<INS> (une fois) ou _id=<id> attendu")
    ins = None
    if idents:
        access.require_health_professional(actor)
        system, _, value = idents[0].partition("|")
        ins = parse_ins(system, value, allow_test=rt.settings.test_instance)
    # Several _id parameters all apply (AND); commas in one are alternatives (OR).
    wanted: set[UUID] | None = None
    for raw in id_params:
        ids = {u for v in raw.split(",") if (u := parse_uuid(v)) is not None}
        wanted = ids if wanted is None else wanted & ids

    def check(conn: Connection) -> list[Any]:
        if ins is not None:
            row = records.find_by_ins(conn, ins)
            # TD0.2 is traced whether a record exists or not (the search itself is an access).
            trail.record(
                conn,
                actor,
                AuditAction.RECORD_CHECK,
                patient_id=row.id if row else None,
                at=rt.now(),
                detail=None if row else "aucun DMP pour cet INS",
            )
            return [row] if row is not None and (wanted is None or row.id in wanted) else []
        shown = []
        for pid in sorted(wanted or ()):
            found = consents.record_by_id(conn, pid)
            if found is None or not access.may_see_patient(actor, *found):
                continue  # the read's uniform 404: nothing tells a hidden patient from an unknown id
            trail.record(conn, actor, AuditAction.RECORD_READ, patient_id=found[0].id, at=rt.now())
            shown.append(found[0])
        return shown

    rows = await _in_transaction(state, check)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(rows),
        "link": [{"relation": "self", "url": str(request.url)}],
    }
    if rows:
        bundle["entry"] = [
            {
                "fullUrl": f"{rt.fhir_base}/Patient/{row.id}",
                "resource": patient_resource(row),
                "search": {"mode": "match"},
            }
            for row in rows
        ]
    return FhirResponse(bundle)


async def read_patient(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    pid = _id(request.path_params["id"])

    def work(conn: Connection) -> Any:
        found = consents.record_by_id(conn, pid)
        if found is None or not access.may_see_patient(actor, *found):
            raise DmpError("NOT_FOUND")
        row = found[0]
        trail.record(conn, actor, AuditAction.RECORD_READ, patient_id=row.id, at=state.runtime.now())
        return row

    return FhirResponse(patient_resource(await _in_transaction(state, work)))


async def patient_summary(request: Request) -> Response:
    """``Patient/{id}/$summary``: the International Patient Summary of the record, built from the
    facts the actor may see (filtered as their source documents, traced as a search)."""
    state = _state(request)
    actor = authenticate(request, state)
    pid = _id(request.path_params["id"])
    rt = state.runtime

    def work(conn: Connection) -> tuple[Any, list[facts.FactRow]]:
        found = consents.record_by_id(conn, pid)
        if found is None or not access.may_see_patient(actor, *found):
            raise DmpError("NOT_FOUND")
        # The searchable facts and the advance directives (Consent facts, not searchable).
        return found[0], facts.record_facts(conn, rt, actor, pid, (*facts.FACT_TYPES, "Consent"))

    row, shown = await _in_transaction(state, work)
    resources = [orjson.loads(f.resource_json) for f in shown]
    bundle = summary_bundle(patient_resource(row), resources, base=rt.fhir_base, now=instant(rt.now()))
    return FhirResponse(bundle)


async def create_patient(request: Request) -> Response:
    """TD1: a professional opens the record, attesting the patient's consent."""
    state = _state(request)
    actor: Actor = authenticate(request, state)
    require_write_scope(actor, "Patient", CREATE)
    access.require_health_professional(actor)
    rt = state.runtime
    body = await read_json(request, 256 * 1024, JSON_TYPES)
    if not isinstance(body, dict):
        raise DmpError("INVALID_RESOURCE", "une ressource Patient est attendue")
    validate(body, "Patient")
    req = parse_creation(body, allow_test=rt.settings.test_instance)

    now = rt.now()

    def work() -> Any:
        # The INS reserved first (ADR 0009 b), then the record and its holder's account, whose
        # code goes back to the professional.
        reserve = lambda conn: records.reserve(conn, rt, req, now)  # noqa: E731
        with unit_of_work.reserved_transaction(rt.engine, reserve) as (conn, held):
            pid, code = record_opening.open_record(
                conn, rt, actor, req, now, email=req.email, phone=req.phone, reserved=held
            )
            return records.get(conn, pid), code

    row, code = await run_in_threadpool(work)
    return FhirResponse(
        patient_resource(row),
        201,
        headers={
            "Location": f"{rt.fhir_base}/Patient/{row.id}/_history/{row.version}",
            "ETag": f'W/"{row.version}"',
            "Last-Modified": instant(row.updated_at),
            # To hand to the patient (printed): it activates their account (docs/accounts.md).
            "DMP-Activation-Code": code,
            "Cache-Control": "no-store",
        },
    )


def _consent_record(conn: Connection, reference: str) -> tuple[Any, RecordFacts]:
    """The open record a Consent names, with its facts (one statement)."""
    found = consents.record_by_id(conn, fhir_consent.patient_id_of(reference))
    if found is None:
        raise DmpError("RECORD_NOT_FOUND")
    records.require_open(found[0])
    return found


async def create_consent(request: Request) -> Response:
    """The patient's choices (authorise, block, médecin traitant, emergency…) and the
    professional's attestations ("le patient m'a autorisé", care team)."""
    state = _state(request)
    actor = authenticate(request, state)
    require_write_scope(actor, "Consent", CREATE)
    rt = state.runtime
    body = await read_json(request, 64 * 1024)
    if not isinstance(body, dict):
        raise DmpError("INVALID_RESOURCE", "une ressource Consent est attendue")
    validate(body, "Consent")
    reference, kind, subject, permit_ = fhir_consent.parse(body)

    def work(conn: Connection) -> Any:
        row, facts = _consent_record(conn, reference)
        cid, _ = consents.add(conn, actor, facts, kind, subject, permit_, access.context(rt))
        return next(r for r in consents.list_rows(conn, row.id) if r.id == cid)

    created = await _in_transaction(state, work)
    return FhirResponse(
        fhir_consent.to_resource(created), 201, headers={"Location": f"{rt.fhir_base}/Consent/{created.id}"}
    )


async def search_consents(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    rt = state.runtime
    params = _params(request)
    searchparams.check("Consent", [(k, v) for k, v in params if k != "_format"])
    if len([v for k, v in params if k == "patient"]) != 1:
        raise DmpError("INVALID_SEARCH", "Consent : seul le paramètre patient=Patient/<id> est accepté")
    reference = next(v for k, v in params if k == "patient")

    def work(conn: Connection) -> Any:
        pid = fhir_consent.patient_id_of(reference)
        return consents.read_visible(conn, actor, pid, access.context(rt))

    return FhirResponse(fhir_consent.searchset(await _in_transaction(state, work), rt.fhir_base))


async def revoke_consent(request: Request) -> Response:
    state = _state(request)
    actor = authenticate(request, state)
    require_write_scope(actor, "Consent", DELETE)
    rt = state.runtime
    cid = _id(request.path_params["id"])

    def work(conn: Connection) -> None:
        pid = consents.patient_of(conn, cid)
        if pid is None:
            raise DmpError("NOT_FOUND")
        _, facts = _consent_record(conn, f"Patient/{pid}")
        consents.revoke(conn, actor, facts, cid, access.context(rt))

    await _in_transaction(state, work)
    return Response(status_code=204)


async def search_audit_events(request: Request) -> Response:
    """TR-01: the record's access trail as FHIR AuditEvents (newest first)."""

    from dmp.services import trail_read

    state = _state(request)
    actor = authenticate(request, state)
    rt = state.runtime
    params = _params(request)
    searchparams.check("AuditEvent", params)
    q = _audit_query(params)
    pid = await _audit_patient_id(state, q.patient_ref)
    events, more = await _in_transaction(
        state,
        lambda c: trail_read.audit_events(
            c, rt, actor, pid, start=q.start, end=q.end, count=q.count, offset=q.offset
        ),
    )
    return FhirResponse(_audit_bundle(rt.fhir_base, params, q, events, more))


@dataclass
class _AuditQuery:
    """The parameters of an AuditEvent search."""

    patient_ref: tuple[str, str]  # ("patient", "Patient/<id>") or ("patient.identifier", "<system>|<INS>")
    start: datetime | None = None
    end: datetime | None = None
    count: int = 50
    offset: int = 0


def _audit_query(params: list[tuple[str, str]]) -> _AuditQuery:
    """Read an AuditEvent search's parameters; an unknown one, a bad date or no patient is a 400."""
    start = end = None
    count, offset = 50, 0
    patient_ref = None
    for key, value in params:
        if key in ("patient", "patient.identifier"):
            patient_ref = (key, value)
        elif key == "date":
            start, end = _audit_date_bounds(value, start, end)
        elif key == "_count":  # the same bounds as every search, refused beyond (not clamped)
            count = searchparams.integer(value, "_count", 1, 500)
        elif key == "_offset":
            offset = searchparams.integer(value, "_offset", 0, 10_000_000)
        elif key != "_format":
            raise DmpError("INVALID_SEARCH", f"paramètre « {key} » non pris en charge pour AuditEvent")
    if patient_ref is None:
        raise DmpError("INVALID_SEARCH", "patient=Patient/<id> ou patient.identifier=<système>|<INS> attendu")
    return _AuditQuery(patient_ref, start, end, count, offset)


def _audit_date_bounds(
    value: str, start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The [start, end) bounds after one ``date`` parameter (prefix eq, ge, gt, lt or le)."""
    prefix, lo, hi = searchparams.date_range(value, "date", ("eq", "ge", "gt", "lt", "le"))
    if prefix in ("ge", "eq"):
        start = lo
    if prefix == "gt":
        start = hi
    if prefix in ("lt",):
        end = lo
    if prefix in ("le", "eq"):
        end = hi
    return start, end


async def _audit_patient_id(state: AppState, patient_ref: tuple[str, str]) -> UUID:
    """The record an AuditEvent search names, by Patient id or by INS (unknown INS: 404)."""
    key, value = patient_ref
    if key == "patient":
        return _id(value.removeprefix("Patient/"))
    system, _, ins_value = value.partition("|")
    ins = parse_ins(system, ins_value, allow_test=state.runtime.settings.test_instance)
    found = await _in_transaction(state, lambda c: records.find_by_ins(c, ins))
    if found is None:
        raise DmpError("NOT_FOUND")
    pid: UUID = found.id
    return pid


def _audit_bundle(
    fhir_base: str, params: list[tuple[str, str]], q: _AuditQuery, events: list[Any], more: bool
) -> dict[str, Any]:
    """The searchset of one page of AuditEvents, with its self and next links."""
    kept = [(k, v) for k, v in params if k != "_offset"]
    links = [
        {
            "relation": "self",
            "url": f"{fhir_base}/AuditEvent?{urlencode(kept + [('_offset', str(q.offset))])}",
        }
    ]
    if more:
        links.append(
            {
                "relation": "next",
                "url": f"{fhir_base}/AuditEvent?{urlencode(kept + [('_offset', str(q.offset + q.count))])}",
            }
        )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if not more and (events or q.offset == 0):  # the total, where the page alone tells it
        bundle["total"] = q.offset + len(events)
    bundle["link"] = links
    if events:
        bundle["entry"] = [
            {"fullUrl": f"{fhir_base}/AuditEvent/{e['id']}", "resource": e, "search": {"mode": "match"}}
            for e in events
        ]
    return bundle


FORM_TYPE = "application/x-www-form-urlencoded"
MAX_SEARCH_FORM_BYTES = 64 * 1024


async def post_search(request: Request) -> Response:
    """``POST [type]/_search`` (FHIR R4 §3.1.1.3.1): the form body's parameters with the URL's, and
    then exactly the GET search, so the INS need not appear in URLs and access logs."""
    rtype = request.url.path.split("/")[-2]
    body = await read_body(request, MAX_SEARCH_FORM_BYTES, {FORM_TYPE})
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise DmpError("INVALID_SEARCH", "corps de formulaire non UTF-8") from exc
    limit = _state(request).runtime.settings.max_search_parameters
    merged = check_params(_params(request) + form, limit)
    scope = dict(request.scope)
    scope["method"] = "GET"
    scope["query_string"] = urlencode(merged).encode()
    response: Response = await _SEARCHES[rtype](Request(scope, request.receive))
    return response


async def vread(request: Request) -> Response:
    """``GET [type]/[id]/_history/[vid]``: the versions the server reports in Location and meta.

    Only the current version is kept (metadata updates replace it), so a vread answers the
    resource when ``vid`` is its ``meta.versionId`` and the uniform 404 otherwise; a Binary's
    bytes never change, so its only version is 1.
    """
    rtype = request.url.path.split("/")[-4]
    wanted = request.path_params["vid"]
    response: Response = await _READERS[rtype](request)
    if rtype == "Binary":
        current = "1"
    else:
        current = str(orjson.loads(bytes(response.body)).get("meta", {}).get("versionId", "1"))
    if wanted != current:
        raise DmpError("NOT_FOUND")
    response.headers["ETag"] = f'W/"{current}"'
    return response


SERVED_TYPES = {"DocumentReference", "List", "Binary", "Patient", "Consent", "AuditEvent", *FACT_TYPES}


async def unknown_resource(request: Request) -> Response:
    rtype = request.path_params.get("rtype", "?")
    if rtype in SERVED_TYPES:
        raise DmpError("METHOD_NOT_ALLOWED", f"{request.method} sur {rtype}")
    raise DmpError("UNKNOWN_RESOURCE_TYPE", rtype)


def _fact_search(resource_type: str) -> Callable[[Request], Any]:
    """The search of one kind of clinical fact (dmp.services.facts), as a searchset."""

    async def search_one_kind(request: Request) -> Response:
        return await _searchset(
            request, resource_type, lambda c, rt, actor, p: facts.search_facts(c, rt, actor, resource_type, p)
        )

    return search_one_kind


# The GET handlers that POST [type]/_search and vread delegate to; their routes follow from them.
_SEARCHES: dict[str, Callable[[Request], Any]] = {
    **{t: _fact_search(t) for t in FACT_TYPES},
    "DocumentReference": search_document_references,
    "List": search_lists,
    "Patient": search_patients,
    "AuditEvent": search_audit_events,
    "Consent": search_consents,
}
_READERS: dict[str, Callable[[Request], Any]] = {
    "DocumentReference": read_document_reference,
    "List": read_list,
    "Binary": read_binary,
    "Patient": read_patient,
}

routes = [
    Route("/metadata", metadata, methods=["GET"]),
    *(Route(f"/{rtype}/_search", post_search, methods=["POST"]) for rtype in _SEARCHES),
    Route("/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
    Route("/", transaction, methods=["POST"]),
    Route("/DocumentReference", search_document_references, methods=["GET"]),
    Route("/DocumentReference", create_document_reference, methods=["POST"]),
    Route("/DocumentReference", patch_document_reference, methods=["PATCH"]),
    Route("/DocumentReference/{id}", read_document_reference, methods=["GET"]),
    Route("/DocumentReference/{id}", patch_document_reference, methods=["PATCH"]),
    Route("/List", search_lists, methods=["GET"]),
    Route("/List/{id}", read_list, methods=["GET"]),
    Route("/Binary/{id}", read_binary, methods=["GET"]),
    Route("/Patient", search_patients, methods=["GET"]),
    Route("/Patient", create_patient, methods=["POST"]),
    Route("/Patient/{id}", read_patient, methods=["GET"]),
    Route("/Patient/{id}/$summary", patient_summary, methods=["GET"]),
    Route("/AuditEvent", search_audit_events, methods=["GET"]),
    Route("/Consent", search_consents, methods=["GET"]),
    Route("/Consent", create_consent, methods=["POST"]),
    Route("/Consent/{id}", revoke_consent, methods=["DELETE"]),
    *(Route(f"/{t}", _SEARCHES[t], methods=["GET"]) for t in FACT_TYPES),
    *(Route(f"/{rtype}/{{id}}/_history/{{vid}}", vread, methods=["GET"]) for rtype in _READERS),
    Route("/{rtype}", unknown_resource, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    Route("/{rtype}/{id}", unknown_resource, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]

__all__ = ["routes", "dumps"]
