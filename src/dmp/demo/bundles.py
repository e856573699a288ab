"""Build PDSm ITI-65 bundles the way a professional's software would.

Used by ``dmp demo``, the test suite and the benchmark; it is a client-side tool,
the server never calls it.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from dmp.cda import CdaHeader
from dmp.fhir.bundle import MHD_LIST_TYPES, SOURCE_ID_URL
from dmp.fhir.documentreference import FLAG_SYSTEM
from dmp.terminology import system_oid, valueset

# Class (J57) and format (J60) for the example CDA types; the DMP derives the class
# from the type (ASS_X16), which is not published in machine-readable form.
CLASS_OF_TYPE = {
    "11490-0": "10",
    "18748-4": "10",
    "96173-0": "10",
    "11502-2": "10",
    "11488-4": "10",
    "11369-6": "11",
    "SYNTH": "11",
    "60591-5": "11",
}
FORMAT_OF_TYPE = {
    "11490-0": "urn:asip:ci-sis:ldl-ses:2017",
    "18748-4": "urn:ihe:iti:xds-sd:pdf:2008",
    "96173-0": "urn:ans:ci-sis:trod:2024",
    "11502-2": "urn:ihe:lab:xd-lab:2008",
    "11369-6": "urn:asip:ci-sis:vac:2019",
    "SYNTH": "urn:asip:ci-sis:vsm:2012",
    "11488-4": "urn:ihe:iti:xds-sd:pdf:2008",
}


def _coding(vs: str, code: str, system: str | None = None) -> dict[str, Any]:
    """The value set's concept for ``code`` (of ``system`` when given: OID, urn:oid or URL)."""
    concepts = valueset(vs).lookup(code)
    if system is not None:
        wanted = system_oid(system)
        concepts = [c for c in concepts if c.oid == wanted]
    if not concepts:
        within = f" (système {system})" if system else ""
        raise ValueError(f"code « {code} » absent du jeu de valeurs {vs}{within}")
    concept = concepts[0]
    return {"system": concept.system, "code": concept.code, "display": concept.display}


def master_identifier_value(unique_id: str) -> str:
    """DocumentReference.masterIdentifier.value for an XDS uniqueId (an OID becomes urn:oid:)."""
    return f"urn:oid:{unique_id}" if unique_id[0].isdigit() else unique_id


def document_reference(  # noqa: PLR0913 (demo data: one keyword per DocumentReference element)
    content: bytes,
    *,
    ins_system: str,
    ins_value: str,
    unique_id: str,
    type_code: str,
    title: str,
    date: str,
    author_idnps: str,
    author_name: str,
    facility: str = "SA01",
    practice: str = "ETABLISSEMENT",
    mime_type: str = "text/xml",
    binary_url: str | None = None,
    flags: tuple[str, ...] = (),
    replaces: str | None = None,
    class_code: str | None = None,
    format_code: str | None = None,
    type_system: str | None = None,
) -> dict[str, Any]:
    parts = author_name.split() or ["Inconnu"]
    name: dict[str, Any] = {"family": parts[-1]}
    if parts[:-1]:
        name["given"] = parts[:-1]
    labels: list[dict[str, Any]] = [{"coding": [_coding("J58", "N")]}]
    labels += [{"coding": [{"system": FLAG_SYSTEM, "code": f}]} for f in flags]
    attachment: dict[str, Any] = {
        "contentType": mime_type,
        "language": "fr-FR",
        "size": len(content),
        "hash": base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode(),
        "title": title,
        "creation": date,
    }
    if binary_url:
        attachment["url"] = binary_url
    else:
        attachment["data"] = base64.b64encode(content).decode()
    dr: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {
            "profile": [
                "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"
            ]
        },
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "author",
                "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": author_idnps}],
                "name": [name],
            }
        ],
        "masterIdentifier": {
            "system": "urn:ietf:rfc:3986",
            "value": master_identifier_value(unique_id),
        },
        "status": "current",
        "type": {"coding": [_coding("J66", type_code, type_system)]},
        "category": [{"coding": [_coding("J57", class_code or CLASS_OF_TYPE.get(type_code, "10"))]}],
        "subject": {"reference": f"Patient?identifier={ins_system}|{ins_value}"},
        "date": date,
        "author": [{"reference": "#author"}],
        "securityLabel": labels,
        "content": [
            {
                "attachment": attachment,
                "format": _coding(
                    "J60", format_code or FORMAT_OF_TYPE.get(type_code, "urn:ihe:iti:xds-sd:pdf:2008")
                ),
            }
        ],
        "context": {
            "period": {"start": date},
            "facilityType": {"coding": [_coding("J61", facility)]},
            "practiceSetting": {"coding": [_coding("J04", practice)]},
        },
    }
    if replaces:
        dr["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    return dr


def provide_bundle(
    documents: list[tuple[dict[str, Any], bytes | None]],
    *,
    ins_system: str,
    ins_value: str,
    source_oid: str = "1.2.250.1.999.1",
) -> dict[str, Any]:
    """A transaction Bundle: SubmissionSet + DocumentReferences (+ Binaries when given)."""
    entries: list[dict[str, Any]] = []
    doc_urls = []
    for dr, binary in documents:
        doc_url = f"urn:uuid:{uuid.uuid4()}"
        doc_urls.append(doc_url)
        entries.append(
            {"fullUrl": doc_url, "resource": dr, "request": {"method": "POST", "url": "DocumentReference"}}
        )
        if binary is not None:
            bin_url = dr["content"][0]["attachment"]["url"]
            entries.append(
                {
                    "fullUrl": bin_url,
                    "resource": {
                        "resourceType": "Binary",
                        "contentType": dr["content"][0]["attachment"]["contentType"],
                        "data": base64.b64encode(binary).decode(),
                    },
                    "request": {"method": "POST", "url": "Binary"},
                }
            )
    submission = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "List",
            "meta": {
                "profile": [
                    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-submissionset-comprehensive"
                ]
            },
            "extension": [
                {
                    "url": SOURCE_ID_URL,
                    "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{source_oid}"},
                }
            ],
            "identifier": [
                {"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}
            ],
            "status": "current",
            "mode": "working",
            "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
            "subject": {"reference": f"Patient?identifier={ins_system}|{ins_value}"},
            "entry": [{"item": {"reference": u}} for u in doc_urls],
        },
        "request": {"method": "POST", "url": "List"},
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [submission, *entries]}


def bundle_from_cda(
    content: bytes,
    header: CdaHeader,
    *,
    ins_system: str,
    ins_value: str,
    unique_id: str | None = None,
    replaces: str | None = None,
    flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    bin_url = f"urn:uuid:{uuid.uuid4()}"
    dr = document_reference(
        content,
        ins_system=ins_system,
        ins_value=ins_value,
        unique_id=unique_id or header.unique_id,
        type_code=header.type_code,
        type_system=header.type_system,  # DocumentReference.type is the CDA's ClinicalDocument/code
        title=header.title,
        date=header.effective_time,
        author_idnps=header.author_idnps or "801234567897",
        author_name=header.author_name or "Auteur inconnu",
        facility=header.facility_code or "SA01",
        practice=header.practice_code or "ETABLISSEMENT",
        binary_url=bin_url,
        flags=flags,
        replaces=replaces,
    )
    return provide_bundle([(dr, content)], ins_system=ins_system, ins_value=ins_value)
