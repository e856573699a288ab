"""Bearer-token authentication of /fhir calls and the SMART Backend Services token endpoint."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dmp.api.http import media_type
from dmp.api.state import AppState
from dmp.api.token_throttle import count_failure, rate_limited, refused_until, token_buckets
from dmp.auth.assertion import claimed_client, verify_client_assertion
from dmp.auth.tokens import actor_from_assertion
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.services import client_auth

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def authenticate(request: Request, state: AppState) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DmpError("AUTH_REQUIRED", "en-tête Authorization: Bearer <jeton> absent")
    actor = state.signer.verify(token.strip(), now=state.runtime.now())
    return replace(actor, source_address=request.client.host if request.client else None)


def _oauth_error(err: DmpError, error: str = "invalid_client") -> Response:
    status = 400 if error in ("invalid_request", "unsupported_grant_type") else 401
    return JSONResponse(
        {"error": error, "error_description": err.message, "dmp_error_code": err.code},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def _token_form(request: Request) -> dict[str, str] | Response:
    """The token request's form fields (those given once), or the OAuth error refusing the body."""
    if media_type(request) != "application/x-www-form-urlencoded":
        return _oauth_error(
            DmpError("UNSUPPORTED_GRANT", "formulaire application/x-www-form-urlencoded attendu"),
            "invalid_request",
        )
    body = await request.body()
    if len(body) > 64 * 1024:
        return _oauth_error(DmpError("UNSUPPORTED_GRANT", "requête trop volumineuse"), "invalid_request")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if len(v) == 1}


def _client_credentials_refusal(form: dict[str, str]) -> Response | None:
    """The OAuth error for a form that is no client_credentials grant with a client assertion."""
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(
            DmpError("UNSUPPORTED_GRANT", "grant_type=client_credentials attendu"), "unsupported_grant_type"
        )
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        return _oauth_error(
            DmpError("UNSUPPORTED_GRANT", f"client_assertion_type={CLIENT_ASSERTION_TYPE} attendu"),
            "invalid_request",
        )
    if not form.get("client_assertion"):
        return _oauth_error(DmpError("UNSUPPORTED_GRANT", "client_assertion absente"), "invalid_request")
    return None


async def token_endpoint(request: Request) -> Response:
    state: AppState = request.app.state.dmp
    form = await _token_form(request)
    if isinstance(form, Response):
        return form
    if form.get("grant_type") == "authorization_code":  # patient apps: code + PKCE (docs/accounts.md)
        from dmp.web.oauth import authorization_code_grant

        return await authorization_code_grant(request, state, form)
    refusal = _client_credentials_refusal(form)
    if refusal is not None:
        return refusal
    assertion = form["client_assertion"]
    buckets = token_buckets(request, state, claimed_client(assertion))

    def issue() -> tuple[str, int, str] | datetime:
        rt = state.runtime
        now = rt.now()
        refused = refused_until(state, buckets, now)
        if refused is not None:
            return refused
        with rt.engine.begin() as conn:
            verified = verify_client_assertion(
                assertion,
                ca_cert=state.ca_cert,
                audience=rt.settings.token_audience,
                now=now,
                is_revoked=lambda serial: client_auth.is_revoked(conn, serial),
                remember_jti=lambda jti, exp: client_auth.remember_jti(conn, jti, exp, now),
            )
        actor = actor_from_assertion(verified)
        token, expires_in = state.signer.issue(actor, now=now, issuer=rt.settings.base_url)
        return token, expires_in, " ".join(sorted(actor.scopes)) or "system/*.*"

    try:
        issued = await run_in_threadpool(issue)
    except DmpError as err:
        await run_in_threadpool(count_failure, state, buckets)
        return _oauth_error(err)
    if isinstance(issued, datetime):
        return rate_limited(issued, state.runtime.now())
    token, expires_in, scope = issued
    return JSONResponse(
        {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": scope},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


# What each write use case needs of a scoped token: (resource type, SMART v2 permission letter).
CREATE, UPDATE, DELETE = "c", "u", "d"
_V1_LETTERS = {"read": "rs", "write": "cud", "*": "cruds"}


def _scope_grants(scope: str, resource: str, letter: str) -> bool:
    """SMART v1 (``patient/Consent.write``, ``.*``) or v2 (``patient/Consent.cd``) scope
    ``scope`` permits ``letter`` on ``resource`` (``*`` for any resource type)."""
    context, _, rest = scope.partition("/")
    rtype, _, permission = rest.partition(".")
    if context not in ("patient", "user", "system") or rtype not in (resource, "*"):
        return False
    letters = _V1_LETTERS.get(permission, permission.partition("?")[0])
    return letter in letters


def require_write_scope(actor: Actor, resource: str, letter: str) -> None:
    """A token granted with scopes (a patient app's) writes only what they name: a publication
    needs ``patient/DocumentReference.c``, a mask ``.u``, a consent ``patient/Consent.c`` / ``.d``
    (docs/accounts.md). What the scope allows, the policy still decides (a patient app never does
    more than its patient).

    Tokens without scopes (professional software, SMART Backend Services) are not limited here;
    what they may do is the policy's decision.
    """
    if actor.scopes and not any(_scope_grants(s, resource, letter) for s in actor.scopes):
        granted = " ".join(sorted(actor.scopes))
        verb = {CREATE: "créer", UPDATE: "modifier", DELETE: "supprimer"}.get(letter, "écrire")
        raise DmpError(
            "FORBIDDEN",
            f"jeton sans droit d'écriture pour {verb} une ressource {resource} (portée {granted}) ; "
            "jeton en lecture seule pour cette ressource",
        )
