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
# Per client (a card's certificate, a patient app's client_id) at /oauth/token: 20 failures in a
# minute, then a minute locked.
TOKEN_CLIENT = Limit(20, timedelta(minutes=1), timedelta(minutes=1))
# Per address at /oauth/token, every client together: a much higher ceiling (a hospital's
# software shares one address). Once it is reached, only clients with failures of their own
# are refused unchecked; a client without failures is still checked, so a valid card is never
# refused because others failed from its address.
TOKEN_ADDRESS = Limit(300, timedelta(minutes=15), timedelta(minutes=15))


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


def failures(conn: Connection, key_: str, now: datetime, limit: Limit) -> int:
    """Failures of ``key_`` still counted in ``limit``'s window."""
    row = conn.execute(select(auth_throttle).where(auth_throttle.c.key == key_)).first()
    if row is None or row.first_failure_at < now - limit.window:
        return 0
    return int(row.failures)


@dataclass(frozen=True)
class TokenKeys:
    """The two buckets of one token request: its client's, its address's."""

    client: str
    address: str

    @classmethod
    def of(cls, keys: AccountKeys, client: str, address: str) -> TokenKeys:
        return cls(key(keys, "token-client", client), key(keys, "token-ip", address))


def token_refused_until(conn: Connection, k: TokenKeys, now: datetime) -> datetime | None:
    """The end of the lock refusing this token request before any check, if it is refused."""
    own = locked_until(conn, k.client, now)
    if own is not None:
        return own
    shared = locked_until(conn, k.address, now)
    if shared is not None and failures(conn, k.client, now, TOKEN_CLIENT) > 0:
        return shared
    return None


def count_token_failure(conn: Connection, k: TokenKeys, now: datetime) -> None:
    record_failure(conn, k.client, TOKEN_CLIENT, now)
    record_failure(conn, k.address, TOKEN_ADDRESS, now)
    purge(conn, now)  # eviction: counters of clients that stopped failing long ago
