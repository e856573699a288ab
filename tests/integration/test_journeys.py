"""Issue 13, « Done when »: the patient's and the professionals' journeys, end to end, in Debian's
Chromium driven by Playwright, on a fresh ``dmp demo`` served by a real uvicorn.

Every page of the journeys is checked with axe-core (0 violations of any impact) at 390 px and
1280 px, and must not be wider than the viewport at 390 px (WCAG 1.4.10, reflow). Skipped, with
the reason, when chromium, playwright or axe-core is missing; under CI=true that is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    DemoServer,
    Mailbox,
    chromium,
    demo_server,
    missing_tools,
    new_page,
    page_problems,
    smtp_server,
    totp_now,
)
from sqlalchemy import Engine, update

from conftest import truncate
from dmp.demo.loader import (
    DEMO_PATIENT_PASSWORD,
    DEMO_PRO_ACCOUNTS,
    DEMO_REPRESENTATIVE_EMAIL,
    DEMO_REPRESENTATIVE_PASSWORD,
    DEMO_REPRESENTATIVE_TOTP,
    SHOWCASE_NIR,
    demo_professional,
)
from dmp.domain.ins import SYSTEM_NIR, parse_ins
from dmp.outbox import EMAIL, MailSettings, SmtpTransport, deliver_due
from dmp.services import records
from dmp.store.schema_accounts import account
from dmp.terminology import valueset

pytestmark = pytest.mark.slow

PATIENT_EMAIL = "dominique.pat-trois@example.org"
DOCUMENTS = re.compile("^Documents")
DIRECTIVES = "Mes directives anticipées"
PUBLISHED_TITLE = "Consultation de suivi du diabète"
WHY = "Patiente inconsciente aux urgences, antécédents et traitements à connaître"
CONSULTATION = next(f"{c.system}|{c.code}" for c in valueset("J66") if c.code == "11488-4")
LAB_LINK = "Lire « Compte rendu d'examens de biologie médicale"
PRO = {a.slug: a for a in DEMO_PRO_ACCOUNTS}


def _require_tools() -> None:
    missing = missing_tools()
    if missing:
        reason = "navigateur indisponible : " + " ; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " — obligatoire en CI")
        pytest.skip(reason)


@pytest.fixture()
def demo(engine: Engine, tmp_path: Path) -> Iterator[DemoServer]:
    _require_tools()
    if engine.dialect.name != "postgresql":
        # One back end is enough for journeys through the pages (the services are tested on both;
        # scripts/screenshots.py walks the pages on SQLite).
        pytest.skip("parcours joués une fois, sur PostgreSQL")
    truncate(engine)
    url = engine.url.render_as_string(hide_password=False)
    with demo_server(url, tmp_path / "var") as server:
        yield server


@pytest.fixture()
def browser() -> Iterator[Any]:
    _require_tools()
    with chromium() as b:
        yield b


class Journey:
    """One person's browser tab; every page reached goes through the checks."""

    def __init__(self, browser: Any, demo: DemoServer) -> None:
        self.page = new_page(browser)
        self.base = demo.base
        self.problems: dict[str, list[str]] = {}

    def check(self, name: str) -> None:
        found = page_problems(self.page)
        if found:
            self.problems[f"{name} ({self.page.url.removeprefix(self.base)})"] = found

    def goto(self, path: str, name: str) -> Any:
        resp = self.page.goto(self.base + path)
        # The strict policy is still sent: only the test browser ignores it to inject axe-core.
        csp = resp.headers.get("content-security-policy") or ""
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp
        self.check(name)
        return resp

    def click(self, role: str, name: str, page_name: str, *, exact: bool = False, within: Any = None) -> None:
        (within or self.page).get_by_role(role, name=name, exact=exact).first.click()
        self.page.wait_for_load_state()
        self.check(page_name)

    def heading(self) -> str:
        return str(self.page.get_by_role("heading", level=1).inner_text())

    def assert_clean(self) -> None:
        report = "\n".join(f"- {page}:\n    " + "\n    ".join(p) for page, p in self.problems.items())
        assert not self.problems, "accessibilité ou largeur :\n" + report

    def login(self, space: str, login: str, password: str, code: str | Any) -> None:
        prefix = "/pro" if space == "pro" else ""
        self.goto(prefix + "/connexion", "connexion")
        self.page.get_by_label("Identifiant" if space != "pro" else "RPPS", exact=False).first.fill(login)
        self.page.get_by_label("Mot de passe").fill(password)
        self.page.get_by_role("button", name="Se connecter").click()
        self.page.wait_for_url(f"{self.base}{prefix}/connexion/code")
        self.check("code de connexion")
        self.page.get_by_label("Code de vérification (6 chiffres)").fill(code() if callable(code) else code)
        self.page.get_by_role("button", name="Valider").click()
        self.page.wait_for_load_state()


