"""Writing messages into the outbox, in the caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from dmp.outbox.privacy import EMAIL, SMS, normalize_recipient
from dmp.outbox.templates import ParamValue, prepare_params
from dmp.store import sealed_fields
from dmp.store.schema_outbox import NO_RECORD, outbox_message
from dmp.store.shard import is_nil_key, nil_key, partition_of

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
STATUSES = (PENDING, SENT, FAILED)

__all__ = [
    "FAILED", "NO_RECORD", "PENDING", "SENT", "STATUSES", "enqueue", "record_less_key",
    "record_undeliverable", "status_counts",
]


def enqueue(
    conn: Connection,
    *,
    patient_id: UUID,
    channel: str,
    recipient: str,
    template: str,
    params: Mapping[str, ParamValue],
    now: datetime,
    dedup_key: str | None = None,
) -> UUID:
    """Queue a message in the caller's transaction; it is sent only if that transaction commits.

    ``patient_id`` is the record concerned, or ``NO_RECORD`` for a message tied to no record;
    such a message is stored under the reserved key chosen by its recipient
    (:func:`record_less_key`), so that record-less messages spread over shards and relay
    partitions (ADR 0009); their ``dedup_key`` is then unique per recipient.
    ``channel`` is ``"email"`` or ``"sms"`` (numbers are normalised to E.164, French national
    numbers accepted). ``params`` must be exactly the template's parameters; dates and times
    are formatted in French (Paris time) now. With a ``dedup_key``, enqueueing again for the
    same record returns the id of the existing message and queues nothing (idempotent).

    Raises ``ValueError`` (in French) for an unknown template or channel, missing or unexpected
    parameters, an invalid recipient or a naive ``now``; the caller's transaction is untouched.
    """
    if now.tzinfo is None:
        raise ValueError("date et heure sans fuseau horaire")
    stored_recipient = normalize_recipient(channel, recipient)
    stored_params = prepare_params(template, params)
    if dedup_key is not None and not 0 < len(dedup_key) <= 200:
        raise ValueError("clé de déduplication vide ou trop longue (200 caractères au plus)")
    message_id = uuid.uuid4()
    if is_nil_key(patient_id):
        patient_id = record_less_key(channel, stored_recipient)
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "id": message_id,
        "channel": channel,
        "recipient": stored_recipient,
        "template": template,
        "params": json.dumps(stored_params, ensure_ascii=False, sort_keys=True),
        "created_at": now,
        "not_before": now,
        "attempts": 0,
        "status": PENDING,
        "dedup_key": dedup_key,
        "partition": partition_of(patient_id),
    }
    return _insert(conn, _sealed(conn, values, ("recipient", "params")))


def record_undeliverable(
    conn: Connection,
    *,
    patient_id: UUID,
    channel: str,
    template: str,
    params: Mapping[str, ParamValue],
    now: datetime,
    dedup_key: str,
    reason: str,
) -> UUID:
    """Record, in the caller's transaction, a message that cannot be sent because the system
    knows no contact for its recipient: stored ``failed`` at once, with an empty recipient (no
    address is ever invented) and ``reason`` (technical, without personal data) as its error, so
    that ``dmp outbox status`` counts it and the operator sees it. Idempotent by ``dedup_key``
    like :func:`enqueue` (an existing message of that key is returned as is)."""
    if now.tzinfo is None:
        raise ValueError("date et heure sans fuseau horaire")
    if channel not in (EMAIL, SMS):
        raise ValueError(f"canal inconnu : {channel!r} (email ou sms)")
    if not 0 < len(dedup_key) <= 200:
        raise ValueError("clé de déduplication vide ou trop longue (200 caractères au plus)")
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "id": uuid.uuid4(),
        "channel": channel,
        "recipient": "",
        "template": template,
        "params": json.dumps(prepare_params(template, params), ensure_ascii=False, sort_keys=True),
        "created_at": now,
        "not_before": now,
        "attempts": 0,
        "status": FAILED,
        "last_error": reason,
        "dedup_key": dedup_key,
        "partition": partition_of(patient_id),
    }
    return _insert(conn, _sealed(conn, values, ("params",)))  # no address: nothing to seal there


def _sealed(conn: Connection, values: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """SE-02: a record's message keeps its address and parameters (a name, a break-glass reason)
    sealed under the record's key; a record-less message, or a bare outbox database, in clear."""
    pid: UUID = values["patient_id"]
    dek = None if is_nil_key(pid) else sealed_fields.record_dek_if_any(conn, pid)
    if dek is None:
        return values
    clear = {name: values[name] for name in columns}
    return {**values, **sealed_fields.seal_columns(dek, pid, "outbox_message", values["id"], **clear)}


def _insert(conn: Connection, values: dict[str, Any]) -> UUID:
    """Insert a message row; with a ``dedup_key`` already used for the record, the existing id."""
    message_id: UUID = values["id"]
    patient_id = values["patient_id"]
    dedup_key = values["dedup_key"]
    if dedup_key is None:
        conn.execute(insert(outbox_message).values(**values))
        return message_id
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(outbox_message).values(**values)
    elif dialect == "sqlite":
        stmt = sqlite.insert(outbox_message).values(**values)
    else:  # pragma: no cover - both supported engines are above
        raise RuntimeError(f"unsupported database: {dialect}")
    inserted = conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["patient_id", "dedup_key"]).returning(
            outbox_message.c.id
        )
    ).first()
    if inserted is not None:
        return message_id
    existing = conn.execute(
        select(outbox_message.c.id).where(
            outbox_message.c.patient_id == patient_id, outbox_message.c.dedup_key == dedup_key
        )
    ).scalar_one()
    if not isinstance(existing, UUID):
        raise TypeError(f"outbox message id read as {type(existing).__name__}, not UUID")
    return existing


def record_less_key(channel: str, stored_recipient: str) -> UUID:
    """The key of a message tied to no record: one of the reserved keys, by recipient."""
    return nil_key("outbox", f"{channel}:{stored_recipient}")


def status_counts(conn: Connection, *, now: datetime | None = None) -> dict[str, int]:
    """Messages by status (every status present, 0 if none); with ``now``, also ``due``: the
    pending messages whose time has come."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = conn.execute(
        select(outbox_message.c.status, func.count()).group_by(outbox_message.c.status)
    ).all()
    for status, count in rows:
        counts[str(status)] = int(count)
    if now is not None:
        counts["due"] = int(
            conn.execute(
                select(func.count()).where(
                    outbox_message.c.status == PENDING, outbox_message.c.not_before <= now
                )
            ).scalar_one()
        )
    return counts

