"""Tamper protection of the audit trail: triggers refusing UPDATE and DELETE.

Kept apart from the generated schema migration: it is code, not schema.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from dmp.audit import install_protection

    install_protection(op.get_bind())


def downgrade() -> None:
    from dmp.audit import uninstall_protection

    uninstall_protection(op.get_bind())
