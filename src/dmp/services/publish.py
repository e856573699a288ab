"""ITI-65: store a submission set and its documents, all or nothing."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from dmp.domain.actor import Actor
from dmp.domain.document import Availability
from dmp.errors import DmpError
from dmp.fhir.bundle import ProvideRequest, SubmittedDocument
from dmp.fhir.common import Json, dumps, instant, loads, parse_datetime
from dmp.fhir.documentreference import served_resource
from dmp.policy import Action, Decision, DocumentFacts, awaiting_announcement
from dmp.policy.rules import is_occupational
from dmp.services import access, alerts, blob_hygiene, coherence, consents, ingest, records, trail, uniqueness
from dmp.services.context import Runtime
from dmp.services.subjects import parse_uuid, resolve_subject
from dmp.services.trail import AuditAction
from dmp.store import crypto, locator, reservations, sealed_fields
from dmp.store.schema import document, document_event, submission_set

# Built once: the hot path only binds values (no statement construction per request).
_INSERT_DOCUMENT = insert(document)
_INSERT_SUBMISSION_SET = insert(submission_set)


@dataclass
class Published:
    patient_id: UUID
    response: Json
    document_ids: list[UUID]


def record_dek(conn: Connection, rt: Runtime, patient_id: UUID) -> bytes:
    return sealed_fields.record_dek(conn, patient_id, rt.keyring)


def blob_key(dek: bytes, patient_id: UUID, sha256_hex: str) -> str:
    # The object name does not reveal the content hash outside the record.
    name = hmac.new(dek, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()
    return f"{patient_id}/{name}"


def publish(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    req: ProvideRequest,
    now: datetime,
    reserved: Reserved | None = None,
) -> Published:
    """Write the whole submission in the caller's transaction (all or nothing: the tests inject a
    failure through the blob store, tests/integration/helpers.py ``failing_blobs``).

    A pipeline, one step per function: resolve the subject, load the record's facts once, decide
    for every document, check coherence and uniqueness (``_plan``), then store, trace, respond.
    ``reserved``: the uniqueIds reserved by :func:`reserve` in a transaction of its own before
    this one (``unit_of_work.reserved_transaction``, ADR 0009 b); None: reserved here, in the
    caller's transaction (a caller that batches many publications in one, e.g. the demo loader)."""
    plan = _plan(conn, rt, actor, req, now, reserved)
    dek = sealed_fields.write_dek(conn, plan.pid, rt.keyring)  # read once; no rotation meanwhile
    replaced, ingested = _store_all(conn, rt, actor, req, plan, dek, now)
    _store_submission_set(conn, rt, actor, req, plan, dek, now)
    _announce(conn, actor, plan, now)
    _trace(conn, actor, plan, replaced, now)
    return Published(plan.pid, _response(req, plan, now, ingested), list(plan.ids))


@dataclass(frozen=True)
class _Plan:
    """What every check agreed on, before anything is written."""

    pid: UUID
    row: Any  # the record's patient row
    facts: tuple[DocumentFacts, ...]  # one per document, in the submission's order
    decision: Decision | None  # the last document's, which the trail entry carries
    ids: tuple[UUID, ...]  # the new DocumentReference ids, one per document
    set_id: UUID  # the new List (submission set) id


@dataclass(frozen=True)
class Reserved:
    """A publication's reservation phase (ADR 0009 b): its new ids, their uniqueIds reserved and
    their locator rows written; ``taken``: the uniqueIds another document holds, refused by the
    publication at the point where it checks uniqueness (so the order of refusals is kept)."""

    patient_id: UUID
    ids: tuple[UUID, ...]
    set_id: UUID
    taken: tuple[str, ...]

    def release(self, conn: Connection) -> None:
        """The publication failed: give its uniqueIds and ids back (compensation)."""
        reservations.release_unique_ids(conn, self.ids)
        locator.unregister(conn, locator.DOCUMENT, self.ids)
        locator.unregister(conn, locator.LIST, [self.set_id])


