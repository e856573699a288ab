"""Global uniqueness reserved before the per-patient transaction (ADR 0009 b): timeout and sweep.

The reservations themselves are made by the use cases' reservation phase (``publish.reserve``,
``records.reserve``), which the unit of work runs in a committed transaction of its own
(``unit_of_work.reserved_transaction``); this module holds what they share.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from dmp.settings import Settings
from dmp.store import locator, reservations


def stale_before(settings: Settings, now: datetime) -> datetime:
    """Reservations older than this, whose row does not exist, are stale (DMP_RESERVATION_TIMEOUT)."""
    return now - timedelta(seconds=settings.reservation_timeout)


def sweep(engine: Engine, settings: Settings, now: datetime) -> int:
    """Delete the stale reservations (and the locator rows of their documents); how many."""
    with engine.begin() as conn:
        documents, records = reservations.sweep(conn, stale_before=stale_before(settings, now))
        locator.unregister(conn, locator.DOCUMENT, documents)
    return len(documents) + records
