"""The last line of defence: an unexpected exception becomes a complete 500 response.

Starlette's own ``ServerErrorMiddleware`` re-raises after calling a handler, which makes
the server drop the keep-alive connection; this middleware answers and swallows instead.
Each incident gets a correlation id, given to the client and written to the server log
with the traceback, so an operator finds the one from the other. The client never sees
an internal message: only the French catalogue text and the id.
"""

from __future__ import annotations

import logging
import uuid

from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dmp.api.http import error_response
from dmp.errors import DmpError

log = logging.getLogger("dmp.api")
CORRELATION_HEADER = "X-Correlation-ID"
# Paths answered in FHIR (OperationOutcome); everything else is a portal page (HTML).
_FHIR_PREFIXES = ("/fhir", "/oauth/token", "/.well-known")


def internal_error_response(path: str, correlation_id: str) -> Response:
    err = DmpError("INTERNAL_ERROR", correlation_id)
    headers = {CORRELATION_HEADER: correlation_id}
    if path.startswith(_FHIR_PREFIXES):
        response = error_response(err)
        response.headers.update(headers)
        return response
    page = (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Erreur interne</title></head>'
        f"<body><main><h1>Erreur interne</h1><p>{err.message}</p>"
        '<p><a href="/">Retour à l\'accueil</a></p></main></body></html>'
    )
    return HTMLResponse(page, status_code=500, headers=headers)


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
            # Never log bodies or identifiers: the route, the exception type and the traceback.
            log.exception(
                "internal error %s on %s %s (%s)",
                correlation_id,
                scope.get("method", ""),
                scope.get("path", ""),
                type(exc).__name__,
            )
            if started:  # nothing sound can be sent any more; let the server close the stream
                raise
            await internal_error_response(scope.get("path", ""), correlation_id)(scope, receive, send)
