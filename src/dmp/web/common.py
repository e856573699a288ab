"""What every page shares: state, sessions and cookies, CSRF, forms, rendering, headers.

Handlers are thin: ``handle(request, realm, work)`` runs ``work(ctx)`` in the thread pool
inside one database transaction (ADR 0001) and applies the session cookie and the security
headers to whatever response it returns.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jinja2
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dmp.accounts import sessions
from dmp.accounts.keys import AccountKeys, keys_for, same
from dmp.accounts.service import PERSON, PRO, Account, actor_for, get
from dmp.auth.tokens import TokenSigner
from dmp.clinical import synthesis
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.outbox.templates import PARIS
from dmp.services import unit_of_work
from dmp.services.context import Runtime

log = logging.getLogger("dmp.web")
MAX_FORM_BYTES = 64 * 1024
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass(frozen=True)
class Space:
    """One of the two web spaces: the patients' (``/``) and the professionals' (``/pro``)."""

    realm: str
    prefix: str
    name: str
    login_label: str
    login_help: str

    def url(self, path: str = "") -> str:
        return (self.prefix + path) or "/"

    @property
    def home(self) -> str:
        return self.prefix or "/"


PERSON_SPACE = Space(
    PERSON,
    "",
    "Mon DMP — espace patient",
    "Identifiant",
    "Votre numéro de sécurité sociale (INS, 15 caractères) ou, pour un représentant légal, "
    "votre adresse électronique.",
)
PRO_SPACE = Space(
    PRO,
    "/pro",
    "DMP — espace professionnel de santé",
    "Numéro RPPS",
    "Les 11 chiffres de votre numéro RPPS.",
)
SPACES = {PERSON: PERSON_SPACE, PRO: PRO_SPACE}


def secure_cookies(base_url: str) -> bool:
    """Secure cookies, except on a development instance served over plain HTTP on loopback."""
    parts = urlsplit(base_url)
    return not (parts.scheme == "http" and (parts.hostname or "") in _LOCAL_HOSTS)


@dataclass
class WebState:
    runtime: Runtime
    keys: AccountKeys
    signer: TokenSigner
    env: jinja2.Environment
    secure: bool

    def cookie_name(self, realm: str) -> str:
        base = "dmp_pro" if realm == PRO else "dmp_session"
        # __Host-: the browser only accepts it Secure, for Path=/ and without Domain.
        return f"__Host-{base}" if self.secure else base


def _date_fr(value: Any) -> str:
    if isinstance(value, datetime):
        local = value.astimezone(PARIS) if PARIS is not None else value
        return f"{local:%d/%m/%Y à %H:%M}"
    return f"{value:%d/%m/%Y}" if value is not None else ""


def build_state(runtime: Runtime, signer: TokenSigner) -> WebState:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dmp.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date_fr"] = _date_fr
    env.filters["date_iso_fr"] = synthesis.date_fr  # a FHIR date (2026-11-18) as 18/11/2026
    return WebState(
        runtime, keys_for(runtime.settings), signer, env, secure_cookies(runtime.settings.base_url)
    )


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


class CsrfRefused(Exception):
    pass


class FormRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded in size; single values only. Any other body counts as an
    empty form, hence no CSRF token: refused with 403 like a forged request."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused(413, "Formulaire trop volumineux.")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "inconnu"


def safe_next(value: str | None, space: Space) -> str | None:
    """A page to return to after login: a local path only (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 0x20 for ch in value) or len(value) > 2000:
        return None
    return value


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'{extra}; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Ctx:
    """One request's work inside its transaction."""

    web: WebState
    conn: Connection
    space: Space
    request: Request
    token: str | None
    now: datetime
    address: str
    session: sessions.Session | None = None
    expired: bool = False
    new_token: str | None = None
    clear_cookie: bool = False
    form_action_extra: str = ""
    _account: Account | None = field(default=None, repr=False)

    @property
    def keys(self) -> AccountKeys:
        return self.web.keys

    @property
    def rt(self) -> Runtime:
        return self.web.runtime

    def load(self) -> None:
        self.session, self.expired = sessions.load(self.conn, self.token, self.space.realm, self.now)

    def ensure_session(self) -> sessions.Session:
        """The visitor's session, created (anonymous) if missing: forms need its CSRF token."""
        if self.session is None:
            self.new_token, self.session = sessions.create(self.conn, self.space.realm, self.now)
        return self.session

    def rotate(self, stage: str, account_id: Any, **kw: Any) -> sessions.Session:
        self.new_token, self.session = sessions.rotate(
            self.conn,
            self.session,
            self.now,
            realm=self.space.realm,
            stage=stage,
            account_id=account_id,
            **kw,
        )
        self._account = None
        return self.session

    def end_session(self) -> None:
        if self.session is not None:
            sessions.destroy(self.conn, self.session)
        self.session = None
        self.clear_cookie = True

    def require_csrf(self, form: dict[str, str]) -> sessions.Session:
        s = self.session
        sent = form.get("csrf", "")
        if s is None or not sent or not same(sent, s.csrf):
            raise CsrfRefused()
        return s

    @property
    def account(self) -> Account | None:
        if self._account is None and self.session is not None and self.session.account_id is not None:
            self._account = get(self.conn, self.session.account_id)
        return self._account

    def actor(self, acc: Account) -> Actor:
        """The account's Actor for this request (with the client address, for the trail)."""
        return actor_for(acc, source_address=self.address)

    def full_account(self) -> Account | None:
        """The logged-in account (session at stage ``full``, account still active)."""
        if self.session is None or self.session.stage != sessions.FULL:
            return None
        acc = self.account
        if acc is None or acc.status != "active":
            return None
        return acc

    def to_login(self) -> Response:
        path = self.request.url.path
        query = self.request.url.query
        target = path + ("?" + query if query else "")
        url = self.space.url("/connexion")
        params = []
        if self.expired:
            params.append("expiree=1")
        if self.request.method == "GET" and target != self.space.home:
            params.append("suivant=" + quote(target, safe=""))
        return self.redirect(url + ("?" + "&".join(params) if params else ""))

    def redirect(self, url: str) -> Response:
        return RedirectResponse(url, status_code=303)

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        acc = self.full_account()
        base: dict[str, Any] = {
            "space": self.space,
            "user": acc,
            "csrf": self.session.csrf if self.session else "",
            "errors": [],
            "notice": None,
            "title": "",
        }
        base.update(context)
        text = self.web.env.get_template(template).render(**base)
        return HTMLResponse(text, status_code=status)

    def error_page(self, status: int, title: str, message: str) -> Response:
        return self.render("message.html", status=status, title=title, errors=[message])

    def finish(self, response: Response) -> Response:
        name = self.web.cookie_name(self.space.realm)
        if self.new_token is not None:
            response.set_cookie(
                name, self.new_token, path="/", secure=self.web.secure, httponly=True, samesite="lax"
            )
        elif self.clear_cookie:
            response.delete_cookie(name, path="/", secure=self.web.secure, httponly=True, samesite="lax")
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        response.headers.setdefault("Content-Security-Policy", CSP.format(extra=self.form_action_extra))
        return response


