"""« Historique des accès » filters and exports, and the home's « Quoi de neuf » (issue 13), through
the portal on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from portal import Browser, Portal, portal_fixture, txt  # noqa: F401  (fixture)
from pypdf import PdfReader

from conftest import Identity
from dmp.audit import iter_entries
from dmp.audit.history import PARIS


def _option(page: str, label: str) -> str:
    """The value of the « professionnel » option showing ``label``."""
    found = re.search(r'<option value="([^"]+)">' + re.escape(label), page)
    assert found, page[:3000]
    return found.group(1)


@dataclass
class World:
    ident: Identity
    pid: UUID
    secret: str  # TOTP of the holder
    hidden: str  # a document invisible to the patient (awaiting its announcement)
    first_day: str  # ISO dates (Paris) of the two days of events
    second_day: str


def _search(portal: Portal, ident: Identity, token: str | None = None, who: str = "doctor") -> Any:
    url = f"/fhir/DocumentReference?patient.identifier={ident.system}|{ident.nir}"
    headers = {"Authorization": f"Bearer {token or portal.api.token(who)}"}
    return portal.api.client.get(url, headers=headers)


def _world(portal: Portal) -> tuple[World, Browser]:
    ident, pid = portal.record()
    portal.publish(ident, title="Compte rendu ancien")
    hidden = portal.publish(ident, title="Résultat à annoncer", flags=("INVISIBLE_PATIENT",))
    assert _search(portal, ident, who="doctor2").status_code == 403
    portal.clock.advance(minutes=1)  # the clock moves only when told: the activation comes after
    b = portal.browser()
    secret = portal.activate(b, ident.nir, portal.patient_account(pid))["secret"]
    assert b.get("/").status_code == 200 and b.get("/historique").status_code == 200  # own reads
    first_day = portal.clock.now.astimezone(PARIS).date().isoformat()
    portal.clock.advance(days=2)
    # The card assertions are signed at the server's (moved) time: the cached tokens expired.
    portal.api._tokens["doctor"] = portal.api.token("doctor", now=portal.clock.now)  # type: ignore[arg-type]
    portal.publish(ident, title="Compte rendu nouveau")
    token = portal.api.token(
        "urgentist", purpose="ETREAT", justification="patient inconscient", now=portal.clock.now  # type: ignore[arg-type]
    )
    assert _search(portal, ident, token).status_code == 200
    second_day = portal.clock.now.astimezone(PARIS).date().isoformat()
    portal.clock.advance(hours=1)
    b = portal.browser()
    r = portal.full_login_totp(b, ident.nir, secret)
    assert r.status_code == 303, r.text
    return World(ident, pid, secret, hidden, first_day, second_day), b


def _rows(page: str) -> list[str]:
    """The history table's rows, as text."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return [re.sub(r"<[^>]+>", " ", r) for r in body.split("<tr")[1:]]


def _audit_reads(portal: Portal, pid: UUID) -> list[str]:
    with portal.runtime.engine.connect() as conn:
        return [e.detail or "" for e in iter_entries(conn, pid) if e.action == "audit.read"]


