"""A minimal SMART Backend Services client using a card issued by ``dmp pki issue-card``.

What a professional's software does: sign a short-lived client assertion with the
card key, put the certificate chain in ``x5c``, exchange it for an access token.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dmp.auth.pki import card_identity

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(
    card_dir: Path,
    audience: str,
    *,
    purpose: str = "TREAT",
    justification: str | None = None,
    now: datetime | None = None,
) -> str:
    cert = x509.load_pem_x509_certificate((card_dir / "card.crt").read_bytes())
    key = serialization.load_pem_private_key((card_dir / "card.key").read_bytes(), password=None)
    ident = card_identity(cert)
    now = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ident.idnps,
        "sub": ident.idnps,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=4)).timestamp()),
        "purpose_of_use": purpose,
        "software": "dmp-client 0.1",
    }
    if justification:
        claims["justification"] = justification
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5c": x5c})  # type: ignore[arg-type]


def token_form(card_dir: Path, audience: str, **kw: str | None) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(card_dir, audience, **kw),  # type: ignore[arg-type]
        "scope": "system/*.rs",
    }


def request_token(
    base_url: str, card_dir: Path, *, purpose: str = "TREAT", justification: str | None = None
) -> str:
    audience = f"{base_url}/oauth/token"
    data = urllib.parse.urlencode(
        token_form(card_dir, audience, purpose=purpose, justification=justification)
    ).encode()
    req = urllib.request.Request(  # noqa: S310 (our own http(s) URL)
        audience,
        data=data,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return str(json.loads(resp.read())["access_token"])
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise RuntimeError(body.get("error_description", str(exc))) from exc
    except urllib.error.URLError as exc:
        raise RuntimeError(f"service injoignable à {audience} ({exc.reason})") from exc
