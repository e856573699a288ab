"""Keyed hashes for the encrypted full-text index (ADR 0014).

Each record's index key is derived from its data key (HKDF-SHA256 under a label of its own, so the
key that seals contents never serves as an HMAC key); a stem's token is HMAC-SHA256 under that key,
truncated to 128 bits. Equal stems in two records give unrelated tokens; without the record's key
a token tells nothing of its word.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_BYTES = 16
_LABEL = b"dmp full-text index key v1"


def index_key(dek: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(dek)


def token(key: bytes, stem: str) -> bytes:
    return hmac.digest(key, stem.encode(), "sha256")[:TOKEN_BYTES]
