"""Absolute URLs name DMP_BASE_URL, never the request's Host; unknown hosts are refused when a list is set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from conftest import BASE, Api
from dmp.api.app import create_app
from dmp.auth.pki import load_ca

EVIL = {"Host": "evil.example"}


def test_the_trailing_slash_redirect_names_the_configured_base(api: Api) -> None:
    resp = api.client.get("/fhir/metadata/", headers=EVIL, follow_redirects=False)
    assert resp.status_code in (307, 308)
    assert resp.headers["location"] == f"{BASE}/fhir/metadata"


def test_links_and_locations_name_the_configured_base(api: Api) -> None:
    bundle = api.client.get("/fhir/metadata", headers={**api.headers(), **EVIL}).json()
    assert "evil.example" not in str(bundle)
    found = api.client.get(
        "/fhir/DocumentReference", params={"patient": "Patient/3f1d2c4b-0000-4000-8000-000000000001"},
        headers={**api.headers(), **EVIL},
    ).json()
    assert all(link["url"].startswith(BASE) for link in found["link"])


def test_an_encoded_slash_is_an_operation_outcome(api: Api) -> None:
    resp = api.client.get("/fhir/DocumentReference/a%2Fb", headers=api.headers())
    assert resp.status_code == 404
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_unknown_hosts_are_refused_where_a_list_is_configured(api: Api, pki_dir: Path, signer: Any) -> None:
    settings = replace(api.runtime.settings, allowed_hosts=("dmp.example.org",))
    runtime = replace(api.runtime, settings=settings)
    app = create_app(runtime, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    with TestClient(app, base_url=BASE) as client:
        refused = client.get("/fhir/metadata", headers=EVIL)
        assert refused.status_code == 400
        issue = refused.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "UNKNOWN_HOST"
        assert "Hôte inconnu" in issue["diagnostics"]
        page = client.get("/connexion", headers={**EVIL, "Accept": "text/html"})
        assert page.status_code == 400 and 'lang="fr"' in page.text
        assert client.get("/fhir/metadata", headers={"Host": "dmp.example.org"}).status_code == 200
        assert client.get("/fhir/metadata").status_code == 200  # the base's own host (testserver)
