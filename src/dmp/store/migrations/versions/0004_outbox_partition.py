"""Outbox relay partitions (ADR 0009): ``outbox_message.partition`` and its claim index.

Existing rows get ``partition_of(patient_id)``, computed here in Python (the same function
as ``enqueue``), so that a relay owning a partition range also finds the old messages.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 1000
_PARTITIONS = 64  # dmp.store.shard.PARTITIONS at this revision (frozen: may grow, never shrink)


def partition_of(key: UUID) -> int:
    """``dmp.store.shard.partition_of`` at this revision: the key's low bits."""
    return key.int % _PARTITIONS


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partition", sa.SmallInteger(), nullable=False, server_default="0"))
    table = sa.table("outbox_message", sa.column("patient_id", sa.Uuid()), sa.column("id", sa.Uuid()),
                     sa.column("partition", sa.SmallInteger()))
    bind = op.get_bind()
    keys = [(r.patient_id, r.id) for r in bind.execute(sa.select(table.c.patient_id, table.c.id))]
    move = (
        sa.update(table)
        .where(table.c.patient_id == sa.bindparam("k_patient"), table.c.id == sa.bindparam("k_id"))
        .values(partition=sa.bindparam("k_partition"))
    )
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start:start + _BATCH]
        rows = [{"k_patient": p, "k_id": i, "k_partition": partition_of(p)} for p, i in chunk]
        rows = [r for r in rows if r["k_partition"] != 0]  # 0 is the column's initial value
        if rows:
            bind.execute(move, rows)
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.alter_column("partition", server_default=None)
        batch_op.create_index("ix_outbox_message_partition_due", ["partition", "status", "not_before"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_partition_due")
        batch_op.drop_column("partition")
