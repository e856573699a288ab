"""SMART discovery (issue 9): both well-known addresses, and a CapabilityStatement whose
oauth-uris let fhirclient build an authorization URL (it raised TypeError without authorize)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fhirclient.auth import FHIRAuth
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.server import FHIRServer

from conftest import BASE, Api

WELL_KNOWN = ["/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"]


@pytest.mark.parametrize("path", WELL_KNOWN)
def test_smart_configuration_is_public_and_complete(api: Api, path: str) -> None:
    resp = api.client.get(path)  # no token: discovery is public
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    conf = resp.json()
    base = api.runtime.settings.base_url.rstrip("/")
    assert conf["issuer"] == base
    assert conf["token_endpoint"] == f"{base}/oauth/token"
    assert conf["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert set(conf["grant_types_supported"]) == {"client_credentials", "authorization_code"}
    assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert {"patient/*.rs", "system/*.*"} <= set(conf["scopes_supported"])
    expected = {"client-confidential-asymmetric", "client-public", "launch-standalone"}
    assert expected <= set(conf["capabilities"])
    assert "plain" not in conf["code_challenge_methods_supported"]


def test_both_addresses_say_the_same(api: Api) -> None:
    root = api.client.get("/.well-known/smart-configuration").json()
    assert api.client.get("/fhir/.well-known/smart-configuration").json() == root


def test_capability_oauth_uris_name_token_and_authorize(api: Api) -> None:
    cap = api.client.get("/fhir/metadata").json()
    (oauth,) = [
        e
        for e in cap["rest"][0]["security"]["extension"]
        if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    ]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    base = api.runtime.settings.base_url.rstrip("/")
    assert uris == {"token": f"{base}/oauth/token", "authorize": f"{base}/oauth/authorize"}


def test_fhirclient_builds_an_authorization_url_from_the_capability_statement(api: Api) -> None:
    cap = CapabilityStatement(api.client.get("/fhir/metadata").json(), strict=True)
    auth = FHIRAuth.from_capability_security(cap.rest[0].security, {"app_id": "mon-appli"})
    server = FHIRServer(None, base_uri=f"{BASE}/fhir/")
    server.auth = auth
    auth._redirect_uri = "http://127.0.0.1:9000/retour"
    url = auth.authorize_uri(server)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(api.runtime.settings.base_url.rstrip("/") + "/oauth/authorize?")
    assert query["client_id"] == ["mon-appli"] and query["response_type"] == ["code"]
