"""Bad input never answers 500: extreme dates, control characters, header injection, limits,
charsets and the validator's text (each refused with a French OperationOutcome, or handled)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import one_doc_bundle
from outcomes import assert_outcome

from conftest import Api, Identity


def _post_raw(api: Api, path: str, body: bytes, content_type: str = "application/fhir+json") -> Any:
    headers = api.headers(**{"Content-Type": content_type})
    return api.client.post(f"/fhir/{path}", content=body, headers=headers)


# ---- dates at the edges of FHIR's 0001–9999 ---------------------------------------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59+01:00", "9999-12-31T23:59:59Z"])
def test_year_9999_in_a_publication_date_is_stored(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient, date=value)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 1


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_instant_beyond_utc_range_is_refused(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient, date=value)
    issue = assert_outcome(api.post("", b), 422, "INVALID_VALUE", value, "hors de la plage")
    assert issue["expression"][0].startswith("DocumentReference.")


def test_year_0001_in_utc_is_stored(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, date="0001-01-01T00:00:00Z")
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("value", ["9999-12-31", "9999", "0001-01-01", "0001"])
def test_extreme_list_date(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient)
    b["entry"][0]["resource"]["date"] = value
    resp = api.post("", b)
    if value.startswith("0001"):
        assert_outcome(resp, 422, "INVALID_VALUE", "List.date", "hors de la plage")
    else:
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("rtype", ["DocumentReference", "List"])
@pytest.mark.parametrize(
    "param",
    [
        "date=9999-12-31",
        "date=9999",
        "date=lt0001-01-01",
        "date=ge9999-12-31",
        "date=le9999-12-31",
        "date=gt9999-12-31T23:59:59Z",
        "date=ne0001-01-01",
        "date=0001-01-01T00:00:00%2B14:00",
    ],
)
def test_extreme_date_searches_are_clamped(api: Api, patient: Identity, rtype: str, param: str) -> None:
    b, _ = one_doc_bundle(patient)
    assert api.post("", b).status_code == 200
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    resp = api.get(f"{rtype}?{ref}&{param}")
    assert resp.status_code == 200, resp.text
    expected = 1 if param.split("=")[1][:2] in ("le", "ne") else 0
    assert resp.json()["total"] == expected, param


@pytest.mark.parametrize("param", ["period=ge9999-12-31", "period=lt0001-01-01", "creation=9999"])
def test_extreme_period_searches(api: Api, patient: Identity, param: str) -> None:
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    resp = api.get(f"DocumentReference?{ref}&{param}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == 0


def test_malformed_search_date_is_a_400(api: Api, patient: Identity) -> None:
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    assert_outcome(api.get(f"DocumentReference?{ref}&date=2026-13-45"), 400, "INVALID_SEARCH", "date")
    assert_outcome(api.get(f"List?{ref}&date=10000-01-01"), 400, "INVALID_SEARCH", "date")
