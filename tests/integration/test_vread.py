"""vread of the versions the server reports (issue 9: the Location of each ITI-65 entry,
``…/_history/1``, answered a plain-text 404)."""

from __future__ import annotations

import base64

from helpers import CDA, bundle

from conftest import BASE, Api, Identity
from dmp.fhir.validate import validate


def _published_locations(api: Api, patient: Identity) -> list[str]:
    resp = api.post("", bundle(patient))
    assert resp.status_code == 200, resp.text
    return [e["response"]["location"] for e in resp.json()["entry"]]


def _path(location: str) -> str:
    return location.removeprefix(f"{BASE}/fhir/").removeprefix("/fhir/")


def test_every_location_of_a_publication_resolves(api: Api, patient: Identity) -> None:
    locations = _published_locations(api, patient)
    assert {_path(loc).split("/")[0] for loc in locations} == {"List", "DocumentReference", "Binary"}
    for location in locations:
        assert location.endswith("/_history/1")
        resp = api.get(_path(location))
        assert resp.status_code == 200, (location, resp.text)
        if "Binary/" in location:  # asked as FHIR JSON: a Binary resource carrying the bytes
            assert base64.b64decode(resp.json()["data"]) == CDA
        else:
            body = resp.json()
            validate(body)
            assert body.get("meta", {}).get("versionId", "1") == "1"  # a List has no other version
            assert resp.headers["etag"] == 'W/"1"'


def test_a_version_the_server_does_not_hold_is_the_uniform_404(api: Api, patient: Identity) -> None:
    doc = next(loc for loc in _published_locations(api, patient) if "DocumentReference/" in loc)
    resp = api.get(_path(doc).replace("/_history/1", "/_history/7"))
    assert resp.status_code == 404
    validate(resp.json(), "OperationOutcome")
    missing = api.get("DocumentReference/0b9d1a7e-63c5-4c36-9d8e-2f0e5e0c1a11/_history/1")
    assert missing.status_code == 404 and missing.json() == resp.json()


def test_after_a_metadata_update_the_new_version_is_read_and_the_old_one_is_gone(
    api: Api, patient: Identity
) -> None:
    doc = _path(next(loc for loc in _published_locations(api, patient) if "DocumentReference/" in loc))
    doc_id = doc.split("/")[1]
    ops = [{"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": "R"}]
    patched = api.patch(f"DocumentReference/{doc_id}", ops)
    assert patched.status_code == 200, patched.text
    version = patched.json()["meta"]["versionId"]
    assert version != "1"
    assert api.get(f"DocumentReference/{doc_id}/_history/{version}").status_code == 200
    assert api.get(f"DocumentReference/{doc_id}/_history/1").status_code == 404


def test_patient_vread_of_its_location(api: Api, patient: Identity) -> None:
    found = api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"}).json()
    pid = found["entry"][0]["resource"]["id"]
    version = found["entry"][0]["resource"]["meta"]["versionId"]
    resp = api.get(f"Patient/{pid}/_history/{version}")
    assert resp.status_code == 200 and resp.json()["id"] == pid
