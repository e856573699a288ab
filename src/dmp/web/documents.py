"""Document lists and downloads for both spaces, always through the services (so the policy applies)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode
from uuid import UUID

from starlette.responses import Response

from dmp.clinical.render import INLINE_MIME, inline_pdf, media_of, render_document
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.services import documents, search
from dmp.terminology import valueset
from dmp.web.common import CSP, Ctx

PAGE_SIZE = 50
MAX_WORDS_CHARS = 200  # the search box's text
_EXTENSIONS = {
    "text/xml": ".xml",
    "application/xml": ".xml",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/hl7-v3+xml": ".xml",
}


@dataclass(frozen=True)
class DocumentLine:
    id: UUID
    title: str
    date: datetime
    type_label: str
    author: str
    mime_type: str
    snippet: tuple[tuple[str, bool], ...] = ()  # (text, matched word): the template escapes and marks


@dataclass(frozen=True)
class DocumentPage:
    patient_id: UUID | None
    lines: list[DocumentLine]
    next_offset: int | None
    offset: int
    words: str = ""  # the full-text search asked for, if any
    search_error: str | None = None  # French

    @property
    def words_query(self) -> str:
        """``recherche=…&`` for the next page's link (empty without a search)."""
        return urlencode({"recherche": self.words}) + "&" if self.words else ""


def _type_label(code: str) -> str:
    found = valueset("J66").lookup(code)
    return found[0].display if found else code


def offset_param(ctx: Ctx) -> int:
    raw = ctx.request.query_params.get("page_debut", "0")
    return int(raw) if raw.isdigit() and int(raw) < 1_000_000 else 0


def search_words(ctx: Ctx) -> str:
    """The words of the document list's search box (CS-04), bounded."""
    return " ".join(ctx.request.query_params.get("recherche", "").split())[:MAX_WORDS_CHARS]


def list_documents(
    ctx: Ctx, actor: Actor, params: list[tuple[str, str]], offset: int, words: str = ""
) -> DocumentPage:
    """One page of the documents ``actor`` may see (``search_documents``: the policy filters in SQL);
    with ``words``, those whose text holds them all, most relevant first, with a marked passage."""
    paging = [("_count", str(PAGE_SIZE)), ("_offset", str(offset))]
    content = [("_content", words)] if words else []
    try:
        page = search.search_documents(ctx.conn, ctx.rt, actor, [*params, *content, *paging], snippets=True)
    except DmpError as err:
        if not content or err.code != "INVALID_SEARCH":
            raise
        # Refused before the record was opened (no word left to search, too many): say so.
        return DocumentPage(None, [], None, offset, words, err.message)
    snippets = page.snippets or {}
    ids = [r.id for r in page.rows]
    details = {}
    if ids and page.patient_id is not None:
        for row in documents.list_lines(ctx.conn, page.patient_id, ids):
            details[row.id] = DocumentLine(
                row.id,
                row.title,
                row.creation_time,
                _type_label(row.type_code),
                row.author_name or "",
                row.mime_type,
                tuple(snippets.get(row.id, ())),
            )
    lines = [details[i] for i in ids if i in details]
    return DocumentPage(page.patient_id, lines, page.next_offset, offset, words)


def _filename(title: str, mime: str) -> tuple[str, str]:
    """(ASCII fallback, UTF-8 name) for Content-Disposition."""
    base = re.sub(r"[\x00-\x1f\\/:*?\"<>|]+", " ", title).strip()[:80] or "document"
    ext = _EXTENSIONS.get(mime, "")
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode() or "document"
    ascii_name = re.sub(r"[^A-Za-z0-9 ._-]", "_", ascii_name)
    return ascii_name + ext, base + ext


def download(ctx: Ctx, actor: Actor, raw_id: str) -> Response:
    """ITI-68 through ``documents.retrieve``: the same 404 for missing and not visible. Refusals
    propagate (``download_error`` renders them) so that the transaction rolls back and the
    refusal is traced like on the API."""
    try:
        doc_id = UUID(raw_id)
    except ValueError:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    content = documents.retrieve(ctx.conn, ctx.rt, actor, doc_id)
    title = documents.title_of(ctx.conn, content.patient_id, doc_id) or "document"
    fallback, utf8 = _filename(title, content.mime_type)
    return Response(
        content.data,
        headers={
            "Content-Type": content.mime_type,
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(utf8)}",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


def read(ctx: Ctx, actor: Actor, raw_id: str, download_url: str) -> Response:
    """The « Lire » page: the same ``documents.retrieve`` as a download (same policy, same trail
    entry), the bytes rendered as sanitised HTML (``dmp.clinical.render``)."""
    try:
        doc_id = UUID(raw_id)
    except ValueError:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    content = documents.retrieve(ctx.conn, ctx.rt, actor, doc_id)
    title = documents.title_of(ctx.conn, content.patient_id, doc_id) or "Document"
    pieces = download_url + "/pieces/"
    found = media_of(content.data, content.mime_type)
    pdf = inline_pdf(found)
    response = ctx.render(
        "document_read.html",
        title=title,
        rendered=render_document(content.data, content.mime_type, pieces, found),  # sanitised by nh3
        download_url=download_url,
        pdf_url=pieces + pdf if pdf else None,
        doc_id=doc_id,
    )
    # The page frames only this server's own PDF (its « pièces » route).
    response.headers["Content-Security-Policy"] = CSP.format(extra="") + "; frame-src 'self'"
    return response


def piece(ctx: Ctx, actor: Actor, raw_id: str, key: str) -> Response:
    """One medium of a document (a level-1 body, an ``observationMedia``, a PDF document) for
    its « Lire » page: the same ``documents.retrieve`` (policy, trail) as a download; a PDF or
    an image inline, anything else as an attachment."""
    try:
        doc_id = UUID(raw_id)
    except ValueError:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    content = documents.retrieve(ctx.conn, ctx.rt, actor, doc_id)
    found = media_of(content.data, content.mime_type).get(key)
    if found is None:
        return ctx.error_page(404, "Pièce jointe introuvable", "Ce document n'a pas cette pièce jointe.")
    inline = found.mime in INLINE_MIME
    headers = {
        "Content-Type": found.mime if inline else "application/octet-stream",
        "Content-Disposition": "inline" if inline else 'attachment; filename="piece-jointe"',
        "Cache-Control": "no-store",
        # A PDF is shown in the « Lire » page's frame (the viewer needs no sandbox); an image or a
        # file needs nothing at all.
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'"
        if found.mime == "application/pdf" else "sandbox; default-src 'none'",
        "X-Frame-Options": "SAMEORIGIN",
    }
    return Response(found.data, headers=headers)


NOT_VISIBLE = "Ce document n'existe pas ou ne vous est pas accessible."


def download_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", err.message)
    return None
