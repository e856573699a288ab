"""Append-only enforcement in the database, independent of the migrations.

* Triggers refuse UPDATE and DELETE on ``audit_entry``, ``audit_anchor`` and
  ``audit_anchor_head`` (and TRUNCATE on PostgreSQL), even for the table owner, and
  DELETE on ``audit_head``. On PostgreSQL a superuser can still disable them (``ALTER
  TABLE … DISABLE TRIGGER``, ``session_replication_role``): that is what the hash chain
  and the signed anchors are for.
* :func:`restrict_role` leaves the application role INSERT and SELECT only on the trail
  (plus UPDATE of the chain heads, which appending needs).

Every function is idempotent; call :func:`install_protection` at start-up (or after a
supervised :func:`uninstall_protection`). Migration 0002 carries a frozen, literal copy of
the statements: a change here needs a new migration, or
tests/integration/test_migrations.py (migrated protection = installed protection) fails.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

APPEND_ONLY = ("audit_entry", "audit_anchor", "audit_anchor_head")
MESSAGE = "journal d'audit en ajout seul : modification et suppression interdites"

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dmp_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE.replace("'", "''")} (% sur %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Les traces ne se corrigent pas : ajoutez une nouvelle entrée.';
END
$$
"""
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _pg_triggers() -> list[tuple[str, str, str]]:
    """(table, trigger name, timing/events/level)."""
    out = []
    for table in APPEND_ONLY:
        out.append((table, f"{table}_append_only", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"))
        out.append((table, f"{table}_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"))
    out.append(("audit_head", "audit_head_no_delete", "BEFORE DELETE ON {t} FOR EACH ROW"))
    out.append(("audit_head", "audit_head_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"))
    return out


def install_postgres_protection(conn: Connection) -> None:
    """Create (or recreate) the refusing triggers on PostgreSQL."""
    conn.execute(text(_PG_FUNCTION))
    for table, name, spec in _pg_triggers():
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
        conn.execute(
            text(f"CREATE TRIGGER {name} {spec.format(t=table)} EXECUTE FUNCTION dmp_audit_refuse()")
        )


def _sqlite_triggers() -> list[tuple[str, str, str]]:
    out = []
    for table in APPEND_ONLY:
        out.append((table, f"{table}_no_update", "UPDATE"))
        out.append((table, f"{table}_no_delete", "DELETE"))
    out.append(("audit_head", "audit_head_no_delete", "DELETE"))
    return out


def install_sqlite_protection(conn: Connection) -> None:
    msg = MESSAGE.replace("'", "''")
    for table, name, event in _sqlite_triggers():
        conn.execute(
            text(
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{msg} ({event} sur {table})'); END"
            )
        )


class UnsupportedDatabase(ValueError):
    """The operation has no meaning on this database engine."""


def install_protection(conn: Connection) -> None:
    """The refusing triggers for the connection's engine (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        install_postgres_protection(conn)
    elif conn.dialect.name == "sqlite":
        install_sqlite_protection(conn)
    else:  # pragma: no cover
        raise UnsupportedDatabase(f"moteur de base de données non pris en charge : {conn.dialect.name}")


def uninstall_protection(conn: Connection) -> None:
    """Drop the triggers: for test fixtures and supervised maintenance only.

    Whatever is done to the trail meanwhile is still caught by ``dmp audit verify``.
    """
    if conn.dialect.name == "postgresql":
        for table, name, _ in _pg_triggers():
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
    else:
        for _, name, _ in _sqlite_triggers():
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def restrict_role(conn: Connection, role: str = "dmp_app") -> None:
    """PostgreSQL: the application role may only INSERT and SELECT the trail.

    It keeps SELECT, INSERT, UPDATE on ``audit_head`` (appending moves the head) but
    neither DELETE nor TRUNCATE anywhere in the trail.
    """
    if conn.dialect.name != "postgresql":
        raise UnsupportedDatabase("les rôles n'existent que sous PostgreSQL")
    if not _ROLE.match(role):
        raise ValueError(f"nom de rôle invalide : {role!r}")
    tables = ", ".join(APPEND_ONLY)
    conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON {tables}, audit_head FROM "{role}"'))
    conn.execute(text(f'GRANT SELECT, INSERT ON {tables} TO "{role}"'))
    conn.execute(text(f'GRANT SELECT, INSERT, UPDATE ON audit_head TO "{role}"'))
