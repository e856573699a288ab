"""Lab value normalisation (CS-10): every conversion pair, round trips, and what stays as written."""

from __future__ import annotations

import pytest

from dmp.clinical import units
from dmp.clinical.fhir import PQ_TRANSLATION, normalised_quantity
from dmp.clinical.model import Quantity
from dmp.clinical.units import CHOLESTEROL, CREATININE, GLUCOSE, HBA1C, convert, normalise

PAIRS = [
    # (value, from, to, analyte, expected)
    (1.0, "g/L", "mg/dL", None, 100.0),
    (100.0, "mg/dL", "g/L", None, 1.0),
    (1.0, "mmol/L", "umol/L", None, 1000.0),
    (83.0, "umol/L", "mmol/L", None, 0.083),
    (1.0, "g/L", "mmol/L", GLUCOSE, 5.5506),  # 1 / 180.16 × 1000
    (7.3, "mmol/L", "g/L", GLUCOSE, 1.3152),
    (126.0, "mg/dL", "mmol/L", GLUCOSE, 6.9938),
    (83.0, "umol/L", "mg/L", CREATININE, 9.389),
    (9.4, "mg/L", "umol/L", CREATININE, 83.098),
    (5.0, "mmol/L", "g/L", CHOLESTEROL, 1.9333),
    (2.0, "g/L", "mmol/L", CHOLESTEROL, 5.1726),
    (7.4, "%", "mmol/mol", HBA1C, 57.377),  # IFCC: (7.4 − 2.15) × 10.929
    (53.0, "mmol/mol", "%", HBA1C, 7.0),
]


@pytest.mark.parametrize(("value", "source", "target", "analyte", "expected"), PAIRS)
def test_each_pair(
    value: float, source: str, target: str, analyte: units.Analyte | None, expected: float
) -> None:
    got = convert(value, source, target, analyte)
    assert got == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("value", "source", "target", "analyte", "_expected"), PAIRS)
def test_round_trip(
    value: float, source: str, target: str, analyte: units.Analyte | None, _expected: float
) -> None:
    there = convert(value, source, target, analyte)
    assert there is not None
    assert convert(there, target, source, analyte) == pytest.approx(value, rel=1e-9)


def test_spellings_of_the_same_unit() -> None:
    assert convert(83.0, "µmol/L", "mmol/L") == pytest.approx(0.083)
    assert convert(1.0, "g/l", "mg/dl") == pytest.approx(100.0)  # UCUM's lower-case litre


def test_what_is_not_convertible() -> None:
    assert convert(1.0, "g/L", "mmol/L") is None  # no analyte: no molar mass
    assert convert(1.0, "g/L", "mmol/L", HBA1C) is None  # HbA1c has a formula, not a molar mass
    assert convert(1.0, "[IU]/L", "g/L", GLUCOSE) is None  # unknown here
    assert convert(1.0, "%", "g/L", GLUCOSE) is None


def test_normalise_to_the_codes_own_unit() -> None:
    # Glucose [Mass/volume] written in mmol/L: converted through the molar mass, precision kept.
    n = normalise("2345-7", "7.3", "mmol/L")
    assert (n.value, n.unit, n.converted, n.reason) == (1.32, "g/L", True, None)
    assert normalise("14749-6", "1.32", "g/L").value == 7.33  # and back, under the molar code
    assert normalise("2345-7", "132", "mg/dL").value == 1.32
    assert normalise("59261-8", "7.4", "%").value == 57.4
    same = normalise("2345-7", "1.32", "g/L")
    assert (same.value, same.converted) == (1.32, False)


def test_unknown_units_and_analytes_are_left_as_written_and_said_so() -> None:
    unknown_unit = normalise("2345-7", "1.32", "g/dl-ish")
    assert (unknown_unit.value, unknown_unit.unit, unknown_unit.converted) == (1.32, "g/dl-ish", False)
    assert unknown_unit.reason is not None and "non reconnue" in unknown_unit.reason
    other_dimension = normalise("2345-7", "3", "%")
    assert not other_dimension.converted and "non convertible" in str(other_dimension.reason)
    unknown_analyte = normalise("3016-3", "2.05", "m[IU]/L")  # TSH: no reference unit here
    assert not unknown_analyte.converted and unknown_analyte.unit == "m[IU]/L"
    assert unknown_analyte.reason is not None
    no_unit = normalise("2345-7", "1.32", None)
    assert not no_unit.converted and no_unit.reason == "valeur sans unité"


def test_fhir_quantity_keeps_the_original() -> None:
    q = normalised_quantity(Quantity("7.3", "mmol/L"), "2345-7")
    assert q == {
        "value": 1.32,
        "unit": "g/L",
        "system": "http://unitsofmeasure.org",
        "code": "g/L",
        "extension": [
            {
                "url": PQ_TRANSLATION,
                "valueQuantity": {
                    "value": 7.3, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"
                },
            }
        ],
    }
    as_written = normalised_quantity(Quantity("2.05", "m[IU]/L"), "3016-3")
    assert as_written is not None and "extension" not in as_written and as_written["value"] == 2.05
    assert normalised_quantity(Quantity("1.32", "g/L"), None) == {
        "value": 1.32, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"
    }


def test_the_fhir_resource_with_a_normalised_value_is_valid() -> None:
    from dmp.clinical.fhir import to_fhir
    from dmp.clinical.model import Code, Fact, Provenance, Range
    from dmp.fhir.validate import validate

    fact = Fact(
        "lab_result",
        Provenance("30954-2", "Résultats", 0, ()),
        code=Code("2.16.840.1.113883.6.1", "2345-7", "Glucose"),
        status="completed",
        effective_start="2026-11-25",
        value=Quantity("7.0", "mmol/L"),
        reference_range=Range(Quantity("3.9", "mmol/L"), Quantity("6.1", "mmol/L")),
    )
    res = to_fhir(fact, resource_id="d-0", document_id="d", patient_id="p")
    validate(res, "Observation")
    assert res["valueQuantity"]["value"] == 1.26 and res["valueQuantity"]["code"] == "g/L"
    assert res["referenceRange"][0]["low"]["value"] == 0.703
    assert res["referenceRange"][0]["low"]["extension"][0]["valueQuantity"]["value"] == 3.9
