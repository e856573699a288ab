"""Merkle tree hash of RFC 6962 (Certificate Transparency), §2.1.

``MTH({}) = SHA-256()``, ``MTH({d}) = SHA-256(0x00 || d)``, and for n > 1, with k the
largest power of two below n, ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.
Leaves and nodes are domain-separated, so a node can never pass for a leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from uuid import UUID


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two strictly below n
    return node_hash(_root(leaves, lo, lo + k), _root(leaves, lo + k, hi))


def merkle_root_of_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _root(leaves, 0, len(leaves))


def merkle_root(data: Iterable[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of the ordered list ``data``."""
    return merkle_root_of_leaf_hashes([leaf_hash(d) for d in data])


def head_leaf(patient_id: UUID, seq: int, hash_hex: str) -> bytes:
    """The leaf that stands for one chain head in an anchor."""
    return f"{patient_id}:{seq}:{hash_hex}".encode("ascii")


def heads_root(heads: Iterable[tuple[UUID, int, str]]) -> str:
    """Hex Merkle root over chain heads, ordered by record id (the order is part of the root)."""
    ordered = sorted(heads, key=lambda h: h[0])
    return merkle_root(head_leaf(p, s, h) for p, s, h in ordered).hex()
