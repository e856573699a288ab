"""Envelope encryption of document bytes.

Each record has its own 256-bit data key (DEK), stored only wrapped by the instance
master key (KEK) with AES key wrap (RFC 3394). Documents are sealed with AES-256-GCM
under the record's DEK; the associated data binds a ciphertext to its record and to
the plaintext hash, so a blob copied into another record does not decrypt.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

NONCE_BYTES = 12
FORMAT_V1 = b"\x01"


class KeyRing:
    """Wraps/unwraps record keys; keeps a small cache of unwrapped keys in memory."""

    def __init__(self, master_key: bytes, *, cache_size: int = 4096) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._kek = master_key
        self.kek_id = hashlib.sha256(b"dmp-kek-id" + master_key).hexdigest()[:16]
        self._cache: OrderedDict[UUID, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def new_record_key(self) -> tuple[bytes, bytes]:
        """Return (plain DEK, wrapped DEK)."""
        dek = AESGCM.generate_key(bit_length=256)
        return dek, aes_key_wrap(self._kek, dek)

    def unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        with self._lock:
            dek = self._cache.get(patient_id)
            if dek is not None:
                self._cache.move_to_end(patient_id)
                return dek
        dek = aes_key_unwrap(self._kek, wrapped)
        self.remember(patient_id, dek)
        return dek

    def remember(self, patient_id: UUID, dek: bytes) -> None:
        with self._lock:
            self._cache[patient_id] = dek
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _aad(patient_id: UUID, sha256_hex: str) -> bytes:
    return FORMAT_V1 + patient_id.bytes + bytes.fromhex(sha256_hex)


def seal(dek: bytes, patient_id: UUID, sha256_hex: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_V1 + nonce + AESGCM(dek).encrypt(nonce, plaintext, _aad(patient_id, sha256_hex))


def open_sealed(dek: bytes, patient_id: UUID, sha256_hex: str, sealed: bytes) -> bytes:
    if sealed[:1] != FORMAT_V1:
        raise ValueError("unknown blob format")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    return AESGCM(dek).decrypt(nonce, sealed[1 + NONCE_BYTES :], _aad(patient_id, sha256_hex))
