"""The professionals' web space (AU-05): directory, RPPS + password + TOTP, search by INS,
documents through the policy; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select
from test_representative_portal import _env

from dmp.accounts import service
from dmp.cli import main
from dmp.domain.actor import ActorKind
from dmp.store.schema_audit import audit_entry


def test_professional_logs_in_and_reads_through_the_policy(portal: Portal) -> None:
    ident, pid = portal.record()  # opened by the "doctor" card: authorised
    doc_id = portal.publish(ident, title="Compte rendu opératoire")
    rpps, code = portal.professional("doctor")
    b = portal.browser("/pro")
    assert b.get("/pro").status_code == 303  # login first
    out = portal.activate(b, rpps, code)
    assert "secret" in out  # professionals use an authenticator (TOTP) only
    b2 = portal.browser("/pro")
    r = portal.full_login_totp(b2, rpps, out["secret"])
    assert r.status_code == 303 and r.headers["location"] == "/pro"
    assert b2.cookie()  # its own cookie (__Host-dmp_pro)
    assert b2.get("/").status_code == 303  # the patients' space is another realm
    page = b2.get(f"/pro/patient?ins={ident.nir}")
    assert page.status_code == 200 and "Compte rendu opératoire" in txt(page)
    got = b2.get(f"/pro/documents/{doc_id}")
    assert got.status_code == 200 and got.content.startswith(b"<?xml")
    # Errors in French.
    assert "15 caractères" in txt(b2.get("/pro/patient?ins=123"))
    assert b2.get("/pro/patient?ins=279035121518989").status_code == 404

    # The web actor is the API token's actor.
    with portal.runtime.engine.connect() as conn:
        acc = service.find(conn, service.PRO, rpps)
    assert acc is not None
    web_actor = service.actor_for(acc)
    api_actor = portal.api.app.state.dmp.signer.verify(portal.api.token("doctor"), now=portal.clock.now)
    assert web_actor.kind is ActorKind.PROFESSIONAL
    for attr in ("kind", "id", "name", "profession", "specialty", "structure_id", "structure_name"):
        assert getattr(web_actor, attr) == getattr(api_actor, attr), attr


def test_unauthorised_professional_attests_then_reads(portal: Portal) -> None:
    ident, _ = portal.record()
    doc_id = portal.publish(ident, title="Lettre de liaison")
    rpps, code = portal.professional("doctor2", "david@chu.test")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    refused = b.get(f"/pro/patient?ins={ident.nir}")
    assert refused.status_code == 403 and "n'a pas autorisé" in txt(refused)
    assert "Lettre de liaison" not in txt(refused)
    assert b.get(f"/pro/documents/{doc_id}").status_code == 404  # same as a missing document
    with portal.runtime.engine.connect() as conn:  # the refusals are in the audit trail, with the address
        refused_rows = conn.execute(
            select(audit_entry.c.rule_id, audit_entry.c.source_address).where(
                audit_entry.c.action == "access.refused", audit_entry.c.actor_id == "8" + rpps
            )
        ).all()
    assert ("AC-01.not-authorised", "testclient") in [tuple(r) for r in refused_rows]
    r = b.post("/pro/patient/autorisation", ins=ident.nir, atteste="oui")
    assert r.status_code == 303
    with portal.runtime.engine.connect() as conn:  # the attestation is traced like a FHIR Consent
        changes = conn.execute(
            select(audit_entry.c.detail, audit_entry.c.outcome).where(
                audit_entry.c.action == "consent.change", audit_entry.c.actor_id == "8" + rpps
            )
        ).all()
    assert [tuple(c) for c in changes] == [("authorisation ajouté", "success")]
    assert "Lettre de liaison" in txt(b.get(f"/pro/patient?ins={ident.nir}"))


def test_suspended_professional_is_logged_out_and_refused(portal: Portal) -> None:
    rpps, code = portal.professional("nurse", "anne@cabinet.test")
    b = portal.browser("/pro")
    out = portal.activate(b, rpps, code)
    assert b.get("/pro").status_code == 200
    result = CliRunner().invoke(main, ["pro", "suspend", rpps], env=_env(portal))
    assert result.exit_code == 0, result.output
    assert b.get("/pro").status_code == 303
    r = portal.login(portal.browser("/pro"), rpps)
    assert r.status_code == 403 and "suspendu" in txt(r)
    wrong = portal.login(portal.browser("/pro"), rpps, "pas le bon mot de passe")
    assert wrong.status_code == 401  # suspension is only said after the right password
    assert CliRunner().invoke(main, ["pro", "reactivate", rpps], env=_env(portal)).exit_code == 0
    assert portal.full_login_totp(portal.browser("/pro"), rpps, out["secret"]).status_code == 303


def test_pro_add_and_import_commands(portal: Portal, tmp_path: Path) -> None:
    env = _env(portal)
    added = CliRunner().invoke(
        main,
        [
            "pro",
            "add",
            "--rpps",
            "10001234565",
            "--profession",
            "10",
            "--name",
            "Charles MULLER",
            "--specialty",
            "SM26",
            "--email",
            "muller@cabinet.test",
        ],
        env=env,
    )
    assert added.exit_code == 0 and "Code d'activation" in added.output, added.output
    bad = CliRunner().invoke(
        main,
        ["pro", "add", "--rpps", "10001234566", "--profession", "10", "--name", "X", "--email", "x@y.fr"],
        env=env,
    )
    assert bad.exit_code == 1 and "Luhn" in bad.output
    csv_file = tmp_path / "extrait.csv"
    csv_file.write_text(
        "\ufeffType d'identifiant PP|Identifiant PP|Identification nationale PP|Nom d'exercice|"
        "Prénom d'exercice|Code profession|Libellé profession|Code savoir-faire|"
        "Identifiant technique de la structure|Raison sociale site|Adresse e-mail (coord. structure)\n"
        "8|10003456786|810003456786|DIDOT|Pierre|21|Pharmacien||S1|Pharmacie de la Gare|\n"
        "8|10003456786|810003456786|DIDOT|Pierre|21|Pharmacien||S2|Autre site|\n"
        "8|10004567896|810004567896|LEROY|Anne|60|Infirmier||S3|Cabinet infirmier|anne@cab.test\n"
        "8|10001234565|810001234565|MULLER|Charles|10|Médecin|SM26|S4|Cabinet du Parc|\n"
        "8|12345678901|812345678901|FAUX|Numéro|10|Médecin||||\n"
        "8|10002345675|810002345675|DAVID|Charles|99|Inconnue||||\n",
        encoding="utf-8",
    )
    codes = tmp_path / "codes.csv"
    result = CliRunner().invoke(main, ["pro", "import", str(csv_file), "--codes-out", str(codes)], env=env)
    assert result.exit_code == 1, result.output  # some lines were refused
    assert (
        "Comptes créés : 2 ; mis à jour : 1 ; lignes en double ignorées : 1 ; lignes en erreur : 2"
        in result.output
    )
    assert "ligne 6" in result.output and "ligne 7" in result.output
    assert codes.read_text().splitlines()[1].startswith("10003456786;")  # DIDOT: no address
    assert len(codes.read_text().splitlines()) == 2
    assert os.stat(codes).st_mode & 0o777 == 0o600
    with portal.runtime.engine.connect() as conn:
        muller = service.find(conn, service.PRO, "10001234565")
        assert muller is not None and muller.structure_name == "Cabinet du Parc"
