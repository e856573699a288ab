"""Clinical facts read from CDA documents: golden files, robustness, FHIR validity.

Golden files (tests/fixtures/clinical/) are regenerated only when DMP_UPDATE_GOLDEN=1 is set.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dmp.clinical import extract
from dmp.clinical.extract import MAX_DEPTH, fhir_datetime
from dmp.clinical.fhir import RESOURCE_TYPES, to_fhir
from dmp.fhir.validate import validate

FIXTURES = Path(__file__).parent.parent / "fixtures"
CDA_DIR = FIXTURES / "cda"
GOLDEN_DIR = FIXTURES / "clinical"
DOCS = sorted(p.name for p in CDA_DIR.glob("*.xml"))
UPDATE = os.environ.get("DMP_UPDATE_GOLDEN") == "1"


def summary(data: bytes) -> dict[str, Any]:
    e = extract(data)
    return {
        "document_id": e.document_id,
        "level": e.level,
        "error": e.error,
        "notes": list(e.notes),
        "media_type": e.media_type,
        "skipped_entries": e.skipped_entries,
        "counts": dict(sorted(e.counts.items())),
        "facts": [f.to_json() for f in e.facts],
    }


def test_fixture_set() -> None:
    assert len(DOCS) >= 9
    assert {p.stem for p in GOLDEN_DIR.glob("*.json")} == {Path(d).stem for d in DOCS} or UPDATE


@pytest.mark.parametrize("name", DOCS)
def test_golden(name: str) -> None:
    got = summary((CDA_DIR / name).read_bytes())
    golden = GOLDEN_DIR / (Path(name).stem + ".json")
    if UPDATE:
        golden.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file for {name}: run with DMP_UPDATE_GOLDEN=1 and check it by hand"
    assert got == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", DOCS)
def test_every_fact_is_valid_fhir(name: str) -> None:
    e = extract((CDA_DIR / name).read_bytes())
    for i, fact in enumerate(e.facts):
        res = to_fhir(fact, resource_id=f"doc-1-{i}", document_id="doc-1", patient_id="pat-1")
        validate(res, RESOURCE_TYPES[fact.kind])
        assert res["meta"]["source"] == "DocumentReference/doc-1"
        if res["resourceType"] == "Observation":
            assert res["derivedFrom"] == [{"reference": "DocumentReference/doc-1"}]


def test_figures_of_the_examples() -> None:
    """The figures the issue cares about, stated plainly (the golden files hold the detail)."""
    counts = {n: extract((CDA_DIR / n).read_bytes()).counts for n in DOCS}
    # Every example's header names the same kind of trusted person (issue 12 item 2).
    assert counts["VSM_1.4_2022.01.xml"] == {"problem": 4, "allergy": 1, "medication": 2, "trusted_person": 1}
    assert counts["VAC_2023.01.xml"] == {"immunization": 4, "trusted_person": 1}
    assert counts["CR-BIO_demo_glycemie.xml"] == {"lab_result": 6, "lab_report": 1}
    assert counts["BIO-CR-BIO_2021.01_Auto-Presentable.xml"] == {"lab_result": 11, "lab_report": 1}
    assert counts["LDL-SES_2022.01.xml"]["device"] == 1
    assert counts["OBP-SAP_2024.01.xml"]["blood_group"] == 1
    assert counts["IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"] == {}


def test_lab_result_details() -> None:
    e = extract((CDA_DIR / "CR-BIO_demo_glycemie.xml").read_bytes())
    glucose = e.facts[0]
    assert glucose.code is not None and glucose.code.code == "2345-7"
    assert glucose.value is not None and (glucose.value.value, glucose.value.unit) == ("1.32", "g/L")
    assert glucose.reference_range is not None and glucose.reference_range.high is not None
    assert glucose.reference_range.high.value == "1.10"
    assert glucose.interpretation is not None and glucose.interpretation.code == "H"
    assert glucose.effective_start == "2026-11-18T07:30:00+01:00"
    res = to_fhir(glucose, resource_id="x", document_id="d", patient_id="p")
    assert res["valueQuantity"] == {
        "value": 1.32,
        "unit": "g/L",
        "system": "http://unitsofmeasure.org",
        "code": "g/L",
    }
    assert res["code"]["coding"][0]["system"] == "http://loinc.org"


def test_vaccination_details() -> None:
    e = extract((CDA_DIR / "VAC_2023.01.xml").read_bytes())
    second = e.facts[2]
    assert (second.lot, second.dose_number, second.effective_start) == (
        "4456672",
        2,
        "2009-09-28T09:49:14+01:00",
    )
    assert second.provenance.author is not None and second.provenance.author.name == "Charles MULLER"
    res = to_fhir(second, resource_id="x", document_id="d", patient_id="p")
    assert res["protocolApplied"] == [{"doseNumberPositiveInt": 2}]
    assert res["lotNumber"] == "4456672"


# ---- robustness -------------------------------------------------------------------------------

CDA_HEAD = '<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3" extension="X"/>'


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml at all",
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'><unclosed>",
        b"<other/>",
        b"\xff\xfe\x00<",
        b'<?xml version="1.0" encoding="nonsense"?><a/>',
    ],
)
def test_malformed_gives_an_error_never_an_exception(data: bytes) -> None:
    e = extract(data)
    assert e.error and not e.facts


def test_entities_are_not_expanded_nor_fetched() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY y "boom">]>'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2"/><component><structuredBody><component>'
        b"<section><title>&x;&y;</title><text>&y;</text></section></component></structuredBody></component>"
        b"</ClinicalDocument>"
    )
    e = extract(data)
    assert "root:" not in (e.text or "") and "boom" not in (e.text or "")


def test_too_deep_is_refused() -> None:
    deep = "<component>" * (MAX_DEPTH + 5) + "</component>" * (MAX_DEPTH + 5)
    e = extract(f"{CDA_HEAD}{deep}</ClinicalDocument>".encode())
    assert e.error and "imbriqué" in e.error


def test_unknown_templates_are_skipped() -> None:
    body = (
        "<component><structuredBody><component><section><code code='X'/><title>T</title>"
        "<entry><observation classCode='OBS' moodCode='EVN'><templateId root='9.9.9'/>"
        "<code code='1'/><value/></observation></entry>"
        "<entry><act><templateId root='1.3.6.1.4.1.19376.1.5.3.1.4.5.2'/><statusCode code='active'/>"
        "<entryRelationship typeCode='SUBJ'><observation><templateId root='1.3.6.1.4.1.19376.1.5.3.1.4.5'/>"
        "<value xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:type='CD' code='I10' "
        "codeSystem='2.16.840.1.113883.6.3' displayName='Hypertension essentielle'/></observation>"
        "</entryRelationship></act></entry>"
        "</section></component></structuredBody></component>"
    )
    e = extract(f"{CDA_HEAD}{body}</ClinicalDocument>".encode())
    assert e.error is None and e.skipped_entries == 1
    assert [(f.kind, f.status, f.code and f.code.code) for f in e.facts] == [("problem", "active", "I10")]
    assert e.facts[0].provenance.entry_index == 1


def test_level1_text_is_extracted() -> None:
    text = "Compte rendu : rien à signaler."
    b64 = base64.b64encode(text.encode()).decode()
    for body in (
        f"<text mediaType='text/plain'>{text}</text>",
        f"<text mediaType='text/plain' representation='B64'>{b64}</text>",
    ):
        e = extract(
            f"{CDA_HEAD}<component><nonXMLBody>{body}</nonXMLBody></component></ClinicalDocument>".encode()
        )
        assert (e.level, e.text, e.error) == (1, text, None)


def test_level1_pdf_text_is_extracted() -> None:
    # Was « not extracted yet » (a note); the full-text index now reads the embedded PDF (pypdf).
    e = extract((CDA_DIR / "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml").read_bytes())
    assert (e.level, e.media_type, e.error, e.notes) == (1, "application/pdf", None, ())
    assert e.text is not None and "Scanner de la tête et du cou" in e.text


def test_unreadable_pdf_is_an_error_not_a_refusal() -> None:
    b64 = base64.b64encode(b"%PDF-1.7 not really a pdf").decode()
    body = f"<nonXMLBody><text mediaType='application/pdf' representation='B64'>{b64}</text></nonXMLBody>"
    e = extract(f"{CDA_HEAD}<component>{body}</component></ClinicalDocument>".encode())
    assert (e.level, e.text) == (1, None)
    assert e.error is not None and "PDF" in e.error


def test_bad_base64_is_an_error() -> None:
    body = "<nonXMLBody><text mediaType='text/plain' representation='B64'>@@@</text></nonXMLBody>"
    e = extract(f"{CDA_HEAD}<component>{body}</component></ClinicalDocument>".encode())
    assert e.error and e.level == 1


@pytest.mark.parametrize(
    ("ts", "want"),
    [
        ("1975", "1975"),
        ("197504", "1975-04"),
        ("20190811", "2019-08-11"),
        ("20240106113623+0100", "2024-01-06T11:36:23+01:00"),
        ("202401061136", "2024-01-06"),
        ("garbage", None),
        (None, None),
    ],
)
def test_dates(ts: str | None, want: str | None) -> None:
    assert fhir_datetime(ts) == want


@pytest.mark.skipif(
    not os.environ.get("DMP_ANS_CORPUS"), reason="set DMP_ANS_CORPUS to an ExemplesCDA folder"
)
def test_whole_ans_corpus() -> None:
    """Every example of the ANS corpus extracts without error and gives valid FHIR."""
    folder = Path(os.environ["DMP_ANS_CORPUS"])
    for path in sorted(folder.glob("*.xml")):
        e = extract(path.read_bytes())
        assert e.error is None, (path.name, e.error)
        for i, fact in enumerate(e.facts):
            validate(
                to_fhir(fact, resource_id=f"d-{i}", document_id="d", patient_id="p"),
                RESOURCE_TYPES[fact.kind],
            )
