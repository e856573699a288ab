"""A professional's practice setting (TRE_A01 cadre d'exercice, e.g. SAMU_SMUR) on their account.

The card (CPS) carries it to the API; the portal's Actor needs it too, so that the policy can
recognise a centre 15 regulator (AC-14) or the médecin coordonnateur of an ESMS (AC-15).
Nullable: accounts written before this revision have none.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account", sa.Column("setting", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("setting")
