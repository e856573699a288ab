"""A clinical fact as a FHIR R4 resource, pointing back at its source DocumentReference.

Follows the ANS mapping of CI-SIS body entries to FHIR (IG document core, « Mapping
Métier/CDA/FHIR » of the body): problem → Condition, allergy → AllergyIntolerance, treatment →
MedicationStatement, lab result / vital sign / blood group → Observation, vaccination →
Immunization, medical device → DeviceUseStatement (its Device contained), advance directive →
Consent (scope ``adr``), trusted person → RelatedPerson, lab report → DiagnosticReport
(``result`` naming the Observations of the same document). Provenance: ``meta.source`` is
``DocumentReference/<id>`` for every resource (and ``Observation.derivedFrom``), the CDA entry's own
ids become ``identifier``s, the section and entry are named in a French ``note``; no extension URL
is invented. The full provenance (section code, entry index, template ids, per-entry author) stays
on the ``Fact`` for the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dmp.clinical import units
from dmp.clinical.model import Code, Fact, Quantity, Range

Json = dict[str, Any]

# CDA codeSystem OID → FHIR system URI (HL7 FHIR terminology and the ANS NOS where one is published).
SYSTEMS = {
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "2.16.840.1.113883.6.8": "http://unitsofmeasure.org",
    "2.16.840.1.113883.5.83": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    "2.16.840.1.113883.5.4": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "2.16.840.1.113883.5.111": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
    "2.16.840.1.113883.6.73": "http://www.whocc.no/atc",
    "0.4.0.127.0.16.1.1.2.1": "http://standardterms.edqm.eu",
    "2.16.840.1.113883.4.642.4.1373": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
}
UCUM = "http://unitsofmeasure.org"
# FHIR R4 core extension on Quantity: « the same physical quantity expressed in a different unit »;
# here, the value as the source document wrote it, beside the normalised one (ADR 0013).
PQ_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/iso21090-PQ-translation"
CLINICAL = {
    "allergy": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    "problem": "http://terminology.hl7.org/CodeSystem/condition-clinical",
}
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
RESOURCE_TYPES = {
    "allergy": "AllergyIntolerance",
    "problem": "Condition",
    "medication": "MedicationStatement",
    "lab_result": "Observation",
    "vital_sign": "Observation",
    "blood_group": "Observation",
    "immunization": "Immunization",
    "device": "DeviceUseStatement",
    "directive": "Consent",
    "trusted_person": "RelatedPerson",
    "lab_report": "DiagnosticReport",
}
# SNOMED CT allergy / intolerance types → AllergyIntolerance.category and .type.
_ALLERGY_CATEGORY = {
    "416098002": ("medication", "allergy"),
    "59037007": ("medication", "intolerance"),
    "414285001": ("food", "allergy"),
    "235719002": ("food", "intolerance"),
    "419199007": ("environment", "allergy"),
    "426232007": ("environment", "allergy"),
    "232347008": ("environment", "allergy"),
}


def system_uri(oid: str | None) -> str | None:
    if not oid:
        return None
    if oid in SYSTEMS:
        return SYSTEMS[oid]
    if oid.startswith(("http:", "https:", "urn:")):
        return oid
    return f"urn:oid:{oid}"


def concept(code: Code | None) -> Json | None:
    if code is None:
        return None
    out: Json = {}
    if code.code:
        coding: Json = {"code": code.code}
        system = system_uri(code.system)
        if system:
            coding["system"] = system
        if code.display:
            coding["display"] = code.display
        out["coding"] = [coding]
    text = code.text or code.display
    if text:
        out["text"] = text
    return out or None


def quantity(q: Quantity | None) -> Json | None:
    if q is None:
        return None
    out: Json = {"value": _number(q.value)}
    if q.unit and q.unit != "1":
        out.update(unit=q.unit, system=UCUM, code=q.unit)
    return out


def _number(value: str) -> int | float:
    f = float(value)
    return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f


def normalised_quantity(q: Quantity | None, loinc: str | None) -> Json | None:
    """A lab value in its analyte's unit (``dmp.clinical.units``), the value as written kept in the
    ``iso21090-PQ-translation`` extension; as written when not convertible."""
    written = quantity(q)
    if q is None or written is None or loinc is None:
        return written
    try:
        n = units.normalise(loinc, q.value, q.unit)
    except ValueError:
        return written
    if not n.converted:
        return written
    return {
        "value": n.value,
        "unit": n.unit,
        "system": UCUM,
        "code": n.unit,
        "extension": [{"url": PQ_TRANSLATION, "valueQuantity": written}],
    }


def _range(r: Range | None, loinc: str | None = None) -> Json | None:
    if r is None:
        return None
    out: Json = {}
    if r.low:
        out["low"] = normalised_quantity(r.low, loinc)
    if r.high:
        out["high"] = normalised_quantity(r.high, loinc)
    if r.text:
        out["text"] = r.text
    return out or None


def identifiers(fact: Fact) -> list[Json]:
    return [_identifier(ident) for ident in fact.provenance.ids]


def _urn(root: str) -> str:
    if root.replace(".", "").isdigit():
        return f"urn:oid:{root}"
    return f"urn:uuid:{root.lower()}"


def _drop_empty(obj: Json) -> Json:
    return {k: v for k, v in obj.items() if v not in (None, [], {}, "")}


def _note(fact: Fact) -> list[Json]:
    p = fact.provenance
    entry = f"entrée {p.entry_index + 1}" if p.entry_index >= 0 else None  # < 0: the header
    where = " — ".join(x for x in (p.section_title, entry) if x)
    return [{"text": f"Extrait du document source, section « {where} »."}]


def _performer(fact: Fact) -> Json | None:
    a = fact.provenance.author
    if a is None or not a.name:
        return None
    return {"display": a.name}


def to_fhir(
    fact: Fact,
    *,
    resource_id: str,
    document_id: str,
    patient_id: str,
    id_of: Callable[[int], str] | None = None,
) -> Json:
    """The FHIR R4 resource of ``fact``; ``document_id`` is the DocumentReference's logical id,
    ``id_of`` the logical id of the fact of that ordinal in the same document (a report's results;
    by default ``<document id>-<ordinal>``, the store's ids)."""
    doc_ref = f"DocumentReference/{document_id}"
    patient = {"reference": f"Patient/{patient_id}"}
    rtype = RESOURCE_TYPES[fact.kind]
    base: Json = {
        "resourceType": rtype,
        "id": resource_id,
        "meta": {"source": doc_ref},
        "identifier": identifiers(fact),
    }
    author = fact.provenance.author
    if rtype == "AllergyIntolerance":
        res = _allergy(fact, patient)
    elif rtype == "Condition":
        res = _condition(fact, patient)
    elif rtype == "MedicationStatement":
        res = _medication(fact, patient)
    elif rtype == "Immunization":
        res = _immunization(fact, patient)
    elif rtype in _OTHERS:
        res = _OTHERS[rtype](fact, patient)
    elif rtype == "DiagnosticReport":
        res = _lab_report(fact, patient, doc_ref, id_of or (lambda n: f"{document_id}-{n}"))
    else:
        res = _observation(fact, patient, doc_ref)
    if author and author.time and rtype in {"AllergyIntolerance", "Condition"}:
        res.setdefault("recordedDate", author.time)
    if rtype not in _NO_NOTE:
        res.setdefault("note", _note(fact))
    return _drop_empty({**base, **res})


def _allergy(fact: Fact, patient: Json) -> Json:
    res: Json = {"patient": patient, "code": concept(fact.code), "onsetDateTime": fact.effective_start}
    if fact.status in {"active", "inactive", "resolved"}:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL["allergy"], "code": fact.status}]}
    cat = fact.category
    if cat and cat.code in _ALLERGY_CATEGORY:
        category, kind = _ALLERGY_CATEGORY[cat.code]
        res.update(category=[category], type=kind)
    if fact.provenance.author and fact.provenance.author.name:
        res["recorder"] = {"display": fact.provenance.author.name}
    return res


