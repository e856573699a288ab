"""« Tout télécharger » and « Résumé imprimable (PDF) » (CS-06) for both spaces, through
``dmp.services.export`` (the policy decides, the export is traced before anything leaves)."""

from __future__ import annotations

from datetime import UTC, tzinfo
from uuid import UUID

from starlette.responses import Response, StreamingResponse

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.outbox.templates import PARIS
from dmp.services import export
from dmp.services.trail import AuditAction
from dmp.web.common import Ctx

LOCAL: tzinfo = PARIS if PARIS is not None else UTC
NOT_VISIBLE = "Ce dossier n'existe pas ou ne vous est pas accessible."
# A download: nothing cached, nothing run or framed if a browser opens it in place.
_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": "sandbox; default-src 'none'"}


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'  # ascii_slug: nothing to escape


def archive(ctx: Ctx, actor: Actor, patient_id: UUID) -> Response:
    """The ZIP, streamed after the transaction (and its trail entry) is committed."""
    found = export.prepare(ctx.conn, ctx.rt, actor, patient_id, AuditAction.RECORD_EXPORT)
    return StreamingResponse(
        export.archive_chunks(ctx.rt, found, LOCAL),
        media_type="application/zip",
        headers={**_HEADERS, "Content-Disposition": _attachment(export.file_name(found, ".zip", LOCAL))},
    )


def summary(ctx: Ctx, actor: Actor, patient_id: UUID) -> Response:
    found = export.prepare(ctx.conn, ctx.rt, actor, patient_id, AuditAction.RECORD_SUMMARY_PDF)
    return Response(
        export.summary_pdf_bytes(found, LOCAL),
        media_type="application/pdf",
        headers={**_HEADERS, "Content-Disposition": _attachment(export.file_name(found, ".pdf", LOCAL))},
    )


def not_found(ctx: Ctx) -> Response:
    return ctx.error_page(404, "Dossier introuvable", NOT_VISIBLE)


def export_error(ctx: Ctx, err: DmpError) -> Response | None:
    """A refusal reads as a record that does not exist; a closed record says so to whoever may
    open it (as its pages do)."""
    if err.status == 404:
        return not_found(ctx)
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", err.message)
    return None
