"""Keys of the accounts module, derived from the instance master key (HKDF-SHA-256).

* ``code_key``: HMAC-SHA-256 of every short secret kept by the server (activation, one-time
  and recovery codes, OAuth authorization codes, throttling keys). A database dump alone
  does not let anyone brute-force a 6-digit code back from its digest.
* ``totp_key``: AES-256-GCM key sealing TOTP secrets; the associated data binds a sealed
  secret to its account, so a secret copied onto another account does not open.

Each key has its own HKDF ``info`` label, distinct from every other use of the master key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dmp.settings import Settings

CODE_KEY_INFO = b"dmp/accounts/code-hmac/v1"
TOTP_KEY_INFO = b"dmp/accounts/totp-secret/v1"
_SEALED_V1 = b"\x01"
_NONCE = 12


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


@dataclass(frozen=True)
class AccountKeys:
    code_key: bytes
    totp_key: bytes

    @classmethod
    def derive(cls, master_key: bytes) -> AccountKeys:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        return cls(code_key=_hkdf(master_key, CODE_KEY_INFO), totp_key=_hkdf(master_key, TOTP_KEY_INFO))

    def digest(self, purpose: str, value: str) -> str:
        """Keyed digest (hex) of a secret or identifier, separated by purpose."""
        return hmac.new(
            self.code_key, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256
        ).hexdigest()

    def seal_totp(self, account_id: UUID, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return _SEALED_V1 + nonce + AESGCM(self.totp_key).encrypt(nonce, secret.encode(), account_id.bytes)

    def open_totp(self, account_id: UUID, sealed: bytes) -> str:
        if sealed[:1] != _SEALED_V1:
            raise ValueError("unknown sealed secret format")
        nonce = sealed[1 : 1 + _NONCE]
        return AESGCM(self.totp_key).decrypt(nonce, sealed[1 + _NONCE :], account_id.bytes).decode()

    def __repr__(self) -> str:  # never print key material
        return "AccountKeys(<secret>)"


@lru_cache(maxsize=8)
def _derived(master: bytes) -> AccountKeys:
    return AccountKeys.derive(master)


def keys_for(settings: Settings) -> AccountKeys:
    """The account keys of an instance (DMP_MASTER_KEY or var/keys/master.key)."""
    return _derived(settings.master_key())


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())