def test_filters_narrow_the_history(portal: Portal) -> None:
    w, b = _world(portal)
    page = b.get("/historique")
    assert page.status_code == 200, page.text
    shown = txt(page)
    # The select lists the professionals of the trail.
    for label in ("Dr Charles MULLER (Médecin)", "Dr Charles DAVID (Médecin)", "Dr Ursule RGENCE (Médecin)"):
        assert label in shown
    david = _option(shown, "Dr Charles DAVID")
    # By professional: the refused attempt of doctor2 only, said once and plainly.
    only = txt(b.get(f"/historique?professionnel={david}"))
    rows = _rows(only)
    assert len(rows) == 1 and "Dr Charles DAVID" in rows[0]
    refusal = "tentative refusée : recherche de documents (le patient n'a pas autorisé ce professionnel)"
    assert refusal in rows[0]
    assert "refusé (refusé)" not in shown and "(refusé)" not in shown
    assert "access.refused" not in shown and "DocumentReference" not in shown
    # By kind.
    published = _rows(txt(b.get("/historique?type=publication")))
    assert len(published) == 2 and all("a ajouté un document" in r for r in published)
    emergencies = _rows(txt(b.get("/historique?type=urgence")))
    assert emergencies and all("Ursule RGENCE" in r for r in emergencies)
    assert any("bris de glace" in r and "patient inconscient" in r for r in emergencies)
    refusals = _rows(txt(b.get("/historique?type=refus")))
    assert len(refusals) == 1 and "DAVID" in refusals[0]
    # By period: « au » includes its day.
    before = " ".join(_rows(txt(b.get(f"/historique?du={w.first_day}&au={w.first_day}"))))
    assert "a créé le dossier" in before and "RGENCE" not in before
    after = " ".join(_rows(txt(b.get(f"/historique?du={w.second_day}"))))
    assert "RGENCE" in after and "a créé le dossier" not in after
    # A filter that does not parse is said next to its field; no 500.
    bad = b.get("/historique?du=2026-13-45")
    assert bad.status_code == 400 and "saisissez une date au format JJ/MM/AAAA" in txt(bad)
    assert b.get("/historique?type=nimportequoi").status_code == 400


def test_own_consultations_are_hidden_unless_asked(portal: Portal) -> None:
    _, b = _world(portal)
    default = txt(b.get("/historique"))
    assert "a consulté l'historique des accès" not in " ".join(_rows(default))
    assert "Afficher mes propres consultations" in default and "masquée" in default
    assert "s'est connecté(e) à l'espace DMP" in default  # logins are not consultations
    assert "a ajouté un document" in default
    shown = txt(b.get("/historique?mes_consultations=oui"))
    assert "a consulté l'historique des accès" in " ".join(_rows(shown))
    assert "Masquer mes propres consultations" in shown


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))


def test_csv_and_pdf_exports_of_the_filtered_history(portal: Portal) -> None:
    w, b = _world(portal)
    david = _option(txt(b.get("/historique")), "Dr Charles DAVID")
    rows = _csv(b.get("/historique/export.csv"))
    assert rows[0] == ["Date", "Heure", "Qui", "Profession ou qualité", "Structure", "Action", "Mode d'accès"]
    actions = [r[5] for r in rows[1:]]
    assert actions.count("a ajouté un document") == 2  # not the one awaiting its announcement
    assert "a consulté l'historique des accès" not in actions  # own consultations: hidden by default
    refused = [r for r in rows[1:] if r[2] == "Dr Charles DAVID"]
    assert len(refused) == 1 and refused[0][3] == "Médecin" and refused[0][5].startswith("tentative refusée")
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", rows[1][0]) and re.fullmatch(r"\d\d:\d\d", rows[1][1])
    narrowed = _csv(b.get(f"/historique/export.csv?professionnel={david}"))
    assert [r[2] for r in narrowed[1:]] == ["Dr Charles DAVID"]
    with_own = _csv(b.get("/historique/export.csv?mes_consultations=oui"))
    assert "a consulté l'historique des accès" in [r[5] for r in with_own[1:]]

    pdf = b.get("/historique/export.pdf?type=publication")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Historique des accès" in text and "Charles MULLER" in text and "a ajouté un document" in text
    assert "ajouts et remplacements de documents" in text  # the filters, in words
    assert "DAVID" not in text
    whole = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(
        b.get("/historique/export.pdf").content)).pages)
    # Nothing names the document hidden from the patient, in any export.
    csv_text = b.get("/historique/export.csv?mes_consultations=oui").content.decode("utf-8-sig")
    for exported in (csv_text, whole, text):
        assert w.hidden not in exported and "Résultat à annoncer" not in exported
    assert whole.count("a ajouté un document") == 2
    # Every export is traced as a read of the trail.
    details = _audit_reads(portal, w.pid)
    assert sum("(export CSV)" in d for d in details) == 4
    assert sum("(export PDF)" in d for d in details) == 2


