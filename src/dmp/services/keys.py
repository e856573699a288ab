"""Record keys over time (SE-02): sealing rows written before SE-02, rotating a record's data key,
re-wrapping every key under a new master key. Driven by ``dmp keys …`` (docs/encryption.md).

Each function works on one record in the caller's transaction, so that the command commits
record by record (progress, resumable: a record already done is recognised and skipped).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, select, update

from dmp.store import crypto, sealed_fields
from dmp.store.blobs import BlobStore
from dmp.store.crypto import KeyRing
from dmp.store.schema import clinical_fact, document, patient, record_event, record_key, submission_set
from dmp.store.schema_accounts import account
from dmp.store.schema_outbox import outbox_message
from dmp.store.schema_policy import emergency_access, patient_notification

_TABLES = {
    "patient": patient,
    "record_event": record_event,
    "document": document,
    "submission_set": submission_set,
    "emergency_access": emergency_access,
    "patient_notification": patient_notification,
    "account": account,
    "outbox_message": outbox_message,
}


@dataclass
class Rotated:
    """What a record's rotation changed; ``stale_blobs`` are deleted once it is committed."""

    fields: int = 0
    blobs: int = 0
    facts: int = 0
    stale_blobs: list[str] = field(default_factory=list)


def record_ids(engine: Engine) -> list[UUID]:
    with engine.connect() as conn:
        query = select(record_key.c.patient_id).order_by(record_key.c.patient_id)
        return [r.patient_id for r in conn.execute(query)]


def _rows(conn: Connection, table: str, pid: UUID) -> Iterator[Any]:
    t = _TABLES[table]
    owner = t.c.id if table == "patient" else t.c.patient_id
    cols = [t.c.id, *(t.c[name] for name in sealed_fields.SEALED[table])]
    yield from conn.execute(select(*cols).where(owner == pid))


def _where_row(table: str, pid: UUID, row_id: Any) -> Any:
    t = _TABLES[table]
    if table == "patient":
        return t.c.id == pid
    return (t.c.patient_id == pid) & (t.c.id == row_id)


def _reseal_fields(conn: Connection, pid: UUID, old: bytes | None, new: bytes) -> int:
    """Every sealed column of the record rewritten under ``new`` (opened with ``old``; a clear
    value of a row written before SE-02 is sealed as it is). Returns the number of values written."""
    written = 0
    for table, columns in sealed_fields.SEALED.items():
        for row in list(_rows(conn, table, pid)):
            changes: dict[str, Any] = {}
            for name in columns:
                stored = getattr(row, name)
                if stored is None or (old is None and _is_sealed(stored)):
                    continue  # nothing to do (reseal: already sealed)
                clear = _open(old, pid, f"{table}.{name}", row.id, stored)
                changes.update(sealed_fields.seal_columns(new, pid, table, row.id, **{name: clear}))
            if changes:
                conn.execute(update(_TABLES[table]).where(_where_row(table, pid, row.id)).values(**changes))
                written += len(changes)
    return written


def _is_sealed(stored: Any) -> bool:
    return sealed_fields.is_sealed_text(stored) or sealed_fields.is_sealed_bytes(stored)


def _open(dek: bytes | None, pid: UUID, field_name: str, row_id: Any, stored: Any) -> Any:
    if not _is_sealed(stored):
        return bytes(stored) if isinstance(stored, memoryview) else stored
    if dek is None:  # pragma: no cover (reseal skips sealed values)
        raise ValueError("sealed value without its key")
    if isinstance(stored, str):
        return sealed_fields.open_text(dek, pid, field_name, row_id, stored)
    return sealed_fields.open_bytes(dek, pid, field_name, row_id, bytes(stored))


def _traits_index(conn: Connection, ring: KeyRing, pid: UUID, dek: bytes) -> str:
    """The strict traits' blind index of a record, from its (opened) identity."""
    from dmp.domain.identity import Sex, StrictTraits

    row = sealed_fields.open_row(conn, conn.execute(select(patient).where(patient.c.id == pid)).first(),
                                 "patient", sealed_fields.SEALED["patient"], patient_id=pid, dek=dek)
    traits = StrictTraits(
        birth_family_name=row.birth_family_name,
        birth_given_names=tuple(row.birth_given_names.split()),
        sex=Sex(row.sex),
        birth_date=row.birth_date,
        birth_place_insee=row.birth_place_insee,
    )
    return sealed_fields.blind_index(ring, "patient.traits_key", traits.key)