def test_the_checks_catch_a_page_that_breaks_them(browser: Any) -> None:
    page = new_page(browser)
    page.set_content('<html><body><input type="text"><p>' + "x" * 300 + "</p></body></html>")
    found = page_problems(page)
    for width in (390, 1280):
        for rule in ("html-has-lang", "document-title", "label", "landmark-one-main", "page-has-heading-one"):
            assert any(p.startswith(f"{width} px, axe ") and f" {rule} (" in p for p in found), (width, rule)
    assert any(p.startswith("390 px : page plus large que l'écran") for p in found)
    assert not any(p.startswith("1280 px : page plus large") for p in found)  # checked at phone width
    page.context.close()


def _pdf(title: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text=title)
    return bytes(pdf.output())


def _pro_login(j: Journey, slug: str) -> None:
    acc, pro = PRO[slug], demo_professional(slug)
    j.login("pro", pro.rpps, acc.password, lambda: totp_now(acc.totp_secret))
    j.check("espace professionnel")


def _open_record(j: Journey, ins: str) -> None:
    j.page.get_by_label("INS du patient", exact=False).fill(ins)
    j.page.get_by_role("button", name="Rechercher").click()
    j.page.wait_for_load_state()
    j.check("dossier du patient")


def _email_codes(demo: DemoServer) -> None:
    """The showcase patient receives her login codes by e-mail (her choice at activation)."""
    with demo.runtime.engine.begin() as conn:
        mine = account.c.login == SHOWCASE_NIR
        conn.execute(update(account).where(mine).values(second_factor=EMAIL, email=PATIENT_EMAIL))


def _deliver(demo: DemoServer, port: int) -> None:
    mail = MailSettings(host="127.0.0.1", port=port, timeout=5.0, mail_from="DMP <ne-pas-repondre@dmp.test>")
    deliver_due(demo.runtime.engine, {EMAIL: SmtpTransport(mail)}, datetime.now(UTC))


def _patient_login(j: Journey, demo: DemoServer, port: int, box: Mailbox) -> None:
    def code() -> str:
        _deliver(demo, port)
        return box.last_code(PATIENT_EMAIL)

    j.login("patient", SHOWCASE_NIR, DEMO_PATIENT_PASSWORD, code)
    j.page.wait_for_url(f"{j.base}/")
    assert j.heading() == "Mon DMP"
    j.check("accueil patient")


