"""Legal representatives of minors (AC-19) and the majority transition (LC-08), through the
desk commands and the portal, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from click.testing import CliRunner
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select

from conftest import new_identity
from dmp.cli import main
from dmp.outbox.templates import PARIS
from dmp.services import notifications
from dmp.store import sealed_fields
from dmp.store.schema_outbox import outbox_message
from dmp.store.schema_policy import record_consent


def _env(portal: Portal) -> dict[str, str]:
    s = portal.runtime.settings
    return {
        "DMP_DATABASE_URL": portal.runtime.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(s.var_dir),
        "DMP_BASE_URL": s.base_url,
    }


def _cli(portal: Portal, *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=_env(portal))
    assert result.exit_code == 0, result.output
    return result


def _code(output: str) -> str:
    found = re.search(r"Code d'activation[^:]*: ([A-Z0-9-]{19})", output)
    assert found, output
    return found.group(1)


def _minor(portal: Portal, born: date | None = None) -> tuple[Any, UUID]:
    return portal.record(
        new_identity(given="Léo", birth_date=born or date(2016, 4, 12), sex=new_identity().sex)
    )


def test_representative_sees_the_child_record_but_not_hidden_documents(portal: Portal) -> None:
    ident, pid = _minor(portal)
    portal.publish(ident, title="Carnet de vaccination")
    portal.publish(ident, title="Consultation confidentielle", flags=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    out = _cli(
        portal,
        "record",
        "add-representative",
        f"Patient/{pid}",
        "--email",
        "Parent@Exemple.fr",
        "--phone",
        "06 11 22 33 44",
        "--name",
        "Camille PARENT",
        "--agent",
        "Agent ACCUEIL",
    ).output
    assert "compte créé" in out
    b = portal.browser()
    rep = portal.activate(b, "parent@exemple.fr", _code(out))
    home = b.get("/")
    assert home.status_code == 200, home.text
    assert "représentant légal" in txt(home) and "Carnet de vaccination" in txt(home)
    assert "Consultation confidentielle" not in txt(home)
    with portal.runtime.engine.connect() as conn:
        from dmp.store.schema import document

        stored = conn.execute(select(document).where(document.c.patient_id == pid)).all()
        rows = sealed_fields.open_rows(conn, stored, "document", ("title",))  # SE-02: titles sealed
        [hidden] = [r.id for r in rows if r.title == "Consultation confidentielle"]
    assert b.get(f"/documents/{hidden}").status_code == 404
    # The holder's own account sees both.
    child_code = portal.patient_account(pid)
    child = portal.browser()
    portal.activate(child, ident.nir, child_code)
    child_home = child.get("/").text
    assert "Consultation confidentielle" in child_home and "Carnet de vaccination" in child_home
    # A second child: same account (no new code), the representative chooses the record.
    ident2, pid2 = _minor(portal, date(2019, 9, 3))
    portal.publish(ident2, title="Bilan de santé 3 ans")
    again = _cli(
        portal,
        "record",
        "add-representative",
        f"Patient/{pid2}",
        "--email",
        "parent@exemple.fr",
        "--agent",
        "Agent ACCUEIL",
    ).output
    assert "compte existant" in again and "Code d'activation" not in again
    b2 = portal.browser()
    r = portal.full_login_totp(b2, "parent@exemple.fr", rep["secret"])
    assert r.status_code == 303 and r.headers["location"] == "/dossiers"
    choose = b2.get("/dossiers")
    assert choose.text.count('name="dossier"') == 2
    r = b2.post("/dossiers", dossier=str(pid2))
    assert r.status_code == 303
    assert "Bilan de santé 3 ans" in txt(b2.get("/"))
    # Removing a representative ends that access at once.
    _cli(
        portal,
        "record",
        "remove-representative",
        f"Patient/{pid2}",
        "--email",
        "parent@exemple.fr",
        "--agent",
        "Agent ACCUEIL",
    )
    assert b2.get("/").headers.get("location") == "/dossiers"


def test_representative_of_an_adult_is_refused(portal: Portal) -> None:
    _, pid = portal.record()  # born in 1980
    result = CliRunner().invoke(
        main,
        ["record", "add-representative", f"Patient/{pid}", "--email", "p@exemple.fr", "--agent", "Agent"],
        env=_env(portal),
    )
    assert result.exit_code == 1 and "majeur" in result.output


def _turns_18_tomorrow(today: date) -> date:
    tomorrow = today + timedelta(days=1)
    try:
        return tomorrow.replace(year=tomorrow.year - 18)
    except ValueError:
        return date(tomorrow.year - 18, 3, 1)


def test_majority_ends_representation_and_asks_the_holder_to_confirm(portal: Portal) -> None:
    today = portal.clock.now.astimezone(PARIS).date() if PARIS else portal.clock.now.date()
    ident, pid = _minor(portal, _turns_18_tomorrow(today))
    portal.publish(ident, title="Compte rendu d'hospitalisation")
    holder_code = portal.patient_account(pid, email="ado@exemple.fr")
    holder = portal.browser()
    holder_out = portal.activate(holder, ident.nir, holder_code)
    rep_code = portal.representative(pid, "tuteur@exemple.fr")
    assert rep_code
    rep = portal.browser()
    rep_out = portal.activate(rep, "tuteur@exemple.fr", rep_code)
    assert "Compte rendu d'hospitalisation" in txt(rep.get("/"))

    portal.clock.advance(days=2)  # the holder is now 18
    b = portal.browser()
    r = portal.full_login_totp(b, "tuteur@exemple.fr", rep_out["secret"])
    assert r.headers["location"] == "/dossiers"
    assert "Aucun dossier ne vous est accessible" in txt(b.get("/dossiers"))
    with portal.runtime.engine.connect() as conn:
        statuses = conn.execute(
            select(record_consent.c.status, record_consent.c.ended_by).where(
                record_consent.c.patient_id == pid, record_consent.c.kind == "representative"
            )
        ).all()
        assert [(s, by) for s, by in statuses] == [("inactive", "systeme:majorite")]
        query = select(outbox_message).where(outbox_message.c.template == "majority_notice")
        rows = conn.execute(query).all()
        notice = [m.recipient for m in sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient",))]
        assert notice == ["ado@exemple.fr"]
        texts = [text for _, _, text in notifications.list_for(conn, pid)]  # SE-02: sealed
        assert any("majeur" in t for t in texts)
    # The holder is asked to confirm at the next login, and sees nothing before.
    h = portal.browser()
    r = portal.full_login_totp(h, ident.nir, holder_out["secret"])
    assert r.status_code == 303 and r.headers["location"] == "/majorite"
    assert h.get("/").headers["location"] == "/majorite"
    page = h.get("/majorite")
    assert "Je confirme la poursuite de mon DMP" in txt(page)
    assert h.post("/majorite").status_code == 400
    h.get("/majorite")
    assert h.post("/majorite", poursuite="oui").headers["location"] == "/"
    assert "Compte rendu d'hospitalisation" in txt(h.get("/"))
    # The notice reached the notification centre.
    assert "majeur" in txt(h.get("/notifications"))


def test_majority_check_command(portal: Portal, tmp_path: Path) -> None:
    from dmp.accounts import service

    today = portal.clock.now.date()
    born = _turns_18_tomorrow(today - timedelta(days=3))  # turned 18 two days ago
    ident, pid = _minor(portal, born)
    with portal.runtime.engine.begin() as conn:
        issued = service.add_representative(
            conn,
            pid,
            portal.clock.now - timedelta(days=5),
            settings=portal.runtime.settings,
            email="mere@exemple.fr",
            agent="Agent",
        )
    assert issued.activation_code
    out = _cli(portal, "record", "majority-check").output
    assert "1 dossier(s) passé(s) à la majorité" in out and f"Patient/{pid}" in out
    assert "0 dossier(s)" in _cli(portal, "record", "majority-check").output


def test_majority_timeline_grace_then_closed_answer_until_confirmed(portal: Portal) -> None:
    """LC-08 end to end: at 18 the record is pending; professionals keep access during the grace
    period, then meet the closed-record answer while the holder still reads; confirming restores it."""
    from test_policy_api import as_patient

    from dmp.accounts import service
    from dmp.accounts.representatives import check_majority, confirm_majority
    from dmp.store.schema import patient

    today = portal.clock.now.astimezone(PARIS).date() if PARIS else portal.clock.now.date()
    ident, pid = _minor(portal, _turns_18_tomorrow(today))
    portal.publish(ident, title="Bilan")
    portal.patient_account(pid, email="ado@exemple.fr")
    assert portal.representative(pid, "tuteur@exemple.fr")
    search = {"patient": f"Patient/{pid}"}
    with portal.runtime.engine.begin() as conn:  # the check of the day after tomorrow
        assert check_majority(conn, pid, portal.clock.now + timedelta(days=2))
    assert portal.api.get("DocumentReference", params=search).status_code == 200  # grace period
    grace = portal.runtime.settings.majority_grace_days
    with portal.runtime.engine.begin() as conn:  # the grace period has passed, unconfirmed
        conn.execute(
            patient.update()
            .where(patient.c.id == pid)
            .values(majority_pending_since=portal.clock.now - timedelta(days=grace + 1))
        )
    refused = portal.api.get("DocumentReference", params=search)
    assert refused.status_code == 409, refused.text
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "RECORD_CLOSED"
    holder = as_patient(portal.api, str(pid))
    assert portal.api.get("DocumentReference", who=holder, params=search).status_code == 200
    with portal.runtime.engine.begin() as conn:
        acc = service.patient_account(conn, pid)
        assert acc is not None
        confirm_majority(conn, acc.id, portal.clock.now)
    assert portal.api.get("DocumentReference", params=search).status_code == 200


def test_majority_refused_closes_the_record_for_professionals(portal: Portal) -> None:
    """LC-08 refusal: the holder, of age, refuses from the portal; the record closes (traced) and
    professionals then get the closed-record answer, with no grace period."""
    from dmp.accounts.representatives import check_majority
    from dmp.audit.actions import AuditAction
    from dmp.store.schema import patient
    from dmp.store.schema_audit import audit_entry

    today = portal.clock.now.astimezone(PARIS).date() if PARIS else portal.clock.now.date()
    ident, pid = _minor(portal, _turns_18_tomorrow(today))
    portal.publish(ident, title="Bilan")
    holder_code = portal.patient_account(pid, email="ado@exemple.fr")
    holder_out = portal.activate(portal.browser(), ident.nir, holder_code)
    assert portal.representative(pid, "tuteur@exemple.fr")
    search = {"patient": f"Patient/{pid}"}
    with portal.runtime.engine.begin() as conn:  # the check of the day after tomorrow: now 18
        assert check_majority(conn, pid, portal.clock.now + timedelta(days=2))
    h = portal.browser()
    assert portal.full_login_totp(h, ident.nir, holder_out["secret"]).headers["location"] == "/majorite"
    h.get("/majorite")
    assert portal.api.get("DocumentReference", params=search).status_code == 200  # pending, in grace
    assert h.post("/majorite", decision="fermer").headers["location"] == "/"
    refused = portal.api.get("DocumentReference", params=search)
    assert refused.status_code == 409, refused.text
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "RECORD_CLOSED"
    with portal.runtime.engine.connect() as conn:
        status = conn.execute(select(patient.c.record_status).where(patient.c.id == pid)).scalar()
        actions = conn.execute(select(audit_entry.c.action).where(audit_entry.c.patient_id == pid)).scalars()
        assert status == "closed"
        assert AuditAction.MAJORITY_REFUSED.value in set(actions)


def test_a_professional_attestation_obeys_the_configured_grace(portal: Portal) -> None:
    """The consent use cases decide with the configured grace (DMP_MAJORITY_GRACE_DAYS), not a
    default: with a 2-day grace, a professional's attestation 3 days after majority is refused."""
    import dataclasses

    from test_policy_api import consent

    from dmp.accounts.representatives import check_majority
    from dmp.store.schema import patient

    portal.runtime.settings = dataclasses.replace(portal.runtime.settings, majority_grace_days=2)
    today = portal.clock.now.astimezone(PARIS).date() if PARIS else portal.clock.now.date()
    ident, pid = _minor(portal, _turns_18_tomorrow(today))
    portal.patient_account(pid, email="ado@exemple.fr")
    assert portal.representative(pid, "tuteur@exemple.fr")
    with portal.runtime.engine.begin() as conn:
        assert check_majority(conn, pid, portal.clock.now + timedelta(days=2))
        conn.execute(  # 3 days after majority: past a 2-day grace, within the default 30
            patient.update()
            .where(patient.c.id == pid)
            .values(majority_pending_since=portal.clock.now - timedelta(days=3))
        )
    doctor2 = portal.api.cards["doctor2"].idnps
    attest = portal.api.post("Consent", consent(str(pid), "authorisation", doctor2), who="doctor2")
    assert attest.status_code == 403, attest.text
    assert "n'a pas confirmé sa poursuite" in attest.json()["issue"][0]["diagnostics"]
