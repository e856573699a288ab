"""SE-02: ``record_key.trail_key``, the wrapped key that seals a record's trail free text.

The trail is append-only (UPDATE refused by triggers) and outlives the record, so its sealed
fields (the break-glass justification) cannot be re-encrypted when the record's data key is
rotated: they use a key of their own, wrapped by the master key like the data key, re-wrapped
by ``dmp keys rotate-master`` and never rotated with the record (docs/adr/0012). Existing rows
get null: the key is created on first use. The sealed columns themselves keep their types
(a marker prefix tells a sealed value from a clear one, ``dmp keys reseal`` seals old rows),
except ``account.email`` and ``account.phone``, widened to TEXT on PostgreSQL.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("record_key", sa.Column("trail_key", sa.LargeBinary(), nullable=True))
    # A patient account's sealed e-mail and phone are longer than VARCHAR(254)/(20). PostgreSQL
    # enforces the length: TEXT there. SQLite does not; a batch copy of ``account`` (referenced by
    # account_recovery_code) is not worth it, so its DDL stays.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("account", "email", type_=sa.Text(), existing_nullable=True)
        op.alter_column("account", "phone", type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("account", "phone", type_=sa.String(20), existing_nullable=True)
        op.alter_column("account", "email", type_=sa.String(254), existing_nullable=True)
    op.drop_column("record_key", "trail_key")