def reserve(conn: Connection, rt: Runtime, req: ProvideRequest, now: datetime) -> Reserved:
    """The reservation phase, in a short transaction of its own before the publication's: the
    subject (the same resolution, hence the same refusal, as the publication's first step), then
    the uniqueIds and the locator rows."""
    row = _resolve_subject(conn, req, allow_test=rt.settings.test_instance)
    return _reserve(conn, rt, req, row.id, now)


def _reserve(conn: Connection, rt: Runtime, req: ProvideRequest, pid: UUID, now: datetime) -> Reserved:
    ids = tuple(uuid.uuid4() for _ in req.documents)
    set_id = uuid.uuid4()
    wanted: dict[str, UUID] = {}
    for doc_id, d in zip(ids, req.documents, strict=True):
        wanted.setdefault(d.entry.unique_id, doc_id)  # twice in the submission: refused by the check
    taken = reservations.reserve_unique_ids(
        conn, wanted, pid, now, stale_before=uniqueness.stale_before(rt.settings, now)
    )
    locator.register(conn, locator.DOCUMENT, ids, pid)  # reads by id (ADR 0009)
    locator.register(conn, locator.LIST, [set_id], pid)
    return Reserved(pid, ids, set_id, tuple(taken))


def _plan(
    conn: Connection, rt: Runtime, actor: Actor, req: ProvideRequest, now: datetime, reserved: Reserved | None
) -> _Plan:
    """Every check, in the order that decides which refusal a bad submission gets."""
    allow_test = rt.settings.test_instance
    row = _resolve_subject(conn, req, allow_test=allow_test)
    records.require_open(row)
    facts = _document_facts(actor, req, now)
    decision = _decide_all(conn, rt, actor, row, facts)
    coherence.check(conn, req, row, allow_test=allow_test, fhir_base=rt.fhir_base)
    _refuse_duplicates_in_submission(req)
    if reserved is None:
        reserved = _reserve(conn, rt, req, row.id, now)
    elif reserved.patient_id != row.id:
        raise DmpError("TRANSACTION_FAILED")  # the subject resolved otherwise between the phases
    if reserved.taken:
        raise DmpError("DUPLICATE_UNIQUE_ID", reserved.taken[0])
    return _Plan(
        pid=row.id, row=row, facts=facts, decision=decision, ids=reserved.ids, set_id=reserved.set_id
    )


def _document_facts(actor: Actor, req: ProvideRequest, now: datetime) -> tuple[DocumentFacts, ...]:
    """What the policy knows of each submitted document."""
    return tuple(
        DocumentFacts(
            type_code=d.entry.type_code,
            class_code=d.entry.class_code,
            flags=int(d.entry.flags),
            availability="approved",
            author_id=d.entry.author.id,
            published_by=actor.id,
            submitted=now,
            occupational=is_occupational(actor),
        )
        for d in req.documents
    )


def _decide_all(
    conn: Connection, rt: Runtime, actor: Actor, row: Any, facts: tuple[DocumentFacts, ...]
) -> Decision | None:
    """The policy's decision for every document (the record's facts loaded once); the first
    refusal ends the publication."""
    record = consents.facts(conn, row)
    decision = None
    for doc_facts in facts:
        decision = access.require(conn, rt, actor, row, Action.WRITE, doc_facts, record=record)
    return decision


