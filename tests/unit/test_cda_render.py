"""dmp.clinical.render: a safe HTML rendering of CDA R2 documents (issue 12, item 6)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from lxml import html

from dmp.clinical.render import PDF_NOTE, UNREADABLE, format_ts, render_cda, render_document

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "cda").glob("*.xml"))
HEAD = b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'


def _with_text(narrative: str) -> bytes:
    return (
        HEAD
        + b"<title>Essai</title><component><structuredBody><component><section><title>S</title><text>"
        + narrative.encode()
        + b"</text></section></component></structuredBody></component></ClinicalDocument>"
    )


def _assert_safe(out: str, *, text_too: bool = True) -> None:
    """No script, handler, style or URL in the markup (and, for documents, none in the text either)."""
    low = out.lower()
    markup = " ".join(re.findall(r"<[^>]*>", low))  # escaped text (&lt;…&gt;) is inert: not markup
    for tag in ("<script", "<a ", "<img", "<iframe"):
        assert tag not in markup
    assert re.search(r"\son\w+\s*=", markup) is None
    assert "style=" not in markup and "href" not in markup and "src=" not in markup
    for scheme in ("http:", "https:", "javascript:"):
        assert scheme not in (low if text_too else markup)
    allowed = {"class", "scope", "colspan", "rowspan"}
    for el in html.fromstring(out).iter():
        assert set(el.attrib) <= allowed


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_every_fixture_renders_safely(path: Path) -> None:
    out = render_cda(path.read_bytes())
    assert out.startswith('<div class="cda">'), out[:200]
    assert "<h2>" in out and "Patient" in out and "Date de naissance" in out
    _assert_safe(out)


BASE = "/documents/00000000-0000-4000-8000-000000000000/pieces/"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_with_media_every_url_is_the_servers_own(path: Path) -> None:
    """With the portal's media URL, the only URLs in a rendering are images and links to this
    document's own pieces, built by the server; no script, handler or style appears."""
    out = render_cda(path.read_bytes(), BASE)
    low = out.lower()
    markup = " ".join(re.findall(r"<[^>]*>", low))
    assert "<script" not in markup and "<iframe" not in markup and "style=" not in markup
    assert re.search(r"\son\w+\s*=", markup) is None
    for url in re.findall(r'(?:href|src)="([^"]*)"', out):
        assert url.startswith(BASE) and "/" not in url[len(BASE):], url
    for scheme in ("http:", "https:", "javascript:"):
        assert scheme not in low
    without = render_cda(path.read_bytes())  # the same document without media: no URL at all
    assert "href" not in without and "src=" not in without


def test_a_forged_placeholder_points_only_at_the_documents_own_media() -> None:
    out = render_cda(_with_text("<paragraph>\u2063dmp-media:x\u2063 https://evil.test</paragraph>"), BASE)
    assert "src=" not in out and "href" not in out  # no such medium: nothing made of it


def test_table_and_list_of_a_real_example() -> None:
    out = render_cda((FIXTURES[0].parent / "VAC_2023.01.xml").read_bytes())
    assert "<table>" in out and "<thead>" in out and "<th>Vaccin</th>" in out and "<td>" in out
    assert "<ul>" in out and "<li>" in out
    assert "Historique de vaccinations" in out and "Assurance Maladie" in out


def test_header_fields() -> None:
    out = render_cda((FIXTURES[0].parent / "CR-BIO_demo_glycemie.xml").read_bytes())
    for expected in ("PAT-TROIS", "28/03/1979", "18/11/2026 10:15", "LABORDE", "Date du document", "Auteur"):
        assert expected in out


