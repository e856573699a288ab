"""The issue's acceptance flow: token, ITI-65 from an ANS example, ITI-67, ITI-68, replacement."""

from __future__ import annotations

import base64
from typing import Any

from helpers import CDA, bundle, doc, fix_ins, load_fixture, sha1_b64

from conftest import Api, Identity, new_identity, patient_resource
from dmp.domain.identity import Sex
from dmp.fhir.bundle import SOURCE_ID_URL

CR = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>CR</title></ClinicalDocument>'


def ans_example_bundle(api: Api) -> tuple[dict[str, Any], str]:
    """The PDSm4DMP ITI-65 example, with its INS key fixed and its codes put in the DMP value sets."""
    b = load_fixture("Bundle-example-td2-iti65-lot-soumission.json")
    bad_ins = "123456789012345"
    ins = fix_ins(bad_ins)
    text = __import__("json").dumps(b).replace(bad_ins, ins)
    b = __import__("json").loads(text)
    # The example codes facility and setting in SNOMED CT and uses the IHE "mimeTypeSufficient"
    # format: the DMP requires its CI-SIS value sets (J61, J04/J62, J60).
    dr = b["entry"][1]["resource"]
    dr["context"]["facilityType"] = {
        "coding": [
            {
                "system": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
                "code": "SA01",
            }
        ]
    }
    dr["context"]["practiceSetting"] = {
        "coding": [
            {
                "system": "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice",
                "code": "AMBULATOIRE",
            }
        ]
    }
    dr["content"][0]["format"] = {
        "system": "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode",
        "code": "urn:ihe:iti:xds-sd:pdf:2008",
    }
    dr["category"][0]["coding"][0]["code"] = "10"  # 11488-4 is a "Compte rendu" (class 10)
    return b, ins


def open_record_for(api: Api, nir: str) -> None:
    # 1234567890123 = sex 1, born in 1923 (month 45: pseudo-month), department 67, commune 890.
    from datetime import date

    from conftest import Identity as I  # noqa: N817

    ident = I(nir, "EXEMPLE", "Jean", Sex.MALE, date(1923, 1, 1), "67890")
    resp = api.post("Patient", patient_resource(ident))
    assert resp.status_code == 201, resp.text


def test_token_publish_find_retrieve_replace(api: Api) -> None:
    b, ins = ans_example_bundle(api)
    open_record_for(api, ins)
    content = base64.b64decode(b["entry"][2]["resource"]["data"])
    assert b["entry"][1]["resource"]["content"][0]["attachment"]["hash"] == sha1_b64(content)

    # ITI-65
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 3
    doc_id = out["entry"][1]["response"]["location"].split("/")[1]
    list_id = out["entry"][0]["response"]["location"].split("/")[1]

    # ITI-67
    resp = api.get(
        "DocumentReference",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}", "status": "current"},
    )
    assert resp.status_code == 200
    found = resp.json()
    assert [e["resource"]["id"] for e in found["entry"]] == [doc_id]
    dr = found["entry"][0]["resource"]
    assert dr["masterIdentifier"]["value"] == "urn:oid:1.2.250.1.213.1.4.8.99999.2"
    assert dr["status"] == "current"
    assert dr["content"][0]["attachment"]["url"] == f"http://testserver/fhir/Binary/{doc_id}"

    # ITI-68: identical bytes, declared type
    resp = api.client.get(
        dr["content"][0]["attachment"]["url"], headers={"Authorization": f"Bearer {api.token()}"}
    )
    assert resp.status_code == 200
    assert resp.content == content
    assert resp.headers["content-type"] == "application/xml"
    # ... or as a FHIR Binary
    resp = api.get(f"Binary/{doc_id}")
    assert resp.json()["resourceType"] == "Binary"
    assert base64.b64decode(resp.json()["data"]) == content

    # ITI-66: the submission set
    lists = api.get(
        "List",
        params={
            "patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}",
            "code": "submissionset",
            "status": "current",
        },
    ).json()
    assert [e["resource"]["id"] for e in lists["entry"]] == [list_id]
    assert lists["entry"][0]["resource"]["entry"] == [{"item": {"reference": f"DocumentReference/{doc_id}"}}]

    # Replacement: new version, the old one deprecated in the same transaction
    ident = Identity(ins, "EXEMPLE", "Jean", Sex.MALE, __import__("datetime").date(1923, 1, 1), "67890")
    new_content = (
        b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>v2</title></ClinicalDocument>'
    )
    d2 = doc(ident, new_content, replaces=f"DocumentReference/{doc_id}")
    resp = api.post("", bundle(ident, (d2, new_content)))
    assert resp.status_code == 200, resp.text
    new_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    old = api.get(f"DocumentReference/{doc_id}").json()
    assert old["status"] == "superseded"
    assert old["meta"]["versionId"] == "2"
    current = api.get(
        "DocumentReference",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}", "status": "current"},
    ).json()
    assert [e["resource"]["id"] for e in current["entry"]] == [new_id]
    assert current["entry"][0]["resource"]["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{doc_id}"}}
    ]
    superseded = api.get(
        "DocumentReference",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}", "status": "superseded"},
    ).json()
    assert [e["resource"]["id"] for e in superseded["entry"]] == [doc_id]