def _store_all(
    conn: Connection, rt: Runtime, actor: Actor, req: ProvideRequest, plan: _Plan, dek: bytes, now: datetime
) -> tuple[list[UUID], list[ingest.Ingested]]:
    """The documents, their blobs and the versions they replace; the ids of those replaced, and
    how the extraction of each document's clinical facts went."""
    # Until this transaction ends, nothing removes this record's blobs (a rollback's cleanup, gc).
    blob_hygiene.hold_for_publication(conn, plan.pid)
    replaced: list[UUID] = []
    for doc_id, d in zip(plan.ids, req.documents, strict=True):
        replaces: UUID | None = None
        if d.entry.replaces_unique_id:
            replaces = _replace(conn, rt, actor, plan.pid, dek, d, doc_id, now)
            replaced.append(replaces)
        _store_document(conn, rt, actor, plan.pid, dek, plan.set_id, doc_id, d, replaces, now)
    # Clinical facts of the stored documents; never refuses nor loses a document (dmp.services.ingest).
    ingested = ingest.ingest_documents(
        conn, plan.pid, dek, ((i, d.content) for i, d in zip(plan.ids, req.documents, strict=True)), now
    )
    return replaced, ingested


def _store_submission_set(
    conn: Connection, rt: Runtime, actor: Actor, req: ProvideRequest, plan: _Plan, dek: bytes, now: datetime
) -> None:
    """The List standing for the submission set (its locator rows come with the reservation)."""
    sub = req.submission_set
    sub_resource = _submission_resource(sub, plan.set_id, plan.pid, list(plan.ids), rt.fhir_base, now)
    conn.execute(
        _INSERT_SUBMISSION_SET,
        dict(
            patient_id=plan.pid,
            id=plan.set_id,
            unique_id=_submission_unique_id(sub) or f"urn:uuid:{plan.set_id}",
            source_id=_source_id(sub),
            submission_time=now,
            author_id=actor.id,
            content_type_code=_designation(sub),
            archived=False,
            **sealed_fields.seal_columns(
                dek, plan.pid, "submission_set", plan.set_id,
                title=sub.get("title"), resource_json=dumps(sub_resource),
            ),
        ),
    )


def _announce(conn: Connection, actor: Actor, plan: _Plan, now: datetime) -> None:
    """The alerts of new documents, never for a publication holding a hidden document."""
    if not all(awaiting_announcement(f) for f in plan.facts):
        alerts.new_documents(conn, actor, plan.pid, plan.set_id, now)


def _trace(conn: Connection, actor: Actor, plan: _Plan, replaced: list[UUID], now: datetime) -> None:
    trail.record(
        conn,
        actor,
        AuditAction.DOCUMENT_REPLACE if replaced else AuditAction.DOCUMENT_PUBLISH,
        patient_id=plan.pid,
        at=now,
        decision=plan.decision,
        targets=[*plan.ids, *replaced],
    )


def _response(req: ProvideRequest, plan: _Plan, now: datetime, ingested: list[ingest.Ingested]) -> Json:
    """The transaction-response, its entries in the order of the request's; a document whose
    clinical facts could not (all) be read says so to its author in a warning outcome."""
    entries: list[Json | None] = [None] * req.entry_count
    outcomes = {i.document_id: i for i in ingested}
    for doc_id, d in zip(plan.ids, req.documents, strict=True):
        created = _created(f"DocumentReference/{doc_id}", now)
        warning = ingest.warning_outcome(outcomes.get(doc_id))
        entries[d.index] = {**created, "outcome": warning} if warning else created
        if d.binary_index is not None:
            # Binaries are stored with their DocumentReference and read through its id.
            entries[d.binary_index] = _created(f"Binary/{doc_id}", now)
    entries[req.submission_index] = _created(f"List/{plan.set_id}", now)
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": e} for e in entries if e is not None],
    }


def _resolve_subject(conn: Connection, req: ProvideRequest, *, allow_test: bool) -> Any:
    """The record's patient row: the submission set's subject, which every document must share."""
    row = resolve_subject(conn, req.subject, allow_test=allow_test)
    for d in req.documents:
        subject = d.resource.get("subject")
        if subject == req.subject:
            continue  # the same reference as the submission set's: already resolved
        if resolve_subject(conn, subject, allow_test=allow_test).id != row.id:
            raise DmpError(
                "INVALID_VALUE",
                "toutes les fiches doivent concerner le patient du lot de soumission",
                expression="DocumentReference.subject",
            )
    return row


