"""The patient adds their own documents and states their choices from the portal (issue 13):
through the ITI-65 use case, listed for the patient, read by an authorised professional and not
by another; bad input refused next to the field with the form kept. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from portal import Browser, Portal, csrf_of, portal_fixture, txt  # noqa: F401  (fixture)
from test_portal_pro_access import logged_in

from dmp.audit import AuditAction

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _patient(portal: Portal) -> tuple[Browser, Any, uuid.UUID]:
    ident, pid = portal.record()  # the "doctor" card opened it: authorised
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))  # activation ends logged in
    return b, ident, pid


def _add(b: Browser, content: bytes | None = PDF, name: str = "doc.pdf", **fields: str) -> Any:
    page = b.get("/mes-documents/ajouter")
    assert page.status_code == 200, page.text
    data = {"csrf": csrf_of(page.text), "type": "DOCPAT03", "titre": "Compte rendu reçu sur papier",
            "date_document": "02/11/2026", **fields}
    files = {"fichier": (name, content, "application/octet-stream") if content is not None else ("", b"", "")}
    b.last = b.client.post("/mes-documents/ajouter", data=data, files=files)
    return b.last


def _docs(portal: Portal, who: str, ident: Any) -> Any:
    return portal.api.get("DocumentReference", who=who,
                          params={"patient.identifier": f"{ident.system}|{ident.nir}"})


def _content(portal: Portal, who: str, doc_id: str) -> bytes:
    """The document's bytes, read by ``who`` (ITI-68 as a FHIR Binary)."""
    got = portal.api.get(f"Binary/{doc_id}", who=who)
    assert got.status_code == 200, got.text
    return base64.b64decode(got.json()["data"])


def _by_title(bundle: Any, title: str) -> dict[str, Any]:
    found = [e["resource"] for e in bundle.get("entry", [])
             if e["resource"]["content"][0]["attachment"]["title"] == title]
    assert len(found) == 1, bundle
    return dict(found[0])


def test_an_uploaded_pdf_is_listed_for_the_patient_and_read_by_an_authorised_professional(
    portal: Portal,
) -> None:
    b, ident, pid = _patient(portal)
    assert "/mes-documents/ajouter" in b.get("/gerer").text
    done = _add(b, titre="Mon compte rendu d'hospitalisation")
    assert done.status_code == 303, txt(done)
    assert "Document ajouté" in txt(b.get(done.headers["location"]))
    assert "Mon compte rendu d'hospitalisation" in txt(b.get("/"))
    seen = _docs(portal, "doctor", ident)
    assert seen.status_code == 200, seen.text
    dr = _by_title(seen.json(), "Mon compte rendu d'hospitalisation")
    assert dr["type"]["coding"][0]["code"] == "DOCPAT03"
    assert dr["content"][0]["attachment"]["contentType"] == "application/pdf"
    assert _content(portal, "doctor", dr["id"]) == PDF
    # An unauthorised professional: refused (not authorised by the patient), the document unseen.
    assert _docs(portal, "doctor2", ident).status_code == 403
    assert portal.api.get(f"DocumentReference/{dr['id']}", who="doctor2").status_code == 404
    # Traced as the patient's publication.
    from sqlalchemy import select

    from dmp.store.schema_audit import audit_entry

    with portal.runtime.engine.connect() as conn:
        actions = conn.execute(
            select(audit_entry.c.action).where(audit_entry.c.actor_id == str(pid))
        ).scalars().all()
    assert AuditAction.DOCUMENT_PUBLISH.value in actions


def test_directives_anticipees_and_image_and_text_with_their_type(portal: Portal) -> None:
    b, ident, _ = _patient(portal)
    assert _add(b, b"Je refuse tout acharnement therapeutique.\n", "da.txt", type="EXPPAT_3",
                titre="Mes directives anticipées").status_code == 303
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    assert _add(b, png, "carnet.png", type="DOCPAT07", titre="Carnet de vaccination").status_code == 303
    bundle = _docs(portal, "doctor", ident).json()
    da = _by_title(bundle, "Mes directives anticipées")
    assert da["type"]["coding"][0]["code"] == "EXPPAT_3"
    assert da["content"][0]["attachment"]["contentType"] == "text/plain"
    carnet = _by_title(bundle, "Carnet de vaccination")
    assert carnet["content"][0]["attachment"]["contentType"] == "image/png"
    # The patient reads them in the page and downloads them (no 500 on any format).
    read = b.get(f"/documents/{da['id']}/lecture")
    assert read.status_code == 200 and "acharnement" in txt(read)
    assert b.get(f"/documents/{carnet['id']}/lecture").status_code == 200
    got = b.get(f"/documents/{carnet['id']}")
    assert got.status_code == 200 and got.content == png