def _condition(fact: Fact, patient: Json) -> Json:
    res: Json = {
        "subject": patient,
        "code": concept(fact.code),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "onsetDateTime": fact.effective_start,
        "abatementDateTime": fact.effective_end if fact.status != "active" else None,
    }
    if fact.status in {"active", "inactive", "resolved", "recurrence", "relapse", "remission"}:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL["problem"], "code": fact.status}]}
    if fact.provenance.author and fact.provenance.author.name:
        res["recorder"] = {"display": fact.provenance.author.name}
    return res


def _medication(fact: Fact, patient: Json) -> Json:
    dosage: Json = {"text": fact.value_text, "route": concept(fact.route)}
    if fact.dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": quantity(fact.dose)}]
    elif fact.dose_range is not None:
        dosage["doseAndRate"] = [{"doseRange": _range(fact.dose_range)}]
    if fact.frequency is not None and fact.frequency.unit in {"s", "min", "h", "d", "wk", "mo", "a"}:
        dosage["timing"] = {
            "repeat": {
                "frequency": 1,
                "period": float(fact.frequency.value),
                "periodUnit": fact.frequency.unit,
            }
        }
    dosage = _drop_empty(dosage)
    period = _drop_empty({"start": fact.effective_start, "end": fact.effective_end})
    return {
        "status": fact.status or "unknown",
        "subject": patient,
        "medicationCodeableConcept": concept(fact.code) or {"text": "Médicament non précisé"},
        "effectivePeriod": period or None,
        "dosage": [dosage] if dosage else None,
        "informationSource": _performer(fact),
    }


