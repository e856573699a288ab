"""OAuth2 authorization code + PKCE (S256) for patient applications, end to end."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from click.testing import CliRunner
from portal import PASSWORD, Browser, Portal, portal_fixture, txt  # noqa: F401  (fixture)
from test_representative_portal import _env

from dmp.cli import main

REDIRECT = "https://app.exemple.fr/retour"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _register(portal: Portal) -> str:
    result = CliRunner().invoke(
        main, ["app", "register", "--name", "Mon carnet santé", "--redirect-uri", REDIRECT], env=_env(portal)
    )
    assert result.exit_code == 0, result.output
    return result.output.split("client_id : ")[1].split()[0]


def _authorize_url(client_id: str, challenge: str, state: str = "etat-123", **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "patient/*.rs",
        **extra,
    }
    return "/oauth/authorize?" + urlencode(params)


def _consent(b: Browser, url: str, decision: str = "autoriser") -> dict[str, list[str]]:
    page = b.get(url)
    assert page.status_code == 200, page.text
    assert "Mon carnet santé" in txt(page) and "lire" in txt(page)
    assert "https://app.exemple.fr" in page.headers["content-security-policy"]  # form-action
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text))
    r = b.client.post("/oauth/authorize", data={**hidden, "decision": decision})
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def _token(portal: Portal, client_id: str, code: str, verifier: str, redirect: str = REDIRECT) -> Any:
    return portal.api.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )


def _patient_logged_in(portal: Portal) -> tuple[Browser, Any, Any, str]:
    ident, pid = portal.record()
    doc_id = portal.publish(ident, title="Ordonnance")
    b = portal.browser()
    out = portal.activate(b, ident.nir, portal.patient_account(pid))
    return b, pid, out, doc_id


def test_pkce_flow_end_to_end(portal: Portal) -> None:
    client_id = _register(portal)
    b, pid, _, doc_id = _patient_logged_in(portal)
    other_ident, other_pid = portal.record()
    portal.publish(other_ident, title="Document d'un autre patient")

    verifier, challenge = _pkce()
    got = _consent(b, _authorize_url(client_id, challenge))
    assert got["state"] == ["etat-123"]
    code = got["code"][0]
    # A wrong verifier is refused, and spends the code.
    bad = _token(portal, client_id, code, secrets.token_urlsafe(48))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert _token(portal, client_id, code, verifier).json()["error"] == "invalid_grant"

    verifier, challenge = _pkce()
    code = _consent(b, _authorize_url(client_id, challenge))["code"][0]
    ok = _token(portal, client_id, code, verifier)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["token_type"] == "bearer" and body["scope"] == "patient/*.rs" and body["patient"] == str(pid)
    assert ok.headers["cache-control"] == "no-store"
    # Code reuse is refused.
    reused = _token(portal, client_id, code, verifier)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert "déjà utilisé" in reused.json()["error_description"]

    headers = {"Authorization": f"Bearer {body['access_token']}", "Accept": "application/fhir+json"}
    own = portal.api.client.get(f"/fhir/DocumentReference?patient=Patient/{pid}", headers=headers)
    assert own.status_code == 200, own.text
    assert [e["resource"]["id"] for e in own.json()["entry"]] == [doc_id]
    assert portal.api.client.get(f"/fhir/Binary/{doc_id}", headers=headers).status_code == 200
    other = portal.api.client.get(f"/fhir/DocumentReference?patient=Patient/{other_pid}", headers=headers)
    # Another person's record: the empty searchset of a record that does not exist (no oracle).
    assert other.status_code == 200 and "entry" not in other.json() and other.json()["total"] == 0


def test_code_expires_after_60_seconds_and_is_bound_to_client_and_redirect(portal: Portal) -> None:
    client_id = _register(portal)
    b, _, _, _ = _patient_logged_in(portal)
    verifier, challenge = _pkce()
    code = _consent(b, _authorize_url(client_id, challenge))["code"][0]
    assert _token(portal, client_id, code, verifier, "https://app.exemple.fr/autre").status_code == 400
    code = _consent(b, _authorize_url(client_id, challenge))["code"][0]
    assert _token(portal, "app-inconnue", code, verifier).status_code == 400
    code = _consent(b, _authorize_url(client_id, challenge))["code"][0]
    portal.clock.advance(seconds=61)
    late = _token(portal, client_id, code, verifier)
    assert late.status_code == 400 and "expiré" in late.json()["error_description"]


def test_refusal_and_bad_requests(portal: Portal) -> None:
    client_id = _register(portal)
    b, _, _, _ = _patient_logged_in(portal)
    verifier, challenge = _pkce()
    denied = _consent(b, _authorize_url(client_id, challenge), decision="refuser")
    assert denied == {"error": ["access_denied"], "state": ["etat-123"]}
    # Unknown client or unregistered redirect: an error page, never a redirect.
    assert b.get(_authorize_url("app-inconnue", challenge)).status_code == 400
    r = b.get(_authorize_url(client_id, challenge).replace("retour", "ailleurs"))
    assert r.status_code == 400 and "location" not in r.headers
    # No PKCE, or "plain": back to the app with invalid_request.
    for extra in ({"code_challenge": ""}, {"code_challenge_method": "plain"}):
        r = b.get(_authorize_url(client_id, challenge, **extra))
        assert r.status_code == 303 and "error=invalid_request" in r.headers["location"]
    r = b.get(_authorize_url(client_id, challenge, response_type="token"))
    assert "error=unsupported_response_type" in r.headers["location"]
    # Token endpoint: missing verifier.
    resp = portal.api.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_authorize_asks_for_login_first_and_comes_back(portal: Portal) -> None:
    client_id = _register(portal)
    ident, pid = portal.record()
    activation = portal.browser()
    out = portal.activate(activation, ident.nir, portal.patient_account(pid))
    b = portal.browser()
    verifier, challenge = _pkce()
    url = _authorize_url(client_id, challenge)
    r = b.get(url)
    assert r.status_code == 303 and r.headers["location"].startswith("/connexion?suivant=")
    login_page = b.get(r.headers["location"])
    assert 'name="suivant"' in txt(login_page)
    r = b.post("/connexion", identifiant=ident.nir, mot_de_passe=PASSWORD, suivant=url)
    assert r.status_code == 303
    portal.clock.advance(seconds=30)
    r = portal.second_factor(b, portal.totp(out["secret"]))
    assert r.status_code == 303 and r.headers["location"] == url
    code = _consent(b, url)["code"][0]
    assert _token(portal, client_id, code, verifier).status_code == 200
