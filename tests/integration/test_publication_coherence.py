"""Publication coherence: declared metadata must agree with the document bytes (issue 9, part 3).

Every case starts from an official ANS example (CI-SIS CDA, PDSm ITI-65 Bundle), made
coherent for the test record (its recordTarget INS rewritten), then altered to show one fault.
"""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

import pytest
from helpers import bundle, doc, load_fixture, one_doc_bundle
from test_mhd_flow import ans_example_bundle, open_record_for

from conftest import Api, Identity, new_identity
from dmp.cda import parse_header
from dmp.demo.bundles import FORMAT_OF_TYPE

EXAMPLES = sorted(
    n.name for n in resources.files("dmp.demo").joinpath("data").iterdir() if n.name.endswith(".xml")
)
ANS_TEST_INS = b'<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>'
XSLT = (
    b'<?xml version="1.0"?><xsl:stylesheet version="1.0" '
    b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/"/></xsl:stylesheet>'
)


def example_cda(name: str, ident: Identity) -> bytes:
    """The official CI-SIS example, its recordTarget naming the test record's INS."""
    raw = resources.files("dmp.demo").joinpath("data", name).read_bytes()
    assert ANS_TEST_INS in raw
    return raw.replace(ANS_TEST_INS, f'<id extension="{ident.nir}" root="1.2.250.1.213.1.4.8"/>'.encode())


def cda_bundle(ident: Identity, content: bytes, **kw: Any) -> dict[str, Any]:
    header = parse_header(content)
    params: dict[str, Any] = {"type_code": header.type_code, "title": header.title}
    params.update(kw)
    b, _ = one_doc_bundle(ident, content, **params)
    return b


def issues(resp: Any, status: int = 422) -> list[dict[str, Any]]:
    assert resp.status_code == status, resp.text
    return resp.json()["issue"]  # type: ignore[no-any-return]


def stored_count(api: Api, ident: Identity) -> int:
    found = api.get(f"DocumentReference?patient.identifier={ident.system}|{ident.nir}")
    assert found.status_code == 200, found.text
    return len(found.json().get("entry") or [])


