"""Global uniqueness as reservations (ADR 0009 b): ``document_uid.reserved_at``, ``ins_index.reserved_at``.

A uniqueId (an INS) is now reserved in a short transaction of its own before the per-patient
one; a reservation whose per-patient row does not exist and whose ``reserved_at`` is older than
``DMP_RESERVATION_TIMEOUT`` is stale (taken over, swept). Rows written before this revision were
written in the same transaction as their document (record): null, never stale.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _utc_datetime() -> sa.types.TypeEngine[datetime]:
    """The DDL of ``dmp.store.types.UtcDateTime`` at this revision: TIMESTAMP WITH TIME ZONE on
    PostgreSQL, DATETIME (naive UTC) elsewhere."""
    return sa.DateTime().with_variant(sa.DateTime(timezone=True), "postgresql")


# Plain ALTER TABLE on both engines (nullable columns, no batch copy on SQLite).
def upgrade() -> None:
    for table in ("document_uid", "ins_index"):
        op.add_column(table, sa.Column("reserved_at", _utc_datetime(), nullable=True))
        # The sweep reads the oldest reservations only.
        op.create_index(f"ix_{table}_reserved_at", table, ["reserved_at"])


def downgrade() -> None:
    for table in ("document_uid", "ins_index"):
        op.drop_index(f"ix_{table}_reserved_at", table_name=table)
        op.drop_column(table, "reserved_at")