Work = Callable[[Ctx], Response]


OnError = Callable[["Ctx", DmpError], Response | None]

ERROR_TITLES = {403: "Accès refusé", 404: "Introuvable", 409: "Action impossible"}


async def handle(request: Request, space: Space, work: Work, on_error: OnError | None = None) -> Response:
    """Run ``work`` in one transaction. A ``DmpError`` rolls it back; a refusal's trail entry is
    then written in a transaction of its own (as the API does), and the error page is built by
    ``on_error`` (or a default one) from a read-only connection."""
    w = web_state(request)
    token = request.cookies.get(w.cookie_name(space.realm))
    address = client_address(request)

    def run() -> Response:
        try:
            with unit_of_work.transaction(w.runtime.engine) as conn:
                ctx = Ctx(w, conn, space, request, token, w.runtime.now(), address)
                ctx.load()
                try:
                    response = work(ctx)
                except CsrfRefused:
                    response = ctx.render(
                        "message.html",
                        status=403,
                        title="Requête refusée",
                        errors=[
                            "Le jeton de sécurité du formulaire est absent ou invalide (protection contre la "
                            "falsification de requête). Rechargez la page et recommencez."
                        ],
                    )
                return ctx.finish(response)
        except DmpError as err:  # rolled back, the refusal traced (unit_of_work): nothing else remains
            return failure(err.status, ERROR_TITLES.get(err.status, "Action impossible"), err.message, err)
        except Exception as exc:
            # Never log form values or identifiers: the route and the exception type only.
            log.exception(
                "internal error on %s %s (%s)", request.method, request.url.path, type(exc).__name__
            )
            return failure(
                500,
                "Erreur interne",
                "Erreur interne du service ; aucune donnée n'a été enregistrée. "
                "Réessayez dans quelques instants.",
            )

    def failure(status: int, title: str, message: str, err: DmpError | None = None) -> Response:
        with w.runtime.engine.connect() as conn:  # read only: rendered, then rolled back
            ctx = Ctx(w, conn, space, request, token, w.runtime.now(), address)
            ctx.session, _ = sessions.load(conn, token, space.realm, ctx.now)
            response = on_error(ctx, err) if on_error is not None and err is not None else None
            return ctx.finish(response or ctx.error_page(status, title, message))

    return await run_in_threadpool(run)


def form_handler(
    space: Space, work: Callable[[Ctx, dict[str, str]], Response], on_error: OnError | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A POST route: read the form, then check the CSRF token before anything else."""

    async def endpoint(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return HTMLResponse(
                f'<!doctype html><html lang="fr"><title>Erreur</title><p>{html.escape(exc.message)}',
                status_code=exc.status,
            )

        def run(ctx: Ctx) -> Response:
            ctx.require_csrf(form)
            return work(ctx, form)

        return await handle(request, space, run, on_error)

    return endpoint


def page_handler(
    space: Space, work: Work, on_error: OnError | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handle(request, space, work, on_error)

    return endpoint


def lock_message(until: datetime | None) -> str:
    when = ""
    if until is not None:
        local = until.astimezone(PARIS) if PARIS is not None else until
        when = f" après {local:%H:%M} (heure de Paris)"
    return (
        "Trop de tentatives infructueuses. Pour votre sécurité, les connexions sont suspendues pendant "
        f"15 minutes : réessayez{when}."
    )
