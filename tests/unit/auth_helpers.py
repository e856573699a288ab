"""Helpers for the auth tests: a test CA, cards, and client assertions built the
way a client would build them (PyJWT, ``x5c`` header with the card chain)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from base64 import b64encode, urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dmp.auth.pki import CardFiles, init_ca, issue_card, load_ca

AUDIENCE = "https://dmp.example.test/oauth/token"
RPPS = "10003456786"
IDNPS = "8" + RPPS
NOW = datetime.now(UTC).replace(microsecond=0)


def make_ca(directory: Path, *, common_name: str = "DMP IGC-Santé de test") -> x509.Certificate:
    init_ca(directory, common_name=common_name)
    return load_ca(directory).certificate


def make_card(
    ca_dir: Path,
    out: Path,
    *,
    rpps: str = RPPS,
    not_before: datetime | None = None,
    days: int = 1095,
) -> CardFiles:
    return issue_card(
        ca_dir,
        rpps=rpps,
        profession="10",
        specialty="SM26",
        name="Dr Marie Curie",
        structure_id="10B0123456",
        structure_name="Cabinet Curie",
        out=out,
        days=days,
        not_before=not_before if not_before is not None else NOW - timedelta(days=30),
    )


def load_key(path: Path) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def b64der(cert: x509.Certificate) -> str:
    return b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


@dataclass
class JtiMemory:
    seen: dict[str, datetime] = field(default_factory=dict)

    def __call__(self, jti: str, expires_at: datetime) -> bool:
        if jti in self.seen:
            return False
        self.seen[jti] = expires_at
        return True


def claims_for(
    *,
    now: datetime = NOW,
    sub: str = IDNPS,
    lifetime: timedelta = timedelta(minutes=4),
    **extra: Any,
) -> dict[str, Any]:
    """Standard SMART Backend Services assertion claims; ``extra`` overrides
    (a value of None removes the claim)."""
    claims: dict[str, Any] = {
        "iss": sub,
        "sub": sub,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def build_assertion(
    card: CardFiles,
    claims: dict[str, Any] | None = None,
    *,
    key: PrivateKeyTypes | None = None,
    chain: list[x509.Certificate] | None = None,
    algorithm: str = "ES256",
) -> str:
    """Sign ``claims`` as a client would, with the card key and chain by default."""
    signing_key = key if key is not None else load_key(card.key)
    certs = chain if chain is not None else load_chain(card.chain)
    return jwt.encode(
        claims if claims is not None else claims_for(),
        signing_key,  # type: ignore[arg-type]
        algorithm=algorithm,
        headers={"x5c": [b64der(c) for c in certs]},
    )


def _b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_jws(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """Hand-made compact JWS (HS256 with ``secret``, or unsigned when None):
    what an attacker would send, bypassing PyJWT's own safety checks."""
    signing_input = (
        _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    )
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(mac)


def custom_leaf(
    ca_dir: Path,
    key: PrivateKeyTypes,
    *,
    client_auth: bool = True,
    is_ca: bool = False,
    idnps: str = IDNPS,
    not_before: datetime | None = None,
) -> x509.Certificate:
    """A card certificate signed by the CA in ``ca_dir`` with a chosen key and profile
    (for profiles ``issue_card`` does not produce: RSA keys, no clientAuth, CA flag)."""
    ca = load_ca(ca_dir)
    start = not_before if not_before is not None else NOW - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.TITLE, "10"),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, idnps),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Dr Custom"),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(ca.key, hashes.SHA256())


def self_signed(
    key: PrivateKeyTypes, subject: x509.Name, *, is_ca: bool = True
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