def test_the_patient_takes_control_then_the_professionals_meet_her_choices(
    demo: DemoServer, browser: Any
) -> None:
    david = demo_professional("dr-david")
    with smtp_server() as (port, box):
        _email_codes(demo)
        me = Journey(browser, demo)
        _patient_login(me, demo, port, box)
        # Read the lab report in the page.
        me.click("link", LAB_LINK, "lecture d'un document")
        assert "glycémie" in me.page.content().lower()
        me.goto("/notifications", "notifications")
        me.goto("/alertes", "mes alertes")
        # Mask a document from professionals, through its confirmation page.
        me.goto("/gerer", "gérer mon dossier")
        me.click("link", "Masquer des documents", "masquage")
        me.click("link", "Masquer « Historique de vaccinations", "confirmation du masquage")
        me.click("button", "Confirmer : masquer", "masquage confirmé")
        assert "Masqué aux professionnels" in me.page.content()
        # Block a professional.
        me.goto("/acces", "qui a accès")
        me.page.get_by_label("Numéro RPPS du professionnel à bloquer").fill(david.rpps)
        me.click("button", "Bloquer ce professionnel", "confirmation du blocage")
        me.click("button", "Confirmer", "professionnel bloqué", exact=True)
        assert "Le professionnel est bloqué" in me.page.content()
        blocked_list = me.page.get_by_role("region", name="Professionnels bloqués").inner_text()
        assert david.name.split()[-1] in blocked_list
        # An emergency consent: masked documents visible in an emergency.
        section = me.page.get_by_role("group", name="Documents masqués lors d'un accès en urgence")
        section.get_by_label("Autoriser").check()
        me.click("button", "Modifier : Documents masqués lors d'un accès en urgence", "confirmation urgence")
        me.click("button", "Confirmer", "consentement d'urgence enregistré", exact=True)
        assert "Votre choix pour les accès en urgence est enregistré" in me.page.content()
        # She adds her directives anticipées (a PDF of her own).
        me.goto("/mes-documents/ajouter", "ajouter un document")
        me.page.get_by_label("Fichier", exact=False).first.set_input_files(
            {"name": "directives.pdf", "mimeType": "application/pdf", "buffer": _pdf(DIRECTIVES)}
        )
        me.page.get_by_label("Type de document").select_option(label="Directives anticipées")
        me.page.get_by_label("Titre").fill(DIRECTIVES)
        me.page.get_by_label("Date du document").fill(datetime.now(UTC).strftime("%d/%m/%Y"))
        me.click("button", "Ajouter le document", "document ajouté")
        me.click("link", "Voir mes documents", "accueil après ajout")
        assert DIRECTIVES in me.page.get_by_role("table", name=DOCUMENTS).inner_text()
        me.assert_clean()

    # The blocked professional is refused.
    blocked = Journey(browser, demo)
    _pro_login(blocked, "dr-david")
    _open_record(blocked, SHOWCASE_NIR)
    assert blocked.page.get_by_label("J'atteste", exact=False).count() == 0  # no way round the block
    assert blocked.page.get_by_role("table").count() == 0
    assert blocked.page.get_by_role("heading", name="Synthèse du dossier").count() == 0
    assert "le patient a bloqué ce professionnel" in blocked.page.get_by_role("main").inner_text()
    blocked.assert_clean()

    # The second GP attests the patient's authorisation, reads the synthesis, searches.
    gp = Journey(browser, demo)
    _pro_login(gp, "dr-roux")
    _open_record(gp, SHOWCASE_NIR)
    gp.page.get_by_label("J'atteste que le patient m'a autorisé(e) à consulter son DMP").check()
    gp.click("button", "Enregistrer l'autorisation", "attestation enregistrée")
    gp.click("link", "Ouvrir le dossier", "dossier ouvert après attestation")
    assert gp.page.get_by_role("heading", name="Synthèse du dossier").is_visible()
    gp.page.get_by_label("Rechercher dans le texte des documents").fill("glycémie")
    gp.click("button", "Rechercher", "recherche glycémie", exact=True)
    found = gp.page.get_by_role("table", name=DOCUMENTS).inner_text()
    assert "glycémie à jeun" in found
    gp.click("link", LAB_LINK, "lecture par le professionnel")
    assert "Glycémie" in gp.page.content()
    # She publishes a PDF from the record page.
    gp.page.go_back()
    gp.click("link", "Publier un document", "formulaire de publication")
    gp.page.get_by_label("Fichier du document", exact=False).set_input_files(
        {"name": "consultation.pdf", "mimeType": "application/pdf", "buffer": _pdf(PUBLISHED_TITLE)}
    )
    gp.page.get_by_label("Type de document").select_option(value=CONSULTATION)
    gp.page.get_by_label("Classe du document").select_option(value="10")
    gp.page.get_by_label("Titre").fill(PUBLISHED_TITLE)
    gp.page.get_by_label("Date de l'acte").fill(datetime.now(UTC).strftime("%d/%m/%Y"))
    gp.page.get_by_label("Type de structure").select_option(value="SA07")
    gp.page.get_by_label("Cadre d'exercice").select_option(value="AMBULATOIRE")
    gp.click("button", "Publier le document", "document publié")
    assert "Document publié" in gp.page.get_by_role("main").inner_text()
    gp.click("link", "Retour au dossier", "dossier après publication")
    assert PUBLISHED_TITLE in gp.page.get_by_role("table", name=DOCUMENTS).inner_text()
    gp.click("link", "Mon historique d'accès à ce dossier", "mon historique d'accès")
    assert "a ajouté un document" in gp.page.get_by_role("main").inner_text()
    gp.goto("/pro/patients", "recherche par traits")
    gp.assert_clean()

    # An emergency physician, not authorised, breaks the glass from the refusal page.
    urgent = Journey(browser, demo)
    _pro_login(urgent, "dr-berenger")
    _open_record(urgent, SHOWCASE_NIR)
    refusal = urgent.page.get_by_role("main").inner_text()
    assert "Le patient en sera informé" in refusal
    urgent.page.get_by_label("Justification de l'accès en urgence", exact=False).fill(WHY)
    urgent.click("button", "Accéder au dossier en urgence", "dossier ouvert en urgence")
    assert "Accès en urgence (bris de glace)" in urgent.page.get_by_role("main").inner_text()
    assert urgent.page.get_by_role("heading", name="Synthèse du dossier").is_visible()
    urgent.assert_clean()

    # The patient sees the published PDF, who attested, and is told of the emergency access.
    me.goto("/", "accueil patient après les professionnels")
    assert PUBLISHED_TITLE in me.page.get_by_role("table", name=DOCUMENTS).inner_text()
    me.click("link", f"Lire « {PUBLISHED_TITLE}", "lecture du PDF publié")
    me.goto("/acces", "qui a accès après attestation")
    assert "ROUX" in me.page.get_by_role("region", name="Professionnels autorisés").inner_text()
    me.goto("/notifications", "notifications après l'accès en urgence")
    told = me.page.get_by_role("main").inner_text()
    assert WHY in told and "BÉRENGER" in told
    # Her access history shows both professionals: the refusal and the attested access.
    me.goto("/", "accueil patient")
    me.click("link", "Historique des accès", "historique des accès")
    history = me.page.get_by_role("table", name=re.compile("^Historique des accès")).inner_text()
    assert "Claire ROUX" in history and "Charles DAVID" in history
    assert "Hélène BÉRENGER" in history and WHY in history
    # Filtered to the professional she blocked: his refused attempt only.
    chooser = me.page.get_by_label("Professionnel", exact=True)
    chooser.select_option(value=chooser.locator("option", has_text="DAVID").get_attribute("value"))
    me.click("button", "Filtrer", "historique filtré sur un professionnel", exact=True)
    only_david = me.page.get_by_role("table", name=re.compile("^Historique des accès")).inner_text()
    assert "Charles DAVID" in only_david and "refus" in only_david
    assert "Claire ROUX" not in only_david and "BÉRENGER" not in only_david
    me.assert_clean()


