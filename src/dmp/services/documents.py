"""Reading documents (ITI-68, reads by id) and the PDSm metadata updates (Flux 03)."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, or_, select, update

from dmp.domain.actor import Actor
from dmp.domain.document import Availability, DmpFlag
from dmp.errors import DmpError
from dmp.fhir import jsonpatch
from dmp.fhir.common import Json, dumps, instant, loads
from dmp.fhir.documentreference import IS_ARCHIVED_URL, parse_security_labels, security_labels
from dmp.policy import Action, decide
from dmp.services import access, consents, records, trail
from dmp.services.context import Runtime
from dmp.services.trail import AuditAction
from dmp.store import crypto, locator, sealed_fields
from dmp.store.schema import document, submission_set

_SEALED = sealed_fields.SEALED["document"]

# PDSm st_maj: only these may change; anything else is 405.
PATCHABLE = ("status", "securityLabel", "extension", "meta")


@dataclass
class Content:
    data: bytes
    mime_type: str
    patient_id: UUID
    document_id: UUID


# By id, through the locator (ADR 0009): the record first, then the row on its shard.
_DOCUMENT_BY_KEY = select(document).where(
    document.c.patient_id == bindparam("pid"), document.c.id == bindparam("id")
)


def _visible_row(
    conn: Connection, rt: Runtime, actor: Actor, doc_id: UUID, attempted: AuditAction, *, history: bool = True
) -> tuple[Any, access.Opened, Any]:
    """The document row if ``actor`` may see it (with the opening and the record's row, which
    carries its wrapped data key); otherwise the same 404 as a missing one.

    Reads by id are version-history reads: a replaced version stays reachable.
    """
    pid = locator.locate(conn, locator.DOCUMENT, doc_id)
    row = conn.execute(_DOCUMENT_BY_KEY, {"pid": pid, "id": doc_id}).first() if pid is not None else None
    row = sealed_fields.open_row(conn, row, "document", _SEALED)
    if row is None:
        raise DmpError("NOT_FOUND")  # same answer for "does not exist" and "may not see"
    found = consents.record_by_id(conn, row.patient_id)
    if found is None:  # the foreign key forbids it
        raise RuntimeError(f"document {doc_id} refers to a missing record {row.patient_id}")
    rec, facts = found
    opened = access.open_record(
        conn,
        rt,
        actor,
        rec,
        attempted=attempted,
        history=history,
        hide_refusal=True,
        targets=(doc_id,),
        facts=facts,
    )
    access.check_document(opened, row, attempted)
    return row, opened, rec


def read_document(conn: Connection, rt: Runtime, actor: Actor, doc_id: UUID) -> bytes:
    row, opened, _ = _visible_row(conn, rt, actor, doc_id, AuditAction.DOCUMENT_READ)
    opened.trace(conn, AuditAction.DOCUMENT_READ, [doc_id])
    return bytes(row.resource_json)


def read_list(conn: Connection, rt: Runtime, actor: Actor, list_id: UUID) -> bytes:
    from dmp.services.search import lists_page

    pid = locator.locate(conn, locator.LIST, list_id)
    found = consents.record_by_id(conn, pid) if pid is not None else None
    if found is None:
        raise DmpError("NOT_FOUND")
    # A record the actor may not open: the same 404 as a missing list (its refusal traced), as
    # for DocumentReference/<id>.
    opened = access.open_record(
        conn, rt, actor, found[0], attempted=AuditAction.SUBMISSION_SEARCH, hide_refusal=True,
        targets=(list_id,), facts=found[1],
    )
    page = lists_page(
        conn, [opened], [("_id", str(list_id))], [submission_set.c.id == list_id], count=1, offset=0
    )
    if not page.rows:
        raise DmpError("NOT_FOUND")
    return bytes(page.rows[0].resource_json)


def retrieve(conn: Connection, rt: Runtime, actor: Actor, doc_id: UUID) -> Content:
    """ITI-68: the exact bytes, decrypted and checked against the stored SHA-256."""
    row, opened, rec = _visible_row(conn, rt, actor, doc_id, AuditAction.DOCUMENT_RETRIEVE)
    data = document_bytes(rt, row, rt.keyring.unwrap(row.patient_id, rec.wrapped_key))
    # Traced in the same transaction: the bytes leave only once the trace is committed.
    opened.trace(conn, AuditAction.DOCUMENT_RETRIEVE, [doc_id])
    return Content(data, row.mime_type, row.patient_id, row.id)


def document_bytes(rt: Runtime, row: Any, dek: bytes) -> bytes:
    """The original bytes of a document row already found visible, opened with its record's data
    key and checked against the stored SHA-256 (``INTEGRITY_ERROR`` otherwise)."""
    try:
        data = crypto.open_sealed(dek, row.patient_id, row.sha256_hex, rt.blobs.get(row.blob_key))
    except Exception as exc:  # missing blob, wrong key, forged ciphertext
        raise DmpError("INTEGRITY_ERROR") from exc
    if hashlib.sha256(data).hexdigest() != row.sha256_hex:
        raise DmpError("INTEGRITY_ERROR")
    return data


def find_by_identifier(conn: Connection, raw: str) -> UUID:
    """Conditional update target: ``identifier=system|value`` (uniqueId or urn:uuid)."""
    value = raw.partition("|")[2] if "|" in raw else raw
    cond = document.c.unique_id == value
    if value.startswith("urn:uuid:"):
        # A urn:uuid is either the registry's entry id or a producer's uniqueId.
        with contextlib.suppress(ValueError):
            cond = or_(cond, document.c.id == UUID(value[9:]))
    rows = list(conn.execute(select(document.c.id).where(cond).limit(2)))
    if not rows:
        raise DmpError("NOT_FOUND")
    if len(rows) > 1:
        raise DmpError("INVALID_SEARCH", "plusieurs documents correspondent à cet identifiant")
    return rows[0].id  # type: ignore[no-any-return]


def patch(conn: Connection, rt: Runtime, actor: Actor, doc_id: UUID, ops: Any, now: datetime) -> bytes:
    """Apply a JSON Patch limited to status, securityLabel and isArchived."""
    row, _, _ = _visible_row(conn, rt, actor, doc_id, AuditAction.DOCUMENT_STATUS, history=False)
    current: Json = loads(row.resource_json)
    patched = jsonpatch.apply(current, ops)
    for key in set(current) | set(patched):
        if key not in PATCHABLE and current.get(key) != patched.get(key):
            raise DmpError(
                "METHOD_NOT_ALLOWED", f"seuls status, securityLabel et isArchived sont modifiables ({key})"
            )
    other_ext = [e for e in patched.get("extension") or [] if e.get("url") != IS_ARCHIVED_URL]
    if other_ext != [e for e in current.get("extension") or [] if e.get("url") != IS_ARCHIVED_URL]:
        raise DmpError("METHOD_NOT_ALLOWED", "seule l'extension isArchived est modifiable")
    archived = any(
        e.get("url") == IS_ARCHIVED_URL and e.get("valueBoolean") is True
        for e in patched.get("extension") or []
    )
    status = patched.get("status")
    avail = Availability(row.availability)
    if status == "entered-in-error":
        avail = Availability.DELETED
    elif status == "current":
        if avail is Availability.DEPRECATED:
            raise DmpError("INVALID_PATCH", "une version remplacée ne peut redevenir courante")
        avail = Availability.ARCHIVED if archived else Availability.APPROVED
    else:
        raise DmpError("INVALID_PATCH", f"status « {status} » non modifiable ainsi")
    level, flags = parse_security_labels(patched.get("securityLabel"))
    audit_action = _authorise_changes(conn, rt, actor, row, avail, int(flags))
    version = row.version_id + 1
    resource = current
    resource["status"] = avail.fhir_status
    resource["securityLabel"] = security_labels(level.value, int(flags))
    ext = [e for e in current.get("extension") or [] if e.get("url") != IS_ARCHIVED_URL]
    if avail is Availability.ARCHIVED:
        ext.append({"url": IS_ARCHIVED_URL, "valueBoolean": True})
    if ext:
        resource["extension"] = ext
    else:
        resource.pop("extension", None)
    resource["meta"]["versionId"] = str(version)
    resource["meta"]["lastUpdated"] = instant(now)
    body = dumps(resource)
    done = conn.execute(
        update(document)
        .where(
            document.c.patient_id == row.patient_id,
            document.c.id == doc_id,
            document.c.version_id == row.version_id,
        )
        .values(
            availability=avail.value,
            confidentiality=level.value,
            flags=int(flags),
            version_id=version,
            last_updated=now,
            **sealed_fields.seal_columns(
                sealed_fields.write_dek(conn, row.patient_id, rt.keyring),
                row.patient_id,
                "document",
                doc_id,
                resource_json=body,
            ),
        )
    )
    if done.rowcount != 1:
        raise DmpError("INVALID_PATCH", "le document a été modifié entre-temps ; recommencez")
    trail.record(conn, actor, audit_action, patient_id=row.patient_id, at=now, targets=[doc_id])
    return body


def set_masked(conn: Connection, rt: Runtime, actor: Actor, doc_id: UUID, masked: bool) -> bytes:
    """Mask or unmask a document from professionals (MASQUE_PS) for the portal: the same JSON Patch
    of ``securityLabel`` as the FHIR PATCH, so the same policy decision (MASK) and trail entry."""
    row, _, _ = _visible_row(conn, rt, actor, doc_id, AuditAction.DOCUMENT_MASK, history=False)
    flags = (row.flags | DmpFlag.MASQUE_PS) if masked else (row.flags & ~DmpFlag.MASQUE_PS)
    ops = [{"op": "replace", "path": "/securityLabel", "value": security_labels(row.confidentiality, flags)}]
    return patch(conn, rt, actor, doc_id, ops, rt.now())


@dataclass(frozen=True)
class MaskState:
    masked: bool  # MASQUE_PS set
    may_change: bool  # the policy would let the actor mask or unmask it


def mask_states(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, ids: list[UUID]
) -> dict[UUID, MaskState]:
    """For documents of ``patient_id`` already found visible to ``actor``: masked or not, and
    whether the policy (``MASK``) would let ``actor`` change it (to offer the action or not)."""
    rec = records.get(conn, patient_id)
    if rec is None or not ids:
        return {}
    facts = consents.facts(conn, rec)
    ctx = access.context(rt)
    rows = conn.execute(select(document).where(document.c.patient_id == patient_id, document.c.id.in_(ids)))
    return {
        r.id: MaskState(
            bool(r.flags & DmpFlag.MASQUE_PS),
            decide(actor, Action.MASK, facts, access.document_facts(r), ctx).permitted,
        )
        for r in rows
    }


def _authorise_changes(
    conn: Connection, rt: Runtime, actor: Actor, row: Any, avail: Availability, flags: int
) -> AuditAction:
    """Each kind of change is its own action for the policy (TD3.3a-d)."""
    changed = flags ^ row.flags
    actions: list[Action] = []
    if changed & DmpFlag.MASQUE_PS:
        actions.append(Action.MASK)
    if changed & DmpFlag.INVISIBLE_PATIENT:
        actions.append(Action.SET_PATIENT_VISIBILITY)
    if changed & DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX:
        actions.append(Action.SET_REPRESENTATIVE_VISIBILITY)
    if avail is Availability.DELETED:
        actions.append(Action.DELETE)
    elif (avail is Availability.ARCHIVED) != (row.availability == Availability.ARCHIVED.value):
        actions.append(Action.ARCHIVE)
    rec = records.get(conn, row.patient_id)
    for action in actions:
        access.require(conn, rt, actor, rec, action, access.document_facts(row), targets=(row.id,))
    # The trail names the most significant change.
    if avail is Availability.DELETED:
        return AuditAction.DOCUMENT_DELETE
    if Action.ARCHIVE in actions:
        return AuditAction.DOCUMENT_ARCHIVE
    if Action.MASK in actions:
        return AuditAction.DOCUMENT_MASK if flags & DmpFlag.MASQUE_PS else AuditAction.DOCUMENT_UNMASK
    return AuditAction.DOCUMENT_STATUS


def stored_resource(conn: Connection, patient_id: UUID, doc_id: UUID) -> bytes:
    """The stored DocumentReference JSON of a document (e.g. just published, same transaction),
    read by its record's key (ADR 0009)."""
    d = document.c
    query = select(d.resource_json).where(d.patient_id == patient_id, d.id == doc_id)
    stored = conn.execute(query).scalar_one()
    dek = sealed_fields.record_dek(conn, patient_id)
    return sealed_fields.open_bytes(dek, patient_id, "document.resource_json", doc_id, stored)


