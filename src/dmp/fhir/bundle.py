"""ITI-65 Provide Document Bundle: split and check a PDSm transaction Bundle."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

from dmp.domain.document import DocumentEntry
from dmp.errors import DmpError
from dmp.fhir.common import Json, human_size
from dmp.fhir.documentreference import parse_entry
from dmp.fhir.validate import validate

MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION_TYPE_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"


@dataclass
class SubmittedDocument:
    index: int  # position in the request bundle
    full_url: str | None
    resource: Json
    entry: DocumentEntry
    content: bytes
    sha256_hex: str
    binary_index: int | None = None


@dataclass
class ProvideRequest:
    submission_set: Json
    submission_index: int
    subject: Json
    documents: list[SubmittedDocument] = field(default_factory=list)
    binary_indexes: list[int] = field(default_factory=list)
    entry_count: int = 0
    # What a reference may name inside the Bundle: every fullUrl and "<type>/<id>".
    local_urls: set[str] = field(default_factory=set)


def _list_code(resource: Json) -> str | None:
    for c in (resource.get("code") or {}).get("coding") or []:
        if c.get("system") == MHD_LIST_TYPES:
            return str(c.get("code"))
    return None


def _decode(data: Any, element: str, max_bytes: int) -> bytes:
    if not isinstance(data, str):
        raise DmpError("MISSING_ELEMENT", element)
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise DmpError("DOCUMENT_TOO_LARGE", f"{human_size(max_bytes)} par document")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DmpError("INVALID_VALUE", f"{element} n'est pas du base64 valide") from exc
    if len(raw) > max_bytes:
        raise DmpError("DOCUMENT_TOO_LARGE", f"{human_size(max_bytes)} par document")
    return raw


def check_subject_ins(subject: Any, *, allow_test: bool) -> None:
    """Refuse an invalid INS in a conditional patient reference before anything else."""
    from urllib.parse import unquote

    from dmp.domain.ins import parse_ins

    ref = subject.get("reference") if isinstance(subject, dict) else None
    if isinstance(ref, str) and ref.startswith("Patient?identifier="):
        system, _, value = unquote(ref.split("=", 1)[1]).partition("|")
        parse_ins(system, value, allow_test=allow_test)
    elif isinstance(subject, dict) and isinstance(subject.get("identifier"), dict):
        ident = subject["identifier"]
        parse_ins(str(ident.get("system") or ""), str(ident.get("value") or ""), allow_test=allow_test)


def parse_provide_bundle(
    bundle: Any,
    *,
    max_document_bytes: int,
    allow_test: bool = False,
    max_entries: int | None = None,
    max_total_bytes: int | None = None,
) -> ProvideRequest:
    entries = _transaction_entries(bundle, max_entries)
    parts = _sort_entries(entries)
    sub_index, sub, subject = _submission_subject(parts, allow_test=allow_test)
    req = ProvideRequest(
        sub, sub_index, subject, binary_indexes=parts.binary_indexes, entry_count=len(entries)
    )
    req.local_urls.update(_local_urls(entries))
    used: set[int] = set()
    total = 0
    for i, full_url, dr in parts.references:
        entry, attachment = parse_entry(dr)
        content, bi = _document_content(entry, attachment, parts.binaries, max_document_bytes)
        if bi is not None:
            used.add(bi)
        total += len(content)
        if max_total_bytes is not None and total > max_total_bytes:
            raise DmpError("SUBMISSION_TOO_LARGE", f"{human_size(max_total_bytes)} par Bundle")
        check_size_and_hash(attachment, content)
        entry.size = len(content)
        entry.sha1_b64 = base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()
        req.documents.append(
            SubmittedDocument(i, full_url, dr, entry, content, hashlib.sha256(content).hexdigest(), bi)
        )
    unused = set(parts.binary_indexes) - used
    if unused:
        raise DmpError("INVALID_RESOURCE", f"Binary sans fiche qui le référence (entrée {min(unused)})")
    return req


@dataclass
class _BundleParts:
    """A transaction's entries sorted by resource type, each with its position in the Bundle."""

    submission: tuple[int, Json] | None = None
    references: list[tuple[int, str | None, Json]] = field(default_factory=list)
    binaries: dict[str, tuple[int, Json]] = field(default_factory=dict)  # by fullUrl and Binary/<id>
    binary_indexes: list[int] = field(default_factory=list)


