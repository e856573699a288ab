"""A FHIR document (Bundle of type ``document``) as the « Lire » page shows it: the
Composition's title, then each section's title and narrative. The HTML is NOT sanitised here:
``render.render_document`` passes it through the same nh3 allow-list as a CDA's. Never raises
for bad input: a note instead."""

from __future__ import annotations

import json
from html import escape
from typing import Any

NOT_READABLE = "document FHIR illisible : ouvrez-le avec « Télécharger »"
MAX_SECTIONS = 200


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _composition(data: bytes, max_bytes: int) -> dict[str, Any] | None:
    if len(data) > max_bytes:
        return None
    try:
        bundle = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(bundle, dict) or bundle.get("type") != "document":
        return None
    first = _obj(next(iter(_list(bundle.get("entry"))), None)).get("resource")
    return first if isinstance(first, dict) and first.get("resourceType") == "Composition" else None


def fhir_document_html(data: bytes, max_bytes: int) -> str:
    """The unsanitised HTML of the document's narrative (the caller sanitises it)."""
    composition = _composition(data, max_bytes)
    if composition is None:
        return f'<p class="cda-note">{escape(NOT_READABLE)}</p>'
    parts = []
    title = composition.get("title")
    if isinstance(title, str):
        parts.append(f"<h2>{escape(title)}</h2>")
    for sec in _list(composition.get("section"))[:MAX_SECTIONS]:
        sec = _obj(sec)
        if isinstance(sec.get("title"), str):
            parts.append(f"<h3>{escape(sec['title'])}</h3>")
        div = _obj(sec.get("text")).get("div")
        if isinstance(div, str):
            parts.append(div)
    return "".join(parts)