def list_lines(conn: Connection, patient_id: UUID, ids: list[UUID]) -> list[Any]:
    """The columns a document list shows, for documents of ``patient_id`` already found visible."""
    d = document.c
    rows = conn.execute(
        select(d.id, d.title, d.creation_time, d.type_code, d.author_name, d.mime_type).where(
            d.patient_id == patient_id, d.id.in_(ids)
        )
    )
    dek = sealed_fields.record_dek(conn, patient_id) if ids else b""
    return [
        sealed_fields.open_row(conn, r, "document", _SEALED, patient_id=patient_id, dek=dek) for r in rows
    ]


def submitted_since(conn: Connection, patient_id: UUID, ids: list[UUID], since: datetime) -> set[UUID]:
    """Which of ``ids`` (documents of ``patient_id`` already found visible) were published at or
    after ``since``."""
    if not ids:
        return set()
    d = document.c
    q = select(d.id).where(d.patient_id == patient_id, d.id.in_(ids), d.submission_time >= since)
    return set(conn.execute(q).scalars())


def title_of(conn: Connection, patient_id: UUID, doc_id: UUID) -> str | None:
    stored = conn.execute(
        select(document.c.title).where(document.c.patient_id == patient_id, document.c.id == doc_id)
    ).scalar()
    if stored is None:
        return None
    dek = sealed_fields.record_dek(conn, patient_id)
    return sealed_fields.open_text(dek, patient_id, "document.title", doc_id, stored)


def record_of(conn: Connection, doc_id: UUID) -> UUID | None:
    """The record holding ``doc_id`` (None if none): a portal's record-scoped state (an emergency
    mode) applies to that record's documents only. Says nothing the policy has not yet decided:
    the caller then reads through ``retrieve``, which answers 404 for a hidden document."""
    return locator.locate(conn, locator.DOCUMENT, doc_id)
