"""``POST [type]/_search`` with a form body (issue 9: it answered 405; clients use it, e.g.
fhir-kit-client's postSearch, and so should anyone whose query — an INS — must stay out of URLs
and access logs)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import bundle

from conftest import Api, Identity

FORM = "application/x-www-form-urlencoded"


def _post_search(api: Api, rtype: str, form: dict[str, str], query: str = "") -> Any:
    return api.client.post(
        f"/fhir/{rtype}/_search{query}", data=form, headers=api.headers(**{"Content-Type": FORM})
    )


def _ids(body: Any) -> list[str]:
    entries = body.get("entry", [])
    return [e["resource"]["id"] for e in entries if e.get("search", {}).get("mode") != "outcome"]


def _patient_id(api: Api, patient: Identity) -> str:
    found = api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"}).json()
    return str(found["entry"][0]["resource"]["id"])


def _searches(patient: Identity, pid: str) -> dict[str, dict[str, str]]:
    ins = f"{patient.system}|{patient.nir}"
    return {
        "DocumentReference": {"patient.identifier": ins, "status": "current"},
        "List": {"patient.identifier": ins, "code": "submissionset"},
        "Patient": {"identifier": ins},
        "AuditEvent": {"patient": f"Patient/{pid}"},
        "Consent": {"patient": f"Patient/{pid}"},
    }


@pytest.mark.parametrize("rtype", ["DocumentReference", "List", "Patient", "AuditEvent", "Consent"])
def test_post_search_answers_what_get_answers(api: Api, patient: Identity, rtype: str) -> None:
    assert api.post("", bundle(patient)).status_code == 200
    pid = _patient_id(api, patient)
    params = _searches(patient, pid)[rtype]
    posted = _post_search(api, rtype, params)
    assert posted.status_code == 200, posted.text
    got = api.get(rtype, params=params)
    assert got.status_code == 200
    assert posted.json()["type"] == "searchset"
    if rtype == "AuditEvent":  # the later GET also sees the trace of the POST search itself
        assert _ids(posted.json()) and set(_ids(posted.json())) < set(_ids(got.json()))
    else:
        assert _ids(posted.json()) == _ids(got.json()) and _ids(got.json())


def test_post_search_merges_url_and_body_parameters(api: Api, patient: Identity) -> None:
    for _ in range(3):
        assert api.post("", bundle(patient)).status_code == 200
    posted = _post_search(
        api, "DocumentReference", {"patient.identifier": f"{patient.system}|{patient.nir}"}, "?_count=2"
    )
    assert posted.status_code == 200, posted.text
    assert len(posted.json()["entry"]) == 2 and posted.json()["total"] == 3


def test_post_search_is_refused_exactly_like_get(api: Api, patient: Identity) -> None:
    params = {"patient.identifier": f"{patient.system}|{patient.nir}"}
    posted = _post_search(api, "DocumentReference", {**params, "nope": "1"})
    got = api.get("DocumentReference", params={**params, "nope": "1"})
    assert posted.status_code == got.status_code == 400
    assert posted.json() == got.json()
    anonymous = api.client.post("/fhir/DocumentReference/_search", data=params)
    assert anonymous.status_code == 401


def test_post_search_needs_a_form_body(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir/DocumentReference/_search",
        content=b'{"patient.identifier": "x"}',
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    assert resp.status_code == 415
    assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "UNSUPPORTED_MEDIA_TYPE"
