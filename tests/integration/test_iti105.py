"""ITI-105 Simplified Publish (MHD 4.2): POST /fhir/DocumentReference with the document inside."""

from __future__ import annotations

import base64
from typing import Any

from helpers import CDA, doc
from outcomes import assert_outcome
from test_audit_wiring import entries, one
from test_policy_api import patient_id
from test_publication_coherence import example_cda

from conftest import Api, Identity, new_identity
from dmp.audit import AuditAction
from dmp.domain.actor import Actor, ActorKind


def simplified(ident: Identity, content: bytes = CDA, **kw: Any) -> dict[str, Any]:
    """A DocumentReference whose attachment carries the document (no separate Binary)."""
    return doc(ident, content, binary_url=None, **kw)


def test_simplified_publish_stores_and_serves_the_document(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    before = len(entries(api, pid))
    dr = simplified(patient)
    resp = api.post("DocumentReference", dr)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["resourceType"] == "DocumentReference" and body["status"] == "current"
    doc_id = body["id"]
    assert body["subject"] == {"reference": f"Patient/{pid}"}
    assert body["masterIdentifier"] == dr["masterIdentifier"]
    location = resp.headers["location"]
    assert location == f"{api.runtime.fhir_base}/DocumentReference/{doc_id}/_history/1"
    assert resp.headers["etag"] == 'W/"1"'
    # the same trail entry as an ITI-65 publication
    e = one(api, pid, before, AuditAction.DOCUMENT_PUBLISH)
    assert f"DocumentReference/{doc_id}" in e.target_ids and e.outcome == "success"

    relative = location.removeprefix(f"{api.runtime.fhir_base}/")
    vread = api.get(relative)
    assert vread.status_code == 200 and vread.json() == body
    read = api.get(f"DocumentReference/{doc_id}")
    assert read.status_code == 200 and read.json() == body

    binary = api.client.get(f"/fhir/Binary/{doc_id}", headers=api.headers(Accept="*/*"))
    assert binary.status_code == 200 and binary.content == CDA
    as_fhir = api.get(f"Binary/{doc_id}").json()
    assert base64.b64decode(as_fhir["data"]) == CDA

    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert found.status_code == 200
    assert [x["resource"]["id"] for x in found.json()["entry"]] == [doc_id]

    # The SubmissionSet the server built: the same patient, the document as its member.
    lists = api.get("List", params={"patient": f"Patient/{pid}"}).json()
    (sub,) = [x["resource"] for x in lists["entry"]]
    assert sub["subject"] == {"reference": f"Patient/{pid}"}
    assert sub["entry"] == [{"item": {"reference": f"DocumentReference/{doc_id}"}}]


def test_same_unique_id_twice_is_a_duplicate(api: Api, patient: Identity) -> None:
    dr = simplified(patient)
    assert api.post("DocumentReference", dr).status_code == 201
    assert_outcome(api.post("DocumentReference", dr), 409, "DUPLICATE_UNIQUE_ID")


def test_missing_data_is_refused(api: Api, patient: Identity) -> None:
    dr = simplified(patient)
    del dr["content"][0]["attachment"]["data"]
    issue = assert_outcome(api.post("DocumentReference", dr), 422, "MISSING_ELEMENT", "attachment.data")
    assert issue["expression"] == ["DocumentReference.content[0].attachment.data"]


def test_url_only_attachment_is_refused(api: Api, patient: Identity) -> None:
    dr = doc(patient, CDA)  # attachment.url, the Binary would come in an ITI-65 Bundle
    assert "url" in dr["content"][0]["attachment"] and "data" not in dr["content"][0]["attachment"]
    assert_outcome(
        api.post("DocumentReference", dr),
        422,
        "MISSING_ELEMENT",
        "attachment.url n'est pas accepté",
        "ITI-65",
    )


def test_invalid_base64_is_refused(api: Api, patient: Identity) -> None:
    dr = simplified(patient)
    dr["content"][0]["attachment"]["data"] = "pas du base64 !"
    assert_outcome(api.post("DocumentReference", dr), 422, "INVALID_VALUE", "base64")


def test_not_a_document_reference_is_refused(api: Api, patient: Identity) -> None:
    assert_outcome(api.post("DocumentReference", {"resourceType": "Binary"}), 400, "INVALID_RESOURCE")


def test_cda_naming_another_patient_is_refused(api: Api, patient: Identity) -> None:
    other = new_identity(given="Autre")
    content = example_cda("VAC_2023.01.xml", other)
    from dmp.cda import parse_header

    header = parse_header(content)
    dr = simplified(patient, content, type_code=header.type_code, title=header.title)
    issue = assert_outcome(
        api.post("DocumentReference", dr), 422, "DOCUMENT_PATIENT_MISMATCH", f"INS {other.nir}"
    )
    assert issue["expression"] == ["DocumentReference.content[0].attachment.data"]
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert "entry" not in found.json()


def test_unknown_patient_is_refused_like_iti65(api: Api) -> None:
    from helpers import bundle

    stranger = new_identity(given="Inconnu")
    dr = simplified(stranger)
    iti65 = api.post("", bundle(stranger, (dr, None)))
    iti105 = api.post("DocumentReference", dr)
    assert iti105.status_code == iti65.status_code >= 400, iti105.text
    assert iti105.json()["issue"][0]["details"] == iti65.json()["issue"][0]["details"]


def test_no_token_is_401(api: Api, patient: Identity) -> None:
    import json

    resp = api.client.post(
        "/fhir/DocumentReference",
        content=json.dumps(simplified(patient)),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert resp.status_code == 401
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_read_only_scope_is_403(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    api.person_token(Actor(ActorKind.PATIENT, pid, "Marie", scopes=frozenset({"patient/*.rs"})))
    resp = api.post("DocumentReference", simplified(patient), who=f"person:{pid}")
    assert_outcome(resp, 403, "FORBIDDEN", "lecture seule")


def test_document_data_round_trips_in_fhir_binary(api: Api, patient: Identity) -> None:
    content = b"%PDF-1.4 un compte rendu"
    dr = simplified(patient, content, mime_type="application/pdf")
    resp = api.post("DocumentReference", dr)
    assert resp.status_code == 201, resp.text
    got = api.client.get(f"/fhir/Binary/{resp.json()['id']}", headers=api.headers(Accept="*/*"))
    assert got.content == content and got.headers["content-type"] == "application/pdf"
