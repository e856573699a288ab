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
