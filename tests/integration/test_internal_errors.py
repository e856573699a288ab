"""An internal fault is the server's, never the client's: a complete 500 OperationOutcome
with a correlation id that the server log carries too (issue 9, « Install truth »)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from helpers import one_doc_bundle

from conftest import Api, Identity, new_identity, patient_resource
from dmp.api.internal_errors import CORRELATION_HEADER


def _missing_models(*_a: Any, **_k: Any) -> Any:
    # What an install without the FHIR models used to produce deep inside validation.
    raise ModuleNotFoundError("No module named 'fhirclient'")


@pytest.fixture()
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dmp.fhir.validate.model_class", _missing_models)


def _assert_internal_error(resp: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert resp.status_code == 500, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    issue = resp.json()["issue"][0]
    assert issue["severity"] == "fatal"
    assert issue["details"]["coding"][0]["code"] == "INTERNAL_ERROR"
    correlation = resp.headers[CORRELATION_HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", correlation)
    assert correlation in issue["diagnostics"]
    assert "Erreur interne du service" in issue["diagnostics"]
    # No internal message reaches the client; the operator finds the incident by its id.
    assert "fhirclient" not in resp.text and "ModuleNotFoundError" not in resp.text
    logged = [r for r in caplog.records if r.name == "dmp.api" and correlation in r.getMessage()]
    assert logged and logged[0].exc_info is not None


@pytest.mark.usefixtures("no_models")
def test_record_creation_with_an_internal_fault_is_a_500_not_a_client_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="dmp.api")
    resp = api.post("Patient", patient_resource(new_identity()))
    _assert_internal_error(resp, caplog)


def test_publication_with_an_internal_fault_is_a_500_and_stores_nothing(
    api: Api, patient: Identity, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.ERROR, logger="dmp.api")
    bundle, _ = one_doc_bundle(patient)
    monkeypatch.setattr("dmp.fhir.validate.model_class", _missing_models)
    _assert_internal_error(api.post("", bundle), caplog)
    monkeypatch.undo()
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert found.status_code == 200 and found.json().get("entry", []) == []


def test_each_incident_has_its_own_correlation_id(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dmp.fhir.validate.model_class", _missing_models)
    first = api.post("Patient", patient_resource(new_identity()))
    second = api.post("Patient", patient_resource(new_identity()))
    assert first.headers[CORRELATION_HEADER] != second.headers[CORRELATION_HEADER]


def test_a_portal_page_fault_is_a_french_html_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("dmp.web.common.Ctx.render", broken)
    resp = api.client.get("/connexion", headers={"Accept": "text/html,application/xhtml+xml"})
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/html")
    assert "Erreur interne" in resp.text and "boom" not in resp.text
    assert resp.headers[CORRELATION_HEADER] in resp.text
