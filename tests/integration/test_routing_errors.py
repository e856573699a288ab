"""Every routing refusal is a French error: an OperationOutcome for software, a French page for
a browser — never Starlette's plain-text « Not Found » (issue 9)."""

from __future__ import annotations

import pytest

from conftest import Api
from dmp.fhir.validate import validate


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("GET", "/fhir/DocumentReference/x/y/z", 404, "NOT_FOUND"),
        ("GET", "/oauth/nope", 404, "NOT_FOUND"),
        ("POST", "/.well-known/smart-configuration", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/oauth/token", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/fhir", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_routing_errors_are_operation_outcomes(
    api: Api, method: str, path: str, status: int, code: str
) -> None:
    resp = api.client.request(method, path, headers=api.headers())
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    validate(body, "OperationOutcome")
    issue = body["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code
    assert issue["diagnostics"] and "Not Found" not in resp.text and "Method Not Allowed" not in resp.text


def test_a_browser_gets_a_french_404_page(api: Api) -> None:
    resp = api.client.get("/page-inexistante", headers={"Accept": "text/html"})
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert 'lang="fr"' in resp.text and "Page introuvable" in resp.text
