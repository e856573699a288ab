"""Absolute URLs come from DMP_BASE_URL, never from the request's ``Host`` header.

Starlette builds some URLs from the request (the trailing-slash redirect's ``Location``, for
one): a client sending ``Host: evil.example`` would get a redirect to evil.example. This
middleware, outermost after the proxy-headers one, gives every request the scheme and host of the
configured base before anything reads them. Where ``DMP_ALLOWED_HOSTS`` is set, a request naming
another host is refused first (400, in French), so a misrouted or forged request is visible.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from dmp.api.http import error_response
from dmp.api.internal_errors import french_error_page, is_portal_page
from dmp.errors import DmpError


class CanonicalHostMiddleware:
    def __init__(self, app: ASGIApp, *, base_url: str, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        base = urlsplit(base_url)
        self.scheme = base.scheme or "http"
        self.host = base.netloc.encode("latin-1")
        # The base's own host is always allowed; names are compared without case.
        self.allowed = {h.lower() for h in allowed_hosts} | {base.netloc.lower()} if allowed_hosts else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"host"]
        if self.allowed is not None:
            asked = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            if asked not in self.allowed:
                err = DmpError("UNKNOWN_HOST", asked[:100] or "absent")
                accept = dict(headers).get(b"accept", b"").decode("latin-1")
                page = is_portal_page(scope.get("path", ""), accept)
                await (french_error_page(err) if page else error_response(err))(scope, receive, send)
                return
        scope = {**scope, "scheme": self.scheme, "headers": [(b"host", self.host), *headers]}
        await self.app(scope, receive, send)
