"""FOR MEASUREMENT ONLY: the server with the audit trail's writes turned into no-ops.

``bench/bench_trail.py`` serves the same data with ``dmp.bootstrap:asgi_app`` and with this
factory, to measure what tracing costs. Nothing in ``src/`` can switch the trail off; this
module lives in ``bench/`` and is only importable when bench/ is on the Python path.
"""

from __future__ import annotations

from typing import Any

from dmp import bootstrap
from dmp.services import trail


def _not_traced(*_args: Any, **_kwargs: Any) -> None:
    return None


def asgi_app() -> object:
    trail.record = _not_traced  # type: ignore[assignment]  # every use case writes through trail.record
    return bootstrap.asgi_app()


def floor_app() -> object:
    """The cheapest durable trace there can be: one small row, written in the action's transaction
    and committed with it (``synchronous_commit`` as configured). What the real trail costs beyond
    this is its own; what this costs is the price of any durable write on a read's path."""
    from sqlalchemy import Connection, text

    app = bootstrap.asgi_app()

    def minimal_trace(conn: Connection, *_args: Any, **_kwargs: Any) -> None:
        conn.execute(text("INSERT INTO bench_floor_trace DEFAULT VALUES"))

    engine = app.state.dmp.runtime.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor_trace (id bigserial PRIMARY KEY)"))
    trail.record = minimal_trace  # type: ignore[assignment]
    return app
