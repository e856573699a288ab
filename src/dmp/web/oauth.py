"""OAuth2 authorization code + PKCE for patient applications (``/oauth/authorize``, and the
``authorization_code`` grant of ``POST /oauth/token``)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmp.accounts import oauth, service
from dmp.accounts.oauth import OAuthError
from dmp.accounts.service import PATIENT
from dmp.api.state import AppState
from dmp.api.token_throttle import count_failure, rate_limited, refused_until, token_buckets
from dmp.domain.actor import Actor, ActorKind
from dmp.errors import DmpError
from dmp.web.common import PERSON_SPACE, Ctx, form_handler, page_handler, web_state

SPACE = PERSON_SPACE
# The writes a patient app may ask for, in the words the consent page shows (docs/accounts.md).
WRITE_MEANS = {
    "DocumentReference": "ajouter vos propres documents (documents du patient, directives anticipées) "
    "et masquer ou démasquer un document aux professionnels de santé",
    "Consent": "bloquer un professionnel de santé, autoriser un professionnel, ou retirer ces choix",
}


def write_means(scope: str) -> list[str]:
    """What the granted ``scope`` lets the app change, in plain French (empty: read only)."""
    kinds = {s.partition("/")[2].partition(".")[0] for s in scope.split() if s in oauth.WRITE_SCOPES}
    return [WRITE_MEANS[k] for k in sorted(kinds) if k in WRITE_MEANS]
PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
)


def _redirect_with(uri: str, **params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode({k: v for k, v in params.items() if v})


def _origin(uri: str) -> str:
    p = urlsplit(uri)
    return f"{p.scheme}://{p.netloc}" if p.netloc else f"{p.scheme}:"


def _validate(ctx: Ctx, q: dict[str, str]) -> tuple[oauth.Client | None, Response | None, str]:
    """The client, or the page/redirect to answer instead, and the normalised scope."""
    client = oauth.get_client(ctx.conn, q.get("client_id", ""))
    if client is None or not client.active:
        return (
            None,
            ctx.error_page(
                400, "Application inconnue", "Cette application n'est pas enregistrée auprès du DMP."
            ),
            "",
        )
    if q.get("redirect_uri", "") not in client.redirect_uris:
        # Never redirect to an address that was not registered (RFC 6749 §4.1.2.1).
        return (
            None,
            ctx.error_page(
                400,
                "Adresse de retour invalide",
                "L'adresse de retour demandée n'est pas celle enregistrée pour cette application.",
            ),
            "",
        )
    uri, state = q["redirect_uri"], q.get("state", "")
    if q.get("response_type") != "code":
        return None, ctx.redirect(_redirect_with(uri, error="unsupported_response_type", state=state)), ""
    if q.get("code_challenge_method") != "S256" or not oauth.valid_challenge(q.get("code_challenge", "")):
        return (
            None,
            ctx.redirect(
                _redirect_with(
                    uri,
                    error="invalid_request",
                    error_description="PKCE S256 obligatoire (code_challenge)",
                    state=state,
                )
            ),
            "",
        )
    try:
        scope = oauth.normalize_scope(q.get("scope"))
    except OAuthError as err:
        return None, ctx.redirect(_redirect_with(uri, error=err.error, state=state)), ""
    return client, None, scope


def authorize_get(ctx: Ctx) -> Response:
    q = {k: ctx.request.query_params.get(k, "") for k in PARAMS}
    client, answer, scope = _validate(ctx, q)
    if answer is not None:
        return answer
    if client is None:
        raise RuntimeError("_validate gave neither a client nor an answer")
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    if acc.kind != PATIENT:
        return ctx.error_page(
            403,
            "Autorisation impossible",
            "Seul le titulaire du dossier peut autoriser une application à y accéder.",
        )
    if acc.majority_confirmation:
        return ctx.redirect("/majorite")
    ctx.form_action_extra = " " + _origin(q["redirect_uri"])
    return ctx.render(
        "oauth_consent.html",
        title="Autoriser une application",
        client=client,
        params=q,
        scope=scope,
        writes=write_means(scope),
    )


def authorize_post(ctx: Ctx, form: dict[str, str]) -> Response:
    q = {k: form.get(k, "") for k in PARAMS}
    client, answer, scope = _validate(ctx, q)
    if answer is not None:
        return answer
    if client is None:
        raise RuntimeError("_validate gave neither a client nor an answer")
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    if acc.kind != PATIENT or acc.patient_id is None:
        return ctx.error_page(
            403,
            "Autorisation impossible",
            "Seul le titulaire du dossier peut autoriser une application à y accéder.",
        )
    ctx.form_action_extra = " " + _origin(q["redirect_uri"])
    if form.get("decision") != "autoriser":
        return ctx.redirect(_redirect_with(q["redirect_uri"], error="access_denied", state=q["state"]))
    code = oauth.issue_code(
        ctx.conn,
        ctx.keys,
        client_id=client.client_id,
        redirect_uri=q["redirect_uri"],
        account_id=acc.id,
        patient_id=acc.patient_id,
        code_challenge=q["code_challenge"],
        scope=scope,
        now=ctx.now,
    )
    return ctx.redirect(_redirect_with(q["redirect_uri"], code=code, state=q["state"]))


def _error(error: str, description: str, status: int = 400) -> Response:
    code = "RATE_LIMITED" if status == 429 else "UNSUPPORTED_GRANT"
    return JSONResponse(
        {"error": error, "error_description": DmpError(code, description).message, "dmp_error_code": code},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def authorization_code_grant(request: Request, state: AppState, form: dict[str, str]) -> Response:
    """``grant_type=authorization_code`` with ``code_verifier`` (public clients, PKCE S256)."""
    missing = [k for k in ("code", "redirect_uri", "client_id", "code_verifier") if not form.get(k)]
    if missing:
        return _error("invalid_request", "paramètre(s) absent(s) : " + ", ".join(missing))
    web = web_state(request)
    rt = state.runtime
    buckets = token_buckets(request, state, "client_id:" + form["client_id"][:256])

    def redeem() -> tuple[str, int, str, str] | OAuthError | datetime:
        now = rt.now()
        refused = refused_until(state, buckets, now)
        if refused is not None:
            return refused
        with rt.engine.begin() as conn:  # committed even on refusal: an attempt spends the code
            try:
                grant = oauth.redeem_code(
                    conn,
                    web.keys,
                    code=form["code"],
                    client_id=form["client_id"],
                    redirect_uri=form["redirect_uri"],
                    code_verifier=form["code_verifier"],
                    now=now,
                )
            except OAuthError as err:
                return err
            acc = service.get(conn, grant.account_id)
            if acc is None or acc.status != "active" or acc.patient_id != grant.patient_id:
                return OAuthError("invalid_grant", "compte inactif")
        actor = Actor(
            kind=ActorKind.PATIENT,
            id=str(grant.patient_id),
            name=acc.display_name,
            software=form["client_id"],
            scopes=frozenset(grant.scope.split()),
        )
        token, expires_in = state.signer.issue(actor, now=now, issuer=rt.settings.base_url)
        return token, expires_in, grant.scope, str(grant.patient_id)

    result = await run_in_threadpool(redeem)
    if isinstance(result, datetime):
        return rate_limited(result, rt.now())
    if isinstance(result, OAuthError):
        await run_in_threadpool(count_failure, state, buckets)
        return _error(result.error, result.description)
    token, expires_in, scope, patient_id = result
    # "patient": the SMART launch context, the record the token reads (Patient/<id>).
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": scope,
            "patient": patient_id,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def routes() -> list[Route]:
    return [
        Route("/oauth/authorize", page_handler(SPACE, authorize_get), methods=["GET"]),
        Route("/oauth/authorize", form_handler(SPACE, authorize_post), methods=["POST"]),
    ]
