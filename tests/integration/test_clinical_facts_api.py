"""Clinical facts over FHIR: a lab value's history across documents (CS-10), each fact served
exactly when its source document is (masked, awaiting announcement, replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import bundle, doc
from test_policy_api import as_patient, consent, patient_id

from conftest import Api, Identity

LAB = Path(__file__).parents[2] / "src/dmp/demo/data/CR-BIO_demo_glycemie.xml"
GLUCOSE = "2345-7"  # LOINC, glycémie (the demo lab report carries it)


def _lab_report(api: Api, ident: Identity, glucose: str = "1.32", day: str = "18", **kw: Any) -> str:
    """The demo lab report (its header names no INS), with this glycaemia on this day of November."""
    value = f'<value xsi:type="PQ" value="{glucose}" unit="g/L"/>'.encode()
    taken = f'<effectiveTime value="202611{day}073000+0100"/>'.encode()
    content = (
        LAB.read_bytes()
        .replace(b'<value xsi:type="PQ" value="1.32" unit="g/L"/>', value)
        .replace(b'<effectiveTime value="20261118073000+0100"/>', taken)
    )
    d = doc(ident, content, type_code="11502-2", **kw)
    resp = api.post("", bundle(ident, (d, content)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _observations(api: Api, pid: str, who: str = "doctor", **params: str) -> Any:
    resp = api.get("Observation", who=who, params={"patient": f"Patient/{pid}", **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _glucose(bundle_json: Any) -> list[tuple[str, float]]:
    return [
        (e["resource"]["effectiveDateTime"][:10], e["resource"]["valueQuantity"]["value"])
        for e in bundle_json.get("entry", [])
        if e["resource"]["code"]["coding"][0]["code"] == GLUCOSE
    ]


def test_the_history_of_one_analyte_across_documents(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient, glucose="1.32", day="18")
    _lab_report(api, patient, glucose="1.05", day="25")
    trend = _observations(api, pid, code=f"http://loinc.org|{GLUCOSE}", _sort="date")
    assert _glucose(trend) == [("2026-11-18", 1.32), ("2026-11-25", 1.05)]
    assert trend["total"] == 2
    newest_first = _observations(api, pid, code=GLUCOSE)
    assert [v for _, v in _glucose(newest_first)] == [1.05, 1.32]
    labs = _observations(api, pid, category="laboratory")
    assert labs["total"] == 12  # six analytes per report
    for e in labs["entry"]:
        assert e["resource"]["meta"]["source"].startswith("DocumentReference/")


def test_a_fact_is_served_exactly_when_its_document_is(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient, glucose="1.32", day="18")
    _lab_report(api, patient, glucose="2.10", day="20", flags=("MASQUE_PS",))
    _lab_report(api, patient, glucose="0.99", day="22", flags=("INVISIBLE_PATIENT",))
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    code = {"code": GLUCOSE, "_sort": "date"}
    assert [v for _, v in _glucose(_observations(api, pid, **code))] == [1.32, 2.10, 0.99]  # the author
    colleague = _observations(api, pid, who="doctor2", **code)
    assert [v for _, v in _glucose(colleague)] == [1.32, 0.99]  # masked to professionals
    assert colleague["total"] == 2  # and never counted
    me = as_patient(api, pid)
    mine = _observations(api, pid, who=me, **code)
    assert [v for _, v in _glucose(mine)] == [1.32, 2.10]  # the last one is not yet announced


def test_a_replaced_documents_facts_are_retired(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    first = _lab_report(api, patient, glucose="1.32", day="18")
    _lab_report(api, patient, glucose="1.28", day="18", replaces=f"DocumentReference/{first}")
    assert [v for _, v in _glucose(_observations(api, pid, code=GLUCOSE))] == [1.28]


def test_a_record_one_may_not_open_and_bad_searches(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient)
    refused = api.get("Observation", who="doctor2", params={"patient": f"Patient/{pid}"})
    assert refused.status_code == 403  # the professional's existence test: not authorised
    assert api.get("Observation", params={"code": GLUCOSE}).status_code == 400  # no patient
    assert api.get("Observation", params={"patient": f"Patient/{pid}", "_sort": "value"}).status_code == 400
    for kind in ("AllergyIntolerance", "Condition", "MedicationStatement", "Immunization"):
        empty = api.get(kind, params={"patient": f"Patient/{pid}"})
        assert empty.status_code == 200 and empty.json()["total"] == 0


# ---- issue 12 items 1–3: the lab report as a DiagnosticReport; FHIR documents --------------


def _reports(api: Api, pid: str, who: str = "doctor", **params: str) -> Any:
    resp = api.get("DiagnosticReport", who=who, params={"patient": f"Patient/{pid}", **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_lab_report_is_one_diagnostic_report_filtered_as_its_document(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    shown = _lab_report(api, patient, glucose="1.32", day="18")
    masked = _lab_report(api, patient, glucose="2.10", day="20", flags=("MASQUE_PS",))
    refused = api.get("DiagnosticReport", who="doctor2", params={"patient": f"Patient/{pid}"})
    assert refused.status_code == 403  # not yet authorised on the record
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    mine = _reports(api, pid, code="http://loinc.org|11502-2", _sort="date")
    assert [e["resource"]["meta"]["source"] for e in mine["entry"]] == [
        f"DocumentReference/{shown}",
        f"DocumentReference/{masked}",
    ]
    report = mine["entry"][0]["resource"]
    assert len(report["result"]) == 6  # the six analytes of the report, each an Observation served too
    first = report["result"][0]["reference"]
    observations = {f"Observation/{e['resource']['id']}" for e in _observations(api, pid)["entry"]}
    assert first in observations
    colleague = _reports(api, pid, who="doctor2")  # authorised on the record, not on the masked document
    assert [e["resource"]["meta"]["source"] for e in colleague["entry"]] == [f"DocumentReference/{shown}"]
    assert colleague["total"] == 1
    assert _reports(api, pid, who="doctor2", date="ge2026-11-19")["total"] == 0  # the masked one, not counted


FHIR_DOCUMENT = Path(__file__).parents[1] / "fixtures/fhir-documents/IPS-examples-Bundle-minimal.json"


def test_a_fhir_document_yields_facts(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    content = FHIR_DOCUMENT.read_bytes()
    # Not a CDA: a format outside the CI-SIS volets, the FHIR media type.
    d = doc(
        patient,
        content,
        type_code="60591-5",
        mime_type="application/fhir+json",
        format_code="urn:asipSante:modelesHorsProfils:2011",
    )
    resp = api.post("", bundle(patient, (d, content)))
    assert resp.status_code == 200, resp.text
    doc_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    allergies = api.get("AllergyIntolerance", params={"patient": f"Patient/{pid}"}).json()
    (allergy,) = [e["resource"] for e in allergies["entry"]]
    assert allergy["meta"]["source"] == f"DocumentReference/{doc_id}"
    assert allergy["code"]["coding"][0] == {
        "code": "373270004",
        "system": "http://snomed.info/sct",
        "display": "Substance with penicillin structure and antibacterial mechanism of action (substance)",
    }
    meds = api.get("MedicationStatement", params={"patient": f"Patient/{pid}", "code": "108774000"}).json()
    assert meds["total"] == 1


def test_facts_searched_by_last_updated(api: Api, patient: Identity) -> None:
    """``_lastUpdated`` on a fact is the publication of its document (meta.lastUpdated)."""
    from datetime import timedelta

    from dmp.fhir.common import instant

    pid = patient_id(api, patient)
    _lab_report(api, patient)
    now = api.runtime.now()
    found = _observations(api, pid, _lastUpdated=f"ge{(now - timedelta(hours=1)).date().isoformat()}")
    stamps = {e["resource"]["meta"]["lastUpdated"] for e in found["entry"]}
    assert found["entry"] and all(s[:10] >= instant(now - timedelta(hours=1))[:10] for s in stamps)
    later = _observations(api, pid, _lastUpdated=f"gt{(now + timedelta(days=2)).date().isoformat()}")
    assert later.get("entry", []) == []
    bad = api.get("Observation", params={"patient": f"Patient/{pid}", "_lastUpdated": "hier"})
    assert bad.status_code == 400
