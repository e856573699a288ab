"""The transactional outbox: every message to a person (codes, alerts, notices).

A row is written in the same transaction as the event it announces (it exists if and only
if the event committed) and delivered afterwards by the outbox worker (``dmp.outbox``).
The key starts with ``patient_id`` like every per-record table, so that the table can be
distributed on it; messages tied to no record (a professional's account code…) are given
one of the reserved keys ``UUID(int=k)`` chosen by their recipient (``NO_RECORD``, the nil
UUID, is the first), so that they spread over the shards too. ``partition`` (0..63, derived
from ``patient_id``) lets each relay claim only its share (``DMP_OUTBOX_PARTITIONS``, ADR 0009).
See docs/outbox.md.

``recipient`` is personal data (an e-mail address or a phone number): it is never logged
in clear, and ``last_error`` never contains it.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import (
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

# patient_id given by callers for messages that concern no record (spread by enqueue).
NO_RECORD = UUID(int=0)

outbox_message = Table(
    "outbox_message",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("channel", String(8), nullable=False),  # email | sms
    Column("recipient", Text, nullable=False),  # address or E.164 number: personal data
    Column("template", String(64), nullable=False),
    Column("params", Text, nullable=False),  # JSON object of strings
    Column("created_at", UtcDateTime, nullable=False),
    Column("not_before", UtcDateTime, nullable=False),  # due time (backoff, claim lease)
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),  # technical, without personal data
    Column("status", String(8), nullable=False),  # pending | sent | failed
    Column("sent_at", UtcDateTime),
    Column("dedup_key", String(200)),  # idempotent enqueue, unique per record
    Column("partition", SmallInteger, nullable=False),  # dmp.store.shard.partition_of(patient_id)
    PrimaryKeyConstraint("patient_id", "id"),
    UniqueConstraint("patient_id", "dedup_key"),
    Index("ix_outbox_message_status_due", "status", "not_before"),
    Index("ix_outbox_message_partition_due", "partition", "status", "not_before"),
)