def _news(page: str) -> str:
    found = re.search(r'<section class="hi-news".*?</section>', page, re.DOTALL)
    assert found, page[:3000]
    return found.group(0)


def test_whats_new_since_the_previous_login(portal: Portal) -> None:
    w, b = _world(portal)
    home = b.get("/")
    assert home.status_code == 200, home.text
    news = _news(txt(home))
    assert "Quoi de neuf depuis votre dernière visite" in news
    assert "Compte rendu nouveau" in news
    assert "Compte rendu ancien" not in news and "Compte rendu ancien" in txt(home)  # older: listed below
    assert "Résultat à annoncer" not in news and w.hidden not in news
    assert "1 accès en urgence" in news and "Ursule RGENCE" in news and "patient inconscient" in news
    assert "Dr Ursule RGENCE (Médecin)" in news  # a new professional
    assert "Charles MULLER" not in news.split("pour la première fois", 1)[1]  # seen before the last visit
    assert any(d.endswith("(quoi de neuf)") for d in _audit_reads(portal, w.pid))
    # The next login starts from this one: nothing new since.
    portal.clock.advance(hours=1)
    again = portal.browser()
    assert portal.full_login_totp(again, w.ident.nir, w.secret).status_code == 303
    assert "Rien de nouveau dans votre dossier" in _news(txt(again.get("/")))


def test_no_whats_new_on_the_first_visit(portal: Portal) -> None:
    ident, pid = portal.record()
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    home = b.get("/")
    assert home.status_code == 200 and "Quoi de neuf" not in txt(home)
    assert not any("quoi de neuf" in d for d in _audit_reads(portal, pid))


def test_exports_need_a_signed_in_patient(portal: Portal) -> None:
    """Without a session the export is the login page; never a trail."""
    anonymous = portal.browser()
    r = anonymous.get("/historique/export.csv")
    assert r.status_code in (302, 303) and "connexion" in r.headers["location"]


def test_a_representative_exports_without_the_document_hidden_from_representatives(portal: Portal) -> None:
    from datetime import date

    from conftest import new_identity

    ident, pid = portal.record(new_identity(given="Léo", birth_date=date(2016, 4, 12)))
    portal.publish(ident, title="Carnet de vaccination")
    secret = portal.publish(
        ident, title="Consultation confidentielle", flags=("INVISIBLE_REPRESENTANTS_LEGAUX",)
    )
    code = portal.representative(pid, "parent@exemple.fr")
    assert code is not None
    parent = portal.browser()
    portal.activate(parent, "parent@exemple.fr", code)
    rows = _csv(parent.get("/historique/export.csv?mes_consultations=oui"))
    assert [r[5] for r in rows[1:]].count("a ajouté un document") == 1
    pdf = parent.get("/historique/export.pdf?mes_consultations=oui")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Charles MULLER" in text and text.count("a ajouté un document") == 1
    for exported in (pdf.content.decode("latin-1"), text, "\n".join(";".join(r) for r in rows)):
        assert secret not in exported and "Consultation confidentielle" not in exported


def test_pages_keep_the_filters(portal: Portal) -> None:
    ident, pid = portal.record()
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    for _ in range(55):  # each reading of the history is one more own consultation
        b.get("/historique")
    first = b.get("/historique?mes_consultations=oui&type=consultation").text
    assert len(_rows(first)) == 50
    found = re.search(r'href="(/historique\?[^"]*page_debut=50[^"]*)"', first)
    assert found, first[-3000:]
    link = found.group(1).replace("&amp;", "&")
    assert "mes_consultations=oui" in link and "type=consultation" in link
    older = b.get(link)
    assert older.status_code == 200 and 1 <= len(_rows(older.text)) <= 50
    # Hidden by default: only what is not an own consultation (the creation, the login…).
    assert all("a consulté l'historique" not in r for r in _rows(b.get("/historique").text))
