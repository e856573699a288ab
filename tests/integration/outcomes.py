"""Assertions on the refusals the service gives (FHIR OperationOutcome and OAuth errors)."""

from __future__ import annotations

from typing import Any

from dmp.fhir import FHIR_JSON


def assert_outcome(resp: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """``resp`` is an OperationOutcome with ``status``, error ``code`` and each French ``fragment``.

    Returns the first issue for further checks.
    """
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == FHIR_JSON, resp.headers
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    issue: dict[str, Any] = body["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code, issue
    assert issue["details"]["text"] == issue["diagnostics"]
    for fragment in fragments:
        assert fragment in issue["diagnostics"], (fragment, issue["diagnostics"])
    return issue


def assert_oauth_error(resp: Any, status: int, error: str, code: str, *fragments: str) -> dict[str, Any]:
    """An RFC 6749 error answer of the token endpoint, with the DMP error code alongside."""
    assert resp.status_code == status, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body: dict[str, Any] = resp.json()
    assert body["error"] == error, body
    assert body["dmp_error_code"] == code, body
    assert "access_token" not in body
    for fragment in fragments:
        assert fragment in body["error_description"], (fragment, body["error_description"])
    return body
