"""DocumentReference (PDSm comprehensive) <-> DocumentEntry."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from uuid import UUID

from dmp.domain.document import (
    Author,
    AuthorKind,
    Availability,
    Confidentiality,
    DmpFlag,
    DocumentEntry,
    flag_codes,
)
from dmp.errors import DmpError
from dmp.fhir.common import (
    Json,
    codings,
    contained_by_ref,
    human_name,
    identifier_value,
    instant,
    is_media_type,
    parse_datetime,
    require,
)
from dmp.terminology import valueset

OID_IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
OID_IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
INS_SYSTEMS = tuple(f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))
CONFIDENTIALITY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_A08-HL7Confidentiality/FHIR/TRE-A08-HL7Confidentiality"
)
FLAG_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
IS_ARCHIVED_URL = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
FLAG_DISPLAY = {
    "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
}


def coded(concept: Any, vs_id: str, element: str, *, required: bool = True) -> tuple[str, str]:
    """The (system, code) of the first coding of ``concept`` that is in value set ``vs_id``."""
    cs = codings(concept)
    path = element.split(" (")[0]  # FHIRPath; the XDS name stays in the message
    if not cs:
        if required:
            raise DmpError("MISSING_ELEMENT", element, expression=path)
        return "", ""
    vs = valueset(vs_id)
    for c in cs:
        system, code = c.get("system"), c.get("code")
        if isinstance(system, str) and isinstance(code, str) and vs.contains(system, code):
            return system, code
    first = cs[0]
    raise DmpError(
        "UNKNOWN_CODE",
        f"{element} {first.get('code')} ({first.get('system')}) absent du jeu de valeurs {vs.name}",
        expression=path,
    )


def parse_security_labels(labels: Any) -> tuple[Confidentiality, DmpFlag]:
    """The HL7 level plus the DMP flags (J58), held as a set."""
    level = Confidentiality.N
    levels_seen = 0
    flags = DmpFlag.NONE
    if labels is None:
        return level, flags
    if not isinstance(labels, list):
        raise DmpError("INVALID_VALUE", "securityLabel doit être une liste", expression="securityLabel")
    vs = valueset("J58")
    for label in labels:
        for c in codings(label):
            system, code = c.get("system"), c.get("code")
            if not (isinstance(system, str) and isinstance(code, str) and vs.contains(system, code)):
                raise DmpError(
                    "UNKNOWN_CODE",
                    f"securityLabel {code} ({system}) absent du jeu de valeurs {vs.name}",
                    expression="securityLabel",
                )
            if code in ("N", "R", "V"):
                level = Confidentiality(code)
                levels_seen += 1
            else:
                flags |= DmpFlag[code]
    if levels_seen > 1:
        raise DmpError(
            "INVALID_VALUE",
            "un seul niveau de confidentialité N, R ou V est permis",
            expression="securityLabel",
        )
    return level, flags


def security_labels(level: str, flags: int) -> list[Json]:
    out: list[Json] = [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": level}]}]
    for code in flag_codes(flags):
        out.append({"coding": [{"system": FLAG_SYSTEM, "code": code, "display": FLAG_DISPLAY[code]}]})
    return out


def parse_author(dr: Json) -> Author:
    authors = require(dr, "author", "DocumentReference.author")
    if not isinstance(authors, list):
        raise DmpError("INVALID_VALUE", "DocumentReference.author doit être une liste")
    ref = authors[0]
    res = contained_by_ref(dr, ref)
    if res is None:
        # A display-only or external reference: keep what we can, the publisher is traced.
        ident = ref.get("identifier") if isinstance(ref, dict) else None
        value = ident.get("value") if isinstance(ident, dict) else None
        display = ref.get("display") if isinstance(ref, dict) else None
        return Author(
            AuthorKind.PROFESSIONAL,
            value if isinstance(value, str) else None,
            display if isinstance(display, str) else None,
        )
    rtype = res.get("resourceType")
    if rtype == "PractitionerRole":
        practitioner = contained_by_ref(dr, res.get("practitioner"))
        organization = contained_by_ref(dr, res.get("organization"))
        role = next((c.get("code") for cc in res.get("code") or [] for c in codings(cc)), None)
        specialty = next((c.get("code") for cc in res.get("specialty") or [] for c in codings(cc)), None)
        return Author(
            AuthorKind.PROFESSIONAL,
            identifier_value(practitioner, OID_IDNPS_SYSTEM),
            human_name(practitioner),
            role,
            specialty,
            identifier_value(organization, OID_IDNST_SYSTEM),
            organization.get("name") if organization else None,
        )
    if rtype == "Practitioner":
        return Author(AuthorKind.PROFESSIONAL, identifier_value(res, OID_IDNPS_SYSTEM), human_name(res))
    if rtype == "Patient":
        ins = next((v for s in INS_SYSTEMS if (v := identifier_value(res, s))), None)
        return Author(AuthorKind.PATIENT, ins, human_name(res), "patient")
    if rtype == "Device":
        ident = res.get("identifier") or [{}]
        return Author(AuthorKind.DEVICE, ident[0].get("value"), None)
    if rtype == "Organization":
        return Author(AuthorKind.ORGANIZATION, identifier_value(res, OID_IDNST_SYSTEM), res.get("name"))
    raise DmpError(
        "INVALID_VALUE", f"type d'auteur non accepté : {rtype}", expression="DocumentReference.author"
    )


def parse_entry(dr: Json) -> tuple[DocumentEntry, Json]:
    """Check a submitted DocumentReference's PDSm metadata; return it and its attachment."""
    master = require(dr, "masterIdentifier", "DocumentReference.masterIdentifier")
    unique_id = master.get("value") if isinstance(master, dict) else None
    if not isinstance(unique_id, str) or not unique_id.strip():
        raise DmpError("MISSING_ELEMENT", "DocumentReference.masterIdentifier.value")
    if len(unique_id) > 256:
        raise DmpError("INVALID_VALUE", "masterIdentifier trop long (256 caractères au plus)")
    categories = require(dr, "category", "DocumentReference.category")
    _, class_code = coded(
        categories[0] if isinstance(categories, list) else None,
        "J57",
        "DocumentReference.category (classCode)",
    )
    type_system, type_code = coded(
        require(dr, "type", "DocumentReference.type"), "J66", "DocumentReference.type (typeCode)"
    )
    contents = require(dr, "content", "DocumentReference.content")
    if not isinstance(contents, list) or len(contents) != 1:
        raise DmpError("INVALID_VALUE", "DocumentReference.content doit contenir exactement un élément")
    content = contents[0]
    _, format_code = coded(
        require(content, "format", "DocumentReference.content.format"),
        "J60",
        "DocumentReference.content.format (formatCode)",
    )
    attachment = require(content, "attachment", "DocumentReference.content.attachment")
    context = require(dr, "context", "DocumentReference.context")
    _, facility = coded(
        require(context, "facilityType", "DocumentReference.context.facilityType"),
        "J61",
        "DocumentReference.context.facilityType (healthcareFacilityTypeCode)",
    )
    _, practice = coded(
        require(context, "practiceSetting", "DocumentReference.context.practiceSetting"),
        "J04",
        "DocumentReference.context.practiceSetting (practiceSettingCode)",
    )
    period = require(context, "period", "DocumentReference.context.period")
    period_start = parse_datetime(
        require(period, "start", "DocumentReference.context.period.start"),
        "DocumentReference.context.period.start",
    )
    period_end = (
        parse_datetime(period["end"], "DocumentReference.context.period.end") if period.get("end") else None
    )
    if period_end is not None and period_end < period_start:
        raise DmpError("INVALID_VALUE", "context.period.end précède context.period.start")
    created = parse_datetime(require(dr, "date", "DocumentReference.date"), "DocumentReference.date")
    level, flags = parse_security_labels(dr.get("securityLabel"))
    events = _event_codes(context)
    mime = require(attachment, "contentType", "DocumentReference.content.attachment.contentType")
    if not is_media_type(mime):
        raise DmpError(
            "INVALID_VALUE",
            "DocumentReference.content.attachment.contentType : « "
            f"{str(mime)[:80]!r} » n'est pas un type de média (RFC 9110, type/sous-type[; paramètre=valeur])",
            expression="DocumentReference.content.attachment.contentType",
        )
    title = attachment.get("title") or dr.get("description")
    if not isinstance(title, str) or not title.strip():
        raise DmpError("MISSING_ELEMENT", "DocumentReference.content.attachment.title")
    replaces_ref = _replaced_reference(dr)
    entry = DocumentEntry(
        unique_id=unique_id.strip(),
        class_code=class_code,
        type_system=type_system,
        type_code=type_code,
        format_code=format_code,
        facility_code=facility,
        practice_code=practice,
        confidentiality=level,
        flags=flags,
        author=parse_author(dr),
        creation_time=created,
        period_start=period_start,
        period_end=period_end,
        title=title.strip(),
        mime_type=str(mime),
        language=str(attachment.get("language") or "fr-FR"),
        size=-1,
        sha1_b64="",
        event_codes=events,
        replaces_unique_id=replaces_ref,
    )
    return entry, attachment


