"""The printable summary (dmp.clinical.summary_pdf): what each section keeps, and the text read
back from the PDF with either font (the system's DejaVu Sans, or the latin-1 core font)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from dmp.clinical import summary_pdf

WHO = summary_pdf.Identity("LŒUVRE", "Chloé Anne", "D'ARC", None, date(1980, 5, 1), "280057505612345")
LOINC = "http://loinc.org"


def _concept(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": text}], "text": text}


def _status(code: str) -> dict[str, Any]:
    return {"coding": [{"code": code}]}


FACTS = [
    {"resourceType": "AllergyIntolerance", "id": "a1", "code": _concept("1", "Pénicilline"),
     "clinicalStatus": _status("active")},
    {"resourceType": "AllergyIntolerance", "id": "a2", "code": _concept("2", "Arachide (guérie)"),
     "clinicalStatus": _status("resolved")},
    {"resourceType": "Condition", "id": "c1", "code": _concept("3", "Œdème des membres inférieurs"),
     "clinicalStatus": _status("active")},
    {"resourceType": "MedicationStatement", "id": "m1", "status": "stopped",
     "medicationCodeableConcept": _concept("4", "Amoxicilline")},
    {"resourceType": "MedicationStatement", "id": "m2", "status": "active",
     "medicationCodeableConcept": _concept("5", "Furosémide 40 mg"), "dosage": [{"text": "1 cp le matin"}]},
    {"resourceType": "Observation", "id": "o1", "code": _concept("2345-7", "Glycémie"),
     "effectiveDateTime": "2026-10-01", "valueQuantity": {"value": 1.1, "unit": "g/L"}},
    {"resourceType": "Observation", "id": "o2", "code": _concept("2345-7", "Glycémie"),
     "effectiveDateTime": "2026-11-18", "valueQuantity": {"value": 1.32, "unit": "g/L"}},
]
DOCS = [
    summary_pdf.DocumentEntry(datetime(2026, 11, 20, 10, tzinfo=UTC), "Synthèse", "Lettre de sortie’s", "A")
]


def _text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def test_sections_keep_what_is_current_and_the_last_result() -> None:
    shown = {s.key: [f["id"] for f in facts] for s, _, facts in summary_pdf.printed_sections(FACTS)}
    assert shown["allergies"] == ["a1"]  # a resolved allergy is not a current one
    assert shown["problems"] == ["c1"]
    assert shown["medications"] == ["m2"]  # a stopped treatment is not current
    assert shown["results"] == ["o2"]  # the last glycaemia only
    assert shown["immunizations"] == [] and shown["vital-signs"] == []


@pytest.mark.skipif(summary_pdf.unicode_font() is None, reason="DejaVu Sans not installed")
def test_the_unicode_font_keeps_every_french_character() -> None:
    text = _text(summary_pdf.render(WHO, FACTS, DOCS, datetime(2026, 12, 4, 18, 30, tzinfo=UTC)))
    for expected in ("LŒUVRE", "Chloé", "Œdème des membres inférieurs", "Furosémide 40 mg", "1.32 g/L",
                     "Lettre de sortie’s", "4 décembre 2026", "Page 1 sur 1", "Traitements en cours"):
        assert expected in text, expected
    assert "Arachide" not in text and "Amoxicilline" not in text


def test_without_a_unicode_font_the_core_font_transliterates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_pdf, "FONT_DIRS", (Path("/nonexistent"),))
    assert summary_pdf.unicode_font() is None
    text = _text(summary_pdf.render(WHO, FACTS, DOCS, datetime(2026, 12, 4, 18, 30, tzinfo=UTC)))
    for expected in ("LOEUVRE", "Chloé", "OEdème", "Lettre de sortie's", "Glycémie", "Page 1 sur 1"):
        assert expected in text, expected
