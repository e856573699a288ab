"""The search box of both portals' document lists (CS-04): documents whose text holds the words,
with a passage where they are marked; nothing hidden from the reader is found."""

from __future__ import annotations

from typing import Any

from helpers import CDA, bundle, doc
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from test_publication_coherence import cda_bundle, example_cda

from conftest import Api


def _publish(portal: Portal, ident: Any, content: bytes = CDA, **kw: Any) -> str:
    api: Api = portal.api
    plain = content is CDA
    body = bundle(ident, (doc(ident, CDA, **kw), CDA)) if plain else cda_bundle(ident, content, **kw)
    resp = api.post("", body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def test_professional_searches_the_record_with_snippets(portal: Portal) -> None:
    ident, _ = portal.record()
    synthesis = _publish(portal, ident, example_cda("VSM_1.4_2022.01.xml", ident))
    lab = _publish(portal, ident, example_cda("CR-BIO_demo_glycemie.xml", ident))
    rpps, code = portal.professional("doctor")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    listing = b.get(f"/pro/patient?ins={ident.nir}")
    assert 'role="search"' in listing.text and 'name="recherche"' in listing.text
    found = b.get(f"/pro/patient?ins={ident.nir}&recherche=Hemoglobines")
    assert found.status_code == 200, found.text
    # The results follow the search form (the synthesis above it links its own sources).
    results = found.text.split('role="search"', 1)[1]
    assert f"/pro/documents/{lab}/lecture" in results and f"/pro/documents/{synthesis}" not in results
    assert "<mark>Hémoglobine</mark>" in found.text
    assert "Documents contenant « Hemoglobines »" in txt(found)
    csp = found.headers["content-security-policy"]
    assert "script-src" not in csp and "unsafe-inline" not in csp
    none = b.get(f"/pro/patient?ins={ident.nir}&recherche=introuvable")
    assert "Aucun document ne contient « introuvable »" in txt(none)
    empty = b.get(f"/pro/patient?ins={ident.nir}&recherche=le+la")
    assert empty.status_code == 200 and "aucun mot à chercher" in txt(empty)


def test_search_words_are_escaped(portal: Portal) -> None:
    ident, _ = portal.record()
    _publish(portal, ident, title="Compte rendu <b>script</b>")
    rpps, code = portal.professional("doctor")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    page = b.get(f"/pro/patient?ins={ident.nir}&recherche=%3Cscript%3E")
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<mark>script</mark>" in page.text and "<b>" not in page.text


def test_patient_searches_own_documents_but_not_invisible_ones(portal: Portal) -> None:
    ident, pid = portal.record()
    seen = _publish(portal, ident, title="Allergie à la pénicilline")
    hidden = _publish(portal, ident, title="Allergie annonce en attente", flags=("INVISIBLE_PATIENT",))
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    page = b.get("/?recherche=allergies")
    assert page.status_code == 200, page.text
    assert f"/documents/{seen}/lecture" in page.text and f"/documents/{hidden}" not in page.text
    assert "<mark>Allergie</mark>" in page.text