def _refuse_duplicates_in_submission(req: ProvideRequest) -> None:
    """A document's uniqueId appears once in the submission (and, its reservation says, nowhere
    in the DMP yet)."""
    seen: set[str] = set()
    for d in req.documents:
        if d.entry.unique_id in seen:
            raise DmpError("DUPLICATE_UNIQUE_ID", f"{d.entry.unique_id} (deux fois dans le lot)")
        seen.add(d.entry.unique_id)


def _created(location: str, now: datetime) -> Json:
    return {
        "status": "201 Created",
        "location": f"{location}/_history/1",
        "etag": 'W/"1"',
        "lastModified": instant(now),
    }


def _store_document(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    pid: UUID,
    dek: bytes,
    set_id: UUID,
    doc_id: UUID,
    d: SubmittedDocument,
    replaces: UUID | None,
    now: datetime,
) -> None:
    e = d.entry
    key = blob_key(dek, pid, d.sha256_hex)
    rt.blobs.put(key, crypto.seal(dek, pid, d.sha256_hex, d.content))
    resource = served_resource(
        d.resource,
        doc_id=doc_id,
        patient_id=pid,
        base_url=rt.fhir_base,
        availability=Availability.APPROVED,
        version=1,
        last_updated=now,
        size=e.size,
        sha1_b64=e.sha1_b64,
        replaces=replaces,
        level=e.confidentiality.value,
        flags=int(e.flags),
    )
    a = e.author
    conn.execute(
        _INSERT_DOCUMENT,
        dict(
            patient_id=pid,
            id=doc_id,
            unique_id=e.unique_id,
            version_id=1,
            availability=Availability.APPROVED.value,
            class_code=e.class_code,
            type_system=e.type_system,
            type_code=e.type_code,
            format_code=e.format_code,
            facility_code=e.facility_code,
            practice_code=e.practice_code,
            confidentiality=e.confidentiality.value,
            flags=int(e.flags),
            author_id=a.id,
            author_role=a.role,
            author_specialty=a.specialty,
            author_org_id=a.org_id,
            creation_time=e.creation_time,
            period_start=e.period_start,
            period_end=e.period_end,
            submission_time=now,
            submission_set_id=set_id,
            mime_type=e.mime_type,
            language=e.language,
            size=e.size,
            sha1_b64=e.sha1_b64,
            sha256_hex=d.sha256_hex,
            blob_key=key,
            replaces_id=replaces,
            replaced_by_id=None,
            published_by=actor.id,
            occupational=is_occupational(actor) or _occupational(conn, pid, replaces),
            last_updated=now,
            # SE-02: sealed under the record's key (dmp.store.sealed_fields)
            **sealed_fields.seal_columns(
                dek, pid, "document", doc_id, title=e.title, author_name=a.name, resource_json=dumps(resource)
            ),
        ),
    )
    if e.event_codes:
        conn.execute(
            insert(document_event),
            [
                {"patient_id": pid, "document_id": doc_id, "system": s, "code": c}
                for s, c in dict.fromkeys(e.event_codes)
            ],
        )


def _occupational(conn: Connection, pid: UUID, replaced: UUID | None) -> bool:
    """AC-17: a replacement of occupational medicine's deposit stays one (same readers)."""
    if replaced is None:
        return False
    row = conn.execute(
        select(document.c.occupational).where(document.c.patient_id == pid, document.c.id == replaced)
    ).scalar_one()
    return bool(row)