def test_a_bad_upload_is_refused_with_the_form_kept(portal: Portal) -> None:
    b, ident, _ = _patient(portal)
    none = _add(b, None, titre="Sans fichier")
    assert none.status_code == 400 and 'id="fichier-erreur"' in none.text
    assert 'value="Sans fichier"' in none.text  # the input kept
    html_file = _add(b, b"<html><script>alert(1)</script></html>", "page.html", titre="Une page web")
    assert html_file.status_code == 400 and "Format non accepté" in txt(html_file)
    assert 'value="Une page web"' in html_file.text
    wrong = _add(b, type="11488-4", titre="Un CR de professionnel", date_document="31/02/2026")
    assert wrong.status_code == 400
    assert 'id="type-erreur"' in wrong.text and 'id="date_document-erreur"' in wrong.text
    assert 'value="Un CR de professionnel"' in wrong.text
    big = _add(b, PDF + b"0" * portal.runtime.settings.max_document_bytes, titre="Trop gros")
    assert big.status_code == 400 and "taille maximale" in txt(big) and 'value="Trop gros"' in big.text
    assert "entry" not in _docs(portal, "doctor", ident).json()  # nothing published
    # Without the form's token: refused.
    refused = b.client.post("/mes-documents/ajouter", data={"type": "DOCPAT03"},
                            files={"fichier": ("a.pdf", PDF, "application/pdf")})
    assert refused.status_code == 403


def _choices(b: Browser, **fields: str) -> Any:
    return b.form("/mes-choix", **fields)


def test_trusted_person_and_donation_saved_and_read_by_an_authorised_professional_only(
    portal: Portal,
) -> None:
    b, ident, pid = _patient(portal)
    page = txt(b.get("/mes-choix"))
    assert "registre national des refus" in page and "Je ne me prononce pas" in page
    bad = _choices(b, don="refus", confiance_nom="", confiance_lien="fille", confiance_tel="pas un numéro")
    assert bad.status_code == 400
    assert 'id="confiance_nom-erreur"' in bad.text and 'id="confiance_tel-erreur"' in bad.text
    assert 'value="fille"' in bad.text  # kept
    ok = _choices(b, don="refus", confiance_nom="Claire MARTIN", confiance_lien="fille",
                  confiance_tel="06 12 34 56 78", urgence1_nom="Paul DURAND", urgence1_lien="voisin",
                  urgence1_tel="+33 1 23 45 67 89")
    assert ok.status_code == 303, txt(ok)
    shown = b.get(ok.headers["location"])
    assert "Vos choix sont enregistrés" in txt(shown)
    assert 'value="Claire MARTIN"' in shown.text and 'value="Paul DURAND"' in shown.text
    # Changed: the new statement replaces the old one (one current choices document).
    assert _choices(b, don="donneur", confiance_nom="Claire MARTIN", confiance_lien="fille",
                    confiance_tel="06 12 34 56 78").status_code == 303
    bundle = _docs(portal, "doctor", ident).json()
    dr = _by_title(bundle, "Mes choix : don d'organes, personne de confiance, personnes à prévenir")
    assert dr["type"]["coding"][0]["code"] == "EXPPAT_1"
    document = json.loads(_content(portal, "doctor", dr["id"]))
    assert document["resourceType"] == "Bundle" and document["type"] == "document"
    related = [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "RelatedPerson"]
    assert [r["name"][0]["text"] for r in related] == ["Claire MARTIN"]
    assert related[0]["relationship"][0]["text"] == "Personne de confiance"
    consent = [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Consent"]
    assert consent[0]["provision"]["type"] == "permit"
    page = b.get(f"/documents/{dr['id']}/lecture")  # the patient reads the statement in the page
    assert page.status_code == 200 and "Claire MARTIN" in txt(page)
    # The structured record: the trusted person is a RelatedPerson fact of the record.
    from dmp.domain.actor import Actor, ActorKind
    from dmp.services import facts

    with portal.runtime.engine.begin() as conn:
        me = Actor(ActorKind.PATIENT, str(pid), "Marie")
        rows = facts.record_facts(conn, portal.runtime, me, pid, ("RelatedPerson",))
    assert [json.loads(r.resource_json)["name"][0]["text"] for r in rows] == ["Claire MARTIN"]
    # On the professional's record page too.
    pro, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    assert "Mes choix : don d'organes" in txt(pro.get(f"/pro/patient?ins={ident.nir}"))
    # An unauthorised professional reads none of it.
    assert _docs(portal, "doctor2", ident).status_code == 403
    assert portal.api.get(f"Binary/{dr['id']}", who="doctor2").status_code == 404


def test_a_closed_record_takes_no_document_nor_choice(portal: Portal) -> None:
    from dmp.domain.actor import Actor, ActorKind
    from dmp.services import records

    b, ident, pid = _patient(portal)
    form_page = b.get("/mes-documents/ajouter")
    choices_page = b.get("/mes-choix")
    with portal.runtime.engine.begin() as conn:
        desk = Actor(ActorKind.OPERATOR, "guichet", "Agent TEST")
        records.close(conn, desk, pid, "test", portal.clock.now)
    data = {"csrf": csrf_of(form_page.text), "type": "DOCPAT03", "titre": "Après fermeture",
            "date_document": "02/11/2026"}
    refused = b.client.post("/mes-documents/ajouter", data=data,
                            files={"fichier": ("a.pdf", PDF, "application/pdf")})
    assert refused.status_code == 409 and "Le document n'est pas ajouté" in txt(refused), refused.text
    b.last = choices_page
    again = b.post("/mes-choix", don="donneur")
    assert again.status_code == 409 and "Vos choix ne sont pas enregistrés" in txt(again), again.text
    with portal.runtime.engine.connect() as conn:
        from sqlalchemy import func, select

        from dmp.store.schema import document

        count = conn.execute(select(func.count()).select_from(document).where(document.c.patient_id == pid))
        assert count.scalar_one() == 0
