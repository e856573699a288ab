"""Publishing from the professionals' portal (issue 13): a PDF or CDA with CI-SIS metadata,
through the ITI-65 use case; masked at publication, invisible to the patient, replacement; bad
input refused next to the field with the form kept. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from portal import Browser, Portal, csrf_of, portal_fixture, txt  # noqa: F401  (fixture)
from test_policy_api import as_patient
from test_portal_pro_access import logged_in

from dmp.terminology import valueset

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LOINC_CR = next(c for c in valueset("J66") if c.code == "11488-4")  # CR de consultation
TYPE = f"{LOINC_CR.system}|{LOINC_CR.code}"


def upload(b: Browser, ins: str, content: bytes | None = PDF, **fields: str) -> Any:
    page = b.get(f"/pro/patient/publier?ins={ins}")
    assert page.status_code == 200, page.text
    data = {"csrf": csrf_of(page.text), "type": TYPE, "classe": "10", "titre": "Compte rendu de consultation",
            "date_acte": "20/11/2026", "structure": "SA07", "cadre": "AMBULATOIRE", **fields}
    # No file chosen: a browser still sends the part, empty and nameless.
    files = {"fichier": ("cr.pdf", content, "application/pdf") if content is not None else ("", b"", "")}
    b.last = b.client.post(f"/pro/patient/publier?ins={ins}", data=data, files=files)
    return b.last


def titles_for_patient(portal: Portal, ins: str, pid: str) -> list[str]:
    me = as_patient(portal.api, pid)
    params = {"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}"}
    found = portal.api.get("DocumentReference", who=me, params=params)
    assert found.status_code == 200, found.text
    return [e["resource"]["content"][0]["attachment"]["title"] for e in found.json().get("entry", [])]


def test_a_pdf_published_from_the_portal_is_listed_for_the_patient(portal: Portal) -> None:
    ident, pid = portal.record()  # the "doctor" card opened it: authorised
    b, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    record = b.get(f"/pro/patient?ins={ident.nir}")
    assert f"/pro/patient/publier?ins={ident.nir}" in record.text
    form = b.get(f"/pro/patient/publier?ins={ident.nir}")
    assert 'enctype="multipart/form-data"' in form.text and "11488-4" in form.text
    done = upload(b, ident.nir, titre="Compte rendu publié depuis le portail")
    assert done.status_code == 303, txt(done)
    assert "Document publié" in txt(b.get(done.headers["location"]))
    assert "Compte rendu publié depuis le portail" in txt(b.get(f"/pro/patient?ins={ident.nir}"))
    assert "Compte rendu publié depuis le portail" in titles_for_patient(portal, ident.nir, str(pid))
    # Invisible to the patient pending the announcement; masked: absent for another professional.
    assert upload(b, ident.nir, titre="Résultat à annoncer", invisible="oui").status_code == 303
    assert upload(b, ident.nir, titre="Document masqué aux autres", masque="oui").status_code == 303
    seen_by_patient = titles_for_patient(portal, ident.nir, str(pid))
    assert "Résultat à annoncer" not in seen_by_patient and "Document masqué aux autres" in seen_by_patient
    david, _ = logged_in(portal, "doctor2", "david@chu.test")
    david.get(f"/pro/patient?ins={ident.nir}")
    david.post(f"/pro/patient/autorisation?ins={ident.nir}", ins=ident.nir, atteste="oui")
    other = txt(david.get(f"/pro/patient?ins={ident.nir}"))
    assert "Compte rendu publié depuis le portail" in other and "Document masqué aux autres" not in other


def test_replace_a_document_chosen_from_the_list(portal: Portal) -> None:
    ident, pid = portal.record()
    b, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    assert upload(b, ident.nir, titre="Version 1").status_code == 303
    form = b.get(f"/pro/patient/publier?ins={ident.nir}").text
    old_id = form.split("Version 1")[0].rsplit('option value="', 1)[1].split('"')[0]
    assert upload(b, ident.nir, titre="Version 2", remplace=old_id).status_code == 303
    titles = titles_for_patient(portal, ident.nir, str(pid))
    assert "Version 2" in titles and "Version 1" not in titles  # the current documents
    again = upload(b, ident.nir, titre="Version 3", remplace=old_id)  # already replaced
    assert again.status_code == 409 and 'id="remplace-erreur"' in again.text


def test_bad_input_is_refused_with_the_form_kept(portal: Portal) -> None:
    ident, pid = portal.record()
    b, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    none = upload(b, ident.nir, None, titre="Sans fichier")
    assert none.status_code == 400 and 'id="fichier-erreur"' in none.text
    assert 'value="Sans fichier"' in txt(none) and "Choisissez le fichier" in txt(none)
    unknown = upload(b, ident.nir, type="urn:inconnu|XYZ", titre="Type inconnu")
    assert unknown.status_code == 400 and 'id="type-erreur"' in unknown.text
    assert 'value="Type inconnu"' in txt(unknown)
    not_pdf = upload(b, ident.nir, b"GIF89a....", titre="Image")
    assert not_pdf.status_code == 400 and "Format non accepté" in txt(not_pdf)
    future = upload(b, ident.nir, date_acte="01/01/2999")
    assert future.status_code == 400 and 'id="date_acte-erreur"' in future.text
    saved = portal.runtime.settings
    portal.runtime.settings = replace(saved, max_document_bytes=len(PDF) + 10)
    try:
        big = upload(b, ident.nir, PDF + b"x" * 100, titre="Trop gros")
        assert big.status_code == 400 and 'id="fichier-erreur"' in big.text and "taille maximale" in txt(big)
        assert 'value="Trop gros"' in txt(big)
        huge = upload(b, ident.nir, PDF + b"x" * 1024 * 1024, titre="Bien trop gros")  # not even read
        assert huge.status_code == 413
    finally:
        portal.runtime.settings = saved
    # A CDA whose header names another type: the ITI-65 coherence check, next to the type.
    cda = (b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><code code="11490-0" '
           b'codeSystem="2.16.840.1.113883.6.1"/></ClinicalDocument>')
    mismatch = upload(b, ident.nir, cda, titre="CDA incohérent")
    assert mismatch.status_code == 422 and 'id="type-erreur"' in mismatch.text, txt(mismatch)
    assert titles_for_patient(portal, ident.nir, str(pid)) == []  # nothing was published
    # A forged POST without the CSRF token.
    forged = b.client.post(f"/pro/patient/publier?ins={ident.nir}", data={"titre": "x"},
                           files={"fichier": ("a.pdf", PDF, "application/pdf")})
    assert forged.status_code == 403


def test_a_professional_who_may_not_open_the_record_gets_the_refusal_page(portal: Portal) -> None:
    ident, _ = portal.record()
    david, _ = logged_in(portal, "doctor2", "david@chu.test")
    assert david.get(f"/pro/patient/publier?ins={ident.nir}").status_code == 403
    assert david.get("/pro/patient/publier?ins=123").status_code == 404
