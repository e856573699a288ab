"""Tamper protection of the audit trail: triggers refusing UPDATE and DELETE.

Kept apart from the generated schema migration: it is code, not schema.

Frozen: the statements below are, literally, those ``dmp.audit.install_protection`` and
``uninstall_protection`` ran at this revision (recorded from that code). A migration must
not import the application: a later edit of ``dmp.audit.protect`` would silently change
what this historical step does. A change of the protection is a new migration.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MESSAGE = "journal d''audit en ajout seul : modification et suppression interdites"  # SQL-quoted

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dmp_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{_MESSAGE} (% sur %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Les traces ne se corrigent pas : ajoutez une nouvelle entrée.';
END
$$
"""

# PostgreSQL: (table, trigger, timing/events/level), each run as DROP IF EXISTS + CREATE.
_PG_TRIGGERS = (
    ("audit_entry", "audit_entry_append_only", "BEFORE UPDATE OR DELETE ON audit_entry FOR EACH ROW"),
    ("audit_entry", "audit_entry_no_truncate", "BEFORE TRUNCATE ON audit_entry FOR EACH STATEMENT"),
    ("audit_anchor", "audit_anchor_append_only", "BEFORE UPDATE OR DELETE ON audit_anchor FOR EACH ROW"),
    ("audit_anchor", "audit_anchor_no_truncate", "BEFORE TRUNCATE ON audit_anchor FOR EACH STATEMENT"),
    (
        "audit_anchor_head",
        "audit_anchor_head_append_only",
        "BEFORE UPDATE OR DELETE ON audit_anchor_head FOR EACH ROW",
    ),
    (
        "audit_anchor_head",
        "audit_anchor_head_no_truncate",
        "BEFORE TRUNCATE ON audit_anchor_head FOR EACH STATEMENT",
    ),
    ("audit_head", "audit_head_no_delete", "BEFORE DELETE ON audit_head FOR EACH ROW"),
    ("audit_head", "audit_head_no_truncate", "BEFORE TRUNCATE ON audit_head FOR EACH STATEMENT"),
)

# SQLite: (table, trigger, event).
_SQLITE_TRIGGERS = (
    ("audit_entry", "audit_entry_no_update", "UPDATE"),
    ("audit_entry", "audit_entry_no_delete", "DELETE"),
    ("audit_anchor", "audit_anchor_no_update", "UPDATE"),
    ("audit_anchor", "audit_anchor_no_delete", "DELETE"),
    ("audit_anchor_head", "audit_anchor_head_no_update", "UPDATE"),
    ("audit_anchor_head", "audit_anchor_head_no_delete", "DELETE"),
    ("audit_head", "audit_head_no_delete", "DELETE"),
)


def upgrade_statements(dialect: str) -> list[str]:
    """What the upgrade runs on ``dialect``, in order."""
    if dialect == "postgresql":
        out = [_PG_FUNCTION]
        for table, name, spec in _PG_TRIGGERS:
            out.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            out.append(f"CREATE TRIGGER {name} {spec} EXECUTE FUNCTION dmp_audit_refuse()")
        return out
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE} ({event} sur {table})'); END"
            for table, name, event in _SQLITE_TRIGGERS
        ]
    raise ValueError(f"moteur de base de données non pris en charge : {dialect}")


def downgrade_statements(dialect: str) -> list[str]:
    """What the downgrade runs on ``dialect`` (the function is left in place, as it was)."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name, _ in _PG_TRIGGERS]
    return [f"DROP TRIGGER IF EXISTS {name}" for _, name, _ in _SQLITE_TRIGGERS]


def upgrade() -> None:
    bind = op.get_bind()
    for statement in upgrade_statements(bind.dialect.name):
        bind.execute(sa.text(statement))


def downgrade() -> None:
    bind = op.get_bind()
    for statement in downgrade_statements(bind.dialect.name):
        bind.execute(sa.text(statement))
