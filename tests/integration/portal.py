"""Helpers for the web portal tests: a browser-like client, a movable clock, codes from the outbox."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from helpers import CDA, bundle, doc
from starlette.testclient import TestClient

from conftest import Api, Identity, new_identity, patient_resource
from dmp.accounts import service
from dmp.accounts.service import DirectoryEntry
from dmp.outbox import EMAIL, SMS, LoggingSmsTransport, SmtpTransport, Transport, deliver_due
from dmp.services.context import Runtime

HTTPS = "https://testserver"
PASSWORD = "Une phrase de passe tout à fait sûre"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Clock:
    """runtime.clock: real time until moved."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, page[:2000]
    return found.group(1)


def txt(response: Any) -> str:
    """A page's text with HTML entities decoded (apostrophes are escaped by the templates)."""
    return html.unescape(response.text)


@dataclass
class Browser:
    """One browser: its own cookie jar, speaking HTTPS to the app (Secure cookies)."""

    client: TestClient
    space: str = ""  # "" (patients) or "/pro"
    last: Any = None

    def get(self, path: str, **kw: Any) -> Any:
        self.last = self.client.get(path, **kw)
        return self.last

    def form(self, page: str, action: str | None = None, **data: str) -> Any:
        """GET ``page``, then POST the form with its CSRF token (to ``action`` or the same path)."""
        shown = self.get(page).text
        self.last = self.client.post(action or page.split("?")[0], data={"csrf": csrf_of(shown), **data})
        return self.last

    def post(self, path: str, **data: str) -> Any:
        """POST with the CSRF token of the last page shown."""
        token = csrf_of(self.last.text)
        self.last = self.client.post(path, data={"csrf": token, **data})
        return self.last

    def cookie(self) -> str | None:
        name = "__Host-dmp_pro" if self.space == "/pro" else "__Host-dmp_session"
        value = self.client.cookies.get(name)
        return str(value) if value is not None else None


