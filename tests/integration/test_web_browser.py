"""One real browser (Debian's chromium driven by Playwright) against a real server (uvicorn on a
free loopback port): the patient logs in with password + TOTP and sees the document list.

Skipped, with the reason, when /usr/bin/chromium or the playwright package is missing; under
CI=true that is a failure instead (scripts/test installs chromium when run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from helpers import CDA, bundle, doc
from sqlalchemy import Engine

from conftest import Card, new_identity, truncate
from dmp.accounts import service
from dmp.api.app import create_app
from dmp.auth.pki import load_ca
from dmp.auth.tokens import TokenSigner
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import IdentityStatus, StrictTraits
from dmp.domain.ins import SYSTEM_NIR, parse_ins
from dmp.fhir.bundle import parse_provide_bundle
from dmp.fhir.patient import CreationRequest
from dmp.services import publish, records
from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.blobs import FileBlobStore
from dmp.store.crypto import KeyRing

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "Mon mot de passe du navigateur"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} absent (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("paquet Python playwright absent (pip install -e '.[test]')")
    if missing:
        reason = "navigateur indisponible : " + " ; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " — obligatoire en CI")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(
    engine: Engine, tmp_path: Path, pki_dir: Path, signer: TokenSigner
) -> Iterator[tuple[str, Runtime]]:
    _require_browser()
    import uvicorn

    truncate(engine)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"  # loopback over HTTP: the one case where cookies are not Secure
    settings = Settings(var_dir=tmp_path, base_url=base, database_url=str(engine.url))
    runtime = Runtime(
        settings=settings,
        engine=engine,
        keyring=KeyRing(b"k" * 32),
        blobs=FileBlobStore(tmp_path / "blobs", fsync=False),
    )
    app = create_app(runtime, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield base, runtime
    finally:
        srv.should_exit = True
        thread.join(10)


def _patient_with_documents(runtime: Runtime, cards: dict[str, Card]) -> tuple[str, str]:
    """A record opened by a doctor, two documents, an activated account (password + TOTP)."""
    ident = new_identity(family="LECLERC", given="Alix")
    doctor = cards["doctor"]
    actor = Actor(
        kind=ActorKind.PROFESSIONAL, id=doctor.idnps, name=doctor.name, profession="10", specialty="SM26"
    )
    now = datetime.now(UTC)
    req = CreationRequest(
        ins=parse_ins(SYSTEM_NIR, ident.nir, allow_test=False),
        traits=StrictTraits(
            birth_family_name=ident.family,
            birth_given_names=(ident.given,),
            sex=ident.sex,
            birth_date=ident.birth_date,
            birth_place_insee=ident.birth_place,
        ),
        identity_status=IdentityStatus.QUAL,
        usual_family_name=None,
        usual_given_name=None,
        consent_at=now,
        consent_channel="professional-software",
    )
    secret = pyotp.random_base32(32)
    with runtime.engine.begin() as conn:
        pid = records.create(conn, runtime, actor, req, now)
        service.create_patient_account(conn, pid, now, settings=runtime.settings)
        acc = service.patient_account(conn, pid)
        assert acc is not None
        service.provision(conn, acc.id, now, settings=runtime.settings, password=PASSWORD, totp_secret=secret)
    for title in ("Compte rendu de consultation", "Ordonnance de sortie"):
        provided = parse_provide_bundle(
            bundle(ident, (doc(ident, CDA, title=title), CDA)),
            max_document_bytes=runtime.settings.max_document_bytes,
        )
        with runtime.engine.begin() as conn:
            publish.publish(conn, runtime, actor, provided, datetime.now(UTC))
    return ident.nir, secret


def test_patient_logs_in_with_password_and_totp_in_a_real_browser(
    server: tuple[str, Runtime], cards: dict[str, Card], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, runtime = server
    nir, secret = _patient_with_documents(runtime, cards)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")  # a fresh user-data-dir
    try:
        with sync_playwright() as pw:
            browser: Any = pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, locale="fr-FR"
            )
            try:
                page = browser.new_page()
                page.goto(f"{base}/")
                assert page.url.startswith(f"{base}/connexion")
                assert page.locator("html").get_attribute("lang") == "fr"
                # Fields found by their labels, as assistive technologies do.
                page.get_by_label("Identifiant").fill(nir)
                page.get_by_label("Mot de passe").fill(PASSWORD)
                page.get_by_role("button", name="Se connecter").click()
                page.wait_for_url(f"{base}/connexion/code")
                page.get_by_label("Code de vérification (6 chiffres)").fill(pyotp.TOTP(secret).now())
                page.get_by_role("button", name="Valider").click()
                page.wait_for_url(f"{base}/")
                assert page.get_by_role("heading", level=1).inner_text() == "Mon DMP"
                table = page.get_by_role("table")
                assert "Compte rendu de consultation" in table.inner_text()
                assert "Ordonnance de sortie" in table.inner_text()
                assert table.get_by_role("link", name="Télécharger").count() == 2
                cookies = {c["name"]: c for c in browser.cookies()}
                assert cookies["dmp_session"]["httpOnly"] and cookies["dmp_session"]["sameSite"] == "Lax"
                shots = str(os.environ.get("DMP_SCREENSHOT_DIR", tmp_path))
                page.screenshot(path=shots + "/mon-dmp.png", full_page=True)
                # The access history, reached from the navigation as a person would.
                page.get_by_role("link", name="Historique des accès", exact=True).click()
                page.wait_for_url(f"{base}/historique")
                history = page.get_by_role(
                    "table", name="Historique des accès, du plus récent au plus ancien"
                )
                assert "a ajouté un document" in history.inner_text()
                assert "s'est connecté(e) à l'espace DMP" in history.inner_text()
                page.screenshot(path=shots + "/historique.png", full_page=True)
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
