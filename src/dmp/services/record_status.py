"""A record's status (open or closed), below every service that needs to check it."""

from __future__ import annotations

from typing import Any

from dmp.errors import DmpError

OPEN, CLOSED = "open", "closed"


def require_open(row: Any) -> None:
    """A closed record (LC-10) is read, not changed: RECORD_CLOSED with its closing date."""
    if row.record_status != OPEN:
        raise DmpError("RECORD_CLOSED", f"fermé le {row.closed_at:%d/%m/%Y}.")
