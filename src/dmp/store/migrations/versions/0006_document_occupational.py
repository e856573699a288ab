"""Documents deposited by occupational medicine (AC-17): ``document.occupational``.

Before this revision no document was recorded as deposited by occupational medicine: every
existing row gets false (the server default). From now on publication sets it when the
publishing actor is a médecin du travail.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(
            sa.Column("occupational", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.drop_column("occupational")
