"""Patient accounts through the web portal, on SQLite and PostgreSQL: activation, every second
factor, lockout, enumeration resistance, CSRF, session rotation and timeouts, log out everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from portal import PASSWORD, Browser, Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select
from test_outbox_delivery import SmtpServer, free_port

from dmp.accounts import sessions
from dmp.store.schema_accounts import account, web_session


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def _activated(
    portal: Portal, factor: str = "totp", contact: str = "", **account_contact: str
) -> tuple[Browser, str, dict[str, object], str]:
    ident, pid = portal.record()
    doc_id = portal.publish(ident, title="Compte rendu de consultation")
    code = portal.patient_account(pid, **account_contact)
    b = portal.browser()
    out = portal.activate(b, ident.nir, code, factor=factor, contact=contact)
    return b, ident.nir, out, doc_id


def test_activation_code_then_totp_login_lists_documents(portal: Portal) -> None:
    b, nir, out, doc_id = _activated(portal)
    # Activation ends logged in; the recovery codes were shown once.
    home = b.get("/")
    assert home.status_code == 200 and "Compte rendu de consultation" in txt(home)
    assert f'href="/documents/{doc_id}"' in txt(home)
    download = b.get(f"/documents/{doc_id}")
    assert download.status_code == 200 and download.content.startswith(b"<?xml")
    assert "attachment" in download.headers["content-disposition"]
    # A fresh browser logs in with password + authenticator code (the next time step: a used
    # step is never accepted twice).
    other = portal.browser()
    r = portal.full_login_totp(other, nir, str(out["secret"]))
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "Compte rendu de consultation" in txt(other.get("/"))
    # The same TOTP code again is refused (replay).
    third = portal.browser()
    assert portal.login(third, nir).status_code == 303
    assert portal.second_factor(third, portal.totp(str(out["secret"]))).status_code == 401


def test_activation_code_is_single_use_and_checked(portal: Portal) -> None:
    ident, pid = portal.record()
    code = portal.patient_account(pid)
    b = portal.browser()
    wrong = b.form("/activation", identifiant=ident.nir, code="ACDE-FGHJ-KMNP-QRTU")
    assert wrong.status_code == 401 and "code d'activation incorrect" in txt(wrong)
    portal.activate(b, ident.nir, code)
    again = portal.browser().form("/activation", identifiant=ident.nir, code=code)
    assert again.status_code == 401


def test_password_policy_on_activation(portal: Portal) -> None:
    ident, pid = portal.record()
    code = portal.patient_account(pid)
    b = portal.browser()
    assert b.form("/activation", identifiant=ident.nir, code=code).status_code == 303
    for bad in ("court", "motdepasse2024!", "azertyuiopqsdf", ident.nir + "abc", "aaaaaaaaaaaaaaaa"):
        r = b.form("/activation/mot-de-passe", mot_de_passe=bad, confirmation=bad)
        assert r.status_code == 400, bad
        assert 'aria-invalid="true"' in txt(r) and 'role="alert"' in txt(r)
    r = b.form("/activation/mot-de-passe", mot_de_passe=PASSWORD, confirmation=PASSWORD + "x")
    assert r.status_code == 400 and "identiques" in txt(r)
    with portal.runtime.engine.connect() as conn:
        stored = conn.execute(select(account.c.password_hash).where(account.c.patient_id == pid)).scalar()
    assert stored is None


def test_login_with_email_code_from_a_real_smtp_server(portal: Portal, smtp: SmtpServer) -> None:
    portal.smtp = smtp
    ident, pid = portal.record()
    portal.publish(ident, title="Résultats de biologie")
    code = portal.patient_account(pid, email="dominique@exemple.fr")
    portal.deliver()
    activation_mail = str(smtp.inbox.received[-1].message.get_body(("plain",)).get_content())
    assert f"/activation?code={code}" in activation_mail  # the activation link
    b = portal.browser()
    portal.activate(b, ident.nir, code, factor="email", contact="dominique@exemple.fr")
    other = portal.browser()
    r = portal.login(other, ident.nir)
    assert r.status_code == 303
    page = other.get("/connexion/code")
    assert "d***@e***.fr" in txt(page)  # masked destination
    r = portal.second_factor(other, portal.email_code())
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "Résultats de biologie" in txt(other.get("/"))


def test_login_with_sms_code_from_the_logging_transport(portal: Portal) -> None:
    b, nir, _, _ = _activated(portal, factor="sms", contact="06 12 34 56 78")
    other = portal.browser()
    assert portal.login(other, nir).status_code == 303
    assert "+33*******78" in txt(other.get("/connexion/code"))
    wrong = portal.second_factor(other, "000000")
    assert wrong.status_code == 401 and "Code incorrect" in txt(wrong)
    r = portal.second_factor(other, portal.sms_code())
    assert r.status_code == 303
    assert other.get("/").status_code == 200


def test_login_with_recovery_code_once(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    recovery = list(out["recovery"])  # type: ignore[call-overload]
    b = portal.browser()
    assert portal.login(b, nir).status_code == 303
    r = portal.second_factor(b, recovery[0].lower().replace("-", " "), recovery=True)
    assert r.status_code == 303
    b2 = portal.browser()
    assert portal.login(b2, nir).status_code == 303
    again = portal.second_factor(b2, recovery[0], recovery=True)
    assert again.status_code == 401 and "déjà utilisé" in txt(again)


def test_wrong_password_locks_then_unlocks_after_the_delay(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    b = portal.browser()
    for _ in range(4):
        assert portal.login(b, nir, "mauvais mot de passe").status_code == 401
    locked = portal.login(b, nir, "mauvais mot de passe")
    assert locked.status_code == 429 and "Trop de tentatives" in txt(locked)
    # Even the right password is refused while locked.
    assert portal.login(b, nir).status_code == 429
    portal.clock.advance(minutes=14)
    assert portal.login(b, nir).status_code == 429
    portal.clock.advance(minutes=2)
    assert portal.full_login_totp(b, nir, str(out["secret"])).status_code == 303


def test_wrong_codes_end_the_attempt_and_lock(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    b = portal.browser()
    assert portal.login(b, nir).status_code == 303
    for _ in range(4):
        assert portal.second_factor(b, "123456").status_code == 401
    r = portal.second_factor(b, "654321")
    assert r.status_code == 429 and "Trop de tentatives" in txt(r)
    assert b.get("/connexion/code").status_code == 303  # the pending login is gone
    portal.clock.advance(minutes=16)
    assert portal.full_login_totp(b, nir, str(out["secret"])).status_code == 303


def test_rate_limit_per_address(portal: Portal) -> None:
    b = portal.browser()
    statuses = [portal.login(b, f"1800175056{i:03d}00", "x" * 12).status_code for i in range(31)]
    assert statuses[:29] == [401] * 29 and statuses[29:] == [429, 429]


def test_same_answer_for_unknown_identifier_and_wrong_password(portal: Portal) -> None:
    _, nir, _, _ = _activated(portal)
    ident2, pid2 = portal.record()
    portal.patient_account(pid2)  # exists, not activated
    b = portal.browser()
    b.get("/connexion")
    answers = [
        portal.login(b, who, "un mauvais mot de passe") for who in (nir, "279035121518989", ident2.nir)
    ]
    assert {a.status_code for a in answers} == {401}
    assert answers[0].text == answers[1].text == answers[2].text
    assert "Identifiant ou mot de passe incorrect." in answers[0].text
    # Activation: unknown identifier and wrong code answer alike too.
    act = [
        b.form("/activation", identifiant=who, code="ACDE-FGHJ-KMNP-QRTU") for who in (ident2.nir, "x@y.fr")
    ]
    assert act[0].status_code == act[1].status_code == 401 and act[0].text == act[1].text
    # Unknown identifiers are locked out like real ones: a lockout reveals nothing.
    for _ in range(5):
        last = portal.login(portal.browser(), "279035121518989", "un mauvais mot de passe")
    assert last.status_code == 429


def test_forms_refuse_a_missing_or_wrong_csrf_token(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    b = portal.browser()
    b.get("/connexion")
    assert b.client.post("/connexion", data={"identifiant": nir, "mot_de_passe": PASSWORD}).status_code == 403
    r = b.client.post("/connexion", data={"identifiant": nir, "mot_de_passe": PASSWORD, "csrf": "faux"})
    assert r.status_code == 403 and "jeton de sécurité" in txt(r)
    # No session cookie at all.
    fresh = portal.browser()
    assert (
        fresh.client.post(
            "/connexion", data={"identifiant": nir, "mot_de_passe": PASSWORD, "csrf": "x"}
        ).status_code
        == 403
    )
    # Logged in: logging out needs the token too.
    assert portal.full_login_totp(b, nir, str(out["secret"])).status_code == 303
    assert b.client.post("/deconnexion", data={}).status_code == 403
    assert b.client.post("/deconnexion-partout", data={"csrf": "faux"}).status_code == 403
    assert b.get("/").status_code == 200  # still logged in


def test_session_is_rotated_at_login_and_cookies_are_hardened(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    b = portal.browser()
    page = b.get("/connexion")
    set_cookie = page.headers["set-cookie"]
    assert set_cookie.startswith("__Host-dmp_session=")
    for attr in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert attr.lower() in set_cookie.lower(), set_cookie
    anonymous = b.cookie()
    assert portal.login(b, nir).status_code == 303
    pending = b.cookie()
    assert pending and pending != anonymous
    portal.clock.advance(seconds=30)
    assert portal.second_factor(b, portal.totp(str(out["secret"]))).status_code == 303
    logged = b.cookie()
    assert logged and logged not in (anonymous, pending)
    # The old tokens open nothing.
    for old in (anonymous, pending):
        stale = portal.browser()
        stale.client.cookies.set("__Host-dmp_session", str(old), domain="testserver.local")
        assert stale.get("/").status_code == 303
    # Only digests are stored.
    with portal.runtime.engine.connect() as conn:
        stored = set(conn.execute(select(web_session.c.token_hash)).scalars())
    assert logged not in stored and sessions.token_hash(str(logged)) in stored
    # Security headers on pages.
    home = b.get("/")
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]


def test_idle_and_absolute_timeouts(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    b = portal.browser()
    assert portal.full_login_totp(b, nir, str(out["secret"])).status_code == 303
    portal.clock.advance(minutes=14)
    assert b.get("/").status_code == 200  # activity resets the idle timer
    portal.clock.advance(minutes=16)
    r = b.get("/")
    assert r.status_code == 303 and "expiree=1" in r.headers["location"]
    assert "expiré" in txt(b.get(r.headers["location"]))
    # Absolute timeout: active every 10 minutes, still logged out after 8 hours.
    b2 = portal.browser()
    assert portal.full_login_totp(b2, nir, str(out["secret"])).status_code == 303
    for _ in range(47):
        portal.clock.advance(minutes=10)
        assert b2.get("/").status_code == 200
    portal.clock.advance(minutes=10)
    assert b2.get("/").status_code == 303


def test_log_out_and_log_out_everywhere(portal: Portal) -> None:
    _, nir, out, _ = _activated(portal)
    first, second = portal.browser(), portal.browser()
    assert portal.full_login_totp(first, nir, str(out["secret"])).status_code == 303
    assert portal.full_login_totp(second, nir, str(out["secret"])).status_code == 303
    b3 = portal.browser()
    assert portal.full_login_totp(b3, nir, str(out["secret"])).status_code == 303
    # Plain logout ends one session.
    b3.get("/")
    r = b3.post("/deconnexion")
    assert r.status_code == 303 and b3.get("/").status_code == 303
    assert first.get("/").status_code == 200
    # Log out everywhere ends them all (and the activation browser's too).
    first.get("/")
    r = first.post("/deconnexion-partout")
    assert r.status_code == 303 and "partout=1" in r.headers["location"]
    assert second.get("/").status_code == 303
    assert first.get("/").status_code == 303
    with portal.runtime.engine.connect() as conn:
        acc_id = conn.execute(select(account.c.id).where(account.c.login == nir)).scalar()
        assert sessions.count_for(conn, acc_id) == 0


def test_pages_are_french_and_accessible(portal: Portal) -> None:
    b = portal.browser()
    html = b.get("/connexion").text
    assert '<html lang="fr">' in html
    for field_id in ("identifiant", "mot_de_passe"):
        assert f'<label for="{field_id}">' in html and f'id="{field_id}"' in html
    assert 'aria-describedby="identifiant-aide"' in html
    r = portal.login(b, "1800175056123", "mauvais mot de passe")
    assert 'role="alert"' in txt(r) and 'aria-live="assertive"' in txt(r)
    assert (
        'aria-invalid="true"' in txt(r) and "erreurs" in re.findall(r'aria-describedby="([^"]+)"', r.text)[0]
    )
    assert "Erreur :" in txt(r)  # not by colour alone
    css = b.get("/static/dmp.css").text
    assert ":focus-visible" in css


def test_a_failing_download_answers_a_french_page(portal: Portal) -> None:
    b, _, _, doc_id = _activated(portal)
    for blob in (portal.runtime.settings.var_dir / "blobs").rglob("*"):
        if blob.is_file():
            blob.write_bytes(b"altered")
    r = b.get(f"/documents/{doc_id}")
    assert r.status_code >= 500 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in r.text and "Erreur" in r.text
    assert b.get("/").status_code == 200  # still logged in


def test_patient_logins_are_in_the_trail(portal: Portal) -> None:
    """TR-02: the patient sees their own logins, successful or refused, in their trail."""
    import uuid as _uuid

    from sqlalchemy import select

    from dmp.store.schema_audit import audit_entry

    b, nir, out, _ = _activated(portal)
    other = portal.browser()
    assert portal.full_login_totp(other, nir, str(out["secret"])).status_code == 303
    third = portal.browser()
    assert portal.login(third, nir).status_code == 303
    assert portal.second_factor(third, "000000").status_code == 401
    found = portal.api.get("Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.8|{nir}"}).json()
    pid = _uuid.UUID(found["entry"][0]["resource"]["id"])
    with portal.api.runtime.engine.connect() as conn:
        logins = conn.execute(
            select(audit_entry.c.outcome, audit_entry.c.source_address).where(
                audit_entry.c.patient_id == pid, audit_entry.c.action == "patient.login"
            )
        ).all()
    assert [o for o, _ in logins] == ["success", "refused"]
    assert all(addr for _, addr in logins)
