"""The International Patient Summary (``GET /fhir/Patient/{id}/$summary``): a FHIR document
built from the facts the actor may see, each filtered exactly as its source document."""

from __future__ import annotations

from typing import Any

from test_clinical_facts_api import GLUCOSE, _lab_report
from test_policy_api import consent, patient_id
from test_publication_coherence import cda_bundle, example_cda

from conftest import Api, Identity
from dmp.fhir.validate import validate

IPS = {
    "48765-2": {"AllergyIntolerance"},
    "11450-4": {"Condition"},
    "10160-0": {"MedicationStatement"},
    "11369-6": {"Immunization"},
    "30954-2": {"Observation", "DiagnosticReport"},
    "8716-3": {"Observation"},
    "46264-8": {"DeviceUseStatement"},
    "42348-3": {"Consent"},
}


def _summary(api: Api, pid: str, who: str = "doctor", status: int = 200) -> Any:
    resp = api.get(f"Patient/{pid}/$summary", who=who)
    assert resp.status_code == status, resp.text
    return resp.json()


def _synthesis(api: Api, ident: Identity) -> None:
    resp = api.post("", cda_bundle(ident, example_cda("VSM_1.4_2022.01.xml", ident), type_code="SYNTH"))
    assert resp.status_code == 200, resp.text


def _sections(bundle: Any) -> dict[str, Any]:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def _resources(bundle: Any) -> dict[str, Any]:
    return {f"{r['resourceType']}/{r.get('id')}": r for r in (e["resource"] for e in bundle["entry"])}


def test_the_summary_is_a_valid_ips_document(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient, glucose="1.32", day="18")
    _synthesis(api, patient)
    bundle = _summary(api, pid)
    validate(bundle, "Bundle")
    assert bundle["type"] == "document" and bundle["identifier"]["value"].startswith("urn:uuid:")
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document"
    }
    assert composition["subject"] == {"reference": f"Patient/{pid}"}
    assert composition["title"] == "Synthèse du dossier médical partagé"
    assert composition["date"] == bundle["timestamp"]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (author,) = composition["author"]
    assert by_url[author["reference"]]["resourceType"] == "Device"
    resources = _resources(bundle)
    assert resources[f"Patient/{pid}"]["resourceType"] == "Patient"
    sections = _sections(bundle)
    assert {"48765-2", "11450-4", "10160-0", "30954-2"} <= set(sections) <= set(IPS)
    for code, section in sections.items():
        assert section["text"]["status"] == "generated"
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        for ref in section.get("entry", []):
            assert ref["reference"] in resources  # every fact referenced is in the bundle
            assert resources[ref["reference"]]["resourceType"] in IPS[code]
        assert ("entry" in section) != ("emptyReason" in section)
    results = sections["30954-2"]
    glucose = [
        resources[r["reference"]] for r in results["entry"]
        if resources[r["reference"]]["resourceType"] == "Observation"
        and resources[r["reference"]]["code"]["coding"][0]["code"] == GLUCOSE
    ]
    assert [g["valueQuantity"]["value"] for g in glucose] == [1.32]
    assert "1.32 g/L" in results["text"]["div"]
    facts = bundle["entry"][3:]
    assert len(facts) == sum(len(s.get("entry", [])) for s in sections.values())


def test_an_empty_record_still_has_the_required_sections(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    bundle = _summary(api, pid)
    validate(bundle, "Bundle")
    sections = _sections(bundle)
    assert list(sections) == ["48765-2", "11450-4", "10160-0"]  # required by IPS, the others left out
    for s in sections.values():
        assert s["emptyReason"]["coding"][0]["code"] == "unavailable" and "entry" not in s
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Composition", "Device", "Patient"]


def test_a_masked_document_contributes_nothing(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient, glucose="1.32", day="18")
    _lab_report(api, patient, glucose="2.10", day="20", flags=("MASQUE_PS",))
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")

    def glucose(who: str) -> list[float]:
        bundle = _summary(api, pid, who)
        validate(bundle, "Bundle")
        return sorted(
            e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Observation"
            and e["resource"]["code"]["coding"][0]["code"] == GLUCOSE
        )

    assert glucose("doctor") == [1.32, 2.10]  # the author
    assert glucose("doctor2") == [1.32]  # masked to professionals
    assert "2.1 g/L" not in str(_summary(api, pid, "doctor2"))


def test_an_unauthorised_professional_is_refused(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    _lab_report(api, patient)
    refused = api.get(f"Patient/{pid}/$summary", who="doctor2")
    assert refused.status_code == 403, refused.text
    assert api.get("Patient/00000000-0000-0000-0000-000000000000/$summary").status_code == 404


def _fixture_cda(name: str, ident: Identity) -> bytes:
    """An ANS corpus example from tests/fixtures/cda, its recordTarget naming the test record."""
    from helpers import FIXTURES
    from test_publication_coherence import ANS_TEST_INS

    raw = (FIXTURES / "cda" / name).read_bytes()
    assert ANS_TEST_INS in raw
    return raw.replace(ANS_TEST_INS, f'<id extension="{ident.nir}" root="1.2.250.1.213.1.4.8"/>'.encode(), 1)


def test_devices_advance_directives_and_lab_reports_have_their_sections(api: Api, patient: Identity) -> None:
    """Each IPS section present in the data is carried: medical devices (LDL-SES), advance
    directives (DLU-EHPAD), and the lab report grouping its results in « Résultats »."""
    pid = patient_id(api, patient)
    for name in ("LDL-SES_2022.01.xml", "DLU-EHPAD-DLU_2022.01.xml"):
        resp = api.post("", cda_bundle(patient, _fixture_cda(name, patient)))
        assert resp.status_code == 200, resp.text
    _lab_report(api, patient, glucose="1.32", day="18")
    bundle = _summary(api, pid)
    validate(bundle, "Bundle")
    sections, resources = _sections(bundle), _resources(bundle)
    devices = sections["46264-8"]
    assert devices["title"] == "Dispositifs médicaux" and devices["entry"]
    assert {resources[e["reference"]]["resourceType"] for e in devices["entry"]} == {"DeviceUseStatement"}
    directives = sections["42348-3"]
    assert directives["title"] == "Directives anticipées" and directives["entry"]
    for e in directives["entry"]:
        consent_fact = resources[e["reference"]]
        assert consent_fact["resourceType"] == "Consent"
        assert consent_fact["scope"]["coding"][0]["code"] == "adr"
    results = {resources[e["reference"]]["resourceType"] for e in sections["30954-2"]["entry"]}
    assert results == {"Observation", "DiagnosticReport"}
    assert "résultat(s)" in sections["30954-2"]["text"]["div"]
