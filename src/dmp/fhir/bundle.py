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
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise DmpError("INVALID_RESOURCE", "un Bundle de type transaction est attendu")
    if bundle.get("type") != "transaction":
        raise DmpError("INVALID_RESOURCE", f"Bundle.type « {bundle.get('type')} » : « transaction » attendu")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise DmpError("INVALID_RESOURCE", "le Bundle ne contient aucune entrée")
    if max_entries is not None and len(entries) > max_entries:
        raise DmpError("TOO_MANY_ENTRIES", f"{len(entries)} reçues, {max_entries} au plus")
    submission: tuple[int, Json] | None = None
    references: list[tuple[int, str | None, Json]] = []
    binaries: dict[str, tuple[int, Json]] = {}
    binary_indexes: list[int] = []
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
            validate(res, "List")
            code = _list_code(res)
            if code == "folder":
                raise DmpError("INVALID_VALUE", "les classeurs (List folder) ne sont pas pris en charge")
            if code != "submissionset":
                raise DmpError("INVALID_VALUE", f"entrée {i} : List.code « submissionset » attendu")
            if submission is not None:
                raise DmpError("INVALID_RESOURCE", "un seul lot de soumission (SubmissionSet) par Bundle")
            submission = (i, res)
        elif rtype == "DocumentReference":
            validate(res, "DocumentReference")
            references.append((i, full_url, res))
        elif rtype == "Binary":
            validate(res, "Binary")
            binary_indexes.append(i)
            for key in filter(None, (full_url, f"Binary/{res['id']}" if res.get("id") else None)):
                binaries[key] = (i, res)
        else:
            raise DmpError("UNKNOWN_RESOURCE_TYPE", f"{rtype} dans un Bundle ITI-65")
    if submission is None:
        raise DmpError("MISSING_ELEMENT", "List SubmissionSet (lot de soumission)")
    if not references:
        raise DmpError("MISSING_ELEMENT", "DocumentReference (au moins une fiche)")
    sub_index, sub = submission
    if not any(x.get("url") == SOURCE_ID_URL for x in sub.get("extension") or []):
        raise DmpError("MISSING_ELEMENT", "List.extension:sourceId (OID du système source)")
    subject = sub.get("subject")
    if not isinstance(subject, dict):
        raise DmpError("MISSING_ELEMENT", "List.subject (patient)")
    check_subject_ins(subject, allow_test=allow_test)
    for _, _, dr in references:
        check_subject_ins(dr.get("subject"), allow_test=allow_test)
    req = ProvideRequest(sub, sub_index, subject, binary_indexes=binary_indexes, entry_count=len(entries))
    for e in entries:
        res = e["resource"]
        if isinstance(e.get("fullUrl"), str):
            req.local_urls.add(e["fullUrl"])
        if isinstance(res.get("id"), str):
            req.local_urls.add(f"{res.get('resourceType')}/{res['id']}")
    used: set[int] = set()
    total = 0
    for i, full_url, dr in references:
        entry, attachment = parse_entry(dr)
        url = attachment.get("url")
        bi = None
        if isinstance(url, str) and url in binaries:
            bi, binary = binaries[url]
            used.add(bi)
            content = _decode(binary.get("data"), "Binary.data", max_document_bytes)
            if binary.get("contentType") != attachment.get("contentType"):
                raise DmpError("INVALID_VALUE", "Binary.contentType diffère de attachment.contentType")
        elif attachment.get("data") is not None:
            content = _decode(attachment.get("data"), "attachment.data", max_document_bytes)
        else:
            raise DmpError(
                "MISSING_ELEMENT", f"contenu du document {entry.unique_id} (Binary ou attachment.data)"
            )
        total += len(content)
        if max_total_bytes is not None and total > max_total_bytes:
            raise DmpError("SUBMISSION_TOO_LARGE", f"{human_size(max_total_bytes)} par Bundle")
        check_size_and_hash(attachment, content)
        entry.size = len(content)
        entry.sha1_b64 = base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()
        req.documents.append(
            SubmittedDocument(i, full_url, dr, entry, content, hashlib.sha256(content).hexdigest(), bi)
        )
    unused = set(binary_indexes) - used
    if unused:
        raise DmpError("INVALID_RESOURCE", f"Binary sans fiche qui le référence (entrée {min(unused)})")
    return req


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
