"""Read the header of an HL7 CDA R2 document to prefill its PDSm metadata.

The parser is hardened: no network, no DTD loading, no entity expansion, no huge
trees. Only the header is read; the body is kept as bytes, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from dmp.errors import DmpError

NS = {"cda": "urn:hl7-org:v3"}


def hardened_parser(*, keep_comments: bool = False) -> etree.XMLParser:
    """No network, no DTD, no entity expansion, no huge trees, no processing instructions."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_comments,
        remove_pis=True,
    )


_PARSER = hardened_parser()
_OID_SYSTEMS = {"2.16.840.1.113883.6.1": "http://loinc.org"}


@dataclass(frozen=True)
class CdaHeader:
    unique_id: str
    type_code: str
    type_system: str
    title: str
    effective_time: str
    confidentiality: str
    patient_ins_root: str | None
    patient_ins: str | None
    author_idnps: str | None
    author_name: str | None
    author_specialty: str | None
    facility_code: str | None
    practice_code: str | None


def _fhir_datetime(hl7: str) -> str:
    """HL7 TS (YYYYMMDDHHMMSS+ZZZZ) to FHIR dateTime."""
    s = hl7.strip()
    if len(s) >= 14:
        tz = s[14:] or "+0000"
        tz = tz if tz[0] in "+-" else "+" + tz
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}{tz[:3]}:{tz[3:5]}"
    if len(s) >= 8:
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}"
    raise DmpError("INVALID_VALUE", f"date CDA « {hl7} » mal formée")


def parse_header(data: bytes) -> CdaHeader:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise DmpError("INVALID_VALUE", f"document CDA illisible : {exc}") from exc

    def attr(path: str, name: str) -> str | None:
        found = root.find(path, NS)
        return found.get(name) if found is not None else None

    def text(path: str) -> str | None:
        found = root.find(path, NS)
        return "".join(found.itertext()).strip() if found is not None else None

    root_id, ext = attr("cda:id", "root"), attr("cda:id", "extension")
    if not root_id:
        raise DmpError("MISSING_ELEMENT", "ClinicalDocument/id")
    unique_id = f"{root_id}^{ext}" if ext else root_id
    code_system = attr("cda:code", "codeSystem") or ""
    given = [
        g.text or ""
        for g in root.findall("cda:author/cda:assignedAuthor/cda:assignedPerson/cda:name/cda:given", NS)
    ]
    family = text("cda:author/cda:assignedAuthor/cda:assignedPerson/cda:name/cda:family")
    name = " ".join([*given, family or ""]).strip() or None
    return CdaHeader(
        unique_id=unique_id,
        type_code=attr("cda:code", "code") or "",
        type_system=_OID_SYSTEMS.get(code_system, f"urn:oid:{code_system}"),
        title=text("cda:title") or "Document",
        effective_time=_fhir_datetime(attr("cda:effectiveTime", "value") or ""),
        confidentiality=attr("cda:confidentialityCode", "code") or "N",
        patient_ins_root=attr("cda:recordTarget/cda:patientRole/cda:id", "root"),
        patient_ins=attr("cda:recordTarget/cda:patientRole/cda:id", "extension"),
        author_idnps=attr("cda:author/cda:assignedAuthor/cda:id", "extension"),
        author_name=name,
        author_specialty=attr("cda:author/cda:assignedAuthor/cda:code", "code"),
        facility_code=attr(
            "cda:componentOf/cda:encompassingEncounter/cda:location/cda:healthCareFacility/cda:code", "code"
        ),
        practice_code=attr(
            "cda:documentationOf/cda:serviceEvent/cda:performer/cda:assignedEntity/"
            "cda:representedOrganization/cda:standardIndustryClassCode",
            "code",
        ),
    )


CDA_ROOT = "{urn:hl7-org:v3}ClinicalDocument"


@dataclass(frozen=True)
class CdaFacts:
    """What the publication coherence checks read in a document said to be a CDA."""

    root_tag: str  # Clark notation, e.g. {urn:hl7-org:v3}ClinicalDocument
    code: str | None
    code_system: str | None
    patient_ids: tuple[tuple[str, str], ...]  # recordTarget/patientRole/id (root, extension)


def read_facts(data: bytes) -> CdaFacts:
    """Parse with the hardened parser; INVALID_VALUE when the bytes are not well-formed XML."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise DmpError("INVALID_VALUE", f"XML mal formé : {exc}") from exc
    code = root.find("cda:code", NS)
    ids = tuple(
        (i.get("root") or "", i.get("extension") or "")
        for i in root.findall("cda:recordTarget/cda:patientRole/cda:id", NS)
    )
    return CdaFacts(
        root_tag=str(root.tag),
        code=code.get("code") if code is not None else None,
        code_system=code.get("codeSystem") if code is not None else None,
        patient_ids=ids,
    )
