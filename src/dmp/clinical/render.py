"""A safe HTML rendering of an HL7 CDA R2 document (issue 12, « documents lisibles »).

The document is parsed with the hardened parser (no DTD, no entities, no network, bounded
size); every HTML element of the output is built here from the parsed tree (never a copy of
the XML), and the whole fragment then goes through ``nh3`` (ammonia) with an allow-list:
no script, no ``style`` attribute, no event handler, no URL at all (no ``href``/``src``).
Malformed input gives a French message fragment, never an exception.

Attached media (a level-1 body, ``observationMedia``, a PDF document) are served by the portal
at a URL of its own (``media_of`` finds them); the one place an URL enters the fragment is
after sanitising, where a ``renderMultiMedia`` placeholder becomes an ``<img>`` or a link built
here from that server URL and the object's checked id — never from the document's text.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

import nh3
from lxml import etree

from dmp.cda import hardened_parser
from dmp.clinical.render_fhir import fhir_document_html

MAX_BYTES = 20 * 1024 * 1024
V3 = "urn:hl7-org:v3"
NS = {"cda": V3}
_PARSER = hardened_parser()

UNREADABLE = (
    '<p class="cda-erreur">Ce document ne peut pas être affiché : son contenu n’est pas un '
    "document CDA lisible. Vous pouvez le télécharger.</p>"
)
PDF_NOTE = "document PDF joint : ouvrez-le avec « Télécharger »"
PDF_SHOWN = "document PDF : il est affiché ci-dessus"
MULTIMEDIA = "[contenu multimédia non affiché]"
INLINE_MIME = frozenset({"application/pdf", "image/jpeg", "image/png", "image/gif"})
_MEDIA_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The server URL prefix of this document's media and their types, while one document renders.
_MEDIA: contextvars.ContextVar[tuple[str, dict[str, str]] | None] = contextvars.ContextVar(
    "dmp_render_media", default=None
)
# Invisible separators around the id; a document that writes such a token itself can only
# point at its own media, which its reader may open anyway.
_PLACEHOLDER = "\u2063dmp-media:{}\u2063"
_PLACEHOLDER_RE = re.compile("\u2063dmp-media:([A-Za-z0-9._-]{1,64})\u2063")

ALLOWED_TAGS = {
    "div", "section", "header", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "dl", "dt", "dd",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "strong", "em", "u", "span",
    "br", "pre", "sub", "sup",
}
ALLOWED_ATTRIBUTES = {
    "th": {"scope", "colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "div": {"class"},
    "p": {"class"},
    "span": {"class"},
}

_SIMPLE = {
    "paragraph": "p",
    "item": "li",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tfoot": "tfoot",
    "tr": "tr",
    "caption": "caption",
    "sub": "sub",
    "sup": "sup",
}
_CELL_ATTRS = ("colspan", "rowspan")
_STYLES = {"bold": "strong", "italics": "em", "underline": "u"}


def sanitise(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(),
        strip_comments=True,
        link_rel=None,
    )


def render_cda(
    cda_bytes: bytes, media_base: str | None = None, found: Mapping[str, Media] | None = None
) -> str:
    """An HTML fragment (French labels) for ``cda_bytes``; the French message when unreadable.
    With ``media_base`` (the portal URL prefix of this document's media), images are shown and
    attached files linked; without it, a note says they are not shown. ``found``: the document's
    ``media_of``, when the caller has it already (not parsed again)."""
    if media_base and found is None:
        found = media_of(cda_bytes, "text/xml")
    media = {k: m.mime for k, m in found.items()} if media_base and found else {}
    token = _MEDIA.set((media_base, media) if media_base else None)
    try:
        return _with_media(_render_cda(cda_bytes), media_base, media)
    finally:
        _MEDIA.reset(token)


def _render_cda(cda_bytes: bytes) -> str:
    if not isinstance(cda_bytes, bytes) or len(cda_bytes) > MAX_BYTES:
        return UNREADABLE
    try:
        root = etree.fromstring(cda_bytes, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return UNREADABLE
    if root.tag != f"{{{V3}}}ClinicalDocument":  # e.g. a self-presenting file: the CDA inside
        root = next(root.iter(f"{{{V3}}}ClinicalDocument"), None)
        if root is None:
            return UNREADABLE
    try:
        fragment = '<div class="cda">' + _header(root) + _body(root) + "</div>"
    except (ValueError, TypeError, RecursionError):
        return UNREADABLE
    return sanitise(fragment)


# ---- header ----


def _text(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _first(root: etree._Element, path: str) -> etree._Element | None:
    found = root.xpath(path, namespaces=NS)
    return found[0] if isinstance(found, list) and found and isinstance(found[0], etree._Element) else None


def _name(el: etree._Element | None) -> str:
    """Prefix, first given name(s) and first family name (the birth ones come first in the CI-SIS)."""
    if el is None:
        return ""
    parts = []
    for part in ("prefix", "given", "family"):
        found = _first(el, f"cda:{part}")
        value = _text(found)
        parts.append(value.upper() if part == "family" else value)
    joined = " ".join(p for p in parts if p)
    return joined or _text(el)


def format_ts(value: str | None) -> str:
    """An HL7 TS (``YYYYMMDD[HHMM[SS]][±ZZZZ]``) as ``JJ/MM/AAAA[ HH:MM]``; the raw value otherwise."""
    raw = (value or "").strip()
    digits = raw.split("+")[0].split("-")[0].split(".")[0]
    if len(digits) < 8 or not digits.isdigit():
        return raw
    day = f"{digits[6:8]}/{digits[4:6]}/{digits[0:4]}"
    return f"{day} {digits[8:10]}:{digits[10:12]}" if len(digits) >= 12 else day


def _attr(el: etree._Element | None, name: str) -> str | None:
    return None if el is None else el.get(name)


def _header(root: etree._Element) -> str:
    patient = _first(root, "cda:recordTarget/cda:patientRole/cda:patient")
    birth = _attr(_first(patient, "cda:birthTime"), "value") if patient is not None else None
    custodian = "cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization/cda:name"
    rows = [
        ("Patient", _name(_first(patient, "cda:name")) if patient is not None else ""),
        ("Date de naissance", format_ts(birth)),
        ("Date du document", format_ts(_attr(_first(root, "cda:effectiveTime"), "value"))),
        ("Auteur", _name(_first(root, "cda:author/cda:assignedAuthor/cda:assignedPerson/cda:name"))),
        ("Établissement responsable", _text(_first(root, custodian))),
    ]
    title = _text(_first(root, "cda:title")) or "Document sans titre"
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v or 'non renseigné')}</dd>" for k, v in rows)
    return f'<header><h2>{escape(title)}</h2><dl>{items}</dl></header>'


# ---- body ----


def _body(root: etree._Element) -> str:
    structured = _first(root, "cda:component/cda:structuredBody")
    if structured is not None:
        return "".join(_section(s, 3) for s in structured.xpath("cda:component/cda:section", namespaces=NS))
    text = _first(root, "cda:component/cda:nonXMLBody/cda:text")
    if text is None:
        return "<p>Ce document n’a pas de contenu affichable.</p>"
    if (text.get("representation") or "").upper() == "B64":
        media = (text.get("mediaType") or "").lower()
        if media == "application/pdf":
            return f'<p class="cda-note">{escape(PDF_SHOWN if _MEDIA.get() else PDF_NOTE)}</p>'
        note = f"contenu joint ({media or 'type inconnu'}) : ouvrez-le avec « Télécharger »"
        return f'<p class="cda-note">{escape(note)}</p>'
    return f"<pre>{escape(''.join(text.itertext()))}</pre>"


def _section(section: etree._Element, level: int) -> str:
    h = min(level, 6)
    title = _first(section, "cda:title")
    out = [f"<section><h{h}>{escape(_text(title))}</h{h}>" if title is not None else "<section>"]
    text = _first(section, "cda:text")
    if text is not None:
        out.append(f"<div>{_children(text)}</div>")
    out.extend(_section(s, level + 1) for s in section.xpath("cda:component/cda:section", namespaces=NS))
    out.append("</section>")
    return "".join(out)


def _children(el: etree._Element) -> str:
    parts = [escape(el.text or "")]
    for child in el:
        if isinstance(child.tag, str):
            parts.append(_narrative(child))
        parts.append(escape(child.tail or ""))
    return "".join(parts)


def _wrap(tag: str, inner: str, attrs: str = "") -> str:
    return f"<{tag}{attrs}>{inner}</{tag}>"


def _cell(el: etree._Element, tag: str) -> str:
    attrs = "".join(
        f' {a}="{escape(el.get(a) or "")}"' for a in _CELL_ATTRS if (el.get(a) or "").isdigit()
    )
    return _wrap(tag, _children(el), attrs)


def _content(el: etree._Element) -> str:
    inner = _children(el)
    for style in (el.get("styleCode") or "").lower().split():
        if style in _STYLES:
            inner = _wrap(_STYLES[style], inner)
    return _wrap("span", inner)


def _list(el: etree._Element) -> str:
    tag = "ol" if (el.get("listType") or "").lower() == "ordered" else "ul"
    tagged = [c for c in el if isinstance(c.tag, str)]
    items = "".join(_narrative(c) for c in tagged if etree.QName(c).localname == "item")
    head = "".join(f"<p>{_children(c)}</p>" for c in tagged if etree.QName(c).localname == "caption")
    return head + _wrap(tag, items)


def _table(el: etree._Element) -> str:
    parts: list[str] = []
    loose: list[str] = []  # tr directly under table: kept in a tbody
    for child in el:
        if not isinstance(child.tag, str):
            continue
        html = _narrative(child)
        if etree.QName(child).localname == "tr":
            loose.append(html)
        else:
            parts.append(html)
    if loose:
        parts.append(_wrap("tbody", "".join(loose)))
    return _wrap("table", "".join(parts))


_SPECIAL: dict[str, Callable[[etree._Element], str]] = {
    "content": _content,
    "list": _list,
    "table": _table,
    "th": lambda el: _cell(el, "th"),
    "td": lambda el: _cell(el, "td"),
    "br": lambda el: "<br>",
    "renderMultiMedia": lambda el: _multimedia(el),
    "col": lambda el: "",
    "colgroup": lambda el: "",
    "footnoteRef": lambda el: "",
}


def _narrative(el: etree._Element) -> str:
    """One narrative element as HTML; unknown elements keep only their text (e.g. ``linkHtml``)."""
    if etree.QName(el).namespace not in (V3, None):
        return escape(_text(el))
    name = etree.QName(el).localname
    special = _SPECIAL.get(name)
    if special is not None:
        return special(el)
    if name in _SIMPLE:
        return _wrap(_SIMPLE[name], _children(el))
    return _wrap("span", _children(el))


def render_document(
    data: bytes, mime_type: str, media_base: str | None = None, found: Mapping[str, Media] | None = None
) -> str:
    """A stored document of any MIME type: CDA (XML) or FHIR document rendered, plain text in
    ``<pre>``, else a note (``found``: as for ``render_cda``)."""
    mime = mime_type.lower()
    if "xml" in mime:
        return render_cda(data, media_base, found)
    if mime in ("application/fhir+json", "application/json"):
        return sanitise(fhir_document_html(data, MAX_BYTES))
    if mime == "text/plain":
        return sanitise(f"<pre>{escape(data[:MAX_BYTES].decode('utf-8', 'replace'))}</pre>")
    if mime == "application/pdf":
        return f'<p class="cda-note">{escape(PDF_SHOWN if media_base else PDF_NOTE)}</p>'
    return f'<p class="cda-note">{escape("contenu joint : ouvrez-le avec « Télécharger »")}</p>'


# ---- attached media ----


@dataclass(frozen=True)
class Media:
    mime: str
    data: bytes


def media_of(data: bytes, mime_type: str) -> dict[str, Media]:
    """The media a reader may open inline, by key: ``document`` (a PDF document itself),
    ``corps`` (a level-1 CDA's body) and each ``observationMedia`` by its ID. Bounded; a part
    that does not decode is left out."""
    mime = mime_type.lower().split(";")[0].strip()
    if mime == "application/pdf":
        return {"document": Media(mime, data)}
    if "xml" not in mime or len(data) > MAX_BYTES:
        return {}
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return {}
    found: dict[str, Media] = {}
    body = root.find(".//cda:nonXMLBody/cda:text", NS)
    if body is not None and (part := _b64(body)) is not None:
        found["corps"] = part
    for el in root.iterfind(".//cda:observationMedia", NS):
        key, value = el.get("ID") or "", el.find("cda:value", NS)
        if _MEDIA_ID.fullmatch(key) and value is not None and (part := _b64(value)) is not None:
            found[key] = part
    return found


def _b64(el: etree._Element) -> Media | None:
    if (el.get("representation") or "").upper() != "B64":
        return None
    try:
        raw = base64.b64decode("".join(el.itertext()), validate=False)
    except (binascii.Error, ValueError):
        return None
    return Media((el.get("mediaType") or "application/octet-stream").lower(), raw)


def inline_pdf(found: Mapping[str, Media]) -> str | None:
    """The key, among a document's ``media_of``, of the PDF a « Lire » page shows in full (a PDF
    document, or a level-1 CDA whose body is a PDF), if any."""
    for key in ("document", "corps"):
        if key in found and found[key].mime == "application/pdf":
            return key
    return None


def _multimedia(el: etree._Element) -> str:
    ref = el.get("referencedObject") or ""
    current = _MEDIA.get()
    if current is None or not _MEDIA_ID.fullmatch(ref) or ref not in current[1]:
        return f'<span class="cda-note">{escape(MULTIMEDIA)}</span>'
    return _PLACEHOLDER.format(ref)


def _with_media(fragment: str, media_base: str | None, media: dict[str, str]) -> str:
    """The placeholders of the sanitised fragment as images (shown) or links (other files)."""
    if not media_base:
        return fragment

    def tag(m: re.Match[str]) -> str:
        key = m.group(1)
        mime = media.get(key)
        if mime is None:
            return escape(MULTIMEDIA)
        url = escape(media_base + quote(key), quote=True)
        if mime.startswith("image/") and mime in INLINE_MIME:
            return f'<img class="cda-image" src="{url}" alt="Image jointe au document">'
        label = "Ouvrir la pièce jointe (PDF)" if mime == "application/pdf" else "Ouvrir la pièce jointe"
        return f'<a class="cda-piece" href="{url}">{escape(label)}</a>'

    return _PLACEHOLDER_RE.sub(tag, fragment)
