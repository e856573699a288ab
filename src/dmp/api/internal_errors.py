"""The last line of defence: an unexpected exception becomes a complete 500 response.

Starlette's own ``ServerErrorMiddleware`` re-raises after calling a handler, which makes
the server drop the keep-alive connection; this middleware answers and swallows instead.
Each incident gets a correlation id, given to the client and written to the server log
with the traceback, so an operator finds the one from the other. The client never sees
an internal message: only the French catalogue text and the id.
"""

from __future__ import annotations

import html
import logging
import uuid

import psycopg
import sqlalchemy.exc
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dmp.api.http import error_response
from dmp.errors import DmpError

log = logging.getLogger("dmp.api")
CORRELATION_HEADER = "X-Correlation-ID"
# Paths answered in FHIR (OperationOutcome); everything else is a portal page (HTML).
_FHIR_PREFIXES = ("/fhir", "/oauth/token", "/.well-known")


_PAGE_TITLES = {
    404: "Page introuvable",
    405: "Opération non autorisée",
    500: "Erreur interne",
    503: "Service momentanément indisponible",
}
RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or is busy: a transient outage, not a bug (503, not 500)."""
    if isinstance(exc, (sqlalchemy.exc.TimeoutError, sqlalchemy.exc.DisconnectionError)):
        return True
    if not isinstance(exc, sqlalchemy.exc.OperationalError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError):
        return True
    # SQLite: a locked or unreachable file; anything else (no such table…) is a bug.
    text = str(exc.orig).lower()
    return any(word in text for word in ("locked", "busy", "unable to open"))


def is_portal_page(path: str, accept: str = "text/html") -> bool:
    """A person's browser (HTML) rather than software speaking FHIR."""
    return not path.startswith(_FHIR_PREFIXES) and "text/html" in accept


def french_error_page(err: DmpError, headers: dict[str, str] | None = None) -> Response:
    title = _PAGE_TITLES.get(err.status, "Erreur")
    page = (
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><main><h1>{title}</h1><p>{html.escape(err.message)}</p>"
        '<p><a href="/">Retour à l\'accueil</a></p></main></body></html>'
    )
    return HTMLResponse(page, status_code=err.status, headers=headers)


def internal_error_response(
    path: str, correlation_id: str, accept: str = "text/html", *, outage: bool = False
) -> Response:
    err = DmpError("SERVICE_UNAVAILABLE" if outage else "INTERNAL_ERROR", correlation_id)
    headers = {CORRELATION_HEADER: correlation_id}
    if outage:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if is_portal_page(path, accept):
        return french_error_page(err, headers)
    response = error_response(err)
    response.headers.update(headers)
    return response


class InternalErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            correlation_id = uuid.uuid4().hex
            outage = database_unavailable(exc)
            # Never log bodies or identifiers: the route, the exception type and the traceback.
            log.error(
                "%s %s on %s %s (%s)",
                "database unavailable" if outage else "internal error",
                correlation_id,
                scope.get("method", ""),
                scope.get("path", ""),
                type(exc).__name__,
                exc_info=not outage,
            )
            if started:  # nothing sound can be sent any more; let the server close the stream
                raise
            accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
            response = internal_error_response(scope.get("path", ""), correlation_id, accept, outage=outage)
            await response(scope, receive, send)
