"""ASGI application factory."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path

from cryptography import x509
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dmp import web
from dmp.api import fhir_routes
from dmp.api.auth import token_endpoint
from dmp.api.hosts import CanonicalHostMiddleware
from dmp.api.http import error_response
from dmp.api.internal_errors import InternalErrorMiddleware, french_error_page, is_portal_page
from dmp.api.state import AppState
from dmp.auth.pki import CA_CERT_FILE
from dmp.auth.tokens import TokenSigner
from dmp.errors import DmpError
from dmp.services import blob_hygiene, uniqueness
from dmp.services.context import Runtime

log = logging.getLogger("dmp.api")


async def _dmp_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, DmpError):
        raise TypeError(f"DmpError handler called with {type(exc).__name__}")
    return error_response(exc)


_ROUTING_ERRORS = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing refusals (no route, wrong method) as French errors, never plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = _ROUTING_ERRORS.get(status)
    if code is None:
        raise exc
    detail = f"{request.method} {request.url.path}" if code == "METHOD_NOT_ALLOWED" else ""
    err = DmpError(code, detail)
    if is_portal_page(request.url.path, request.headers.get("accept", "")):
        return french_error_page(err)
    return error_response(err)


def load_ca_certificate(pki_dir: Path) -> x509.Certificate:
    path = pki_dir / CA_CERT_FILE
    if not path.exists():
        raise SystemExit(
            f"Aucune autorité de certification dans {pki_dir} : lancez d'abord « dmp pki init »."
        )
    return x509.load_pem_x509_certificate(path.read_bytes())


async def _collect_blobs_periodically(runtime: Runtime, interval: float) -> None:
    """The blob gc (dmp.services.blob_hygiene) every ``interval`` seconds, jittered across workers."""
    while True:
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))  # noqa: S311 (not a secret)
        try:
            report = await run_in_threadpool(blob_hygiene.collect_garbage, runtime.engine, runtime.blobs)
        except Exception:
            log.exception("ramasse-miettes des fichiers chiffrés en échec")
        else:
            if report.removed:
                log.warning("ramasse-miettes : %d fichier(s) orphelin(s) supprimé(s)", report.removed)
        try:  # the uniqueness reservations a crash left (ADR 0009 b), on the same schedule
            swept = await run_in_threadpool(uniqueness.sweep, runtime.engine, runtime.settings, runtime.now())
        except Exception:
            log.exception("balayage des réservations d'identifiants en échec")
        else:
            if swept:
                log.warning("réservations d'identifiants périmées supprimées : %d", swept)


def _lifespan(runtime: Runtime) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        interval = runtime.settings.blob_gc_interval
        task = None
        if interval > 0 and blob_hygiene.can_collect(runtime.blobs):
            task = asyncio.create_task(_collect_blobs_periodically(runtime, interval))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan


def create_app(
    runtime: Runtime, *, signer: TokenSigner | None = None, ca_cert: x509.Certificate | None = None
) -> Starlette:
    settings = runtime.settings
    signer = signer or TokenSigner.generate_file(settings.keys_dir / "token-signing.pem")
    ca_cert = ca_cert or load_ca_certificate(settings.pki_dir)
    app = Starlette(
        routes=[
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            Route("/.well-known/smart-configuration", fhir_routes.smart_configuration, methods=["GET"]),
            # ITI-65 posts to the FHIR base itself, without a trailing slash.
            Route("/fhir", fhir_routes.transaction, methods=["POST"]),
            Mount("/fhir", routes=fhir_routes.routes),
            *web.routes(),  # patients' and professionals' portal, OAuth authorize (docs/accounts.md)
        ],
        # Unexpected exceptions: a complete 500 with a correlation id (dmp.api.internal_errors).
        middleware=[
            # The client's address (throttling, the trail) behind the configured proxies only:
            # uvicorn's maintained X-Forwarded-For parsing, right to left, untrusted hop first.
            *([Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))]
              if settings.trusted_proxies else []),
            # Every URL the server builds names DMP_BASE_URL, never the request's Host.
            Middleware(
                CanonicalHostMiddleware, base_url=settings.base_url, allowed_hosts=settings.allowed_hosts
            ),
            Middleware(InternalErrorMiddleware),
        ],
        exception_handlers={DmpError: _dmp_error, HTTPException: _routing_error},
        lifespan=_lifespan(runtime),
    )
    app.state.dmp = AppState(runtime=runtime, signer=signer, ca_cert=ca_cert)
    app.state.web = web.build_state(runtime, signer)
    return app