def _immunization(fact: Fact, patient: Json) -> Json:
    res: Json = {
        "status": fact.status or "completed",
        "patient": patient,
        "vaccineCode": concept(fact.code) or {"text": "Vaccin non précisé"},
        "lotNumber": fact.lot,
        "route": concept(fact.route),
    }
    if fact.effective_start:
        res["occurrenceDateTime"] = fact.effective_start
    else:
        res["occurrenceString"] = "date inconnue"
    if fact.dose_number is not None and fact.dose_number > 0:
        res["protocolApplied"] = [{"doseNumberPositiveInt": fact.dose_number}]
    if _performer(fact):
        res["performer"] = [{"actor": _performer(fact)}]
    return res


def _observation(fact: Fact, patient: Json, doc_ref: str) -> Json:
    category = "vital-signs" if fact.kind == "vital_sign" else "laboratory"
    code = fact.code
    loinc = code.code if code is not None and code.system == "2.16.840.1.113883.6.1" else None
    status = {"completed": "final", "active": "preliminary", "aborted": "cancelled"}.get(
        fact.status or "", "final"
    )
    res: Json = {
        "status": status,
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": concept(fact.code) or {"text": "Examen non précisé"},
        "subject": patient,
        "derivedFrom": [{"reference": doc_ref}],
        "interpretation": [concept(fact.interpretation)] if fact.interpretation else None,
        "referenceRange": [_range(fact.reference_range, loinc)] if _range(fact.reference_range) else None,
    }
    if fact.effective_start and fact.effective_end:
        res["effectivePeriod"] = {"start": fact.effective_start, "end": fact.effective_end}
    elif fact.effective_start:
        res["effectiveDateTime"] = fact.effective_start
    if fact.value is not None:
        res["valueQuantity"] = normalised_quantity(fact.value, loinc)
    elif fact.value_code is not None:
        res["valueCodeableConcept"] = concept(fact.value_code)
    elif fact.value_text is not None:
        res["valueString"] = fact.value_text
    if fact.specimen is not None:
        res["contained"] = [{"resourceType": "Specimen", "id": "specimen", "type": concept(fact.specimen)}]
        res["specimen"] = {"reference": "#specimen"}
    return res


