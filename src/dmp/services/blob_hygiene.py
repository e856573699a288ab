"""Blob hygiene: no sealed document bytes left on disk without a row that names them.

A publication writes its blobs before its transaction commits (the row must never name a
missing object). If the transaction rolls back, or the process dies, the blob stays behind.
Two mechanisms remove those orphans:

* :func:`remove_unreferenced` — after a rollback the code sees, the unit of work removes the
  blobs it wrote, unless a committed row references the same key (keys are content-addressed
  per record: the same bytes published twice share one object);
* :func:`collect_garbage` — ``dmp blobs gc`` and the server's periodic task remove every
  object that no row references and that is older than a grace period (crashes, kill -9).

Safety against concurrent publications: a publication holds a shared lock on its record from
before its first blob write until its commit (:func:`hold_for_publication`); the removal of
a record's blobs takes the same lock exclusively, then looks for references, then deletes.
So it either waits for the publication's outcome (and sees its rows) or finishes before the
publication writes (which then writes the object again). On PostgreSQL the lock is a
transaction-level advisory lock; on SQLite every write transaction begins with ``BEGIN
IMMEDIATE`` and the removal's transaction is one, so they are serialised already. The grace
period is a second guard (for writers outside this protocol) and keeps gc off the hot path.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from sqlalchemy import Connection, Engine, select, text

from dmp.services.context import Runtime
from dmp.store.blobs import BlobStore, ScannableBlobStore, StoredBlob
from dmp.store.schema import document

log = logging.getLogger("dmp.blobs")

DEFAULT_GRACE = timedelta(hours=1)
# Every column that names a blob, with the column of the record it belongs to. A new table
# holding blob keys (exports, attachments…) must be added here, or gc would remove its objects.
REFERENCES = ((document.c.patient_id, document.c.blob_key),)
_LOCK_SPACE = 0x626C6F62  # "blob": the advisory locks' first key, apart from other uses
_BATCH = 500


class TrackedBlobs:
    """The blob store, remembering what one unit of work wrote (removed if it rolls back)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.written: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.written.append(key)  # before the write: a write that fails half-way is cleaned too
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def _lock_key(patient_id: UUID) -> dict[str, int]:
    return {"space": _LOCK_SPACE, "key": int.from_bytes(patient_id.bytes[:4], "big", signed=True)}


def hold_for_publication(conn: Connection, patient_id: UUID) -> None:
    """Before the first blob write of a transaction: removal of this record's blobs waits for it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:space, :key)"), _lock_key(patient_id))
    # SQLite: the transaction began with BEGIN IMMEDIATE, which excludes any other writer.


def _hold_for_removal(conn: Connection, patient_id: UUID) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), _lock_key(patient_id))


def _referenced(conn: Connection, patient_id: UUID, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for patient_col, key_col in REFERENCES:
        found.update(
            conn.execute(select(key_col).where(patient_col == patient_id, key_col.in_(keys))).scalars()
        )
    return found


def _patient_of(key: str) -> UUID | None:
    head, sep, _ = key.partition("/")
    if not sep:
        return None
    try:
        return uuid.UUID(head)
    except ValueError:
        return None


def _remove_batch(
    engine: Engine, blobs: BlobStore, patient_id: UUID, keys: list[str]
) -> tuple[list[str], list[str]]:
    """Under the record's exclusive lock: delete the unreferenced keys; (removed, referenced)."""
    with engine.begin() as conn:
        _hold_for_removal(conn, patient_id)
        refs = _referenced(conn, patient_id, keys)
        removed = [k for k in keys if k not in refs]
        for key in removed:
            blobs.delete(key)
    return removed, [k for k in keys if k in refs]


def remove_unreferenced(engine: Engine, blobs: BlobStore, keys: Iterable[str]) -> int:
    """After a rollback: remove these blobs unless a committed row names them; how many went."""
    by_record: dict[UUID, list[str]] = defaultdict(list)
    for key in dict.fromkeys(keys):
        pid = _patient_of(key)
        if pid is not None:  # not a record's key: left alone (gc ignores it too)
            by_record[pid].append(key)
    removed = 0
    for pid, record_keys in by_record.items():
        for start in range(0, len(record_keys), _BATCH):
            gone, _ = _remove_batch(engine, blobs, pid, record_keys[start : start + _BATCH])
            removed += len(gone)
    return removed


def discard_after_rollback(rt: Runtime, keys: Iterable[str]) -> None:
    """:func:`remove_unreferenced`, never raising: the rollback's own error is what matters."""
    keys = list(keys)
    if not keys:
        return
    try:
        removed = remove_unreferenced(rt.engine, rt.blobs, keys)
    except Exception:  # the periodic gc removes them later
        log.exception("nettoyage des fichiers d'une publication annulée impossible")
    else:
        log.info("publication annulée : %d fichier(s) chiffré(s) supprimé(s) sur %d", removed, len(keys))


@dataclass
class GcReport:
    examined: int = 0
    removed: int = 0
    referenced: int = 0
    young: int = 0
    foreign: int = 0  # not a record's key: never removed

    @property
    def kept(self) -> int:
        return self.referenced + self.young + self.foreign


def can_collect(store: BlobStore) -> bool:
    """Whether ``store`` can list its objects, as :func:`collect_garbage` needs."""
    return isinstance(store, ScannableBlobStore)


def collect_garbage(engine: Engine, store: BlobStore, *, older_than: timedelta = DEFAULT_GRACE) -> GcReport:
    """Remove the blobs no row references and older than ``older_than``; idempotent, concurrent-safe."""
    if not isinstance(store, ScannableBlobStore):
        raise TypeError(f"{type(store).__name__} cannot list its objects")
    cutoff = time.time() - older_than.total_seconds()
    report = GcReport()
    candidates: dict[UUID, list[StoredBlob]] = defaultdict(list)
    for entry in store.scan():
        report.examined += 1
        if entry.modified > cutoff:
            report.young += 1
        elif entry.partial:  # an interrupted write: never a key, no row can name it
            store.discard(entry)
            report.removed += 1
        elif (pid := _patient_of(entry.name)) is None:
            report.foreign += 1
        else:
            candidates[pid].append(entry)
    # A first look without the lock: a key referenced once stays referenced (document rows are
    # never deleted), so only the records with unreferenced candidates take the exclusive lock.
    suspects: dict[UUID, list[str]] = {}
    with engine.connect() as conn:
        for pid, entries in candidates.items():
            keys = [e.name for e in entries]
            for start in range(0, len(keys), _BATCH):
                batch = keys[start : start + _BATCH]
                refs = _referenced(conn, pid, batch)
                report.referenced += len(refs)
                if unreferenced := [k for k in batch if k not in refs]:
                    suspects.setdefault(pid, []).extend(unreferenced)
    for pid, keys in suspects.items():
        for start in range(0, len(keys), _BATCH):
            gone, kept = _remove_batch(engine, store, pid, keys[start : start + _BATCH])
            report.removed += len(gone)
            report.referenced += len(kept)
    return report
