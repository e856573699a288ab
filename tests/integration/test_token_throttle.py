"""The /oauth/token failure limits: in the database (every worker, every host sees them), per client
first and per address with a much higher ceiling, behind the configured proxies only.

A valid card is never refused because other cards failed from the same address.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from conftest import BASE, Api, Identity, patient_resource
from dmp.accounts.throttle import TOKEN_ADDRESS, TOKEN_CLIENT
from dmp.api.app import create_app
from dmp.auth.pki import load_ca
from dmp.demo.client import token_form
from dmp.store.schema_audit import audit_entry

TOKEN_URL = f"{BASE}/oauth/token"
ELSEWHERE = "https://autre-service.example/oauth/token"  # a valid signature for the wrong audience


def _unsigned(issuer: str) -> str:
    """A garbage assertion claiming ``issuer``: refused, and counted against that claimed client."""
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none'})}.{part({'iss': issuer, 'sub': issuer})}."


def _garbage_form(issuer: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _unsigned(issuer),
        "scope": "system/*.rs",
    }


def test_a_card_locked_by_its_own_failures_does_not_lock_the_others(api: Api) -> None:
    doctor, colleague = api.cards["doctor"].dir, api.cards["doctor2"].dir
    wrong = token_form(doctor, ELSEWHERE)
    statuses = [api.client.post("/oauth/token", data=wrong).status_code for _ in range(21)]
    assert statuses == [401] * TOKEN_CLIENT.max_failures + [429]
    assert api.client.post("/oauth/token", data=token_form(doctor, TOKEN_URL)).status_code == 429
    # Same address, another card: checked and served.
    served = api.client.post("/oauth/token", data=token_form(colleague, TOKEN_URL))
    assert served.status_code == 200, served.text


def test_the_address_ceiling_refuses_failing_clients_only(api: Api) -> None:
    for n in range(TOKEN_ADDRESS.max_failures):
        assert api.client.post("/oauth/token", data=_garbage_form(f"pirate-{n}")).status_code == 401
    # The address is over its ceiling: a client with failures of its own is refused unchecked…
    again = api.client.post("/oauth/token", data=_garbage_form("pirate-0"))
    assert again.status_code == 429
    assert again.json()["dmp_error_code"] == "RATE_LIMITED"
    assert int(again.headers["retry-after"]) > 60
    # …a client without failures is still checked: refused for what it is, or served.
    assert api.client.post("/oauth/token", data=_garbage_form("nouveau")).status_code == 401
    served = api.client.post("/oauth/token", data=token_form(api.cards["doctor"].dir, TOKEN_URL))
    assert served.status_code == 200, served.text


def _source_addresses(api: Api, client: TestClient, ident: Identity) -> list[str | None]:
    headers = {"Authorization": f"Bearer {api.token()}", "Accept": "application/fhir+json",
               "X-Forwarded-For": "203.0.113.7"}
    created = client.post("/fhir/Patient", content=json.dumps(patient_resource(ident)),
                          headers={**headers, "Content-Type": "application/fhir+json"})
    assert created.status_code == 201, created.text
    with api.runtime.engine.connect() as conn:
        return [r.source_address for r in conn.execute(select(audit_entry.c.source_address))]


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(api: Api) -> None:
    from conftest import new_identity

    assert set(_source_addresses(api, api.client, new_identity())) == {"testclient"}


def test_x_forwarded_for_from_a_trusted_proxy_gives_the_client_address(
    api: Api, pki_dir: Path, signer: Any
) -> None:
    from conftest import new_identity

    runtime = replace(api.runtime, settings=replace(api.runtime.settings, trusted_proxies=("testclient",)))
    app = create_app(runtime, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    with TestClient(app, base_url=BASE) as behind_proxy:
        assert "203.0.113.7" in _source_addresses(api, behind_proxy, new_identity())


# ---- over HTTP, against `dmp serve --workers 2` ------------------------------------------------


def _post_token(base: str, form: dict[str, str]) -> int:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(f"{base}/oauth/token", data=data, method="POST")  # noqa: S310 (loopback)
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_limits_are_shared_by_every_worker(database: str, tmp_path: Path) -> None:
    from conftest import _drop_database, _postgres_url
    from dmp.devtools.pgcluster import fresh_database
    from live_server import DMP, live_server

    url = ""
    if database == "postgresql":
        url = fresh_database(_postgres_url(), f"dmp_workers_{tmp_path.name[-20:]}")
    try:
        with live_server(tmp_path, url, workers=2) as server:
            colleague = tmp_path / "card-colleague"
            subprocess.run(
                [*DMP, "pki", "issue-card", "--rpps", "10002345675", "--profession", "10",
                 "--name", "Charles DAVID", "--out", str(colleague)],
                env=server.env, check=True, capture_output=True,
            )
            audience = f"{server.base}/oauth/token"
            statuses = [_post_token(server.base, token_form(server.card, ELSEWHERE)) for _ in range(21)]
            # Each request on a new connection: both workers answer; the count is theirs together.
            assert statuses == [401] * 20 + [429]
            assert _post_token(server.base, token_form(server.card, audience)) == 429
            assert _post_token(server.base, token_form(colleague, audience)) == 200
    finally:
        if url:
            _drop_database(url)
