"""The one seam through which every sealed column is written and read (SE-02, docs/encryption.md).

A *sealed field* is a column that carries health or identity information and that no query
needs in clear (a title, a name, the served JSON, a justification). It is stored encrypted
with AES-256-GCM under the record's data key (DEK, :mod:`dmp.store.crypto`); the associated
data binds the ciphertext to its record, its ``table.column`` and its row id, so that a value
copied to another row, column or record does not open.

Storage forms, in the column's own type (no schema change, see ADR 0018):

* text columns: ``"~s1:" + base64url(nonce ‖ ciphertext)``;
* binary columns: ``b"\\x02" + nonce ‖ ciphertext`` (a served JSON starts with ``{``).

A value without the marker is a row written before SE-02: it is read as it is, until
``dmp keys reseal`` seals it. Values a query needs (identity matching) get a keyed blind
index instead (:func:`blind_index`, HMAC-SHA-256 under a key derived from the master key).

The key ring is bound to the engine once (:func:`bind_keyring`, done by ``Runtime``), so that
readers that only hold a connection (``records.get``) can open a row without every signature
carrying the key ring.
"""

from __future__ import annotations

import base64
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, select, text, update

from dmp.store.crypto import NONCE_BYTES, KeyRing
from dmp.store.schema import record_key

TEXT_MARKER = "~s1:"
BYTES_MARKER = b"\x02"
_AAD_PREFIX = b"dmp-field-v1\x00"

_KEYRINGS: weakref.WeakKeyDictionary[Engine, KeyRing] = weakref.WeakKeyDictionary()


def bind_keyring(engine: Engine, keyring: KeyRing) -> None:
    _KEYRINGS[engine] = keyring


def has_keyring(conn: Connection) -> bool:
    return conn.engine in _KEYRINGS


def keyring_of(conn: Connection) -> KeyRing:
    ring = _KEYRINGS.get(conn.engine)
    if ring is None:
        raise RuntimeError("no key ring bound to this engine (dmp.store.sealed_fields.bind_keyring)")
    return ring


def record_dek_if_any(conn: Connection, patient_id: UUID) -> bytes | None:
    """The record's data key for sealing (``write_dek``), or None when no key ring is bound or
    ``patient_id`` has no record (record-less outbox messages, tools working on a bare database)."""
    if not has_keyring(conn):
        return None
    _hold_key_lock(conn, patient_id)  # harmless for a record that does not exist
    wrapped = conn.execute(
        select(record_key.c.wrapped_key).where(record_key.c.patient_id == patient_id)
    ).scalar()
    return keyring_of(conn).unwrap(patient_id, bytes(wrapped)) if wrapped is not None else None


def record_dek(conn: Connection, patient_id: UUID, keyring: KeyRing | None = None) -> bytes:
    """The record's plain data key (cached by the key ring)."""
    ring = keyring or keyring_of(conn)
    wrapped = conn.execute(
        select(record_key.c.wrapped_key).where(record_key.c.patient_id == patient_id)
    ).scalar_one()
    return ring.unwrap(patient_id, bytes(wrapped))


# A record's key is replaced (``dmp keys rotate-record``) under an exclusive advisory lock of
# this space; every writer that seals under it holds the shared one first (PostgreSQL; SQLite's
# BEGIN IMMEDIATE already excludes any other writer). A value is thus never sealed under a key
# that a concurrent rotation is about to destroy.
_KEY_LOCK_SPACE = 0x5E02


def _key_lock(patient_id: UUID) -> dict[str, int]:
    return {"space": _KEY_LOCK_SPACE, "key": int.from_bytes(patient_id.bytes[:4], "big", signed=True)}


def write_dek(conn: Connection, patient_id: UUID, keyring: KeyRing | None = None) -> bytes:
    """The record's data key for sealing a value in this transaction: read once the shared key
    lock is held, so that a rotation either committed before (its new key is read) or waits."""
    _hold_key_lock(conn, patient_id)
    return record_dek(conn, patient_id, keyring)


