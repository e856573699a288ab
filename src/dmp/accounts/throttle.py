"""Failed-attempt counting, lockout and rate limiting, shared by every login and code endpoint.

One table, ``auth_throttle``, keyed by a keyed hash of what is counted: an identifier
(``id:``), an account (``acct:``), a client address (``ip:``). The same counting applies to
identifiers that match no account, so a lockout reveals nothing about who has an account.
Counters live in the database so that every worker process sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dmp.accounts.keys import AccountKeys
from dmp.store.schema_accounts import auth_throttle


@dataclass(frozen=True)
class Limit:
    max_failures: int
    window: timedelta  # failures older than this are forgotten
    lock: timedelta  # how long the key stays locked once the limit is reached


# Per identifier (login, activation, second factor): 5 failures, then 15 minutes locked.
IDENTIFIER = Limit(5, timedelta(minutes=15), timedelta(minutes=15))
# Per client address, every endpoint together: 30 failures in 15 minutes, then 15 minutes.
ADDRESS = Limit(30, timedelta(minutes=15), timedelta(minutes=15))


def key(keys: AccountKeys, kind: str, value: str) -> str:
    return f"{kind}:{keys.digest('throttle:' + kind, value)[:64]}"


def locked_until(conn: Connection, key_: str, now: datetime) -> datetime | None:
    row = conn.execute(select(auth_throttle.c.locked_until).where(auth_throttle.c.key == key_)).first()
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    lock: datetime = row.locked_until
    return lock


def any_locked(conn: Connection, keys_: list[str], now: datetime) -> datetime | None:
    """The latest lock among ``keys_`` still in force, if any."""
    found = [t for k in keys_ if (t := locked_until(conn, k, now)) is not None]
    return max(found) if found else None


def record_failure(conn: Connection, key_: str, limit: Limit, now: datetime) -> datetime | None:
    """Count a failure; return the lock's end if this failure locks the key."""
    values = {"key": key_, "failures": 0, "first_failure_at": now, "locked_until": None}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(auth_throttle).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(auth_throttle).values(**values).on_conflict_do_nothing())
    q = select(auth_throttle).where(auth_throttle.c.key == key_)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).one()
    if row.locked_until is not None and row.locked_until > now:
        return None  # already locked: do not extend
    failures, first = row.failures, row.first_failure_at
    if row.locked_until is not None or first < now - limit.window:
        failures, first = 0, now  # the lock ended or the window passed: start again
    failures += 1
    lock = now + limit.lock if failures >= limit.max_failures else None
    conn.execute(
        update(auth_throttle)
        .where(auth_throttle.c.key == key_)
        .values(failures=failures, first_failure_at=first, locked_until=lock)
    )
    return lock


def clear(conn: Connection, key_: str) -> None:
    conn.execute(delete(auth_throttle).where(auth_throttle.c.key == key_))


def purge(conn: Connection, now: datetime, older_than: timedelta = timedelta(days=1)) -> None:
    conn.execute(
        delete(auth_throttle).where(
            auth_throttle.c.first_failure_at < now - older_than,
            (auth_throttle.c.locked_until.is_(None)) | (auth_throttle.c.locked_until < now),
        )
    )
