"""The text of a PDF (level-1 CDA bodies, PDF documents), bounded: for the full-text index only.

pypdf is pure Python; a hostile file can still make it slow or raise anything, so the input size,
the pages read and the text kept are bounded, and every failure is an answer (``PdfText.error``),
never an exception: a document is never refused for its PDF.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

MAX_PDF_BYTES = 20 * 1024 * 1024
MAX_PAGES = 50
MAX_CHARS = 200_000

# pypdf warns on every oddity of real-world files through logging; they are not ours to report.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PdfText:
    text: str | None
    note: str | None = None  # French: what was left out
    error: str | None = None  # French: why no text could be read


def pdf_text(data: bytes) -> PdfText:
    if len(data) > MAX_PDF_BYTES:
        return PdfText(None, error=f"PDF trop volumineux pour en extraire le texte ({len(data)} octets)")
    try:
        from pypdf import PdfReader  # imported here: only documents carrying a PDF pay for it

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return PdfText(None, error="PDF chiffré : texte non extrait")
        parts: list[str] = []
        size = 0
        pages = reader.pages
        for page in pages[:MAX_PAGES]:
            chunk = page.extract_text() or ""
            parts.append(chunk)
            size += len(chunk)
            if size >= MAX_CHARS:
                break
    except Exception as exc:  # noqa: BLE001 (untrusted file: any failure is the file's)
        return PdfText(None, error=f"texte du PDF illisible : {type(exc).__name__}")
    text = "\n".join(parts)[:MAX_CHARS].strip() or None
    note = None
    if len(pages) > MAX_PAGES or size >= MAX_CHARS:
        note = f"texte du PDF extrait en partie ({MAX_PAGES} pages, {MAX_CHARS} caractères au plus)"
    elif text is None:
        note = "PDF sans texte extractible (image numérisée ?)"
    return PdfText(text, note=note)