def test_unmodified_ans_example_is_refused_for_its_ins_key(api: Api) -> None:
    b = load_fixture("Bundle-example-td2-iti65-lot-soumission.json")
    resp = api.post("", b)
    assert resp.status_code == 422
    issue = resp.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "INVALID_INS"
    assert "clé de contrôle 11 attendue, 45 reçue" in issue["diagnostics"]


def test_search_filters_sort_and_paging(api: Api, patient: Identity) -> None:
    docs = [
        doc(patient, CDA, type_code="11488-4", date="2026-01-10T10:00:00+01:00", title="A"),
        doc(patient, CDA, type_code="11502-2", date="2026-03-10T10:00:00+01:00", title="B", facility="SA07"),
        doc(
            patient,
            CDA,
            type_code="18748-4",
            date="2026-02-10T10:00:00+01:00",
            title="C",
            flags=("MASQUE_PS",),
        ),
    ]
    for d in docs:
        assert api.post("", bundle(patient, (d, CDA))).status_code == 200
    base = {"patient.identifier": f"{patient.system}|{patient.nir}"}

    def titles(**params: str) -> list[str]:
        resp = api.get("DocumentReference", params={**base, **params})
        assert resp.status_code == 200, resp.text
        return [e["resource"]["content"][0]["attachment"]["title"] for e in resp.json().get("entry", [])]

    assert titles() == ["B", "C", "A"]  # newest first by default
    assert titles(_sort="date") == ["A", "C", "B"]
    assert titles(type="http://loinc.org|11502-2") == ["B"]
    assert titles(type="11488-4,18748-4", _sort="date") == ["A", "C"]
    assert titles(facility="SA07") == ["B"]
    assert titles(date="ge2026-02-01", _sort="date") == ["C", "B"]
    assert titles(date="lt2026-02-01") == ["A"]
    assert titles(date="2026-02") == ["C"]
    assert titles(**{"security-label": "MASQUE_PS"}) == ["C"]
    assert titles(category="10", _sort="date") == ["A", "C", "B"]
    assert titles(**{"author.identifier": "810001234565"}) == ["B", "C", "A"]
    assert titles(**{"author.identifier": "899999999999"}) == []

    page1 = api.get("DocumentReference", params={**base, "_count": "2", "_total": "accurate"}).json()
    assert page1["total"] == 3 and len(page1["entry"]) == 2
    nxt = next(link["url"] for link in page1["link"] if link["relation"] == "next")
    page2 = api.client.get(nxt, headers=api.headers()).json()
    assert len(page2["entry"]) == 1
    assert not any(link["relation"] == "next" for link in page2["link"])


def test_patient_search_and_read(api: Api, patient: Identity) -> None:
    bundle_ = api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"}).json()
    assert bundle_["total"] == 1
    p = bundle_["entry"][0]["resource"]
    assert p["identifier"][0]["value"] == patient.nir
    assert p["active"] is True
    assert api.get(f"Patient/{p['id']}").json()["birthDate"] == patient.birth_date.isoformat()
    other = new_identity()
    assert "entry" not in api.get("Patient", params={"identifier": f"{other.system}|{other.nir}"}).json()


def test_submission_without_source_id_is_refused(api: Api, patient: Identity) -> None:
    b = bundle(patient)
    b["entry"][0]["resource"]["extension"] = [
        e for e in b["entry"][0]["resource"]["extension"] if e["url"] != SOURCE_ID_URL
    ]
    resp = api.post("", b)
    assert resp.status_code == 422
    assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "MISSING_ELEMENT"
