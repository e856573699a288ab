"""Publication coherence: the metadata a producer declares must agree with the bytes it sends.

Run by ``publish`` for every submission (ITI-65 and anything else building a ProvideRequest),
once the record is resolved. Every fault is collected, then refused together in one
OperationOutcome (one issue each, with the entry's location), so the producer fixes them in
one round trip. docs/api/mhd.md states the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from dmp import cda
from dmp.domain.ins import OID_NIA, OID_NIR, TEST_OIDS
from dmp.errors import DmpError
from dmp.fhir.bundle import ProvideRequest, SubmittedDocument
from dmp.fhir.common import Json
from dmp.services.subjects import parse_uuid
from dmp.store.schema import document, submission_set
from dmp.terminology import system_oid, valueset

XML_MIME_TYPES = frozenset({"text/xml", "application/xml"})
PDF_MAGIC = b"%PDF-"
# JDV_J60 formats that can only be a CDA: the CI-SIS volets and the IHE structured CDA contents.
# The XDS-SD family (a PDF, text or image wrapped in CDA, also sent unwrapped by some producers),
# "modelesHorsProfils", detached signatures and DICOM KOS do not say the bytes are a CDA.
_CDA_FORMAT_PREFIXES = (
    "urn:asip:ci-sis:",
    "urn:ans:ci-sis:",
    "urn:ihe:lab:xd-lab:",
    "urn:ihe:pharm:",
    "urn:ihe:palm:",
    "urn:ihe:pcc:",
    "urn:ihe:rad:CDA:",
    "urn:ihe:eyecare:",
)
CDA_FORMATS = frozenset(c.code for c in valueset("J60") if c.code.startswith(_CDA_FORMAT_PREFIXES))
# Elements whose references are checked elsewhere (subject: resolve_subject; relatesTo: replace).
_CHECKED_ELSEWHERE = frozenset({"subject", "relatesTo", "contained"})
_SERVER_TABLES = {"DocumentReference": document, "Binary": document, "List": submission_set}


def check(conn: Connection, req: ProvideRequest, record: Any, *, allow_test: bool, fhir_base: str) -> None:
    """Refuse the submission with every incoherence found, or return."""
    faults: list[DmpError] = []
    for d in req.documents:
        faults.extend(_document_faults(d, record, allow_test=allow_test))
        faults.extend(_reference_faults(conn, req, record.id, d.resource, d.index, fhir_base))
    faults.extend(
        _reference_faults(conn, req, record.id, req.submission_set, req.submission_index, fhir_base)
    )
    if faults:
        raise DmpError.several(faults)


def _entry(index: int) -> str:
    return f"Bundle.entry[{index}].resource"


def _content_location(d: SubmittedDocument) -> str:
    if d.binary_index is not None:
        return f"{_entry(d.binary_index)}.data"
    return f"{_entry(d.index)}.content[0].attachment.data"


def _document_faults(d: SubmittedDocument, record: Any, *, allow_test: bool) -> Iterator[DmpError]:
    mime = (d.entry.mime_type or "").split(";")[0].strip().lower()
    fmt = d.entry.format_code or ""
    declared = f"contentType « {mime} », formatCode « {fmt} »"
    if mime == "application/pdf" and not d.content.startswith(PDF_MAGIC):
        yield DmpError(
            "DOCUMENT_FORMAT_MISMATCH",
            f"{declared} déclarés, mais le contenu ne commence pas par « %PDF- » "
            f"(début reçu : « {_preview(d.content)} »)",
            expression=_content_location(d),
        )
    if mime not in XML_MIME_TYPES and fmt not in CDA_FORMATS:
        return
    try:
        facts = cda.read_facts(d.content)
    except DmpError as exc:
        yield DmpError(
            "DOCUMENT_FORMAT_MISMATCH",
            f"{declared} (document CDA) déclarés, mais le contenu n'est pas du XML bien formé ({exc.detail})",
            expression=_content_location(d),
        )
        return
    if facts.root_tag != cda.CDA_ROOT:
        yield DmpError(
            "DOCUMENT_FORMAT_MISMATCH",
            f"{declared} (document CDA) déclarés, mais l'élément racine du XML est « {facts.root_tag} » "
            f"et non « {cda.CDA_ROOT} »",
            expression=_content_location(d),
        )
        return
    yield from _patient_faults(d, facts, record, allow_test=allow_test)
    yield from _type_faults(d, facts)


def _preview(content: bytes) -> str:
    return content[:16].decode("latin-1").encode("unicode_escape").decode("ascii")


def _patient_faults(
    d: SubmittedDocument, facts: cda.CdaFacts, record: Any, *, allow_test: bool
) -> Iterator[DmpError]:
    ins_roots = {OID_NIR, OID_NIA} | (TEST_OIDS if allow_test else set())
    cda_ins = [(root, ext) for root, ext in facts.patient_ids if root in ins_roots]
    expected = (record.ins_oid, record.ins_value)
    if not cda_ins or expected in cda_ins:
        # No INS in the header: nothing to compare (the CDA header's own validation is not ours).
        return
    found = ", ".join(f"{ext} ({root})" for root, ext in cda_ins)
    yield DmpError(
        "DOCUMENT_PATIENT_MISMATCH",
        f"le CDA (recordTarget/patientRole/id) désigne l'INS {found}, "
        f"le DMP visé par la soumission est celui de l'INS {record.ins_value} ({record.ins_oid})",
        expression=_content_location(d),
    )


def _type_faults(d: SubmittedDocument, facts: cda.CdaFacts) -> Iterator[DmpError]:
    if facts.code is None:
        return
    cda_system = system_oid(facts.code_system or "")
    declared_system = system_oid(d.entry.type_system)
    if facts.code == d.entry.type_code and cda_system == declared_system:
        return
    yield DmpError(
        "DOCUMENT_TYPE_MISMATCH",
        f"ClinicalDocument/code du CDA « {facts.code} » (système {facts.code_system}), "
        f"DocumentReference.type « {d.entry.type_code} » (système {d.entry.type_system})",
        expression=f"{_entry(d.index)}.type",
    )


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(FHIRPath-like location, reference) of every literal reference under ``node``."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield f"{path}.reference", ref
        for key, value in node.items():
            if key not in _CHECKED_ELSEWHERE:
                yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _references(value, f"{path}[{i}]")


def _reference_faults(
    conn: Connection, req: ProvideRequest, pid: UUID, resource: Json, index: int, fhir_base: str
) -> Iterator[DmpError]:
    contained = {c.get("id") for c in resource.get("contained") or [] if isinstance(c, dict)}
    for location, ref in _references(resource, _entry(index)):
        if not _resolves(conn, req, pid, ref, contained, fhir_base):
            yield DmpError(
                "UNRESOLVED_REFERENCE",
                f"« {ref} » ({_element(location, index)} de {resource.get('resourceType')}) ; "
                "un auteur ou un responsable non enregistré sur le serveur doit être contenu (contained)",
                expression=location,
            )


def _element(location: str, index: int) -> str:
    return location.removeprefix(_entry(index) + ".")


def _resolves(
    conn: Connection, req: ProvideRequest, pid: UUID, ref: str, contained: set[Any], base: str
) -> bool:
    if ref.startswith("#"):
        return ref[1:] in contained
    if ref in req.local_urls:
        return True
    ref = ref.removeprefix(base.rstrip("/") + "/")
    rtype, _, rid = ref.partition("/")
    uid = parse_uuid(rid) if "/" in ref and "?" not in ref else None
    if uid is None:
        return False
    if rtype == "Patient":
        return uid == pid  # the only patient a submission may name
    table = _SERVER_TABLES.get(rtype)
    if table is None:
        return False  # the server holds no Practitioner, Organization, Device…
    found = conn.execute(select(table.c.id).where(table.c.patient_id == pid, table.c.id == uid)).first()
    return found is not None