def code_of(issue: dict[str, Any]) -> str:
    return issue["details"]["coding"][0]["code"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", EXAMPLES)
def test_unaltered_ans_cda_examples_are_accepted(api: Api, patient: Identity, name: str) -> None:
    resp = api.post("", cda_bundle(patient, example_cda(name, patient)))
    assert resp.status_code == 200, resp.text


def test_unaltered_ans_iti65_example_is_accepted(api: Api) -> None:
    b, ins = ans_example_bundle(api)
    open_record_for(api, ins)
    assert api.post("", b).status_code == 200


def test_cda_naming_another_patient_is_refused(api: Api, patient: Identity) -> None:
    other = new_identity(given="Autre")
    content = example_cda("VAC_2023.01.xml", other)
    (issue,) = issues(api.post("", cda_bundle(patient, content)))
    assert code_of(issue) == "DOCUMENT_PATIENT_MISMATCH"
    assert issue["code"] == "business-rule"
    text = issue["diagnostics"]
    assert f"INS {other.nir} (1.2.250.1.213.1.4.8)" in text
    assert f"l'INS {patient.nir} (1.2.250.1.213.1.4.8)" in text
    assert "Le document ne concerne pas le patient du DMP visé" in text
    assert issue["expression"] == ["Bundle.entry[2].resource.data"]
    assert stored_count(api, patient) == 0


def test_lab_report_declared_as_prescription_is_refused(api: Api, patient: Identity) -> None:
    content = example_cda("BIO-TROD_2024.01_COVID-19.xml", patient)  # ClinicalDocument/code 96173-0
    b = cda_bundle(patient, content, type_code="57833-6", format_code=FORMAT_OF_TYPE["96173-0"])
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_TYPE_MISMATCH"
    text = issue["diagnostics"]
    assert "ClinicalDocument/code du CDA « 96173-0 » (système 2.16.840.1.113883.6.1)" in text
    assert "DocumentReference.type « 57833-6 » (système http://loinc.org)" in text
    assert issue["expression"] == ["Bundle.entry[1].resource.type"]


def test_same_code_in_another_system_is_refused(api: Api, patient: Identity) -> None:
    # The example's SYNTH is in TRE_A05 (1.2.250.1.213.1.1.4.12): put it in LOINC in the CDA only.
    coherent = example_cda("VSM_1.4_2022.01.xml", patient)
    content = coherent.replace(
        b'codeSystem="1.2.250.1.213.1.1.4.12"/>', b'codeSystem="2.16.840.1.113883.6.1"/>', 1
    )
    assert content != coherent
    b = cda_bundle(patient, content, type_code="SYNTH")
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_TYPE_MISMATCH"
    assert "« SYNTH » (système 2.16.840.1.113883.6.1)" in issue["diagnostics"]
    tre_a05 = (
        "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
    )
    assert f"DocumentReference.type « SYNTH » (système {tre_a05})" in issue["diagnostics"]


def test_pdf_declared_as_cda_is_refused(api: Api, patient: Identity) -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
    b, _ = one_doc_bundle(patient, pdf, type_code="11369-6", mime_type="text/xml")
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_FORMAT_MISMATCH"
    assert "contentType « text/xml », formatCode « urn:asip:ci-sis:vac:2019 »" in issue["diagnostics"]
    assert "n'est pas du XML bien formé" in issue["diagnostics"]


def test_xslt_declared_as_cda_is_refused(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, XSLT, type_code="11369-6", mime_type="application/xml")
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_FORMAT_MISMATCH"
    text = issue["diagnostics"]
    assert "contentType « application/xml », formatCode « urn:asip:ci-sis:vac:2019 »" in text
    assert "« {http://www.w3.org/1999/XSL/Transform}stylesheet »" in text
    assert "« {urn:hl7-org:v3}ClinicalDocument »" in text


def test_cda_declared_as_pdf_is_refused(api: Api, patient: Identity) -> None:
    content = example_cda("IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml", patient)
    b = cda_bundle(patient, content, mime_type="application/pdf")
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_FORMAT_MISMATCH"
    assert "contentType « application/pdf »" in issue["diagnostics"]
    assert 'ne commence pas par « %PDF- » (début reçu : « <?xml version="1 »)' in issue["diagnostics"]


def test_a_real_pdf_declared_as_pdf_is_accepted(api: Api, patient: Identity) -> None:
    pdf = b"%PDF-1.4\n%%EOF\n"
    b, _ = one_doc_bundle(patient, pdf, type_code="11488-4", mime_type="application/pdf")
    assert api.post("", b).status_code == 200


def test_dangling_author_and_custodian_are_refused(api: Api) -> None:
    b, ins = ans_example_bundle(api)
    open_record_for(api, ins)
    dr = b["entry"][1]["resource"]
    dr["author"] = [{"reference": "Practitioner/inexistant"}]
    dr["custodian"] = {"reference": "Organization/3f5e2c1a-0000-4000-8000-000000000000"}
    faults = issues(api.post("", b))
    assert [code_of(i) for i in faults] == ["UNRESOLVED_REFERENCE"] * 2
    assert faults[0]["expression"] == ["Bundle.entry[1].resource.author[0].reference"]
    assert (
        "« Practitioner/inexistant » (author[0].reference de DocumentReference)" in faults[0]["diagnostics"]
    )
    assert faults[1]["expression"] == ["Bundle.entry[1].resource.custodian.reference"]
    assert "Organization/3f5e2c1a-0000-4000-8000-000000000000" in faults[1]["diagnostics"]


def test_dangling_contained_reference_is_refused(api: Api, patient: Identity) -> None:
    content = example_cda("VAC_2023.01.xml", patient)
    b = cda_bundle(patient, content)
    b["entry"][1]["resource"]["author"] = [{"reference": "#absent"}]
    faults = issues(api.post("", b))
    assert "« #absent » (author[0].reference de DocumentReference)" in faults[0]["diagnostics"]


def test_references_within_the_bundle_and_to_server_resources_resolve(api: Api, patient: Identity) -> None:
    first = cda_bundle(patient, example_cda("VAC_2023.01.xml", patient))
    out = api.post("", first)
    assert out.status_code == 200, out.text
    earlier = out.json()["entry"][1]["response"]["location"].rsplit("/", 2)[0]
    second = cda_bundle(patient, example_cda("LDL-SES_2022.01.xml", patient))
    dr = second["entry"][1]["resource"]
    dr["context"]["related"] = [{"reference": earlier}, {"reference": second["entry"][0]["fullUrl"]}]
    assert api.post("", second).status_code == 200, second


def test_every_fault_of_a_submission_is_listed(api: Api, patient: Identity) -> None:
    other = new_identity(given="Autre")
    wrong_patient = example_cda("VAC_2023.01.xml", other)
    wrong_type = example_cda("BIO-TROD_2024.01_COVID-19.xml", patient)
    d1 = doc(patient, wrong_patient, type_code="11369-6", title="Vaccination")
    d2 = doc(patient, wrong_type, type_code="57833-6", format_code=FORMAT_OF_TYPE["96173-0"])
    d3 = doc(patient, XSLT, type_code="11369-6")
    d3["custodian"] = {"reference": "Organization/nulle-part"}
    b = bundle(patient, (d1, wrong_patient), (d2, wrong_type), (d3, XSLT))
    faults = issues(api.post("", b))
    assert [code_of(i) for i in faults] == [
        "DOCUMENT_PATIENT_MISMATCH",
        "DOCUMENT_TYPE_MISMATCH",
        "DOCUMENT_FORMAT_MISMATCH",
        "UNRESOLVED_REFERENCE",
    ]
    assert [i["expression"][0] for i in faults] == [
        "Bundle.entry[2].resource.data",
        "Bundle.entry[3].resource.type",
        "Bundle.entry[6].resource.data",
        "Bundle.entry[5].resource.custodian.reference",
    ]
    assert all(i["severity"] == "error" for i in faults)
    assert stored_count(api, patient) == 0


def test_attachment_data_document_is_checked_too(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, XSLT, type_code="11369-6", binary_url=None)
    (issue,) = issues(api.post("", b))
    assert code_of(issue) == "DOCUMENT_FORMAT_MISMATCH"
    assert issue["expression"] == ["Bundle.entry[1].resource.content[0].attachment.data"]


def test_unmodified_fixture_still_carries_the_ans_sample_cda(api: Api) -> None:
    b = load_fixture("Bundle-example-td2-iti65-lot-soumission.json")
    data = base64.b64decode(b["entry"][2]["resource"]["data"])
    assert data.startswith(b"<?xml") and b"ClinicalDocument" in data