def _replace(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    pid: UUID,
    dek: bytes,
    d: SubmittedDocument,
    new_id: UUID,
    now: datetime,
) -> UUID:
    """Deprecate the replaced version in the same transaction; return its id."""
    target = d.entry.replaces_unique_id or ""
    if target.startswith("uid:"):
        cond = document.c.unique_id == target[4:]
    else:
        old = parse_uuid(target.rsplit("/", 1)[-1])
        if old is None:
            raise DmpError("REPLACED_UNKNOWN", target)
        cond = document.c.id == old
    old_row = sealed_fields.open_row(
        conn, conn.execute(select(document).where(document.c.patient_id == pid, cond)).first(), "document",
        sealed_fields.SEALED["document"],
    )
    if old_row is None or old_row.availability == Availability.DELETED.value:
        raise DmpError("REPLACED_UNKNOWN", target)
    if actor.id not in (old_row.author_id, old_row.published_by):
        # Someone else's document: replaceable only if the replacer may read it.
        rec = records.get(conn, pid)
        opened = access.open_record(
            conn,
            rt,
            actor,
            rec,
            attempted=AuditAction.DOCUMENT_REPLACE,
            history=True,
            hide_refusal=True,
            targets=(old_row.id,),
        )
        if not access.document_visible_for(opened, old_row):
            raise DmpError("REPLACED_UNKNOWN", target)
    if old_row.availability == Availability.DEPRECATED.value:
        raise DmpError(
            "ALREADY_REPLACED", f"{target} (remplacé par DocumentReference/{old_row.replaced_by_id})"
        )
    resource = loads(old_row.resource_json)
    version = old_row.version_id + 1
    resource["status"] = Availability.DEPRECATED.fhir_status
    resource["meta"]["versionId"] = str(version)
    resource["meta"]["lastUpdated"] = instant(now)
    done = conn.execute(
        update(document)
        .where(
            document.c.patient_id == pid,
            document.c.id == old_row.id,
            document.c.version_id == old_row.version_id,  # optimistic: a concurrent change loses
        )
        .values(
            availability=Availability.DEPRECATED.value,
            replaced_by_id=new_id,
            version_id=version,
            last_updated=now,
            **sealed_fields.seal_columns(
                dek, pid, "document", old_row.id,
                resource_json=dumps(resource),
            ),
        )
    )
    if done.rowcount != 1:
        raise DmpError("ALREADY_REPLACED", target)
    return old_row.id  # type: ignore[no-any-return]


def _submission_resource(
    sub: Json, set_id: UUID, pid: UUID, ids: list[UUID], base: str, now: datetime
) -> Json:
    res = {k: v for k, v in sub.items() if k not in ("id", "meta", "entry", "subject")}
    meta = sub.get("meta") or {}
    res = {
        "resourceType": "List",
        "id": str(set_id),
        "meta": {
            **({"profile": meta["profile"]} if meta.get("profile") else {}),
            "versionId": "1",
            "lastUpdated": instant(now),
        },
        **{k: v for k, v in res.items() if k != "resourceType"},
        "subject": {"reference": f"Patient/{pid}"},
        "entry": [{"item": {"reference": f"DocumentReference/{i}"}} for i in ids],
    }
    res["status"] = "current"
    res["mode"] = "working"
    if not res.get("date"):
        res["date"] = instant(now)
    else:
        parse_datetime(res["date"], "List.date")
    idents = [i for i in res.get("identifier") or [] if i.get("use") != "official"]
    idents.append({"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{set_id}"})
    res["identifier"] = idents
    return res


def _submission_unique_id(sub: Json) -> str | None:
    for ident in sub.get("identifier") or []:
        if ident.get("use") == "usual" and isinstance(ident.get("value"), str):
            return str(ident["value"])
    return None


def _source_id(sub: Json) -> str:
    from dmp.fhir.bundle import SOURCE_ID_URL

    for x in sub.get("extension") or []:
        if x.get("url") == SOURCE_ID_URL:
            return str((x.get("valueIdentifier") or {}).get("value") or "")
    return ""


def _designation(sub: Json) -> str | None:
    from dmp.fhir.bundle import DESIGNATION_TYPE_URL

    for x in sub.get("extension") or []:
        if x.get("url") == DESIGNATION_TYPE_URL:
            coding: list[Any] = (x.get("valueCodeableConcept") or {}).get("coding") or []
            return str(coding[0].get("code")) if coding else None
    return None
