"""A consistent, read-only view of the database for verification and export.

Verification reads entries, heads and anchors with several statements; under PostgreSQL's
default READ COMMITTED each would see a different state, and an append committed in
between would look like tampering. The snapshot is one REPEATABLE READ, read-only
transaction on PostgreSQL, and one deferred read transaction on SQLite (WAL: writers are
not blocked, unlike the ``BEGIN IMMEDIATE`` the service's engine issues).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.pool import NullPool


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot from the first read on


@contextmanager
def snapshot(url: str) -> Iterator[Connection]:
    """Yield a connection inside one read-only transaction over a single database state."""
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
    finally:
        engine.dispose()
