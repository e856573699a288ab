"""The encrypted full-text index: ``document_token`` (keyed hashes of stems) and ``document_text``
(the indexed text, sealed). Documents published before this revision are not indexed by the
migration (it has no keys): ``dmp documents index`` does it (ADR 0014).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_token",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.LargeBinary(length=16), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("tf", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id", "document_id"],
            ["document.patient_id", "document.id"],
            name=op.f("fk_document_token_patient_id_document_id_document"),
        ),
        sa.PrimaryKeyConstraint("patient_id", "token", "document_id", name=op.f("pk_document_token")),
    )
    op.create_table(
        "document_text",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("sha256_hex", sa.String(length=64), nullable=False),
        sa.Column("text_sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id", "document_id"],
            ["document.patient_id", "document.id"],
            name=op.f("fk_document_text_patient_id_document_id_document"),
        ),
        sa.PrimaryKeyConstraint("patient_id", "document_id", name=op.f("pk_document_text")),
    )


def downgrade() -> None:
    op.drop_table("document_text")
    op.drop_table("document_token")
