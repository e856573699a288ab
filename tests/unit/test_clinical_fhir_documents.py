"""Clinical facts read from FHIR documents (Bundle type ``document``): golden file, one test per
mapping, bounds and refusals.

Golden files (tests/fixtures/clinical-fhir/) are regenerated only when DMP_UPDATE_GOLDEN=1 is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dmp.clinical import extract_bundle, read_document
from dmp.clinical.fhir import RESOURCE_TYPES, to_fhir
from dmp.clinical.fhir_document import MAX_ENTRIES
from dmp.clinical.model import Extraction
from dmp.fhir.validate import validate

FIXTURES = Path(__file__).parent.parent / "fixtures"
DOC_DIR = FIXTURES / "fhir-documents"
GOLDEN_DIR = FIXTURES / "clinical-fhir"
DOCS = sorted(p.name for p in DOC_DIR.glob("*.json"))
UPDATE = os.environ.get("DMP_UPDATE_GOLDEN") == "1"
PATIENT = {"reference": "Patient/p1"}


def summary(e: Extraction) -> dict[str, Any]:
    return {
        "document_id": e.document_id,
        "error": e.error,
        "notes": list(e.notes),
        "skipped_entries": e.skipped_entries,
        "failed_entries": e.failed_entries,
        "counts": dict(sorted(e.counts.items())),
        "facts": [f.to_json() for f in e.facts],
    }


def read(bundle: dict[str, Any]) -> Extraction:
    e = extract_bundle(json.dumps(bundle).encode())
    assert e is not None
    return e


def document(*resources: dict[str, Any], doc_type: str = "60591-5") -> dict[str, Any]:
    """A FHIR document: a Composition whose one section lists ``resources``, then the resources."""
    entries = [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}", "resource": r}
        for n, r in enumerate(resources, start=1)
    ]
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": doc_type}]},
        "date": "2026-11-18T10:15:00+01:00",
        "author": [{"display": "Hélène LABORDE"}],
        "title": "Document",
        "section": [
            {
                "title": "Résultats",
                "code": {"coding": [{"system": "http://loinc.org", "code": "30954-2"}]},
                "entry": [{"reference": e["fullUrl"]} for e in entries],
            }
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:oid:1.2.250.1.999", "value": "DOC-1"},
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000000", "resource": composition},
            *entries,
        ],
    }


def test_fixture_set() -> None:
    assert DOCS, "at least one FHIR document fixture"
    assert {p.stem for p in GOLDEN_DIR.glob("*.json")} == {Path(d).stem for d in DOCS} or UPDATE


@pytest.mark.parametrize("name", DOCS)
def test_golden(name: str) -> None:
    e = read_document((DOC_DIR / name).read_bytes())
    assert e is not None
    got = summary(e)
    golden = GOLDEN_DIR / (Path(name).stem + ".json")
    if UPDATE:
        golden.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", DOCS)
def test_every_fact_is_valid_fhir_with_its_source(name: str) -> None:
    e = read_document((DOC_DIR / name).read_bytes())
    assert e is not None and e.facts
    for i, fact in enumerate(e.facts):
        res = to_fhir(fact, resource_id=f"doc-1-{i}", document_id="doc-1", patient_id="pat-1")
        validate(res, RESOURCE_TYPES[fact.kind])
        assert res["meta"]["source"] == "DocumentReference/doc-1"


def test_the_ips_example_in_plain_figures() -> None:
    e = read_document((DOC_DIR / "IPS-examples-Bundle-minimal.json").read_bytes())
    assert e is not None and e.ok
    assert e.counts == {"problem": 1, "medication": 1, "allergy": 1}
    med = next(f for f in e.facts if f.kind == "medication")
    # medicationReference "Medication/<id>" resolved inside the document
    assert med.code is not None and med.code.code == "108774000"
    assert med.provenance.section_code == "10160-0"
    assert "Anastrozole" in (e.text or "")


def test_lab_observation_and_its_report() -> None:
    glucose = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "effectiveDateTime": "2026-11-18T07:30:00+01:00",
        "valueQuantity": {"value": 1.32, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"},
        "referenceRange": [{"low": {"value": 0.70, "code": "g/L"}, "high": {"value": 1.10, "code": "g/L"}}],
        "interpretation": [{"coding": [{"code": "H"}]}],
        "identifier": [{"system": "urn:oid:1.2.250.1.999.5", "value": "OBS-1"}],
    }
    raw = json.dumps(document(glucose, doc_type="11502-2")).encode()
    e = extract_bundle(raw.replace(b'"value": 1.1,', b'"value": 1.10,'))  # decimal text as written
    assert e is not None
    assert e.counts == {"lab_result": 1, "lab_report": 1}
    obs, report = e.facts
    assert obs.code is not None and (obs.code.system, obs.code.code) == ("2.16.840.1.113883.6.1", "2345-7")
    assert obs.value is not None and (obs.value.value, obs.value.unit) == ("1.32", "g/L")  # the text kept
    assert obs.reference_range is not None and obs.reference_range.high is not None
    assert obs.reference_range.high.value == "1.10"
    assert obs.status == "completed" and obs.provenance.ids == ("1.2.250.1.999.5^OBS-1",)
    assert obs.provenance.section_code == "30954-2"
    assert report.results == (0,)
    res = to_fhir(report, resource_id="d-1", document_id="d", patient_id="p")
    validate(res, "DiagnosticReport")
    assert res["result"] == [{"reference": "Observation/d-0"}]
    assert res["issued"] == "2026-11-18T10:15:00+01:00"
    assert res["effectiveDateTime"] == "2026-11-18T07:30:00+01:00"


def test_vital_sign_blood_group_and_other_observations() -> None:
    vital = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": 72, "code": "kg"},
    }
    blood = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "882-1"}]},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "278149003"}]},
    }
    smoking = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "social-history"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
    }
    e = read(document(vital, blood, smoking))
    assert [f.kind for f in e.facts] == ["vital_sign", "blood_group"]
    assert e.facts[0].value is not None and e.facts[0].value.value == "72"
    assert e.skipped_entries == 1  # social history: no kind of fact here


def test_immunization() -> None:
    vaccine = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": "urn:oid:1.2.250.1.213.2.3.1", "code": "3400930009"}],
            "text": "Vaccin",
        },
        "occurrenceDateTime": "2021-04-09",
        "lotNumber": "LOT-42",
        "protocolApplied": [{"doseNumberPositiveInt": 2}],
        "performer": [{"actor": {"display": "Charles MULLER"}}],
    }
    (fact,) = read(document(vaccine)).facts
    assert (fact.kind, fact.lot, fact.dose_number, fact.effective_start) == (
        "immunization",
        "LOT-42",
        2,
        "2021-04-09",
    )
    assert fact.code is not None and fact.code.system == "1.2.250.1.213.2.3.1"
    assert fact.provenance.author is not None and fact.provenance.author.name == "Charles MULLER"


def test_medication_request_is_a_statement_of_intent() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02BE01"}]},
        "authoredOn": "2026-11-20",
        "dosageInstruction": [
            {
                "text": "1 comprimé 3 fois par jour",
                "timing": {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "comprimé"}}],
            }
        ],
    }
    (fact,) = read(document(request)).facts
    assert (fact.kind, fact.status, fact.mood, fact.effective_start) == (
        "medication",
        "intended",
        "INT",
        "2026-11-20",
    )
    assert fact.frequency is not None and (fact.frequency.value, fact.frequency.unit) == ("8", "h")
    assert fact.value_text == "1 comprimé 3 fois par jour"
    res = to_fhir(fact, resource_id="x", document_id="d", patient_id="p")
    validate(res, "MedicationStatement")
    assert res["status"] == "intended"


def test_device_use_statement() -> None:
    device = {
        "resourceType": "Device",
        "id": "dev1",
        "type": {"coding": [{"system": "urn:oid:1.2.250.1.213.2.68", "code": "J010104"}]},
        "udiCarrier": [{"carrierHRF": "(01)00844588003288"}],
    }
    use = {
        "resourceType": "DeviceUseStatement",
        "status": "active",
        "subject": PATIENT,
        "device": {"reference": "Device/dev1"},
        "timingPeriod": {"start": "2018-12-03"},
    }
    (fact,) = read(document(device, use)).facts
    assert (fact.kind, fact.udi, fact.effective_start) == ("device", "(01)00844588003288", "2018-12-03")
    res = to_fhir(fact, resource_id="x", document_id="d", patient_id="p")
    validate(res, "DeviceUseStatement")
    assert res["contained"][0]["udiCarrier"] == [{"carrierHRF": "(01)00844588003288"}]


def test_an_unreadable_entry_makes_the_extraction_partial() -> None:
    broken = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"text": "Glycémie"},
        "valueQuantity": {"value": "beaucoup"},
    }
    fine = {
        "resourceType": "Condition",
        "code": {"text": "Asthme"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
    }
    e = read(document(broken, fine))
    assert e.ok and e.failed_entries == 1 and [f.kind for f in e.facts] == ["problem"]
    assert any("entrée 2 (Observation) illisible" in n for n in e.notes)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(), "de type « collection »"),
        (
            json.dumps(
                {"resourceType": "Bundle", "type": "document", "entry": [{}] * (MAX_ENTRIES + 1)}
            ).encode(),
            "entrées",
        ),
    ],
)
def test_refused_bundles_say_why(content: bytes, error: str) -> None:
    e = extract_bundle(content)
    assert e is not None and e.error is not None and error in e.error


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"resourceType": "Patient"}', b"[" * 100_000, b'{"a":' * 100_000, b"%PDF-1.4"]
)
def test_what_is_no_fhir_document_has_nothing_to_read(content: bytes) -> None:
    assert read_document(content) is None


def test_odd_shapes_never_raise() -> None:
    odd: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            None,
            3,
            {"resource": []},
            {"resource": {"resourceType": "Condition", "code": 5}},
            {"resource": {"resourceType": "AllergyIntolerance", "category": "food"}},
            {"resource": {"resourceType": "Composition", "section": "x"}},
        ],
    }
    e = read(odd)
    assert e.ok
    for i, fact in enumerate(e.facts):
        validate(
            to_fhir(fact, resource_id=f"d-{i}", document_id="d", patient_id="p"), RESOURCE_TYPES[fact.kind]
        )