def _transaction_entries(bundle: Any, max_entries: int | None) -> list[Any]:
    """The entries of a transaction Bundle, refused if it is not one or has too many."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise DmpError("INVALID_RESOURCE", "un Bundle de type transaction est attendu")
    if bundle.get("type") != "transaction":
        raise DmpError("INVALID_RESOURCE", f"Bundle.type « {bundle.get('type')} » : « transaction » attendu")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise DmpError("INVALID_RESOURCE", "le Bundle ne contient aucune entrée")
    if max_entries is not None and len(entries) > max_entries:
        raise DmpError("TOO_MANY_ENTRIES", f"{len(entries)} reçues, {max_entries} au plus")
    return entries


def _sort_entries(entries: list[Any]) -> _BundleParts:
    """Check each entry (a POST of a List, DocumentReference or Binary) and sort it."""
    parts = _BundleParts()
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
            raise DmpError("INVALID_RESOURCE", f"entrée {i} sans ressource")
        res = e["resource"]
        method = (e.get("request") or {}).get("method")
        if method != "POST":
            raise DmpError("INVALID_RESOURCE", f"entrée {i} : seule la méthode POST est acceptée ({method})")
        rtype = res.get("resourceType")
        full_url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        if rtype == "List":
            _check_submission_set(i, res, first=parts.submission is None)
            parts.submission = (i, res)
        elif rtype == "DocumentReference":
            validate(res, "DocumentReference")
            parts.references.append((i, full_url, res))
        elif rtype == "Binary":
            validate(res, "Binary")
            parts.binary_indexes.append(i)
            for key in filter(None, (full_url, f"Binary/{res['id']}" if res.get("id") else None)):
                parts.binaries[key] = (i, res)
        else:
            raise DmpError("UNKNOWN_RESOURCE_TYPE", f"{rtype} dans un Bundle ITI-65")
    return parts


def _check_submission_set(i: int, res: Json, *, first: bool) -> None:
    """Entry ``i`` is a List: it must be the Bundle's one SubmissionSet (folders are not supported)."""
    validate(res, "List")
    code = _list_code(res)
    if code == "folder":
        raise DmpError("INVALID_VALUE", "les classeurs (List folder) ne sont pas pris en charge")
    if code != "submissionset":
        raise DmpError("INVALID_VALUE", f"entrée {i} : List.code « submissionset » attendu")
    if not first:
        raise DmpError("INVALID_RESOURCE", "un seul lot de soumission (SubmissionSet) par Bundle")


def _submission_subject(parts: _BundleParts, *, allow_test: bool) -> tuple[int, Json, Json]:
    """The SubmissionSet (position, resource) and its subject; every INS named is checked."""
    if parts.submission is None:
        raise DmpError("MISSING_ELEMENT", "List SubmissionSet (lot de soumission)")
    if not parts.references:
        raise DmpError("MISSING_ELEMENT", "DocumentReference (au moins une fiche)")
    sub_index, sub = parts.submission
    if not any(x.get("url") == SOURCE_ID_URL for x in sub.get("extension") or []):
        raise DmpError("MISSING_ELEMENT", "List.extension:sourceId (OID du système source)")
    subject = sub.get("subject")
    if not isinstance(subject, dict):
        raise DmpError("MISSING_ELEMENT", "List.subject (patient)")
    check_subject_ins(subject, allow_test=allow_test)
    for _, _, dr in parts.references:
        check_subject_ins(dr.get("subject"), allow_test=allow_test)
    return sub_index, sub, subject


def _local_urls(entries: list[Any]) -> set[str]:
    """What a reference may name inside the Bundle: every fullUrl and "<type>/<id>"."""
    urls: set[str] = set()
    for e in entries:
        res = e["resource"]
        if isinstance(e.get("fullUrl"), str):
            urls.add(e["fullUrl"])
        if isinstance(res.get("id"), str):
            urls.add(f"{res.get('resourceType')}/{res['id']}")
    return urls


def _document_content(
    entry: DocumentEntry, attachment: Json, binaries: dict[str, tuple[int, Json]], max_bytes: int
) -> tuple[bytes, int | None]:
    """A document's bytes, from the Binary its attachment names (and that Binary's position)
    or from the attachment's own data."""
    url = attachment.get("url")
    if isinstance(url, str) and url in binaries:
        bi, binary = binaries[url]
        content = _decode(binary.get("data"), "Binary.data", max_bytes)
        if binary.get("contentType") != attachment.get("contentType"):
            raise DmpError("INVALID_VALUE", "Binary.contentType diffère de attachment.contentType")
        return content, bi
    if attachment.get("data") is not None:
        return _decode(attachment.get("data"), "attachment.data", max_bytes), None
    raise DmpError("MISSING_ELEMENT", f"contenu du document {entry.unique_id} (Binary ou attachment.data)")


def check_size_and_hash(attachment: Json, content: bytes) -> None:
    size = attachment.get("size")
    if size is not None and size != len(content):
        raise DmpError("SIZE_MISMATCH", f"{size} octets déclarés, {len(content)} reçus")
    declared = attachment.get("hash")
    if declared is None:
        return
    try:
        digest = base64.b64decode(str(declared), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DmpError("HASH_MISMATCH", "attachment.hash n'est pas du base64") from exc
    # FHIR R4 attachment.hash is SHA-1; a SHA-256 (32 bytes) is accepted as well.
    algo = {20: "sha1", 32: "sha256"}.get(len(digest))
    if algo is None or hashlib.new(algo, content, usedforsecurity=False).digest() != digest:
        raise DmpError("HASH_MISMATCH", f"empreinte déclarée {declared}")
