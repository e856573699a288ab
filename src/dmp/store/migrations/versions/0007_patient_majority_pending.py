"""Majority of a minor's record holder (LC-08): ``patient.majority_pending_since``.

Set when the holder turns 18 and the representatives' access ends, cleared when the holder
confirms the continuation of the record (or refuses it: the record is then closed). Until then,
after the grace period (``DMP_MAJORITY_GRACE_DAYS``), professionals get the closed-record
answer. Before this revision no majority was pending: every existing row gets null.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _utc_datetime() -> sa.types.TypeEngine[datetime]:
    """The DDL of ``dmp.store.types.UtcDateTime`` at this revision: TIMESTAMP WITH TIME ZONE on
    PostgreSQL, DATETIME (naive UTC) elsewhere."""
    return sa.DateTime().with_variant(sa.DateTime(timezone=True), "postgresql")


# A plain ALTER TABLE on both engines: a batch (copy and move) of ``patient`` on SQLite would
# drop a table every other table references.
def upgrade() -> None:
    op.add_column("patient", sa.Column("majority_pending_since", _utc_datetime(), nullable=True))


def downgrade() -> None:
    op.drop_column("patient", "majority_pending_since")
