"""OAuth2 for patient applications: a client registry, authorization codes with PKCE (S256 only).

Clients are public (no secret: an app on a phone cannot keep one); PKCE binds the code to
the app instance that asked for it. Codes are single-use, valid 60 seconds, stored as keyed
digests. See docs/accounts.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from dmp.accounts.keys import AccountKeys, same
from dmp.store.schema_accounts import oauth_client, oauth_code

CODE_LIFETIME = timedelta(seconds=60)
PATIENT_SCOPE = "patient/*.rs"  # read and search the patient's own record
# Writes a patient may do in the portal (AC-21, PT-06), SMART v2 letters with their v1 spelling:
# publish their own documents (c) and mask one (u, the securityLabel PATCH); block / authorise
# a professional (Consent c) and revoke it (d). The policy still decides each one.
WRITE_SCOPES = frozenset(
    {
        "patient/DocumentReference.cu",
        "patient/DocumentReference.write",
        "patient/Consent.cd",
        "patient/Consent.write",
    }
)
ALLOWED_SCOPES = frozenset(
    {PATIENT_SCOPE, "patient/DocumentReference.rs", "patient/Binary.r", "openid", "launch/patient"}
    | WRITE_SCOPES
)
_PKCE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    active: bool


@dataclass(frozen=True)
class Grant:
    account_id: UUID
    patient_id: UUID
    scope: str


class OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def check_redirect_uri(uri: str) -> str:
    """Registration rule: https, http on loopback (native apps, RFC 8252), or a private-use
    scheme (``com.example.app:/cb``); never a fragment. French ValueError otherwise."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ValueError(f"adresse de retour « {uri} » : pas de fragment (#) admis")
    if parts.scheme == "https" and parts.netloc:
        return uri
    if parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK:
        return uri
    if parts.scheme and "." in parts.scheme and parts.scheme not in ("http", "https", "javascript", "data"):
        return uri
    raise ValueError(f"adresse de retour « {uri} » : https, http sur 127.0.0.1 ou schéma privé attendu")


def register_client(conn: Connection, name: str, redirect_uris: list[str], now: datetime) -> str:
    if not name.strip():
        raise ValueError("nom de l'application absent")
    if not redirect_uris:
        raise ValueError("au moins une adresse de retour (--redirect-uri) est nécessaire")
    uris = [check_redirect_uri(u.strip()) for u in redirect_uris]
    client_id = "app-" + secrets.token_urlsafe(16)
    conn.execute(
        insert(oauth_client).values(
            client_id=client_id,
            name=name.strip(),
            redirect_uris=json.dumps(uris),
            status="active",
            created_at=now,
        )
    )
    return client_id


def get_client(conn: Connection, client_id: str) -> Client | None:
    if not client_id or len(client_id) > 64:
        return None
    row = conn.execute(select(oauth_client).where(oauth_client.c.client_id == client_id)).first()
    if row is None:
        return None
    return Client(row.client_id, row.name, tuple(json.loads(row.redirect_uris)), row.status == "active")


def valid_challenge(challenge: str) -> bool:
    return bool(_PKCE.match(challenge or ""))


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def normalize_scope(raw: str | None) -> str:
    """Requested scopes among ``ALLOWED_SCOPES`` (reading, and the patient's writes); default
    ``patient/*.rs``."""
    asked = set((raw or PATIENT_SCOPE).split())
    unknown = asked - ALLOWED_SCOPES
    if unknown:
        raise OAuthError("invalid_scope", "portée non prise en charge : " + " ".join(sorted(unknown)))
    return " ".join(sorted(asked))


def issue_code(
    conn: Connection,
    keys: AccountKeys,
    *,
    client_id: str,
    redirect_uri: str,
    account_id: UUID,
    patient_id: UUID,
    code_challenge: str,
    scope: str,
    now: datetime,
) -> str:
    conn.execute(delete(oauth_code).where(oauth_code.c.expires_at < now - timedelta(hours=1)))
    code = secrets.token_urlsafe(32)
    conn.execute(
        insert(oauth_code).values(
            code_hash=keys.digest("oauth-code", code),
            client_id=client_id,
            redirect_uri=redirect_uri,
            account_id=account_id,
            patient_id=patient_id,
            code_challenge=code_challenge,
            scope=scope,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
            used_at=None,
        )
    )
    return code


def redeem_code(
    conn: Connection,
    keys: AccountKeys,
    *,
    code: str,
    client_id: str,
    redirect_uri: str,
    code_verifier: str,
    now: datetime,
) -> Grant:
    """Exchange a code (once). Any attempt burns it, even one that fails on the verifier.

    Raises OAuthError; the caller must commit the transaction all the same (the code is spent).
    """
    if not code or len(code) > 200:
        raise OAuthError("invalid_grant", "code d'autorisation absent ou invalide")
    digest = keys.digest("oauth-code", code)
    row = conn.execute(select(oauth_code).where(oauth_code.c.code_hash == digest)).first()
    if row is None or row.client_id != client_id:
        raise OAuthError("invalid_grant", "code d'autorisation inconnu")
    spent = conn.execute(
        update(oauth_code)
        .where(oauth_code.c.code_hash == digest, oauth_code.c.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if not spent:
        raise OAuthError("invalid_grant", "code d'autorisation déjà utilisé")
    if row.expires_at <= now:
        raise OAuthError("invalid_grant", "code d'autorisation expiré (60 secondes)")
    if row.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri différente de celle de la demande d'autorisation")
    if not _PKCE.match(code_verifier or "") or not same(s256(code_verifier), row.code_challenge):
        raise OAuthError("invalid_grant", "code_verifier ne correspond pas au code_challenge (PKCE S256)")
    return Grant(row.account_id, row.patient_id, row.scope)
