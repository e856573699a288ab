"""A safe HTML rendering of an HL7 CDA R2 document (issue 12, « documents lisibles »).

The document is parsed with the hardened parser (no DTD, no entities, no network, bounded
size); every HTML element of the output is built here from the parsed tree (never a copy of
the XML), and the whole fragment then goes through ``nh3`` (ammonia) with an allow-list:
no script, no ``style`` attribute, no event handler, no URL at all (no ``href``/``src``).
Malformed input gives a French message fragment, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

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
MULTIMEDIA = "[contenu multimédia non affiché]"

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


def render_cda(cda_bytes: bytes) -> str:
    """An HTML fragment (French labels) for ``cda_bytes``; the French message when unreadable."""
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
            return f'<p class="cda-note">{escape(PDF_NOTE)}</p>'
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
    "renderMultiMedia": lambda el: f'<span class="cda-note">{escape(MULTIMEDIA)}</span>',
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


def render_document(data: bytes, mime_type: str) -> str:
    """A stored document of any MIME type: CDA (XML) or FHIR document rendered, plain text in
    ``<pre>``, else a note."""
    mime = mime_type.lower()
    if "xml" in mime:
        return render_cda(data)
    if mime in ("application/fhir+json", "application/json"):
        return sanitise(fhir_document_html(data, MAX_BYTES))
    if mime == "text/plain":
        return sanitise(f"<pre>{escape(data[:MAX_BYTES].decode('utf-8', 'replace'))}</pre>")
    if mime == "application/pdf":
        return f'<p class="cda-note">{escape(PDF_NOTE)}</p>'
    return f'<p class="cda-note">{escape("contenu joint : ouvrez-le avec « Télécharger »")}</p>'
