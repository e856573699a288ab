"""The Alembic chain alone produces exactly the schema the code declares, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from dmp.store.db import make_engine, upgrade
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
