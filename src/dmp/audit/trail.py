"""Writing and reading the trail.

:func:`append` runs in the caller's transaction, like the action it traces: if the
entry cannot be written the action fails with it ("a read that cannot be traced is not
served"). It locks only the record's chain head (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite serializes writers anyway), so two records never wait for each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    func,
    insert,
    not_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from dmp.audit.entry import (
    FIELDS,
    GENESIS,
    NIL_PATIENT,
    AuditRecord,
    StoredEntry,
    body_digest,
    storage_values,
)
from dmp.store import sealed_fields
from dmp.store.schema_audit import audit_entry, audit_head


class AuditWriteError(RuntimeError):
    """The chain head moved under a lock that should have prevented it."""


# Statements built once: appending is on every request's path.
_SELECT_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.patient_id == bindparam("pid"))
_SELECT_HEAD_FOR_UPDATE = _SELECT_HEAD.with_for_update()
_INSERT_ENTRY = insert(audit_entry)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.patient_id == bindparam("pid"), audit_head.c.seq == bindparam("old_seq"))
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _chain_statement() -> str:
    """PostgreSQL: lock the head, insert the entry chained to it and move the head, in one
    statement (one round trip). The hash is computed by PostgreSQL exactly as
    ``entry.chain_hash`` does from the body digest computed in Python.

    Written for psycopg and run as a server-side prepared statement: tracing is on every
    read's path, and going through SQLAlchemy's statement layer cost ~0.1 ms a call there
    (BENCHMARKS.md, "Audit trail cost").
    """
    cols = [c for c in FIELDS if c not in ("patient_id", "seq")]
    return f"""
        WITH head AS (
            SELECT seq, hash FROM audit_head WHERE patient_id = %(patient_id)s FOR UPDATE
        ), ins AS (
            INSERT INTO audit_entry (patient_id, seq, {", ".join(cols)}, prev_hash, hash)
            SELECT %(patient_id)s, head.seq + 1, {", ".join(f"%({c})s" for c in cols)}, head.hash,
                   encode(sha256(%(digest)s || int8send(head.seq + 1) || decode(head.hash, 'hex')), 'hex')
            FROM head
            RETURNING seq, prev_hash, hash
        ), moved AS (
            UPDATE audit_head SET seq = ins.seq, hash = ins.hash FROM ins
            WHERE audit_head.patient_id = %(patient_id)s
            RETURNING audit_head.seq
        )
        SELECT ins.seq, ins.prev_hash, ins.hash, (SELECT count(*) FROM moved) AS moved FROM ins
    """  # noqa: S608 (column names come from the schema, values are bound)


_CHAIN_PG = _chain_statement()
_NEW_HEAD = {
    name: dialect.insert(audit_head)
    .values(patient_id=bindparam("pid"), seq=bindparam("new_seq"), hash=bindparam("new_hash"))
    .on_conflict_do_nothing(index_elements=["patient_id"])
    .returning(audit_head.c.patient_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _execute_prepared(conn: Connection, statement: str, params: dict[str, Any]) -> Any:
    """Run ``statement`` on the caller's psycopg session (same transaction), prepared on the
    server; driver errors are raised as SQLAlchemy's, as if SQLAlchemy had run it."""
    import psycopg

    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection has no DBAPI driver connection")
    try:
        return driver.execute(statement, params, prepare=True).fetchone()
    except psycopg.Error as err:
        if driver.closed:
            conn.invalidate(err)
        raise DBAPIError.instance(statement, None, err, psycopg.Error, dialect=conn.dialect) from err


def _lock_head(conn: Connection, patient_id: UUID) -> Any:
    q = _SELECT_HEAD_FOR_UPDATE if conn.dialect.name == "postgresql" else _SELECT_HEAD
    return conn.execute(q, {"pid": patient_id}).first()


def _insert_head_if_absent(conn: Connection, patient_id: UUID, seq: int, hash_hex: str) -> bool:
    params = {"pid": patient_id, "new_seq": seq, "new_hash": hash_hex}
    return conn.execute(_NEW_HEAD[conn.dialect.name], params).first() is not None


JUSTIFICATION_FIELD = "audit_entry.justification"
# The patient's (or a representative's) name is identity data: sealed like the justification.
# A professional's name is the public directory's (RPPS), kept in clear for the operators' reads.
PERSON_KINDS = frozenset({"patient", "representative"})


def _fields_to_seal(entry: AuditRecord | StoredEntry) -> tuple[str, ...]:
    names = ["justification"]
    if entry.actor_kind in PERSON_KINDS:
        names += ["actor_name", "on_behalf_of_name"]
    return tuple(names)


def _sealed(conn: Connection, entry: AuditRecord) -> AuditRecord:
    """SE-02: the justification, and a patient's or representative's name, are stored sealed
    under the record's trail key; the hash is over the stored (sealed) form, so ``dmp audit
    verify`` needs no key and older clear entries verify."""
    if entry.patient_id is None or not sealed_fields.has_keyring(conn):
        return entry  # no key ring: a trail-only database (tools, tests of the chain)
    clear = {
        name: getattr(entry, name)
        for name in _fields_to_seal(entry)
        if getattr(entry, name) and not sealed_fields.is_sealed_text(getattr(entry, name))
    }
    if not clear:
        return entry
    key = sealed_fields.trail_key(conn, entry.patient_id)
    if key is None:  # no record behind the chain: nothing to seal it with
        return entry
    pid = entry.patient_id
    sealed: dict[str, Any] = {
        n: sealed_fields.seal_text(key, pid, f"audit_entry.{n}", entry.id, v) for n, v in clear.items()
    }
    return dataclasses.replace(entry, **sealed)


