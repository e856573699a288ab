"""The ``_id`` search parameter on Patient, DocumentReference and List: what the read would serve,
and for anything it would not, the empty searchset of an unknown id."""

from __future__ import annotations

import uuid
from typing import Any

from test_audit_wiring import entries, new_entries
from test_policy_api import as_patient, consent, ids, patient_id, publish

from conftest import Api, Identity, new_identity, patient_resource
from dmp.audit import AuditAction

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def matches(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return ids(resp)


def list_ids(api: Api, pid: str, doc_id: str) -> str:
    lists = api.get("List", params={"patient": f"Patient/{pid}"}).json()
    (found,) = [
        e["resource"]["id"]
        for e in lists["entry"]
        if {"item": {"reference": f"DocumentReference/{doc_id}"}} in e["resource"]["entry"]
    ]
    return str(found)


# ---- DocumentReference ------------------------------------------------------------------


def test_document_by_id_alone_and_with_its_patient(api: Api, patient: Identity) -> None:
    first, second = publish(api, patient), publish(api, patient)
    pid = patient_id(api, patient)
    assert matches(api.get("DocumentReference", params={"_id": first})) == [first]
    assert set(matches(api.get("DocumentReference", params={"_id": f"{first},{second}"}))) == {first, second}
    assert matches(api.get("DocumentReference", params={"_id": first, "patient": f"Patient/{pid}"})) == [
        first
    ]
    # the same id in another patient's search matches nothing
    other = new_identity(given="Autre")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    other_pid = patient_id(api, other)
    assert (
        matches(api.get("DocumentReference", params={"_id": first, "patient": f"Patient/{other_pid}"})) == []
    )


def test_document_search_by_id_is_traced_like_a_search(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    pid = patient_id(api, patient)
    before = len(entries(api, pid))
    api.get("DocumentReference", params={"_id": doc_id})
    (e,) = new_entries(api, pid, before)
    assert e.action == AuditAction.RECORD_SEARCH.value and doc_id in e.target_ids


def test_unknown_or_invalid_document_id_is_empty(api: Api, patient: Identity) -> None:
    publish(api, patient)
    pid = patient_id(api, patient)
    for value in (str(uuid.uuid4()), "pas-un-uuid", f"{uuid.uuid4()},xyz"):
        resp = api.get("DocumentReference", params={"_id": value})
        assert matches(resp) == [] and resp.json()["total"] == 0
        assert matches(api.get("DocumentReference", params={"_id": value, "patient": f"Patient/{pid}"})) == []


def test_masked_document_is_not_returned_by_id(api: Api, patient: Identity) -> None:
    masked = publish(api, patient, flags=("MASQUE_PS",))
    pid = patient_id(api, patient)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert matches(api.get("DocumentReference", who="doctor2", params={"_id": masked})) == []
    with_patient = {"_id": masked, "patient": f"Patient/{pid}", "_total": "accurate"}
    resp = api.get("DocumentReference", who="doctor2", params=with_patient)
    assert matches(resp) == [] and resp.json()["total"] == 0
    assert matches(api.get("DocumentReference", params={"_id": masked})) == [masked]  # its author


def test_document_of_a_record_not_authorised_is_the_empty_searchset(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    pid = patient_id(api, patient)
    before = len(entries(api, pid))
    resp = api.get("DocumentReference", who="doctor2", params={"_id": doc_id})
    unknown = api.get("DocumentReference", who="doctor2", params={"_id": str(uuid.uuid4())})
    assert matches(resp) == [] and resp.json()["total"] == unknown.json()["total"] == 0
    assert "entry" not in resp.json()
    # the refusal is traced, as the read's would be
    assert [e.action for e in new_entries(api, pid, before)] == [AuditAction.ACCESS_REFUSED.value]
    # naming the patient keeps the explicit refusal of the record
    named = api.get("DocumentReference", who="doctor2", params={"_id": doc_id, "patient": f"Patient/{pid}"})
    assert named.status_code == 403


def test_documents_of_two_records_by_id(api: Api, patient: Identity) -> None:
    other = new_identity(given="Autre")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    mine, theirs = publish(api, patient), publish(api, other)
    found = matches(api.get("DocumentReference", params={"_id": f"{mine},{theirs}"}))
    assert set(found) == {mine, theirs}


def test_post_search_documents_by_id(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    resp = api.client.post(
        "/fhir/DocumentReference/_search", content=f"_id={doc_id}", headers=api.headers(**FORM)
    )
    assert matches(resp) == [doc_id]


# ---- List -------------------------------------------------------------------------------


def test_list_by_id(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    publish(api, patient)
    pid = patient_id(api, patient)
    list_id = list_ids(api, pid, doc_id)
    assert matches(api.get("List", params={"_id": list_id})) == [list_id]
    assert matches(api.get("List", params={"_id": list_id, "patient": f"Patient/{pid}"})) == [list_id]
    assert matches(api.get("List", params={"_id": "pas-un-uuid"})) == []
    assert matches(api.get("List", params={"_id": str(uuid.uuid4()), "patient": f"Patient/{pid}"})) == []
    assert matches(api.get("List", who="doctor2", params={"_id": list_id})) == []  # not authorised


def test_list_of_a_masked_document_is_not_returned_by_id(api: Api, patient: Identity) -> None:
    masked = publish(api, patient, flags=("MASQUE_PS",))
    pid = patient_id(api, patient)
    list_id = list_ids(api, pid, masked)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert matches(api.get("List", who="doctor2", params={"_id": list_id})) == []


# ---- Patient ----------------------------------------------------------------------------


def test_patient_by_id(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    resp = api.get("Patient", params={"_id": pid})
    assert matches(resp) == [pid] and resp.json()["total"] == 1
    assert resp.json()["entry"][0]["resource"] == api.get(f"Patient/{pid}").json()
    both = api.get("Patient", params={"_id": pid, "identifier": f"{patient.system}|{patient.nir}"})
    assert matches(both) == [pid]
    other = new_identity(given="Autre")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    mismatch = api.get("Patient", params={"_id": pid, "identifier": f"{other.system}|{other.nir}"})
    assert matches(mismatch) == []
    other_pid = patient_id(api, other)
    assert set(matches(api.get("Patient", params={"_id": f"{pid},{other_pid}"}))) == {pid, other_pid}


def test_patient_by_id_is_traced_like_its_read(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    before = len(entries(api, pid))
    api.get("Patient", params={"_id": pid})
    assert [e.action for e in new_entries(api, pid, before)] == [AuditAction.RECORD_READ.value]


def test_unknown_or_invalid_patient_id_is_empty(api: Api, patient: Identity) -> None:
    for value in (str(uuid.uuid4()), "pas-un-uuid"):
        resp = api.get("Patient", params={"_id": value})
        assert matches(resp) == [] and resp.json()["total"] == 0


def test_patient_not_authorised_is_the_empty_searchset(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    other = new_identity(given="Autre")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    other_pid = patient_id(api, other)
    me = as_patient(api, pid)
    # a patient finds their own record by _id, as they read it, but not another one's
    assert matches(api.get("Patient", who=me, params={"_id": pid})) == [pid]
    assert api.get(f"Patient/{other_pid}", who=me).status_code == 404
    hidden = api.get("Patient", who=me, params={"_id": other_pid})
    unknown = api.get("Patient", who=me, params={"_id": str(uuid.uuid4())})
    assert matches(hidden) == [] and hidden.json()["total"] == 0
    assert {k: v for k, v in hidden.json().items() if k != "link"} == {
        k: v for k, v in unknown.json().items() if k != "link"
    }


def test_post_patient_search_with_id_in_the_form_body(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    resp = api.client.post("/fhir/Patient/_search", content=f"_id={pid}", headers=api.headers(**FORM))
    assert matches(resp) == [pid]
    empty = api.client.post("/fhir/Patient/_search", content="", headers=api.headers(**FORM))
    assert empty.status_code == 400 and "_id=<id>" in empty.json()["issue"][0]["diagnostics"]


def test_capability_statement_declares_id(api: Api) -> None:
    cs = api.get("metadata").json()
    for resource in cs["rest"][0]["resource"]:
        if resource["type"] in ("Patient", "DocumentReference", "List"):
            declared = {(p["name"], p["type"]) for p in resource["searchParam"]}
            assert ("_id", "token") in declared, resource["type"]
