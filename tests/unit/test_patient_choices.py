"""The patient's choices document: what it states reads back, and the clinical reader takes the
trusted person (and only them) into a ``trusted_person`` fact."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dmp.clinical import extract_bundle
from dmp.fhir import patient_choices as pc

NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
CHOICES = pc.Choices(
    pc.REFUSES,
    pc.Person("Claire MARTIN", "fille", "06 12 34 56 78"),
    (pc.Person("Paul DURAND", "voisin", ""),),
)


def _document(c: pc.Choices = CHOICES) -> bytes:
    return pc.choices_document(c, "urn:oid:1.2.250.1.213.1.4.8", "255069912345678", "Marie DUPONT", NOW)


def test_the_choices_read_back() -> None:
    assert pc.choices_of(_document()) == CHOICES
    undecided = pc.Choices(pc.UNDECIDED, None, ())
    assert pc.choices_of(_document(undecided)) == undecided
    assert pc.choices_of(b"pas du json") is None


def test_the_document_states_the_refusal_as_the_patient_s_statement() -> None:
    doc = json.loads(_document())
    assert doc["type"] == "document"
    consent = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Consent")
    assert consent["provision"]["type"] == "deny"
    composition = doc["entry"][0]["resource"]
    assert "Je refuse le prélèvement" in composition["section"][0]["text"]["div"]
    html = _document(pc.Choices(pc.UNDECIDED, pc.Person("<b>X</b>", "", ""), ()))
    assert b"<b>" not in html.split(b'"div"')[2][:200]  # the narrative escapes what the patient typed


def test_the_clinical_reader_takes_the_trusted_person_only() -> None:
    extraction = extract_bundle(_document())
    assert extraction is not None and extraction.error is None
    trusted = [f for f in extraction.facts if f.kind == "trusted_person"]
    assert [(f.name, f.telecom) for f in trusted] == [("Claire MARTIN", ("tel:06 12 34 56 78",))]
    assert extraction.failed_entries == 0


def test_the_document_renders_as_sanitised_html() -> None:
    from dmp.clinical.render import render_document

    page = render_document(_document(), "application/fhir+json")
    assert pc.TITLE.replace("'", "") in page.replace("&#39;", "").replace("'", "")
    assert "Claire MARTIN" in page and "Je refuse le prélèvement" in page
    hostile = _document(pc.Choices(pc.UNDECIDED, pc.Person("<script>x()</script>", "", ""), ()))
    assert "<script" not in render_document(hostile, "application/fhir+json")
    assert "illisible" in render_document(b"{pas un document", "application/fhir+json")