def opened(conn: Connection, entries: Iterable[StoredEntry]) -> list[StoredEntry]:
    """The entries as read by people: their sealed fields opened (display, export)."""
    keys: dict[UUID, bytes | None] = {}
    out: list[StoredEntry] = []
    for e in entries:
        names = [n for n in _fields_to_seal(e) if sealed_fields.is_sealed_text(getattr(e, n))]
        if names and sealed_fields.has_keyring(conn):
            if e.patient_id not in keys:
                keys[e.patient_id] = sealed_fields.trail_key(conn, e.patient_id)
            key = keys[e.patient_id]
            if key is not None:
                values: dict[str, Any] = {
                    n: sealed_fields.open_text(key, e.patient_id, f"audit_entry.{n}", e.id, getattr(e, n))
                    for n in names
                }
                e = dataclasses.replace(e, **values)
        out.append(e)
    return out


def append(conn: Connection, entry: AuditRecord) -> StoredEntry:
    """Add ``entry`` at the end of its record's chain, in the caller's transaction."""
    entry = _sealed(conn, entry)
    pid = entry.patient_id or NIL_PATIENT
    if conn.dialect.name == "postgresql":
        values = storage_values(entry)  # seq and link are chained by the database
        params = {**values, "digest": body_digest(values)}
        row = _execute_prepared(conn, _CHAIN_PG, params)
        if row is not None:
            seq, prev_hash, hash_hex, moved = row
            if moved != 1:
                raise AuditWriteError(f"tête de chaîne déplacée pendant l'ajout (dossier {pid})")
            return StoredEntry(**values, seq=seq, prev_hash=prev_hash, hash=hash_hex)
        # No head yet: this record's first entry goes through the path below.
    for _ in range(3):
        head = _lock_head(conn, pid)
        if head is None:
            # First entry of this chain: create the head; if another transaction created
            # it meanwhile, the insert does nothing (after waiting for it) and we retry.
            stored = StoredEntry.build(entry, 1, GENESIS)
            if _insert_head_if_absent(conn, pid, 1, stored.hash):
                conn.execute(_INSERT_ENTRY, stored.values())
                return stored
            continue
        stored = StoredEntry.build(entry, int(head.seq) + 1, head.hash)
        move = {"pid": pid, "old_seq": head.seq, "new_seq": stored.seq, "new_hash": stored.hash}
        conn.execute(_INSERT_ENTRY, stored.values())
        moved = conn.execute(_MOVE_HEAD, move).rowcount
        if moved != 1:
            raise AuditWriteError(f"tête de chaîne déplacée pendant l'ajout (dossier {pid})")
        return stored
    raise AuditWriteError(f"impossible de créer la tête de chaîne du dossier {pid}")


def append_committed(engine: Engine, entry: AuditRecord) -> StoredEntry:
    """Append in a transaction of its own: for refusals, whose action transaction rolls back."""
    with engine.begin() as conn:
        return append(conn, entry)


def _entries_query(
    patient_id: UUID | None,
    start: datetime | None,
    end: datetime | None,
    actor_id: str | None = None,
    hide_targets: Iterable[str] = (),
    conditions: Iterable[ColumnElement[bool]] = (),
) -> Select[Any]:
    q = select(audit_entry)
    for condition in conditions:
        q = q.where(condition)
    if actor_id is not None:
        q = q.where(audit_entry.c.actor_id == actor_id)
    for ref in hide_targets:  # target_ids is the JSON list of references, as text
        q = q.where(not_(audit_entry.c.target_ids.contains(f'"{ref}"', autoescape=True)))
    if patient_id is not None:
        q = q.where(audit_entry.c.patient_id == patient_id)
    if start is not None:
        q = q.where(audit_entry.c.at >= start)
    if end is not None:
        q = q.where(audit_entry.c.at < end)
    return q


def count_entries(
    conn: Connection,
    patient_id: UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    hide_targets: Iterable[str] = (),
    conditions: Iterable[ColumnElement[bool]] = (),
) -> int:
    inner = _entries_query(patient_id, start, end, None, tuple(hide_targets), tuple(conditions)).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def iter_entries(
    conn: Connection,
    patient_id: UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
    offset: int = 0,
    batch: int = 1000,
    actor_id: str | None = None,
    hide_targets: Iterable[str] = (),
    conditions: Iterable[ColumnElement[bool]] = (),
) -> Iterator[StoredEntry]:
    """Entries in chain order (record, then position), or newest first within a record.

    ``start``/``end`` bound ``at`` as [start, end); ``actor_id`` keeps one actor's entries;
    entries naming any of ``hide_targets`` (references such as ``DocumentReference/<id>``) are
    left out (what the reader may not learn of, ``dmp.policy.trail_entry_visible``); every one of
    ``conditions`` (on ``audit_entry`` columns: the history's filters) must hold.
    """
    q = _entries_query(patient_id, start, end, actor_id, tuple(hide_targets), tuple(conditions))
    if newest_first:
        q = q.order_by(audit_entry.c.patient_id, audit_entry.c.seq.desc())
    else:
        q = q.order_by(audit_entry.c.patient_id, audit_entry.c.seq)
    if limit is not None:
        q = q.limit(limit)
    if offset:
        q = q.offset(offset)
    result = conn.execute(q.execution_options(yield_per=batch))
    for row in result:
        yield StoredEntry.from_row(row)


def get_entry(conn: Connection, entry_id: UUID) -> StoredEntry | None:
    row = conn.execute(select(audit_entry).where(audit_entry.c.id == entry_id)).first()
    return StoredEntry.from_row(row) if row is not None else None