@dataclass
class Portal:
    api: Api
    clock: Clock
    sms: LoggingSmsTransport
    smtp: Any = None  # test_outbox_delivery.SmtpServer when e-mail is used
    browsers: list[TestClient] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return self.api.runtime

    def browser(self, space: str = "") -> Browser:
        client = TestClient(self.api.app, base_url=HTTPS, follow_redirects=False)
        self.browsers.append(client)
        return Browser(client, space)

    # ---- data ------------------------------------------------------------------------------

    def record(self, ident: Identity | None = None) -> tuple[Identity, uuid.UUID]:
        ident = ident or new_identity()
        resp = self.api.post("Patient", patient_resource(ident))
        assert resp.status_code == 201, resp.text
        return ident, uuid.UUID(resp.json()["id"])

    def publish(self, ident: Identity, **kw: Any) -> str:
        resp = self.api.post("", bundle(ident, (doc(ident, CDA, **kw), CDA)))
        assert resp.status_code == 200, resp.text
        return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])

    def patient_account(self, pid: uuid.UUID, **contact: str) -> str:
        with self.runtime.engine.begin() as conn:
            return service.create_patient_account(
                conn, pid, self.clock.now, settings=self.runtime.settings, **contact
            )

    def representative(self, pid: uuid.UUID, email: str) -> str | None:
        with self.runtime.engine.begin() as conn:
            return service.add_representative(
                conn, pid, self.clock.now, settings=self.runtime.settings, email=email, agent="Agent TEST"
            ).activation_code

    def professional(self, card: str = "doctor", email: str = "dr@cabinet.test") -> tuple[str, str]:
        from conftest import CARDS

        rpps, profession, specialty, name, *rest = CARDS[card]
        entry = DirectoryEntry(
            rpps=rpps,
            profession=profession,
            name=name,
            specialty=specialty,
            structure_id=f"S-{card}",
            structure_name=f"Structure {card}",
            email=email,
            setting=rest[0] if rest else None,  # the card's practice setting (SAMU_SMUR, ESSMS)
        )
        with self.runtime.engine.begin() as conn:
            issued = service.upsert_professional(conn, entry, self.clock.now, settings=self.runtime.settings)
        assert issued.activation_code
        return rpps, issued.activation_code

    # ---- codes -----------------------------------------------------------------------------

    def deliver(self) -> None:
        transports: dict[str, Transport] = {SMS: self.sms}
        if self.smtp is not None:
            transports[EMAIL] = SmtpTransport(self.smtp.settings())
        deliver_due(self.runtime.engine, transports, self.clock.now)

    def email_code(self) -> str:
        self.deliver()
        assert self.smtp is not None
        text = str(self.smtp.inbox.received[-1].message.get_body(("plain",)).get_content())
        found = re.search(r"code à usage unique est : (\d{6})", text)
        assert found, text
        return found.group(1)

    def sms_code(self) -> str:
        self.deliver()
        assert self.sms.log_file is not None
        last = Path(self.sms.log_file).read_text("utf-8").strip().splitlines()[-1]
        found = re.search(r"code à usage unique est (\d{6})", last)
        assert found, last
        return found.group(1)

    def totp(self, secret: str, offset_steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now + timedelta(seconds=30 * offset_steps))

    # ---- flows -----------------------------------------------------------------------------

    def activate(
        self, b: Browser, login: str, code: str, *, factor: str = "totp", contact: str = ""
    ) -> dict[str, Any]:
        """Activation through the pages; returns the TOTP secret (if any) and the recovery codes."""
        p = b.space
        r = b.form(f"{p}/activation", identifiant=login, code=code)
        assert r.status_code == 303 and r.headers["location"] == f"{p}/activation/mot-de-passe", r.text
        r = b.form(f"{p}/activation/mot-de-passe", mot_de_passe=PASSWORD, confirmation=PASSWORD)
        assert r.status_code == 303, r.text
        out: dict[str, Any] = {}
        if factor == "totp":
            r = b.get(f"{p}/activation/authentificateur")
            assert r.status_code == 200, r.text
            found = re.search(r'id="cle-totp"><code>([A-Z2-7 ]+)</code>', r.text)
            assert found, r.text
            out["secret"] = found.group(1).replace(" ", "")
            r = b.post(f"{p}/activation/authentificateur", code=self.totp(out["secret"]))
        else:
            field_ = "courriel" if factor == "email" else "telephone"
            r = b.form(f"{p}/activation/second-facteur", facteur=factor, **{field_: contact})
            assert r.status_code == 303 and r.headers["location"].endswith("/verification"), r.text
            code_ = self.email_code() if factor == "email" else self.sms_code()
            r = b.form(f"{p}/activation/verification", code=code_)
        assert r.status_code == 200 and "Compte activé" in r.text, r.text
        out["recovery"] = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", r.text)
        assert len(out["recovery"]) == 10
        return out

    def login(self, b: Browser, login: str, password: str = PASSWORD) -> Any:
        return b.form(f"{b.space}/connexion", identifiant=login, mot_de_passe=password)

    def second_factor(self, b: Browser, code: str, *, recovery: bool = False) -> Any:
        page = b.get(f"{b.space}/connexion/code")
        assert page.status_code == 200, page.text
        data = {"mode": "secours", "code_secours": code} if recovery else {"mode": "code", "code": code}
        return b.post(f"{b.space}/connexion/code", **data)

    def full_login_totp(self, b: Browser, login: str, secret: str) -> Any:
        """Password + authenticator code; the clock moves to the next 30 s step first, since a
        step already used is never accepted again."""
        self.clock.advance(seconds=30)
        r = self.login(b, login)
        assert r.status_code == 303, r.text
        return self.second_factor(b, self.totp(secret))


@pytest.fixture(name="portal")
def portal_fixture(api: Api, tmp_path: Path) -> Iterator[Portal]:
    clock = Clock()
    api.runtime.clock = clock
    p = Portal(api, clock, LoggingSmsTransport(tmp_path / "sms.log"))
    yield p
    for client in p.browsers:
        client.close()
