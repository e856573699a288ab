"""« Lire » pages (issue 12, item 6): a document rendered as sanitised HTML in both portals,
through the same ``documents.retrieve`` as a download (same policy, same trail entry)."""

from __future__ import annotations

from typing import Any

from helpers import bundle, doc
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select

from conftest import Api
from dmp.store.schema_audit import audit_entry

NARRATIVE_CDA = (
    b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
    b"<component><structuredBody><component><section><title>R\xc3\xa9sultats</title><text>"
    b"<paragraph>Glyc\xc3\xa9mie <content styleCode=\"Bold\">normale</content></paragraph>"
    b'<paragraph onclick="alert(1)">&lt;script&gt;alert(2)&lt;/script&gt;</paragraph>'
    b"<table><thead><tr><th>Analyse</th><th>Valeur</th></tr></thead>"
    b"<tbody><tr><td>HbA1c</td><td>5,6 %</td></tr></tbody></table>"
    b"</text></section></component></structuredBody></component></ClinicalDocument>"
)


# What a « Lire » entry and a download entry share (all but the position in the chain and the time).
SAME = ("action", "outcome", "rule_id", "access_mode", "target_ids", "detail", "actor_id", "source_address")


def _publish(portal: Portal, ident: Any, content: bytes, **kw: Any) -> str:
    api: Api = portal.api
    resp = api.post("", bundle(ident, (doc(ident, content, **kw), content)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _retrieves(portal: Portal, actor_id: str) -> list[tuple[Any, ...]]:
    with portal.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(*(audit_entry.c[k] for k in SAME)).where(
                audit_entry.c.actor_id == actor_id, audit_entry.c.action == "document.retrieve"
            )
        ).all()
    return [tuple(r) for r in rows]


def test_professional_reads_a_document_as_html(portal: Portal) -> None:
    ident, _ = portal.record()
    doc_id = _publish(portal, ident, NARRATIVE_CDA, title="Bilan glycémique")
    rpps, code = portal.professional("doctor")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    listing = b.get(f"/pro/patient?ins={ident.nir}")
    assert f'href="/pro/documents/{doc_id}/lecture"' in listing.text
    page = b.get(f"/pro/documents/{doc_id}/lecture")
    assert page.status_code == 200, page.text
    assert "Bilan glycémique" in txt(page)
    assert "<table>" in page.text and "<th>Analyse</th>" in page.text
    assert "<strong>normale</strong>" in page.text
    assert "<script" not in page.text.lower() and "onclick" not in page.text.lower()
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp
    assert f'href="/pro/documents/{doc_id}"' in page.text  # « Télécharger » next to it
    # The same trail entry as a download: one document.retrieve for each.
    reads = _retrieves(portal, "8" + rpps)
    assert b.get(f"/pro/documents/{doc_id}").status_code == 200
    downloads = _retrieves(portal, "8" + rpps)
    assert len(reads) == 1 and downloads[0] == downloads[1] == reads[0]


def test_masked_document_reads_404_like_its_download(portal: Portal) -> None:
    ident, pid = portal.record()
    doc_id = _publish(portal, ident, NARRATIVE_CDA, title="Document masqué", flags=("MASQUE_PS",))
    from test_no_oracle import _authorise

    _authorise(portal.api, pid, "doctor2")
    rpps, code = portal.professional("doctor2", "david@chu.test")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    assert b.get(f"/pro/patient?ins={ident.nir}").status_code == 200  # authorised, yet masked from
    download = b.get(f"/pro/documents/{doc_id}")
    page = b.get(f"/pro/documents/{doc_id}/lecture")
    assert download.status_code == page.status_code == 404
    assert "Document masqué" not in txt(page) and txt(page) == txt(download)
    assert b.get("/pro/documents/pas-un-uuid/lecture").status_code == 404


def test_patient_reads_own_document(portal: Portal) -> None:
    ident, pid = portal.record()
    doc_id = _publish(portal, ident, NARRATIVE_CDA, title="Bilan du patient")
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    home = b.get("/")
    assert f'href="/documents/{doc_id}/lecture"' in home.text
    page = b.get(f"/documents/{doc_id}/lecture")
    assert page.status_code == 200 and "Bilan du patient" in txt(page) and "HbA1c" in txt(page)
    assert "<script" not in page.text.lower()


def test_a_level1_pdf_is_shown_in_the_page_and_attached_pdfs_are_linked(portal: Portal) -> None:
    """The level-1 imaging report's PDF is framed in its « Lire » page (served by the server,
    same policy and trail as a download); an advance-directives CDA links its attached PDFs;
    a document one may not see has no pieces either."""
    from pathlib import Path

    from test_publication_coherence import ANS_TEST_INS, cda_bundle, example_cda

    ident, pid = portal.record()
    api: Api = portal.api
    level1 = example_cda("IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml", ident)
    resp = api.post("", cda_bundle(ident, level1))
    assert resp.status_code == 200, resp.text
    img_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    raw = (Path(__file__).parent.parent / "fixtures" / "cda" / "DLU-EHPAD-DLU_2022.01.xml").read_bytes()
    dlu = raw.replace(ANS_TEST_INS, f'<id extension="{ident.nir}" root="1.2.250.1.213.1.4.8"/>'.encode(), 1)
    resp = api.post("", cda_bundle(ident, dlu))
    assert resp.status_code == 200, resp.text
    dlu_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    rpps, code = portal.professional("doctor")
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    page = b.get(f"/pro/documents/{img_id}/lecture")
    assert page.status_code == 200, page.text
    frame = f'<iframe class="document-pdf" src="/pro/documents/{img_id}/pieces/corps"'
    assert frame in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    before = len(_retrieves(portal, "8" + rpps))
    pdf = b.get(f"/pro/documents/{img_id}/pieces/corps")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in pdf.headers["content-security-policy"]
    assert len(_retrieves(portal, "8" + rpps)) == before + 1  # traced as a retrieval
    listed = b.get(f"/pro/documents/{dlu_id}/lecture")
    assert f'<a class="cda-piece" href="/pro/documents/{dlu_id}/pieces/doc-1">' in listed.text
    assert b.get(f"/pro/documents/{dlu_id}/pieces/doc-1").content.startswith(b"%PDF")
    assert b.get(f"/pro/documents/{dlu_id}/pieces/nope").status_code == 404
    # Someone who may not see the document: the same 404 as for a missing document.
    rpps2, code2 = portal.professional("doctor2", "david@chu.test")
    other = portal.browser("/pro")
    portal.activate(other, rpps2, code2)
    hidden = other.get(f"/pro/documents/{img_id}/pieces/corps")
    missing = other.get("/pro/documents/00000000-0000-4000-8000-000000000000/pieces/corps")
    assert hidden.status_code == missing.status_code == 404 and txt(hidden) == txt(missing)
