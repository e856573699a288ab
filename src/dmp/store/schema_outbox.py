"""The transactional outbox: every message to a person (codes, alerts, notices).

A row is written in the same transaction as the event it announces (it exists if and only
if the event committed) and delivered afterwards by the outbox worker (``dmp.outbox``).
The key starts with ``patient_id`` like every per-record table, so that the table can be
distributed on it; messages tied to no record (a professional's account code…) use
``NO_RECORD``, the nil UUID. See docs/outbox.md.

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
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

# patient_id of the messages that concern no record.
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
    PrimaryKeyConstraint("patient_id", "id"),
    UniqueConstraint("patient_id", "dedup_key"),
    Index("ix_outbox_message_status_due", "status", "not_before"),
)