@pytest.mark.parametrize(
    "narrative",
    [
        "<paragraph>a</paragraph><script>alert(1)</script>",
        '<paragraph onclick="alert(1)" style="color:red">a</paragraph>',
        '<linkHtml href="javascript:alert(1)">clic</linkHtml>',
        '<a xmlns="http://www.w3.org/1999/xhtml" href="javascript:alert(1)">x</a>',
        "<paragraph>&lt;script&gt;alert(1)&lt;/script&gt;&lt;a href='javascript:x'&gt;</paragraph>",
        '<content styleCode="Bold" onmouseover="x()">gras</content><renderMultiMedia referencedObject="i1"/>',
        '<table border="1" onload="x()"><tr><td colspan="2" onclick="y">c</td></tr></table>',
        '<paragraph><img xmlns="http://www.w3.org/1999/xhtml" src="https://evil.test/x.png"/></paragraph>',
    ],
)
def test_injections_are_neutralised(narrative: str) -> None:
    out = render_cda(_with_text(narrative))
    assert out.startswith('<div class="cda">')
    _assert_safe(out, text_too=False)


def test_injected_text_stays_text() -> None:
    out = render_cda(_with_text("<paragraph>&lt;script&gt;alert(1)&lt;/script&gt;</paragraph>"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_narrative_elements() -> None:
    out = render_cda(
        _with_text(
            '<paragraph><content styleCode="Bold Italics">x</content><br/><content styleCode="Underline">u'
            '</content></paragraph><list listType="ordered"><caption>Liste</caption><item>un</item></list>'
            '<table><caption>T</caption><tr><th>h</th></tr></table><renderMultiMedia referencedObject="a"/>'
        )
    )
    assert "<em><strong>x</strong></em>" in out or "<strong><em>x</em></strong>" in out
    assert "<br>" in out and "<u>u</u>" in out and "<ol><li>un</li></ol>" in out
    assert "<caption>T</caption>" in out and "<tbody><tr><th>h</th></tr></tbody>" in out
    assert "[contenu multimédia non affiché]" in out


def test_non_xml_bodies() -> None:
    pdf = base64.b64encode(b"%PDF-1.4 ...").decode()
    b64 = HEAD + (
        b'<component><nonXMLBody><text mediaType="application/pdf" representation="B64">'
        + pdf.encode()
        + b"</text></nonXMLBody></component></ClinicalDocument>"
    )
    assert PDF_NOTE in render_cda(b64)
    plain = HEAD + (
        b'<component><nonXMLBody><text mediaType="text/plain">ligne 1\n&lt;b&gt;ligne 2</text>'
        b"</nonXMLBody></component></ClinicalDocument>"
    )
    assert "<pre>ligne 1\n&lt;b&gt;ligne 2</pre>" in render_cda(plain)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<ClinicalDocument",
        b"pas du XML",
        b"<other/>",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>',
        b"\xff\xfe\x00garbage",
        b"<a>" * 300 + b"</a>" * 300,
    ],
)
def test_malformed_gives_the_french_message(data: bytes) -> None:
    out = render_cda(data)
    assert out == UNREADABLE or out.startswith('<div class="cda">')
    if not data.lstrip().startswith(b"<!DOCTYPE"):
        assert out == UNREADABLE
    assert "n’est pas un document CDA lisible" in UNREADABLE


def test_oversized_input_is_refused() -> None:
    assert render_cda(HEAD + b" " * (21 * 1024 * 1024) + b"</ClinicalDocument>") == UNREADABLE


def test_other_media_types() -> None:
    assert PDF_NOTE in render_document(b"%PDF-1.4", "application/pdf")
    assert render_document(b"<b>x</b>", "text/plain") == "<pre>&lt;b&gt;x&lt;/b&gt;</pre>"
    assert "Télécharger" in render_document(b"\x89PNG", "image/png")
    assert render_document(b"<x", "text/xml") == UNREADABLE


def test_format_ts() -> None:
    assert format_ts("20210105101500+0100") == "05/01/2021 10:15"
    assert format_ts("19790328") == "28/03/1979"
    assert format_ts("1979") == "1979" and format_ts(None) == ""