def _hold_key_lock(conn: Connection, patient_id: UUID) -> None:
    """The shared key lock of ``patient_id`` for this transaction, taken once per transaction."""
    if conn.dialect.name == "postgresql":
        txn = conn.get_transaction()
        owner, held = conn.info.get("dmp_key_locks", (None, set()))
        if owner is not txn:  # the locks of an earlier transaction were released at its end
            owner, held = txn, set()
            conn.info["dmp_key_locks"] = (owner, held)
        if patient_id not in held:
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(:space, :key)"), _key_lock(patient_id))
            held.add(patient_id)


def lock_key_for_rotation(conn: Connection, patient_id: UUID) -> None:
    """Before replacing a record's key: wait for the transactions sealing under it, keep new ones out."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), _key_lock(patient_id))


def _aad(patient_id: UUID, field: str, row_id: UUID | str) -> bytes:
    return _AAD_PREFIX + patient_id.bytes + field.encode() + b"\x00" + str(row_id).encode()


def seal_bytes(dek: bytes, patient_id: UUID, field: str, row_id: UUID | str, value: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return BYTES_MARKER + nonce + AESGCM(dek).encrypt(nonce, value, _aad(patient_id, field, row_id))


def open_bytes(dek: bytes, patient_id: UUID, field: str, row_id: UUID | str, stored: bytes) -> bytes:
    stored = bytes(stored)
    if not is_sealed_bytes(stored):
        return stored  # written before SE-02: `dmp keys reseal` seals it
    nonce = stored[1 : 1 + NONCE_BYTES]
    return AESGCM(dek).decrypt(nonce, stored[1 + NONCE_BYTES :], _aad(patient_id, field, row_id))


def seal_text(dek: bytes, patient_id: UUID, field: str, row_id: UUID | str, value: str | None) -> str | None:
    if value is None:
        return None
    raw = seal_bytes(dek, patient_id, field, row_id, value.encode())
    return TEXT_MARKER + base64.urlsafe_b64encode(raw[1:]).decode()


def open_text(dek: bytes, patient_id: UUID, field: str, row_id: UUID | str, stored: str | None) -> str | None:
    if stored is None or not is_sealed_text(stored):
        return stored
    raw = BYTES_MARKER + base64.urlsafe_b64decode(stored[len(TEXT_MARKER) :])
    return open_bytes(dek, patient_id, field, row_id, raw).decode()


def is_sealed_text(stored: object) -> bool:
    return isinstance(stored, str) and stored.startswith(TEXT_MARKER)


def is_sealed_bytes(stored: object) -> bool:
    return isinstance(stored, bytes | memoryview) and bytes(stored[:1]) == BYTES_MARKER


def blind_index(keyring: KeyRing, purpose: str, value: str) -> str:
    """A keyed, deterministic digest for equality look-ups of a value kept sealed."""
    return keyring.blind_index(purpose, value)


class OpenedRow:
    """A row whose sealed columns read as their clear values (attribute access, ``_mapping``).

    A sealed column is opened when first read, so that a row whose names nobody reads costs no
    decryption (the record row on every read by id).
    """

    def __init__(self, values: Mapping[str, Any], sealed: Mapping[str, Callable[[], Any]]) -> None:
        self.__dict__["_values"] = dict(values)
        self.__dict__["_sealed"] = dict(sealed)

    def _get(self, name: str) -> Any:
        pending = self.__dict__["_sealed"]
        values = self.__dict__["_values"]
        if name in pending:
            values[name] = pending.pop(name)()
        return values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in self.__dict__["_values"]:
            raise AttributeError(name)
        return self._get(name)

    @property
    def _mapping(self) -> dict[str, Any]:
        for name in list(self.__dict__["_sealed"]):
            self._get(name)
        return dict(self.__dict__["_values"])

    def __repr__(self) -> str:
        return f"OpenedRow({sorted(self.__dict__['_values'])})"


def open_row(
    conn: Connection,
    row: Any,
    table: str,
    columns: Iterable[str],
    *,
    patient_id: UUID | None = None,
    row_id: UUID | str | None = None,
    dek: bytes | None = None,
) -> Any:
    """``row`` (None stays None) with each of its sealed ``columns`` of ``table`` opened on first read."""
    if row is None:
        return None
    values: dict[str, Any] = dict(row._mapping)
    pid: UUID = patient_id if patient_id is not None else values["patient_id"]
    rid = row_id if row_id is not None else values["id"]
    names = [
        name
        for name in columns
        if name in values and (is_sealed_text(values[name]) or is_sealed_bytes(values[name]))
    ]
    if not names:
        return OpenedRow(values, {})
    # The key now (the row may be read after its connection is closed), the decryption on first read.
    key = dek if dek is not None else _dek_for_row(conn, pid, values)

    def opener(name: str, value: Any) -> Callable[[], Any]:
        field = f"{table}.{name}"
        if isinstance(value, str):
            return lambda: open_text(key, pid, field, rid, value)
        return lambda: open_bytes(key, pid, field, rid, value)

    return OpenedRow(values, {name: opener(name, values[name]) for name in names})


def _dek_for_row(conn: Connection, patient_id: UUID, values: Mapping[str, Any]) -> bytes:
    wrapped = values.get("wrapped_key")  # the record row of a read by id carries it
    if wrapped is not None:
        return keyring_of(conn).unwrap(patient_id, bytes(wrapped))
    return record_dek(conn, patient_id)

def seal_columns(
    dek: bytes, patient_id: UUID, table: str, row_id: UUID | str, **values: str | bytes | None
) -> dict[str, str | bytes | None]:
    """``values`` (column name → clear value) in their sealed storage form, for an insert or update."""
    out: dict[str, str | bytes | None] = {}
    for name, value in values.items():
        field = f"{table}.{name}"
        if isinstance(value, bytes):
            out[name] = seal_bytes(dek, patient_id, field, row_id, value)
        else:
            out[name] = seal_text(dek, patient_id, field, row_id, value)
    return out


# The sealed columns of each table (docs/encryption.md lists every column and why).
SEALED: dict[str, tuple[str, ...]] = {
    "patient": (
        "birth_family_name",
        "birth_given_names",
        "usual_family_name",
        "usual_given_name",
        "closure_reason",
    ),
    "record_event": ("detail",),
    "document": ("title", "author_name", "resource_json"),
    "submission_set": ("title", "resource_json"),
    "emergency_access": ("justification",),
    "patient_notification": ("text",),
    "account": ("display_name", "email", "phone"),  # a patient's account only (patient_id set)
    "outbox_message": ("recipient", "params"),  # messages about a record (record-less ones: clear)
}


def open_rows(conn: Connection, rows: Iterable[Any], table: str, columns: Iterable[str]) -> list[OpenedRow]:
    """Every row opened, each record's key fetched once (rows carry ``patient_id`` and ``id``)."""
    names = tuple(columns)
    keys: dict[UUID, bytes] = {}
    out: list[OpenedRow] = []
    for row in rows:
        pid: UUID = row.patient_id
        values = row._mapping
        sealed = any(is_sealed_text(values.get(n)) or is_sealed_bytes(values.get(n)) for n in names)
        if pid not in keys and sealed:
            keys[pid] = record_dek(conn, pid)
        opened = open_row(conn, row, table, names, dek=keys.get(pid))
        if opened is not None:
            out.append(opened)
    return out


def trail_key(conn: Connection, patient_id: UUID, keyring: KeyRing | None = None) -> bytes | None:
    """The record's trail key (created on first use); None for a chain without a record."""
    k = record_key.c
    wrapped = conn.execute(select(k.trail_key).where(k.patient_id == patient_id)).first()
    if wrapped is None:
        return None  # a record-less chain, or an entry about a record that does not exist
    ring = keyring or keyring_of(conn)
    if wrapped.trail_key is None:
        _, new = ring.new_record_key()
        conn.execute(
            update(record_key).where(k.patient_id == patient_id, k.trail_key.is_(None)).values(trail_key=new)
        )
        wrapped = conn.execute(select(k.trail_key).where(k.patient_id == patient_id)).first()
        if wrapped is None or wrapped.trail_key is None:  # pragma: no cover (the row was just seen)
            return None
    return ring.unwrap_uncached(bytes(wrapped.trail_key))
