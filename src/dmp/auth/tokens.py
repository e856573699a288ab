"""Access tokens issued by the DMP token endpoint (JWT, ES256).

After a client assertion has been verified (``dmp.auth.assertion``), the token
endpoint issues a short-lived access token carrying the actor: the
professional's identity from the card certificate, and the purpose of use,
justification and software declared in the (card-signed) assertion. The API
verifies it on every request with ``TokenSigner.verify``; a small LRU cache
avoids an ECDSA verification per request for a token already seen.

Token claims: ``iss``, ``sub`` (IDNPS), ``kind`` (``professional``), ``name``,
``profession``, ``specialty``, ``structure_id``, ``structure_name``,
``purpose_of_use``, ``justification``, ``software``, ``scope`` (space-separated),
``iat``, ``exp``, ``jti``. Optional claims are omitted when empty. The JOSE
header carries ``kid``, the RFC 7638 thumbprint of the signing key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import uuid
from base64 import urlsafe_b64encode
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dmp.auth.assertion import VerifiedAssertion
from dmp.auth.pki import PkiError
from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.errors import DmpError

__all__ = ["TokenSigner", "actor_from_assertion"]

ALGORITHM = "ES256"
DEFAULT_LIFETIME = timedelta(minutes=15)
DEFAULT_CACHE_SIZE = 4096
MAX_TOKEN_LENGTH = 8 * 1024

_KINDS = {k.value: k for k in ActorKind}
_PURPOSES = {p.value: p for p in PurposeOfUse}


def _b64url_uint(value: int, length: int) -> str:
    return urlsafe_b64encode(value.to_bytes(length, "big")).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    actor: Actor
    expires_at: int  # epoch seconds


class TokenSigner:
    """Issues and verifies access tokens with one EC P-256 key. Thread-safe."""

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey, *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise PkiError("La clé de signature des jetons doit être une clé EC P-256.")
        self._key = private_key
        self._public_key = private_key.public_key()
        numbers = self._public_key.public_numbers()
        self._jwk: dict[str, str] = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url_uint(numbers.x, 32),
            "y": _b64url_uint(numbers.y, 32),
        }
        canonical = json.dumps(self._jwk, separators=(",", ":"), sort_keys=True)
        self.kid = (
            urlsafe_b64encode(hashlib.sha256(canonical.encode("ascii")).digest()).rstrip(b"=").decode("ascii")
        )
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- key files

    @classmethod
    def from_pem_file(cls, path: Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> TokenSigner:
        """Load the signing key from an unencrypted PEM file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PkiError(f"Clé de signature des jetons introuvable : {path}.") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise PkiError(f"Clé de signature des jetons illisible : {path}.") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"La clé {path} n'est pas une clé EC P-256.")
        return cls(key, cache_size=cache_size)

    @classmethod
    def generate_file(cls, path: Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> TokenSigner:
        """Load the key at ``path``, creating it (mode 0600) first if missing.

        Creation is atomic: concurrent processes end up with the same key.
        """
        path = Path(path)
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, pem)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # link() fails if another process created the key meanwhile: keep theirs.
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return cls.from_pem_file(path, cache_size=cache_size)

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (for a JWKS document)."""
        return {**self._jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    # -------------------------------------------------------------------- tokens

    def issue(
        self,
        actor: Actor,
        *,
        now: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
        issuer: str,
    ) -> tuple[str, int]:
        """Return ``(access_token, expires_in)`` for ``actor``."""
        expires_in = int(lifetime.total_seconds())
        if expires_in < 1:
            raise ValueError("lifetime must be at least one second")
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": actor.id,
            "kind": actor.kind.value,
            "name": actor.name,
            "profession": actor.profession,
            "specialty": actor.specialty,
            "structure_id": actor.structure_id,
            "structure_name": actor.structure_name,
            "setting": actor.setting,
            "purpose_of_use": actor.purpose.value,
            "justification": actor.justification,
            "software": actor.software,
            "scope": " ".join(sorted(actor.scopes)) or None,
            "iat": iat,
            "exp": iat + expires_in,
            "jti": str(uuid.uuid4()),
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, expires_in

    def verify(self, token: str, *, now: datetime) -> Actor:
        """Return the actor of a valid token; raise ``DmpError`` otherwise.

        ``TOKEN_EXPIRED`` if the token is genuine but expired, ``TOKEN_INVALID``
        for anything else.
        """
        ts = now.timestamp()
        with self._lock:
            entry = self._cache.get(token)
            if entry is not None:
                if ts < entry.expires_at:
                    self._cache.move_to_end(token)
                    return entry.actor
                del self._cache[token]
        if entry is not None:
            raise DmpError("TOKEN_EXPIRED")

        actor, expires_at = self._decode(token)
        if ts >= expires_at:
            raise DmpError("TOKEN_EXPIRED")

        if self._cache_size:
            with self._lock:
                self._cache[token] = _CacheEntry(actor, expires_at)
                self._cache.move_to_end(token)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return actor

    def _decode(self, token: str) -> tuple[Actor, int]:
        if not isinstance(token, str) or not token:
            raise DmpError("TOKEN_INVALID", "jeton absent")
        if len(token) > MAX_TOKEN_LENGTH:
            raise DmpError("TOKEN_INVALID", "jeton trop long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise DmpError("TOKEN_INVALID", "format JWT illisible") from None
        if header.get("alg") != ALGORITHM:
            raise DmpError("TOKEN_INVALID", "algorithme de signature inattendu")
        if header.get("kid") != self.kid:
            raise DmpError(
                "TOKEN_INVALID",
                "clé de signature inconnue (jeton émis par un autre serveur ou avant un changement de clé)",
            )
        try:
            decoded = jwt.PyJWS().decode_complete(token, self._public_key, algorithms=[ALGORITHM])
        except jwt.InvalidSignatureError:
            raise DmpError("TOKEN_INVALID", "signature invalide") from None
        except jwt.PyJWTError:
            raise DmpError("TOKEN_INVALID", "format JWT illisible") from None
        try:
            claims = json.loads(decoded["payload"])
        except (ValueError, UnicodeDecodeError):
            raise DmpError("TOKEN_INVALID", "contenu illisible") from None
        if not isinstance(claims, dict):
            raise DmpError("TOKEN_INVALID", "contenu illisible")
        return _actor_from_claims(claims)


def _str_claim(claims: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise DmpError("TOKEN_INVALID", f"revendication {name} absente")
        return None
    if not isinstance(value, str):
        raise DmpError("TOKEN_INVALID", f"revendication {name} invalide")
    return value


def _actor_from_claims(claims: dict[str, Any]) -> tuple[Actor, int]:
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise DmpError("TOKEN_INVALID", "revendication exp absente ou invalide")
    kind = _KINDS.get(_str_claim(claims, "kind", required=True) or "")
    if kind is None:
        raise DmpError("TOKEN_INVALID", "type d'acteur inconnu")
    purpose = _PURPOSES.get(_str_claim(claims, "purpose_of_use") or PurposeOfUse.TREAT.value)
    if purpose is None:
        raise DmpError("TOKEN_INVALID", "motif d'accès inconnu")
    scope = _str_claim(claims, "scope") or ""
    actor = Actor(
        kind=kind,
        id=_str_claim(claims, "sub", required=True) or "",
        name=_str_claim(claims, "name", required=True) or "",
        profession=_str_claim(claims, "profession"),
        specialty=_str_claim(claims, "specialty"),
        structure_id=_str_claim(claims, "structure_id"),
        structure_name=_str_claim(claims, "structure_name"),
        setting=_str_claim(claims, "setting"),
        purpose=purpose,
        justification=_str_claim(claims, "justification"),
        software=_str_claim(claims, "software"),
        scopes=frozenset(scope.split()),
    )
    return actor, exp


def actor_from_assertion(v: VerifiedAssertion, *, scopes: Iterable[str] = ()) -> Actor:
    """The professional actor described by a verified client assertion."""
    identity = v.identity
    return Actor(
        kind=ActorKind.PROFESSIONAL,
        id=identity.idnps,
        name=identity.name,
        profession=identity.profession,
        specialty=identity.specialty,
        structure_id=identity.structure_id,
        structure_name=identity.structure_name,
        setting=identity.setting,
        purpose=v.purpose,
        justification=v.justification,
        software=v.software,
        scopes=frozenset(scopes),
    )
