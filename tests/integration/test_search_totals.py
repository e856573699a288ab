"""Bundle.total on every searchset, and the total alone (_summary=count, _count=0) with no entry
and no next link (issue 9: _count=0 answered a next link equal to self, so a client following
next never stopped; fhirpy's count() failed)."""

from __future__ import annotations

from typing import Any

import pytest
from access_helpers import authorise
from helpers import CDA, bundle, doc

from conftest import Api, Identity
from dmp.fhir.validate import validate


def _publish(api: Api, patient: Identity, n: int) -> None:
    for _ in range(n):
        resp = api.post("", bundle(patient))
        assert resp.status_code == 200, resp.text


def _search(api: Api, patient: Identity, resource: str = "DocumentReference", **params: str) -> Any:
    query = {"patient.identifier": f"{patient.system}|{patient.nir}", **params}
    if resource == "List":
        query["code"] = "submissionset"
    resp = api.get(resource, params=query)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate(body, "Bundle")
    return body


def _relations(body: Any) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in body["link"]}


@pytest.mark.parametrize("resource", ["DocumentReference", "List"])
def test_every_page_carries_the_total(api: Api, patient: Identity, resource: str) -> None:
    _publish(api, patient, 3)
    first = _search(api, patient, resource, _count="2")
    assert first["total"] == 3 and len(first["entry"]) == 2 and "next" in _relations(first)
    last = _search(api, patient, resource, _count="2", _offset="2")
    assert last["total"] == 3 and len(last["entry"]) == 1 and "next" not in _relations(last)
    assert _search(api, patient, resource)["total"] == 3


@pytest.mark.parametrize("resource", ["DocumentReference", "List"])
@pytest.mark.parametrize("control", [{"_count": "0"}, {"_summary": "count"}])
def test_the_total_alone_has_no_entry_and_no_next(
    api: Api, patient: Identity, resource: str, control: dict[str, str]
) -> None:
    _publish(api, patient, 3)
    body = _search(api, patient, resource, **control)
    assert body["total"] == 3
    assert "entry" not in body
    assert "next" not in _relations(body)


def test_fhirpy_style_count_parameters_are_accepted(api: Api, patient: Identity) -> None:
    _publish(api, patient, 2)
    body = _search(api, patient, _count="0", _totalMethod="accurate")
    assert body["total"] == 2 and "entry" not in body
    assert _search(api, patient, _total="accurate")["total"] == 2


def test_an_unknown_summary_mode_is_refused(api: Api, patient: Identity) -> None:
    resp = api.get(
        "DocumentReference",
        params={"patient.identifier": f"{patient.system}|{patient.nir}", "_summary": "text"},
    )
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_SEARCH"


def test_hidden_documents_are_not_counted(api: Api, patient: Identity) -> None:
    _publish(api, patient, 2)
    masked = doc(patient, flags=("MASQUE_PS",))
    resp = api.post("", bundle(patient, (masked, CDA)))
    assert resp.status_code == 200, resp.text
    authorise(api, patient, "doctor2")
    params = {"patient.identifier": f"{patient.system}|{patient.nir}"}
    assert api.get("DocumentReference", params=params).json()["total"] == 3  # the author sees it
    for control in ({"_summary": "count"}, {}):
        resp = api.get("DocumentReference", who="doctor2", params={**params, **control})
        assert resp.status_code == 200, resp.text
        assert resp.json()["total"] == 2


def test_an_audit_event_page_that_holds_everything_carries_the_total(api: Api, patient: Identity) -> None:
    _publish(api, patient, 1)
    pid = _search(api, patient)["entry"][0]["resource"]["subject"]["reference"]
    resp = api.get("AuditEvent", params={"patient": pid})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == len(body.get("entry", []))