# Resources without ``note``: where the fact comes from is in meta.source alone.
_NO_NOTE = frozenset({"RelatedPerson", "Consent", "DiagnosticReport"})
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
ADVANCE_DIRECTIVES_CODE = "42348-3"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"


def _device(fact: Fact, patient: Json) -> Json:
    """DeviceUseStatement, its Device contained (type and UDI as the document gives them)."""
    device: Json = {"resourceType": "Device", "id": "device", "type": concept(fact.code)}
    if fact.udi:
        device["udiCarrier"] = [{"carrierHRF": fact.udi}]
    period = _drop_empty({"start": fact.effective_start, "end": fact.effective_end})
    return {
        "status": fact.status or "active",
        "subject": patient,
        "contained": [_drop_empty(device)],
        "device": {"reference": "#device", "display": fact.code.label if fact.code else None},
        "timingPeriod": period or None,
        "source": _performer(fact),
    }


def _advance_directive(fact: Fact, patient: Json) -> Json:
    """Consent of scope ``adr``: a directive of the patient, permitting or refusing (provision)."""
    generic = fact.code is None or fact.code.code == ADVANCE_DIRECTIVES_CODE
    res: Json = {
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "adr"}]},
        "category": [{"coding": [{"system": LOINC, "code": ADVANCE_DIRECTIVES_CODE}],
                      "text": "Directives anticipées"}],
        "patient": patient,
        "dateTime": fact.effective_start if fact.effective_start and "T" in fact.effective_start else None,
        "policyRule": {"text": "Directives anticipées (article L1111-11 du code de la santé publique)"},
    }
    provision = _drop_empty({
        "type": {"true": "permit", "false": "deny"}.get(fact.value_text or ""),
        "period": _drop_empty({"start": fact.effective_start, "end": fact.effective_end}) or None,
        "code": None if generic else [concept(fact.code)],
    })
    if provision:
        res["provision"] = provision
    if fact.documents:
        res["sourceReference"] = {
            "identifier": _identifier(fact.documents[0]),
            "display": "Document des directives anticipées",
        }
    return res


def _identifier(ident: str) -> Json:
    root, _, ext = ident.partition("^")
    if ext:
        return {"system": f"urn:oid:{root}" if root[:1].isdigit() else root, "value": ext}
    return {"system": "urn:ietf:rfc:3986", "value": _urn(root)}


def _trusted_person(fact: Fact, patient: Json) -> Json:
    relationship = [{"coding": [{"system": ROLE_CLASS, "code": "NOK"}], "text": "Personne de confiance"}]
    if fact.code:
        relationship.append(concept(fact.code) or {})
    return {
        "active": True,
        "patient": patient,
        "relationship": [r for r in relationship if r],
        "name": [{"text": fact.name}] if fact.name else None,
        "telecom": [_contact(t) for t in fact.telecom] or None,
    }


def _contact(value: str) -> Json:
    scheme, _, rest = value.partition(":")
    system = {"tel": "phone", "fax": "fax", "mailto": "email"}.get(scheme.lower())
    return {"system": system, "value": rest} if system and rest else {"system": "other", "value": value}


_OTHERS: dict[str, Callable[[Fact, Json], Json]] = {
    "DeviceUseStatement": _device,
    "Consent": _advance_directive,
    "RelatedPerson": _trusted_person,
}


def _lab_report(fact: Fact, patient: Json, doc_ref: str, id_of: Callable[[int], str]) -> Json:
    issued = fact.provenance.author.time if fact.provenance.author else None
    return {
        "status": "final",
        "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "LAB"}]}],
        "code": concept(fact.code) or {"text": "Compte rendu d'examens biologiques"},
        "subject": patient,
        "effectiveDateTime": fact.effective_start,
        "issued": issued if issued and "T" in issued else None,
        "performer": [_performer(fact)] if _performer(fact) else None,
        "result": [{"reference": f"Observation/{id_of(n)}"} for n in fact.results],
        "meta": {"source": doc_ref},
    }
