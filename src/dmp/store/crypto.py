"""Envelope encryption of a record's data (documents first).

Each record has its own 256-bit data key (DEK), stored only wrapped by the instance
master key (KEK) with AES key wrap (RFC 3394). Documents are sealed with AES-256-GCM
under the record's DEK; the associated data binds a ciphertext to its record and to
the plaintext hash, so a blob copied into another record does not decrypt.

The same key seals the record's other health and identity columns through
:mod:`dmp.store.sealed_fields` (docs/encryption.md); :meth:`KeyRing.blind_index` gives the
keyed digests that equality look-ups of a sealed value use instead of the clear value.
"""

from __future__ import annotations

import hashlib
import hmac
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
        # patient id -> (wrapped DEK, plain DEK): a rotated key (another wrapped value) misses the cache
        self._cache: OrderedDict[UUID, tuple[bytes, bytes]] = OrderedDict()
        self._blind_key = hmac.new(master_key, b"dmp-blind-index-v1", hashlib.sha256).digest()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def new_record_key(self) -> tuple[bytes, bytes]:
        """Return (plain DEK, wrapped DEK)."""
        dek = AESGCM.generate_key(bit_length=256)
        return dek, aes_key_wrap(self._kek, dek)

    def unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        wrapped = bytes(wrapped)
        with self._lock:
            hit = self._cache.get(patient_id)
            if hit is not None and hit[0] == wrapped:
                self._cache.move_to_end(patient_id)
                return hit[1]
        dek = aes_key_unwrap(self._kek, wrapped)
        self.remember(patient_id, wrapped, dek)
        return dek

    def unwrap_uncached(self, wrapped: bytes) -> bytes:
        return aes_key_unwrap(self._kek, bytes(wrapped))

    def wrap(self, dek: bytes) -> bytes:
        return aes_key_wrap(self._kek, dek)

    def remember(self, patient_id: UUID, wrapped: bytes, dek: bytes) -> None:
        with self._lock:
            self._cache[patient_id] = (bytes(wrapped), dek)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, patient_id: UUID) -> None:
        """Drop a record's plain key from memory (after its rotation)."""
        with self._lock:
            self._cache.pop(patient_id, None)

    def blind_index(self, purpose: str, value: str) -> str:
        """HMAC-SHA-256 of ``value`` under a key derived from the master key, per purpose.

        Equality look-ups of a sealed value (the strict traits) use it instead of the clear
        value; it changes with the master key (``dmp keys rotate-master`` recomputes it).
        """
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._blind_key, message, hashlib.sha256).hexdigest()


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
