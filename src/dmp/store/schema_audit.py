"""Tables of the audit trail (issue 5): hash-chained entries, chain heads, signed anchors.

* ``audit_entry`` is append-only: one row per traced action, chained per record
  (``prev_hash`` → ``hash``), numbered per record from 1 (``seq``). Entries with no record
  (a failed login, say) go to the chain of the nil UUID (:data:`dmp.audit.NIL_PATIENT`).
  There is deliberately **no foreign key to** ``patient``: the trail outlives the record.
* ``audit_head`` holds each chain's last (seq, hash); appending locks only that row, so
  records never wait for each other.
* ``audit_anchor`` + ``audit_anchor_head``: a periodic, signed Merkle root over the chain
  heads that moved during the period (see docs/audit.md).

Everything per record has ``patient_id`` in its primary key (Citus distribution key).
UPDATE/DELETE are refused by triggers installed by :func:`dmp.audit.install_protection`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table, Text, Uuid

from dmp.store.audit_row import entry_columns
from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

# The columns come from the one definition of an entry's fields (dmp.store.audit_row).
audit_entry = Table(
    "audit_entry",
    metadata,
    *entry_columns(),
    PrimaryKeyConstraint("patient_id", "seq"),
    Index("ix_audit_entry_at", "at"),
    Index("ix_audit_entry_id", "id"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("patient_id"),
)

audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),  # 1, 2, 3… (gaps are breaks)
    Column("created_at", UtcDateTime, nullable=False),
    Column("period_start", UtcDateTime),  # end of the previous anchor's period (none for the first)
    Column("period_end", UtcDateTime, nullable=False),
    Column("head_count", Integer, nullable=False),
    Column("merkle_root", String(64), nullable=False),  # RFC 6962 root over the anchored heads
    Column("prev_digest", String(64), nullable=False),  # SHA-256 of the previous anchor's payload
    Column("key_id", String(64), nullable=False),
    Column("signature", Text, nullable=False),  # base64 DER ECDSA P-256 / SHA-256 over the payload
    PrimaryKeyConstraint("id"),
)

# The chain heads an anchor covers: those that moved during its period.
audit_anchor_head = Table(
    "audit_anchor_head",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("anchor_id", Integer, nullable=False, autoincrement=False),
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("patient_id", "anchor_id"),
    Index("ix_audit_anchor_head_anchor", "anchor_id", "patient_id"),
)
