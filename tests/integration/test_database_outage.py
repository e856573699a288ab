"""A database outage is a 503 with Retry-After and a correlation id, never a 500 or a dropped connection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import BASE, Api
from dmp.api.app import create_app
from dmp.auth.pki import load_ca
from dmp.store.db import make_engine

UNREACHABLE = {
    # Nothing listens on port 1: the connection is refused, as when PostgreSQL is down.
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/dmp?connect_timeout=2",
    # A database "file" that is a directory, which SQLite cannot open: its outage.
    "sqlite": "sqlite:///{tmp}",
}


@pytest.mark.parametrize("database", list(UNREACHABLE))
def test_an_unreachable_database_answers_503(
    api: Api, pki_dir: Path, signer: Any, database: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    token = api.token()  # issued while the database answered
    down = replace(api.runtime, engine=make_engine(UNREACHABLE[database].format(tmp=tmp_path)))
    app = create_app(down, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        some_record = {"patient": "Patient/3f1d2c4b-0000-4000-8000-000000000001"}  # read from the database
        resp = client.get("/fhir/DocumentReference", params=some_record, headers=headers)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        body = resp.json()
        assert body["resourceType"] == "OperationOutcome"
        issue = body["issue"][0]
        assert issue["code"] == "transient"
        assert issue["details"]["coding"][0]["code"] == "SERVICE_UNAVAILABLE"
        correlation = resp.headers["x-correlation-id"]
        assert correlation in issue["diagnostics"] and "Réessayez" in issue["diagnostics"]
        assert correlation in caplog.text  # the operator finds the incident in the log
        # A person's browser gets a French page, and the connection is still usable.
        page = client.get("/connexion", headers={"Accept": "text/html"})
        assert page.status_code in (200, 503)
        assert client.get("/fhir/metadata").status_code == 200