def _event_codes(context: Json) -> list[tuple[str, str]]:
    """The (system, code) of every coded context.event."""
    events: list[tuple[str, str]] = []
    for ev in context.get("event") or []:
        for c in codings(ev):
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                events.append((c["system"], c["code"]))
    return events


def _replaced_reference(dr: Json) -> str | None:
    """What the document replaces (relatesTo « replaces »): a reference, or ``uid:<uniqueId>``."""
    replaces_ref: str | None = None
    for rel in dr.get("relatesTo") or []:
        if rel.get("code") == "replaces":
            target = rel.get("target") or {}
            ref = target.get("reference")
            ident = (target.get("identifier") or {}).get("value")
            replaces_ref = ref if isinstance(ref, str) else (f"uid:{ident}" if ident else None)
            if replaces_ref is None:
                raise DmpError("MISSING_ELEMENT", "DocumentReference.relatesTo.target")
        elif rel.get("code") is not None:
            raise DmpError(
                "INVALID_VALUE",
                f"relatesTo.code {rel.get('code')} non pris en charge (seul « replaces » l'est)",
            )
    return replaces_ref


def served_resource(
    submitted: Json,
    *,
    doc_id: UUID,
    patient_id: UUID,
    base_url: str,
    availability: Availability,
    version: int,
    last_updated: datetime,
    size: int,
    sha1_b64: str,
    replaces: UUID | None,
    level: str,
    flags: int,
) -> Json:
    """The DocumentReference as the registry serves it (id, status, url set by us)."""
    dr = copy.deepcopy(submitted)
    dr["id"] = str(doc_id)
    given_meta = dr.get("meta")
    meta: Json = {}
    if isinstance(given_meta, dict):
        meta = {k: v for k, v in given_meta.items() if k in ("profile", "tag", "security")}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    dr["meta"] = meta
    dr["status"] = availability.fhir_status
    dr["identifier"] = [{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc_id}"}]
    dr["subject"] = {"reference": f"Patient/{patient_id}"}
    dr["securityLabel"] = security_labels(level, flags)
    ext = [e for e in dr.get("extension") or [] if e.get("url") != IS_ARCHIVED_URL]
    if availability is Availability.ARCHIVED:
        ext.append({"url": IS_ARCHIVED_URL, "valueBoolean": True})
    if ext:
        dr["extension"] = ext
    else:
        dr.pop("extension", None)
    attachment = dr["content"][0]["attachment"]
    attachment.pop("data", None)
    attachment["url"] = f"{base_url}/Binary/{doc_id}"
    attachment["size"] = size
    attachment["hash"] = sha1_b64
    attachment.setdefault("language", "fr-FR")
    if replaces is not None:
        dr["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return dr
