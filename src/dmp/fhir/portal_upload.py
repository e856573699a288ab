"""A document uploaded from the portal, as the ProvideRequest of ITI-65.

The professionals' metadata form, or the patient's « Ajouter un document » (their own
documents: PDF, JPEG, PNG, plain text; author the patient), becomes the DocumentReference a
professional's software would send (PDSm comprehensive, CI-SIS value sets), carrying the
document; the server builds the SubmissionSet as for ITI-105
(``simplified.parse_simplified_publish``), so parsing, validation, coherence, policy and trail
are those of any publication (``services.publish.publish``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from dmp.errors import DmpError
from dmp.fhir.bundle import ProvideRequest
from dmp.fhir.common import Json
from dmp.fhir.documentreference import FLAG_SYSTEM
from dmp.fhir.simplified import parse_simplified_publish
from dmp.terminology import Concept, valueset

PDF = "application/pdf"
CDA = "text/xml"
JPEG = "image/jpeg"
PNG = "image/png"
TEXT = "text/plain"
FHIR_JSON = "application/fhir+json"
# XDS-SD for an unstructured PDF, text or JPEG; « modèles hors profils » for a CDA outside the
# CI-SIS volets, and for what JDV_J60 has no XDS-SD format of (PNG, a FHIR document).
FORMAT_OF_MIME = {
    PDF: "urn:ihe:iti:xds-sd:pdf:2008",
    CDA: "urn:asipSante:modelesHorsProfils:2011",
    JPEG: "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    PNG: "urn:asipSante:modelesHorsProfils:2011",
    TEXT: "urn:ihe:iti:xds-sd:text:2008",
    FHIR_JSON: "urn:asipSante:modelesHorsProfils:2011",
}
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
PROFILE = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"


@dataclass(frozen=True)
class Upload:
    """What the portal's form says about the document."""

    content: bytes
    mime_type: str  # PDF or CDA
    type_concept: Concept  # JDV_J66
    class_concept: Concept  # JDV_J57
    facility: Concept  # JDV_J61
    practice: Concept  # JDV_J04
    title: str
    act_time: datetime  # the date of the act (aware)
    author: Json  # the contained author: ``practitioner_author`` or ``patient_author``
    masked: bool  # MASQUE_PS
    invisible_to_patient: bool  # INVISIBLE_PATIENT
    replaces: str | None = None  # "DocumentReference/<id>"


def sniff_mime(content: bytes) -> str | None:
    """PDF or CDA (XML), from the bytes themselves; None for anything else."""
    if content.startswith(b"%PDF-"):
        return PDF
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return CDA if head.startswith(b"<") else None


def sniff_patient_mime(content: bytes) -> str | None:
    """What a patient may add, from the bytes themselves: PDF, JPEG, PNG or plain UTF-8 text
    (no control characters but tab and line ends); None for anything else (XML, HTML included:
    a patient's text is never read as markup)."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if text.lstrip()[:1] == "<" or any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        return None
    return TEXT


def _sha1_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()


def _coding(c: Concept) -> Json:
    return {"system": c.system, "code": c.code, "display": c.display}


def _human(name: str) -> Json:
    parts = name.split() or ["Inconnu"]
    human: Json = {"family": parts[-1]}
    if parts[:-1]:
        human["given"] = parts[:-1]
    return human


def practitioner_author(idnps: str, name: str) -> Json:
    return {
        "resourceType": "Practitioner",
        "id": "author",
        "identifier": [{"system": IDNPS_SYSTEM, "value": idnps}],
        "name": [_human(name)],
    }


def patient_author(ins_system: str, ins_value: str, name: str) -> Json:
    """The patient as the author of their own document (``parse_author``: AuthorKind.PATIENT)."""
    return {
        "resourceType": "Patient",
        "id": "author",
        "identifier": [{"system": ins_system, "value": ins_value}],
        "name": [_human(name)],
    }


def document_reference(u: Upload, ins_system: str, ins_value: str) -> Json:
    when = u.act_time.isoformat(timespec="seconds")
    labels: list[Json] = [{"coding": [_coding(_one("J58", "N"))]}]
    flags = [f for f, on in (("MASQUE_PS", u.masked), ("INVISIBLE_PATIENT", u.invisible_to_patient)) if on]
    labels += [{"coding": [{"system": FLAG_SYSTEM, "code": f}]} for f in flags]
    dr: Json = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [PROFILE]},
        "contained": [u.author],
        # A UUID-derived OID (ITU-T X.667): unique without a registry of the portal's own.
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.25.{uuid.uuid4().int}"},
        "status": "current",
        "type": {"coding": [_coding(u.type_concept)]},
        "category": [{"coding": [_coding(u.class_concept)]}],
        "subject": {"reference": f"Patient?identifier={ins_system}|{ins_value}"},
        "date": when,
        "author": [{"reference": "#author"}],
        "securityLabel": labels,
        "content": [
            {
                "attachment": {
                    "contentType": u.mime_type,
                    "language": "fr-FR",
                    "size": len(u.content),
                    "hash": _sha1_b64(u.content),
                    "title": u.title,
                    "creation": when,
                    "data": base64.b64encode(u.content).decode(),
                },
                "format": _coding(_one("J60", FORMAT_OF_MIME[u.mime_type])),
            }
        ],
        "context": {
            "period": {"start": when},
            "facilityType": {"coding": [_coding(u.facility)]},
            "practiceSetting": {"coding": [_coding(u.practice)]},
        },
    }
    if u.replaces:
        dr["relatesTo"] = [{"code": "replaces", "target": {"reference": u.replaces}}]
    return dr


def _one(vs: str, code: str) -> Concept:
    found = valueset(vs).lookup(code)
    if not found:  # our own constants: a programming error
        raise RuntimeError(f"{code} missing from {vs}")
    return found[0]


def provide_request(
    u: Upload, ins_system: str, ins_value: str, now: datetime, *, max_document_bytes: int, allow_test: bool
) -> ProvideRequest:
    """The ProvideRequest ITI-65 would parse for this upload (its refusals are ITI-65's)."""
    if len(u.content) > max_document_bytes:
        raise DmpError("DOCUMENT_TOO_LARGE", f"{max_document_bytes} octets par document")
    return parse_simplified_publish(
        document_reference(u, ins_system, ins_value), now, max_document_bytes=max_document_bytes,
        allow_test=allow_test,
    )

