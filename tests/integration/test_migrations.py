"""The Alembic chain alone produces exactly the schema the code declares, on both engines,
and exactly the trail protection the code installs (the migrations are frozen: see
tests/unit/test_migrations_frozen.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from dmp.audit import install_protection
from dmp.store.db import alembic_config, make_engine, upgrade
from dmp.store.schema import metadata


def _diff(engine: Engine) -> list[object]:
    upgrade(engine)
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrations_match_schema_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_migrations_match_schema_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("covered by the SQLite test")
    from conftest import _drop_database
    from dmp.devtools.pgcluster import fresh_database

    url = fresh_database(engine.url.render_as_string(hide_password=False), "dmp_migration_check")
    fresh = make_engine(url)
    try:
        assert _diff(fresh) == []
    finally:
        fresh.dispose()
        _drop_database(url)


def _protection(engine: Engine) -> list[tuple[object, ...]]:
    """The triggers (and, on PostgreSQL, the trigger function) as the database reports them."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            q = (
                "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE NOT tgisinternal ORDER BY 1, 2"
            )
            rows = conn.execute(text(q)).all()
            function = "SELECT proname, prosrc FROM pg_proc WHERE proname = 'dmp_audit_refuse'"
            rows += conn.execute(text(function)).all()
        else:
            q = "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY 1, 2"
            rows = conn.execute(text(q)).all()
    return [tuple(r) for r in rows]


def _reference(engine: Engine) -> list[tuple[object, ...]]:
    """What the application itself installs on the declared schema."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        install_protection(conn)
    return _protection(engine)


def _check_protection(migrated: Engine, reference: Engine) -> None:
    from alembic import command

    upgrade(migrated)
    after = _protection(migrated)
    assert after and after == _reference(reference)
    command.downgrade(alembic_config(migrated), "0001")
    assert [r for r in _protection(migrated) if r[0] != "dmp_audit_refuse"] == []
    upgrade(migrated)
    assert _protection(migrated) == after


def test_migrations_install_the_protection_sqlite(tmp_path: Path) -> None:
    migrated = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    reference = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        _check_protection(migrated, reference)
    finally:
        migrated.dispose()
        reference.dispose()


def test_migrations_install_the_protection_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("covered by the SQLite test")
    from conftest import _drop_database
    from dmp.devtools.pgcluster import fresh_database

    server = engine.url.render_as_string(hide_password=False)
    names = (f"dmp_protection_migrated_{os.getpid()}", f"dmp_protection_reference_{os.getpid()}")
    urls = [fresh_database(server, name) for name in names]
    migrated, reference = (make_engine(u) for u in urls)
    try:
        _check_protection(migrated, reference)
    finally:
        migrated.dispose()
        reference.dispose()
        for u in urls:
            _drop_database(u)
