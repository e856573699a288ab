"""Declaring, removing a legal representative and the end of their access at majority are in
the record's trail, in the transaction of the change, and in the patient's history."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from click.testing import CliRunner
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select

from conftest import new_identity
from dmp.accounts import service
from dmp.audit import AuditAction, verify
from dmp.audit.history import history
from dmp.cli import main
from dmp.store.schema_audit import audit_entry
from dmp.store.schema_policy import record_consent

AGENT = "Agent ACCUEIL"


def _entries(portal: Portal, pid: UUID) -> list[Any]:
    with portal.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_entry).where(audit_entry.c.patient_id == pid).order_by(audit_entry.c.seq)
            )
        )


def _rep_consents(portal: Portal, pid: UUID) -> list[Any]:
    with portal.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(record_consent).where(
                    record_consent.c.patient_id == pid, record_consent.c.kind == "representative"
                )
            )
        )


def _minor(portal: Portal, born: date = date(2016, 4, 12)) -> UUID:
    return portal.record(new_identity(given="Léo", birth_date=born, sex=new_identity().sex))[1]


def _add(portal: Portal, pid: UUID, email: str = "parent@exemple.fr") -> service.Issued:
    with portal.runtime.engine.begin() as conn:
        return service.add_representative(
            conn, pid, portal.clock.now, settings=portal.runtime.settings, email=email, agent=AGENT
        )


def _remove(portal: Portal, pid: UUID, email: str = "parent@exemple.fr") -> bool:
    with portal.runtime.engine.begin() as conn:
        return service.remove_representative(conn, pid, email, portal.clock.now, agent=AGENT)


def _env(portal: Portal) -> dict[str, str]:
    s = portal.runtime.settings
    return {
        "DMP_DATABASE_URL": portal.runtime.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(s.var_dir),
        "DMP_BASE_URL": s.base_url,
    }


def _cli(portal: Portal, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), env=_env(portal))
    assert result.exit_code == code, result.output
    return result


def test_adding_a_representative_writes_one_entry_by_the_desk(portal: Portal) -> None:
    pid = _minor(portal)
    before = len(_entries(portal, pid))
    _add(portal, pid)
    added = _entries(portal, pid)[before:]
    assert [(e.action, e.outcome) for e in added] == [(AuditAction.REPRESENTATIVE_ADD.value, "success")]
    e = added[0]
    assert (e.actor_kind, e.actor_id, e.actor_name) == ("operator", f"guichet:{AGENT}", AGENT)
    (row,) = _rep_consents(portal, pid)
    assert json.loads(e.target_ids) == [f"Consent/{row.id}"]
    assert "parent@exemple.fr" not in (e.detail or "") and "parent" not in e.target_ids
    # Declaring the same representative again changes nothing and writes nothing.
    _add(portal, pid)
    assert len(_entries(portal, pid)) == before + 1
    with portal.runtime.engine.connect() as conn:
        assert verify(conn, pid).ok


def test_removing_a_representative_writes_one_entry(portal: Portal) -> None:
    pid = _minor(portal)
    _add(portal, pid)
    (row,) = _rep_consents(portal, pid)
    before = len(_entries(portal, pid))
    assert _remove(portal, pid) is True
    added = _entries(portal, pid)[before:]
    assert [(e.action, e.outcome) for e in added] == [(AuditAction.REPRESENTATIVE_REMOVE.value, "success")]
    assert (added[0].actor_kind, added[0].actor_id) == ("operator", f"guichet:{AGENT}")
    assert json.loads(added[0].target_ids) == [f"Consent/{row.id}"]
    # Removing again: nothing to end, no entry.
    assert _remove(portal, pid) is False
    assert len(_entries(portal, pid)) == before + 1


def test_removing_someone_who_is_not_a_representative_writes_nothing(portal: Portal) -> None:
    pid = _minor(portal)
    other = _minor(portal, date(2018, 1, 2))
    _add(portal, other, "autre@exemple.fr")  # a representative, but of another record
    before = len(_entries(portal, pid))
    assert _remove(portal, pid, "inconnu@exemple.fr") is False
    assert _remove(portal, pid, "autre@exemple.fr") is False
    assert len(_entries(portal, pid)) == before


def _turns_18_tomorrow(today: date) -> date:
    tomorrow = today + timedelta(days=1)
    try:
        return tomorrow.replace(year=tomorrow.year - 18)
    except ValueError:
        return date(tomorrow.year - 18, 3, 1)


def test_majority_ends_access_with_one_system_entry(portal: Portal) -> None:
    pid = _minor(portal, _turns_18_tomorrow(portal.clock.now.date()))
    _add(portal, pid, "mere@exemple.fr")
    _add(portal, pid, "pere@exemple.fr")
    ids = {f"Consent/{r.id}" for r in _rep_consents(portal, pid)}
    before = len(_entries(portal, pid))
    with portal.runtime.engine.begin() as conn:
        assert service.check_majority(conn, pid, portal.clock.now) is False  # still a minor
    assert len(_entries(portal, pid)) == before
    portal.clock.advance(days=2)
    with portal.runtime.engine.begin() as conn:
        assert service.check_majority(conn, pid, portal.clock.now) is True
        assert service.check_majority(conn, pid, portal.clock.now) is False  # already done
    added = _entries(portal, pid)[before:]
    assert [(e.action, e.outcome) for e in added] == [
        (AuditAction.REPRESENTATIVE_END_AT_MAJORITY.value, "success")
    ]
    assert (added[0].actor_kind, added[0].actor_id) == ("system", service.SYSTEM_AGENT)
    assert set(json.loads(added[0].target_ids)) == ids


def test_the_desk_commands_write_the_entries(portal: Portal) -> None:
    pid = _minor(portal)
    before = len(_entries(portal, pid))
    _cli(portal, "record", "add-representative", f"Patient/{pid}", "--email", "parent@exemple.fr",
         "--agent", AGENT)
    _cli(portal, "record", "remove-representative", f"Patient/{pid}", "--email", "parent@exemple.fr",
         "--agent", AGENT)
    _cli(portal, "record", "remove-representative", f"Patient/{pid}", "--email", "parent@exemple.fr",
         "--agent", AGENT, code=1)
    added = _entries(portal, pid)[before:]
    assert [(e.action, e.outcome, e.actor_id) for e in added] == [
        (AuditAction.REPRESENTATIVE_ADD.value, "success", f"guichet:{AGENT}"),
        (AuditAction.REPRESENTATIVE_REMOVE.value, "success", f"guichet:{AGENT}"),
    ]


def test_the_majority_check_command_writes_the_entry(portal: Portal) -> None:
    born = _turns_18_tomorrow(portal.clock.now.date() - timedelta(days=3))  # 18 two days ago
    pid = _minor(portal, born)
    with portal.runtime.engine.begin() as conn:
        service.add_representative(
            conn, pid, portal.clock.now - timedelta(days=5), settings=portal.runtime.settings,
            email="mere@exemple.fr", agent=AGENT,
        )
    before = len(_entries(portal, pid))
    assert f"Patient/{pid}" in _cli(portal, "record", "majority-check").output
    added = _entries(portal, pid)[before:]
    assert [e.action for e in added] == [AuditAction.REPRESENTATIVE_END_AT_MAJORITY.value]


def test_the_patient_reads_them_in_french_in_the_history(portal: Portal) -> None:
    pid = _minor(portal, _turns_18_tomorrow(portal.clock.now.date()))
    _add(portal, pid)
    _add(portal, pid, "tuteur@exemple.fr")
    _remove(portal, pid, "tuteur@exemple.fr")
    portal.clock.advance(days=2)
    with portal.runtime.engine.begin() as conn:
        service.check_majority(conn, pid, portal.clock.now)
    with portal.runtime.engine.connect() as conn:
        lines = {i.action: i.text for i in history(conn, pid)}
    assert lines[AuditAction.REPRESENTATIVE_ADD.value] == (
        f"{AGENT} (guichet d'accueil) a déclaré un représentant légal du titulaire du dossier"
    )
    assert lines[AuditAction.REPRESENTATIVE_REMOVE.value] == (
        f"{AGENT} (guichet d'accueil) a retiré l'accès d'un représentant légal au dossier"
    )
    assert lines[AuditAction.REPRESENTATIVE_END_AT_MAJORITY.value] == (
        "Le service DMP a mis fin à l'accès du représentant légal au dossier (majorité du titulaire)"
    )


def test_the_holder_sees_the_declaration_on_the_history_page(portal: Portal) -> None:
    minor = new_identity(given="Léo", birth_date=date(2016, 4, 12), sex=new_identity().sex)
    ident, pid = portal.record(minor)
    _add(portal, pid)
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    page = b.get("/historique")
    assert page.status_code == 200, page.text
    shown = txt(page)
    assert f"<td>{AGENT}</td>" in shown
    assert "<td>a déclaré un représentant légal du titulaire du dossier</td>" in shown
