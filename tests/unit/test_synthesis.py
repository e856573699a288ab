"""The synthesis page's data (dmp.clinical.synthesis): duplicates merged with every source kept,
current facts only, the last value per analyte with its trend."""

from __future__ import annotations

from typing import Any

from dmp.clinical.synthesis import Source, fold, synthesis, trend

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _allergy(
    doc: str, code: str | None, text: str, status: str = "active", onset: str = "2020-01-01"
) -> Any:
    concept: dict[str, Any] = {"text": text}
    if code:
        concept["coding"] = [{"system": "http://www.whocc.no/atc", "code": code, "display": text}]
    return {
        "resourceType": "AllergyIntolerance",
        "meta": {"source": f"DocumentReference/{doc}"},
        "code": concept,
        "clinicalStatus": {"coding": [{"code": status}]},
        "onsetDateTime": onset,
    }


def _glucose(doc: str, date: str, value: float, unit: str = "g/L", code: str = "2345-7") -> Any:
    return {
        "resourceType": "Observation",
        "meta": {"source": f"DocumentReference/{doc}"},
        "code": {"coding": [{"system": LOINC, "code": code}], "text": "Glucose"},
        "effectiveDateTime": date,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def test_the_same_allergy_in_several_documents_is_one_line_with_every_source() -> None:
    facts = [
        _allergy("d1", "N02BE01", "Paracétamol", onset="2018-06-03"),
        _allergy("d2", "N02BE01", "PARACETAMOL", onset="2021-02-01"),
        _allergy("d3", None, "Pénicilline"),
        _allergy("d4", None, "  penicilline "),  # uncoded: the same once folded
        _allergy("d5", None, "Arachide", status="resolved"),  # not current
    ]
    lines = synthesis(facts).allergies
    assert [(line.label, [s.document_id for s in line.sources]) for line in lines] == [
        ("PARACETAMOL", ["d2", "d1"]),  # the most recent source's wording, newest source first
        ("Pénicilline", ["d3", "d4"]),
    ]
    assert lines[0].sources[0] == Source("d2", "2021-02-01")


def test_fold() -> None:
    assert fold("  Pénicilline  G ") == fold("PENICILLINE g") == "penicilline g"


def test_active_problems_and_current_treatments_only() -> None:
    def condition(doc: str, code: str, status: str) -> Any:
        return {
            "resourceType": "Condition", "meta": {"source": f"DocumentReference/{doc}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}], "text": code},
            "clinicalStatus": {"coding": [{"code": status}]},
        }

    def medication(doc: str, code: str, status: str) -> Any:
        return {
            "resourceType": "MedicationStatement", "meta": {"source": f"DocumentReference/{doc}"},
            "status": status, "medicationCodeableConcept": {"coding": [{"code": code}], "text": code},
            "dosage": [{"text": "1 par jour"}],
        }

    s = synthesis([
        condition("d1", "I20.0", "active"),
        condition("d2", "I20.0", "active"),
        condition("d1", "N10", "resolved"),
        medication("d1", "PLAVIX", "active"),
        medication("d2", "PLAVIX", "active"),
        medication("d1", "AUGMENTIN", "stopped"),
    ])
    assert [(p.label, len(p.sources)) for p in s.problems] == [("I20.0", 2)]
    assert [(m.label, m.detail, len(m.sources)) for m in s.medications] == [("PLAVIX", "1 par jour", 2)]


def test_the_last_value_per_analyte_and_its_trend_across_units() -> None:
    facts = [
        _glucose("d1", "2026-11-18T07:30:00+01:00", 1.32),
        _glucose("d1", "2026-11-18T07:30:00+01:00", 7.3, "mmol/L", "14749-6"),  # same sample, molar code
        _glucose("d2", "2026-11-25T07:30:00+01:00", 7.0, "mmol/L", "14749-6"),
    ]
    (glucose,) = synthesis(facts).results
    assert glucose.label == "Glycémie" and glucose.unit == "g/L"
    assert glucose.text == "1,26 g/L"  # 7.0 mmol/L in the analyte's unit
    assert glucose.trend == "down"
    assert glucose.previous is not None and glucose.previous.startswith("1,32 g/L")
    assert glucose.source == Source("d2", "2026-11-25T07:30:00+01:00")
    assert glucose.count == 2  # samples, not codes


def test_trend() -> None:
    assert trend(1.5, 1.2) == "up"
    assert trend(1.0, 1.2) == "down"
    assert trend(1.205, 1.2) == "stable"  # within 1 %
    assert trend(1.2, None) == "none"


def test_values_not_in_a_comparable_unit_have_no_trend_and_say_why() -> None:
    tsh = [
        {
            "resourceType": "Observation", "meta": {"source": "DocumentReference/d1"},
            "code": {"coding": [{"system": LOINC, "code": "3016-3"}], "text": "TSH"},
            "effectiveDateTime": d, "valueQuantity": {"value": v, "unit": u, "code": u},
        }
        for d, v, u in (("2026-01-01", 2.0, "m[IU]/L"), ("2026-06-01", 2.5, "u[IU]/mL"))
    ]
    (result,) = synthesis(tsh).results
    assert result.trend == "none" and result.note is not None and "autre unité" in result.note
    weird = [_glucose("d1", "2026-01-01", 1.0), _glucose("d2", "2026-02-01", 1.0, "g/dl-ish")]
    (g,) = synthesis(weird).results
    assert g.trend == "none" and g.text == "1 g/dl-ish" and g.note is not None and "non reconnue" in g.note


def test_vaccinations_reported_twice_are_one_line() -> None:
    def shot(doc: str, date: str) -> Any:
        return {
            "resourceType": "Immunization",
            "meta": {"source": f"DocumentReference/{doc}"},
            "status": "completed",
            "vaccineCode": {"coding": [{"code": "J07BB"}], "text": "Grippe"}, "occurrenceDateTime": date,
        }

    shots = [shot("d1", "2025-10-01"), shot("d2", "2025-10-01"), shot("d2", "2024-10-03")]
    lines = synthesis(shots).immunizations
    assert [(v.date, len(v.sources)) for v in lines] == [("2025-10-01", 2), ("2024-10-03", 1)]
