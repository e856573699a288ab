"""Shard-ready keys (ADR 0009): where rows that concern no record go, and relay partitions.

Every per-record table is keyed by ``patient_id`` so that it can be distributed on it
(docs/ARCHITECTURE.md §3). Rows that concern *no* record (a failed login's trail entry, a
one-time code sent to someone without a record) need a key too; giving them all the nil
UUID would make one global hot row (the audit chain head) and one hot shard. They are
spread instead over :data:`NIL_KEYS` reserved keys ``UUID(int=k)``, ``0 <= k < NIL_KEYS``,
``k`` a stable hash of what the row is about (the actor, the recipient). ``UUID(int=0)``,
the single key used before, is one of them, so existing rows stay where they are.

No random (version 4) UUID can fall in that range: its version nibble is never zero.

:func:`partition_of` gives the outbox's relay partition (``0 <= p < PARTITIONS``) of a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from uuid import UUID

NIL_KEYS = 64  # may grow, never shrink: existing rows keep their key
PARTITIONS = 64  # outbox relay partitions (DMP_OUTBOX_PARTITIONS selects some)

__all__ = ["NIL_KEYS", "PARTITIONS", "is_nil_key", "nil_key", "nil_keys", "parse_partitions", "partition_of"]


def nil_key(domain: str, subject: str) -> UUID:
    """The reserved key of a row about ``subject`` (no record), stable across processes.

    ``domain`` separates uses (``"audit"``, ``"outbox"``). The hash is not keyed: the key
    only reveals 6 bits of ``subject``, which every such row stores anyway.
    """
    digest = hashlib.sha256(f"dmp-nil-key:{domain}:{subject}".encode()).digest()
    return UUID(int=int.from_bytes(digest[:8], "big") % NIL_KEYS)


def is_nil_key(key: UUID) -> bool:
    """Whether ``key`` is one of the reserved keys of rows that concern no record."""
    return key.int < NIL_KEYS


def nil_keys() -> list[UUID]:
    """Every reserved key, in order (for SQL filters such as ``NOT IN``)."""
    return [UUID(int=k) for k in range(NIL_KEYS)]


def partition_of(key: UUID) -> int:
    """The relay partition of ``key``: its low bits (random for a v4 UUID, ``k`` for a
    reserved key), so that record-less messages spread like the others."""
    return key.int % PARTITIONS


def parse_partitions(text: str | None) -> frozenset[int] | None:
    """``"0-63"``, ``"0-15,32-47"``, ``"7"`` → the partitions; empty or None → None (all).

    Raises ValueError (in French) for a malformed list or a partition out of range.
    """
    if text is None or not text.strip():
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            a = int(low)
            b = int(high) if sep else a
        except ValueError:
            raise ValueError(
                f"DMP_OUTBOX_PARTITIONS invalide : {text!r} (ex. « 0-63 » ou « 0-15,32-47 »)"
            ) from None
        if not 0 <= a <= b < PARTITIONS:
            raise ValueError(f"DMP_OUTBOX_PARTITIONS : {part!r} hors de 0-{PARTITIONS - 1}")
        chosen.update(range(a, b + 1))
    return frozenset(chosen)


def all_partitions(partitions: Iterable[int] | None) -> bool:
    """Whether ``partitions`` (None: all) covers every partition, so that no filter is needed."""
    return partitions is None or set(partitions) >= set(range(PARTITIONS))