def _set_traits_index(conn: Connection, ring: KeyRing, pid: UUID, dek: bytes) -> None:
    index = _traits_index(conn, ring, pid, dek)
    conn.execute(update(patient).where(patient.c.id == pid).values(traits_key=index))


def reseal_record(conn: Connection, ring: KeyRing, pid: UUID) -> int:
    """Seal the clear values a record still has (rows written before SE-02) and replace its clear
    strict-traits key by the blind index; a no-op on a record already sealed."""
    dek = sealed_fields.record_dek(conn, pid, ring)
    written = _reseal_fields(conn, pid, None, dek)
    _set_traits_index(conn, ring, pid, dek)
    return written


def rotate_record(conn: Connection, ring: KeyRing, blobs: BlobStore, pid: UUID) -> Rotated:
    """A new data key for one record: every sealed field, document blob and clinical fact
    re-encrypted, the new key wrapped in place of the old one (which is then gone from the
    database and from memory). The old blobs are listed for deletion after the commit."""
    sealed_fields.lock_key_for_rotation(conn, pid)  # no value sealed under the old key meanwhile
    old = sealed_fields.record_dek(conn, pid, ring)
    new, wrapped = ring.new_record_key()
    out = Rotated(fields=_reseal_fields(conn, pid, old, new))
    out.blobs, out.stale_blobs = _rotate_blobs(conn, blobs, pid, old, new)
    out.facts = _rotate_facts(conn, pid, old, new)
    conn.execute(
        update(record_key)
        .where(record_key.c.patient_id == pid)
        .values(wrapped_key=wrapped, kek_id=ring.kek_id)
    )
    ring.forget(pid)
    ring.remember(pid, wrapped, new)
    return out


def _blob_key(dek: bytes, pid: UUID, sha256_hex: str) -> str:
    # Same naming as publication (dmp.services.publish.blob_key): the name depends on the key.
    return f"{pid}/{hmac.new(dek, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()}"


def _rotate_blobs(
    conn: Connection, blobs: BlobStore, pid: UUID, old: bytes, new: bytes
) -> tuple[int, list[str]]:
    d = document.c
    moved: dict[str, str] = {}  # old blob key -> new (documents of one content share a blob)
    rows = list(conn.execute(select(d.id, d.sha256_hex, d.blob_key).where(d.patient_id == pid)))
    for row in rows:
        if row.blob_key not in moved:
            data = crypto.open_sealed(old, pid, row.sha256_hex, blobs.get(row.blob_key))
            target = _blob_key(new, pid, row.sha256_hex)
            blobs.put(target, crypto.seal(new, pid, row.sha256_hex, data))
            moved[row.blob_key] = target
        conn.execute(
            update(document).where(d.patient_id == pid, d.id == row.id).values(blob_key=moved[row.blob_key])
        )
    return len(moved), [k for k, v in moved.items() if k != v]


def _rotate_facts(conn: Connection, pid: UUID, old: bytes, new: bytes) -> int:
    f = clinical_fact.c
    rows = list(conn.execute(select(f.id, f.sha256_hex, f.resource_sealed).where(f.patient_id == pid)))
    for row in rows:
        plain = crypto.open_sealed(old, pid, row.sha256_hex, bytes(row.resource_sealed))
        conn.execute(
            update(clinical_fact)
            .where(f.patient_id == pid, f.id == row.id)
            .values(resource_sealed=crypto.seal(new, pid, row.sha256_hex, plain))
        )
    return len(rows)


def rewrap_record(conn: Connection, old_ring: KeyRing, new_ring: KeyRing, pid: UUID) -> bool:
    """The record's data key and trail key wrapped by the new master key, its blind index
    recomputed under the new master key; False when already done (resumable)."""
    row = conn.execute(select(record_key).where(record_key.c.patient_id == pid)).first()
    if row is None or row.kek_id == new_ring.kek_id:
        return False
    dek = old_ring.unwrap_uncached(bytes(row.wrapped_key))
    values: dict[str, Any] = {"wrapped_key": new_ring.wrap(dek), "kek_id": new_ring.kek_id}
    if row.trail_key is not None:
        values["trail_key"] = new_ring.wrap(old_ring.unwrap_uncached(bytes(row.trail_key)))
    conn.execute(update(record_key).where(record_key.c.patient_id == pid).values(**values))
    _set_traits_index(conn, new_ring, pid, dek)
    old_ring.forget(pid)
    return True


def record_ids_exist(conn: Connection, pid: UUID | None) -> bool:
    if pid is None:
        return False
    query = select(record_key.c.patient_id).where(record_key.c.patient_id == pid)
    return conn.execute(query).first() is not None
