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

from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

audit_entry = Table(
    "audit_entry",
    metadata,
    Column("patient_id", Uuid, nullable=False),  # nil UUID when the action concerns no record
    Column("seq", BigInteger, nullable=False, autoincrement=False),  # 1, 2, 3… per record
    Column("id", Uuid, nullable=False),  # the AuditEvent id
    Column("at", UtcDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),  # professional | patient | representative | …
    Column("actor_id", String(64), nullable=False),  # IDNPS, INS, desk agent id…
    Column("actor_name", Text, nullable=False),
    Column("actor_profession", String(8)),  # TRE_G15 code
    Column("actor_specialty", String(16)),
    Column("actor_structure_id", String(64)),
    Column("actor_structure_name", Text),
    Column("software", Text),
    Column("on_behalf_of", String(64)),  # the principal the actor acts for (id)
    Column("on_behalf_of_name", Text),
    Column("on_behalf_of_role", String(16)),  # representative | administrator | delegate
    Column("action", String(32), nullable=False),  # dmp.audit.actions.AuditAction
    Column("outcome", String(8), nullable=False),  # success | refused | error
    Column("rule_id", String(64)),  # the policy rule that decided
    Column("access_mode", String(20), nullable=False),  # normal | medecin_traitant | bris_de_glace | …
    Column("justification", Text),  # break-glass justification, as signed by the card
    Column("target_ids", Text, nullable=False),  # JSON list of references ("DocumentReference/<id>")
    Column("detail", Text),  # French, never health content
    Column("source_address", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
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
