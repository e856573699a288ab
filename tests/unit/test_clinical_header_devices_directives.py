"""CDA facts beyond the body's usual entries: implanted devices, advance directives, the trusted
person of the header, and the DiagnosticReport of a lab report (issue 12 items 1–2)."""

from __future__ import annotations

from pathlib import Path

from dmp.clinical import extract
from dmp.clinical.fhir import to_fhir
from dmp.fhir.validate import validate

CDA_DIR = Path(__file__).parent.parent / "fixtures" / "cda"

# The advance directive entries as the ANS examples write them (DLU-EHPAD-DLU_2022.01 for the
# generic « Directives anticipées » with its document, IPS-FR_2024.01 for a typed one refused).
DIRECTIVES = b"""<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<id root="1.2.3" extension="DIR"/><code code="34133-9" codeSystem="2.16.840.1.113883.6.1"/>
<component><structuredBody><component><section>
 <templateId root="1.2.250.1.213.1.1.2.157"/>
 <code code="42348-3" codeSystem="2.16.840.1.113883.6.1"/><title>Directives anticip\xc3\xa9es</title>
 <entry><observation classCode="OBS" moodCode="EVN">
  <templateId root="2.16.840.1.113883.10.20.1.17"/><templateId root="1.2.250.1.213.1.1.3.54"/>
  <id root="EB45376A-18AF-4D64-AE2D-592C04302205"/>
  <code code="42348-3" codeSystem="2.16.840.1.113883.6.1" displayName="Directives anticip\xc3\xa9es"/>
  <statusCode code="completed"/>
  <effectiveTime><low value="20180221100000"/><high value="20180221110000"/></effectiveTime>
  <value xsi:type="BL" value="true"/>
  <reference typeCode="REFR"><externalDocument classCode="DOC" moodCode="EVN">
   <id root="FB56FC8D-5DC2-4A75-8681-C307336F60E1"/></externalDocument></reference>
 </observation></entry>
 <entry><observation classCode="OBS" moodCode="EVN">
  <templateId root="1.2.250.1.213.1.1.3.54"/>
  <code code="75789-8" codeSystem="2.16.840.1.113883.6.1" displayName="Maintien artificiel en vie"/>
  <statusCode code="completed"/><effectiveTime><low value="20180101"/></effectiveTime>
  <value xsi:type="BL" value="false"/>
 </observation></entry>
 <entry><observation classCode="OBS" moodCode="EVN">
  <templateId root="1.2.250.1.213.1.1.3.54"/>
  <code code="42348-3" codeSystem="2.16.840.1.113883.6.1"/>
  <value xsi:type="BL" value="false"/>
 </observation></entry>
</section></component></structuredBody></component></ClinicalDocument>"""


def test_advance_directives_their_date_and_document() -> None:
    e = extract(DIRECTIVES)
    assert e.counts == {"directive": 2}
    assert e.skipped_entries == 1  # « no directives » (42348-3 false) is no directive
    generic, refusal = e.facts
    assert (generic.effective_start, generic.value_text) == ("2018-02-21", "true")
    assert generic.documents == ("FB56FC8D-5DC2-4A75-8681-C307336F60E1",)
    res = to_fhir(generic, resource_id="d-0", document_id="d", patient_id="p")
    validate(res, "Consent")
    assert res["scope"]["coding"][0]["code"] == "adr"
    assert res["provision"]["type"] == "permit"
    assert res["sourceReference"]["identifier"]["value"] == "urn:uuid:fb56fc8d-5dc2-4a75-8681-c307336f60e1"
    denied = to_fhir(refusal, resource_id="d-1", document_id="d", patient_id="p")
    validate(denied, "Consent")
    assert denied["provision"]["type"] == "deny"
    assert denied["provision"]["code"][0]["coding"][0]["code"] == "75789-8"


def test_implanted_device_of_a_discharge_letter() -> None:
    e = extract((CDA_DIR / "LDL-SES_2022.01.xml").read_bytes())
    (device,) = [f for f in e.facts if f.kind == "device"]
    assert device.code is not None and (device.code.code, device.code.system) == (
        "J010104",
        "1.2.250.1.213.2.68",
    )
    assert device.udi == "{01}00844588003288{17}141120{10}7654321D{21}10987654d321"
    assert device.provenance.section_code == "46264-8"
    res = to_fhir(device, resource_id="d-3", document_id="d", patient_id="p")
    validate(res, "DeviceUseStatement")
    assert res["device"] == {
        "reference": "#device",
        "display": "STIMULATEURS CARDIAQUES IMPLANTABLES TRIPLE CHAMBRE",
    }
    assert res["timingPeriod"] == {"start": "2018-12-03T09:49:14+01:00"}


def test_a_prescribed_device_is_not_one_the_patient_has() -> None:
    e = extract((CDA_DIR / "eP-MED-DM_2024.01_PosoStruct.xml").read_bytes())
    assert "device" not in e.counts


def test_the_trusted_person_not_the_person_to_notify() -> None:
    e = extract((CDA_DIR / "VSM_1.4_2022.01.xml").read_bytes())
    people = [f for f in e.facts if f.kind == "trusted_person"]
    assert len(people) == 1  # the ECON informant (« personne à prévenir ») is not read
    (person,) = people
    assert (person.name, person.telecom) == ("Sophie NESSI", ("tel:0647150100",))
    res = to_fhir(person, resource_id="d-9", document_id="d", patient_id="p")
    validate(res, "RelatedPerson")
    assert res["relationship"][0]["text"] == "Personne de confiance"
    assert res["relationship"][1]["coding"][0]["code"] == "SIS"
    assert res["telecom"] == [{"system": "phone", "value": "0647150100"}]
    assert "note" not in res


def test_a_lab_report_groups_its_results() -> None:
    e = extract((CDA_DIR / "CR-BIO_demo_glycemie.xml").read_bytes())
    report = e.facts[-1]
    assert report.kind == "lab_report" and report.results == (0, 1, 2, 3, 4, 5)
    res = to_fhir(report, resource_id="d-6", document_id="d", patient_id="p")
    validate(res, "DiagnosticReport")
    assert res["result"] == [{"reference": f"Observation/d-{n}"} for n in range(6)]
    assert res["category"][0]["coding"][0]["code"] == "LAB"
    assert res["issued"] == "2026-11-18T10:15:00+01:00"
    assert res["performer"] == [{"display": "Hélène LABORDE"}]


def test_no_report_for_other_documents() -> None:
    for name in ("VSM_1.4_2022.01.xml", "CSE-MDE_2023.01.xml", "VAC_2023.01.xml"):
        assert "lab_report" not in extract((CDA_DIR / name).read_bytes()).counts


def test_the_ans_ehpad_liaison_document_names_its_directives() -> None:
    e = extract((CDA_DIR / "DLU-EHPAD-DLU_2022.01.xml").read_bytes())
    (directive,) = [f for f in e.facts if f.kind == "directive"]
    assert (directive.value_text, directive.effective_start) == ("true", "2018-02-21")
    assert directive.documents == ("FB56FC8D-5DC2-4A75-8681-C307336F60E1",)
    assert directive.provenance.section_title == "Directives anticipées"


def test_every_fact_kind_fits_its_column() -> None:
    """PostgreSQL enforces the column's length (SQLite does not): a kind longer than
    ``clinical_fact.kind`` would make every publication carrying it lose its facts there."""
    from dmp.clinical.model import KINDS
    from dmp.store.schema import clinical_fact

    width = clinical_fact.c.kind.type.length
    assert width is not None
    assert [k for k in KINDS if len(k) > width] == []
