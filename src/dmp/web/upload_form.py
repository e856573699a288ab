"""Reading a portal upload form (multipart, one file) within a size bound: shared by the
professionals' « Publier un document » and the patient's « Ajouter un document »."""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse

FORM_MARGIN = 256 * 1024  # the metadata and multipart framing around the file


async def read_upload(
    request: Request, limit: int, fields: Collection[str]
) -> tuple[dict[str, str], bytes | None] | None:
    """The multipart form (``fields`` and ``csrf``, one file named ``fichier``), or None when
    the body exceeds ``limit`` (not read further)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    request._body = body  # Starlette's form parser reads the body already received
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        return {}, None
    parsed = await request.form(max_files=1, max_fields=len(fields) + 4)
    form = {k: v for k, v in parsed.items() if isinstance(v, str) and k in (*fields, "csrf")}
    upload = parsed.get("fichier")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    await parsed.close()
    return form, data or None


def too_large(max_document_bytes: int) -> HTMLResponse:
    """The answer to a body over the bound (no page context: it was not read)."""
    return HTMLResponse(
        '<!doctype html><html lang="fr"><title>Erreur</title><p>Fichier trop volumineux : '
        f"{max_document_bytes // 1024} Ko au plus. Revenez à la page précédente.",
        status_code=413,
    )
