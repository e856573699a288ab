"""clinical facts read from documents, and the ingestion outcome of each document

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None



def _utc_datetime() -> sa.types.TypeEngine[datetime]:
    """The DDL of ``dmp.store.types.UtcDateTime`` at this revision (frozen: no application import)."""
    return sa.DateTime().with_variant(sa.DateTime(timezone=True), "postgresql")

def upgrade() -> None:
    op.create_table(
        "clinical_fact",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("code_system", sa.Text(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("effective_time", _utc_datetime(), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_unit", sa.String(length=64), nullable=True),
        sa.Column("sha256_hex", sa.String(length=64), nullable=False),
        sa.Column("resource_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id", "document_id"],
            ["document.patient_id", "document.id"],
            name=op.f("fk_clinical_fact_patient_id_document_id_document"),
        ),
        sa.PrimaryKeyConstraint("patient_id", "id", name=op.f("pk_clinical_fact")),
    )
    op.create_index("ix_clinical_fact_document", "clinical_fact", ["patient_id", "document_id"], unique=False)
    op.create_index(
        "ix_clinical_fact_patient_code",
        "clinical_fact",
        ["patient_id", "code", "effective_time"],
        unique=False,
    )
    op.create_table(
        "clinical_ingestion",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("fact_count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("extractor_version", sa.Integer(), nullable=False),
        sa.Column("at", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id", "document_id"],
            ["document.patient_id", "document.id"],
            name=op.f("fk_clinical_ingestion_patient_id_document_id_document"),
        ),
        sa.PrimaryKeyConstraint("patient_id", "document_id", name=op.f("pk_clinical_ingestion")),
    )
    op.create_index("ix_clinical_ingestion_status", "clinical_ingestion", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_clinical_ingestion_status", table_name="clinical_ingestion")
    op.drop_table("clinical_ingestion")
    op.drop_index("ix_clinical_fact_patient_code", table_name="clinical_fact")
    op.drop_index("ix_clinical_fact_document", table_name="clinical_fact")
    op.drop_table("clinical_fact")
