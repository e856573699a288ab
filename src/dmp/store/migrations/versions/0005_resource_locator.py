"""Resource locator (ADR 0009): resource id → record, for reads by id without a scatter.

Filled from the existing documents, submission sets and consents.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_locator",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_locator")),
    )
    for kind, table in (("document", "document"), ("list", "submission_set"), ("consent", "record_consent")):
        op.execute(
            f"INSERT INTO resource_locator (id, kind, patient_id) "  # noqa: S608 (constants)
            f"SELECT id, '{kind}', patient_id FROM {table}"
        )


def downgrade() -> None:
    op.drop_table("resource_locator")