def test_the_representative_does_not_see_what_is_hidden_from_parents(demo: DemoServer, browser: Any) -> None:
    mum = Journey(browser, demo)
    mum.login("patient", DEMO_REPRESENTATIVE_EMAIL, DEMO_REPRESENTATIVE_PASSWORD,
              lambda: totp_now(DEMO_REPRESENTATIVE_TOTP))
    mum.page.wait_for_url(f"{mum.base}/")
    mum.check("accueil de la représentante")
    text = mum.page.content()
    assert "en tant que représentant légal" in text and "Léa" in text
    titles = mum.page.get_by_role("table", name=DOCUMENTS).inner_text()
    assert "vaccinations" in titles
    assert "COVID" not in titles and "TROD" not in titles
    mum.assert_clean()


def test_the_patient_closes_her_record_and_the_desk_reactivates_it(demo: DemoServer, browser: Any) -> None:
    with smtp_server() as (port, box):
        _email_codes(demo)
        me = Journey(browser, demo)
        _patient_login(me, demo, port, box)
        me.goto("/gerer", "gérer mon dossier")
        me.goto("/fermeture", "fermeture")
        me.page.get_by_label("Motif (facultatif)").fill("Je ne souhaite plus de DMP")
        me.page.get_by_label("Je confirme vouloir fermer mon DMP (obligatoire)").check()
        me.click("button", "Fermer mon dossier", "dossier fermé")
        assert "fermé" in me.page.content()
        with demo.runtime.engine.connect() as conn:
            row = records.find_by_ins(conn, parse_ins(SYSTEM_NIR, SHOWCASE_NIR, allow_test=False))
        out = demo.cli("record", "reactivate", f"Patient/{row.id}", "--agent", "Accueil CPAM de Reims")
        assert "DMP réactivé." in out
        again = Journey(browser, demo)
        _patient_login(again, demo, port, box)
        again.click("link", LAB_LINK, "lecture après réactivation")
        assert "glycémie" in again.page.content().lower()
        me.assert_clean()
        again.assert_clean()
