"""The patient's choices (organ donation position, trusted person, emergency contacts) as a small
patient-authored FHIR document: a Bundle of type ``document`` (Composition, Patient,
RelatedPerson, Consent), published like any document of type EXPPAT_1 « Volontés et droits du
patient » (ADR 0019). Professionals read it under the document policy; the clinical reader
(``clinical.fhir_document``) takes the trusted person into the structured record.

``choices_document`` builds it; ``choices_of`` reads one back (the form's current values).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dmp.fhir.common import Json

DONOR, REFUSES, UNDECIDED = "donneur", "refus", "sans-avis"
DONATION_WORDS = {
    DONOR: "Je suis donneur d'organes et de tissus.",
    REFUSES: "Je refuse le prélèvement de mes organes et tissus après ma mort.",
    UNDECIDED: "Je ne me prononce pas sur le don d'organes.",
}
LOINC = "http://loinc.org"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"
TRUSTED_TEXT = "Personne de confiance"
CONTACT_TEXT = "Personne à prévenir en cas d'urgence"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
# Section codes (LOINC): advance directives / patient contacts.
SECTION_DONATION = ("42348-3", "Don d'organes")
SECTION_PEOPLE = ("56864-2", "Personnes à contacter")
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
TITLE = "Mes choix : don d'organes, personne de confiance, personnes à prévenir"


@dataclass(frozen=True)
class Person:
    name: str
    relationship: str  # as the patient writes it: « fille », « voisin »
    phone: str


@dataclass(frozen=True)
class Choices:
    donation: str  # DONOR, REFUSES or UNDECIDED
    trusted: Person | None
    contacts: tuple[Person, ...]


def _related(p: Person, role: Json, ref: str) -> Json:
    out: Json = {
        "resourceType": "RelatedPerson",
        "active": True,
        "patient": {"reference": ref},
        "relationship": [role, {"text": p.relationship}] if p.relationship else [role],
        "name": [{"text": p.name}],
    }
    if p.phone:
        out["telecom"] = [{"system": "phone", "value": p.phone}]
    return out


def _trusted_role() -> Json:
    return {"coding": [{"system": ROLE_CLASS, "code": "NOK"}], "text": TRUSTED_TEXT}


def _contact_role() -> Json:
    coding = {"system": CONTACT_ROLE, "code": "C", "display": "Emergency Contact"}
    return {"coding": [coding], "text": CONTACT_TEXT}


def _donation_consent(donation: str, ref: str, when: str) -> Json:
    """The patient's statement (never the national refusal register's record)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]},
        "category": [{"coding": [{"system": LOINC, "code": SECTION_DONATION[0]}], "text": "Don d'organes"}],
        "patient": {"reference": ref},
        "dateTime": when,
        "provision": {"type": "permit" if donation == DONOR else "deny"},
    }


def _section(code: tuple[str, str], lines: list[str], refs: list[str]) -> Json:
    div = "".join(f"<p>{_escape(t)}</p>" for t in lines) or "<p>Rien d'indiqué.</p>"
    return {
        "title": code[1],
        "code": {"coding": [{"system": LOINC, "code": code[0]}]},
        "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{div}</div>'},
        "entry": [{"reference": r} for r in refs],
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _person_line(label: str, p: Person) -> str:
    extra = ", ".join(x for x in (p.relationship, p.phone) if x)
    return f"{label} : {p.name}" + (f" ({extra})" if extra else "")


def choices_document(c: Choices, ins_system: str, ins_value: str, name: str, now: datetime) -> bytes:
    """The FHIR document (JSON bytes) stating ``c``, authored by the patient."""
    when = now.isoformat(timespec="seconds")
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[tuple[str, Json]] = [
        (patient_url, {"resourceType": "Patient", "identifier": [{"system": ins_system, "value": ins_value}],
                       "name": [{"text": name}]}),
    ]
    people: list[str] = []
    lines: list[str] = []
    for p, role, label in (
        *(((c.trusted, _trusted_role(), TRUSTED_TEXT),) if c.trusted else ()),
        *((p, _contact_role(), CONTACT_TEXT) for p in c.contacts),
    ):
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append((url, _related(p, role, patient_url)))
        people.append(url)
        lines.append(_person_line(label, p))
    donation_refs: list[str] = []
    if c.donation in (DONOR, REFUSES):
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append((url, _donation_consent(c.donation, patient_url, when)))
        donation_refs.append(url)
    composition: Json = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [{"system": TRE_A05, "code": "EXPPAT_1"}],
                 "text": "Volontés et droits du patient"},
        "subject": {"reference": patient_url},
        "date": when,
        "author": [{"reference": patient_url}],
        "title": TITLE,
        "section": [
            _section(SECTION_DONATION, [DONATION_WORDS.get(c.donation, DONATION_WORDS[UNDECIDED])],
                     donation_refs),
            _section(SECTION_PEOPLE, lines, people),
        ],
    }
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "timestamp": when,
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": composition}]
        + [{"fullUrl": url, "resource": res} for url, res in entries],
    }
    return json.dumps(bundle, ensure_ascii=False).encode()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _person(res: Json) -> tuple[str, Person]:
    """(« trusted » or « contact », the person) of one RelatedPerson this module wrote."""
    rels = [r for r in res.get("relationship") or [] if isinstance(r, dict)]
    kind = "trusted" if any(r.get("text") == TRUSTED_TEXT for r in rels) else "contact"
    lien = next((_text(r.get("text")) for r in rels if not r.get("coding")), "")
    name = next((_text(n.get("text")) for n in res.get("name") or [] if isinstance(n, dict)), "")
    phone = next((_text(t.get("value")) for t in res.get("telecom") or [] if isinstance(t, dict)), "")
    return kind, Person(name, lien, phone)


def choices_of(content: bytes) -> Choices | None:
    """The choices a document of ``choices_document`` states; None when it is no such document."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("type") != "document":
        return None
    resources = [e.get("resource") for e in data.get("entry") or [] if isinstance(e, dict)]
    donation, trusted, contacts = UNDECIDED, None, []
    for res in resources:
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "Consent":
            donation = DONOR if (res.get("provision") or {}).get("type") == "permit" else REFUSES
        elif res.get("resourceType") == "RelatedPerson":
            kind, person = _person(res)
            if kind == "trusted":
                trusted = person
            else:
                contacts.append(person)
    return Choices(donation, trusted, tuple(contacts))
