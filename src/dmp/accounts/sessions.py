"""Server-side web sessions.

The browser holds a random 256-bit token in a cookie; the table keeps only its SHA-256, so a
copy of the table opens no session. A session has a stage:

* ``anon``: a visitor before login (it carries the CSRF token of the login forms);
* ``mfa``: password checked, second factor awaited;
* ``setup``: activation code checked, password and second factor being chosen;
* ``full``: logged in.

Every change of stage replaces the session by a new one with a new token (rotation): a token
known before login is worth nothing after it. Timeouts are per stage (``IDLE``/``ABSOLUTE``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, or_, select, update

from dmp.store.schema_accounts import web_session

ANON, MFA, SETUP, FULL = "anon", "mfa", "setup", "full"
IDLE: dict[str, timedelta] = {
    ANON: timedelta(minutes=30),
    MFA: timedelta(minutes=10),
    SETUP: timedelta(minutes=30),
    FULL: timedelta(minutes=15),
}
ABSOLUTE: dict[str, timedelta] = {
    ANON: timedelta(hours=2),
    MFA: timedelta(minutes=10),
    SETUP: timedelta(hours=1),
    FULL: timedelta(hours=8),
}
# last_seen_at is written at most this often (one UPDATE per request is not needed).
TOUCH_EVERY = timedelta(seconds=30)


@dataclass
class Session:
    token_hash: str
    realm: str
    account_id: UUID | None
    stage: str
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    patient_id: UUID | None = None
    code_hash: str | None = None
    code_expires_at: datetime | None = None
    code_attempts: int = 0
    data: dict[str, Any] = field(default_factory=dict)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _from_row(row: Any) -> Session:
    return Session(
        token_hash=row.token_hash,
        realm=row.realm,
        account_id=row.account_id,
        stage=row.stage,
        csrf=row.csrf,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        patient_id=row.patient_id,
        code_hash=row.code_hash,
        code_expires_at=row.code_expires_at,
        code_attempts=row.code_attempts or 0,
        data=json.loads(row.data) if row.data else {},
    )


def expired(s: Session, now: datetime) -> bool:
    return now >= s.expires_at or now - s.last_seen_at >= IDLE[s.stage]


def create(
    conn: Connection,
    realm: str,
    now: datetime,
    *,
    stage: str = ANON,
    account_id: UUID | None = None,
    patient_id: UUID | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[str, Session]:
    """A new session; returns (cookie token, session). The token is never stored."""
    token = secrets.token_urlsafe(32)
    s = Session(
        token_hash=token_hash(token),
        realm=realm,
        account_id=account_id,
        stage=stage,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + ABSOLUTE[stage],
        patient_id=patient_id,
        data=dict(data or {}),
    )
    conn.execute(
        insert(web_session).values(
            token_hash=s.token_hash,
            realm=realm,
            account_id=account_id,
            stage=stage,
            csrf=s.csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=s.expires_at,
            patient_id=patient_id,
            code_attempts=0,
            data=json.dumps(s.data) if s.data else None,
        )
    )
    return token, s


def load(conn: Connection, token: str | None, realm: str, now: datetime) -> tuple[Session | None, bool]:
    """The live session of ``token`` (or None) and whether one existed but had expired."""
    if not token or len(token) > 100:
        return None, False
    row = conn.execute(select(web_session).where(web_session.c.token_hash == token_hash(token))).first()
    if row is None:
        return None, False
    s = _from_row(row)
    if s.realm != realm:
        return None, False
    if expired(s, now):
        destroy(conn, s)
        return None, True
    if now - s.last_seen_at >= TOUCH_EVERY:
        conn.execute(
            update(web_session).where(web_session.c.token_hash == s.token_hash).values(last_seen_at=now)
        )
        s.last_seen_at = now
    return s, False


def rotate(
    conn: Connection,
    old: Session | None,
    now: datetime,
    *,
    realm: str,
    stage: str,
    account_id: UUID | None,
    patient_id: UUID | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[str, Session]:
    """Replace ``old`` by a new session (new token, new CSRF token): used at every change of stage."""
    if old is not None:
        destroy(conn, old)
    return create(conn, realm, now, stage=stage, account_id=account_id, patient_id=patient_id, data=data)


def save(conn: Connection, s: Session) -> None:
    conn.execute(
        update(web_session)
        .where(web_session.c.token_hash == s.token_hash)
        .values(
            patient_id=s.patient_id,
            code_hash=s.code_hash,
            code_expires_at=s.code_expires_at,
            code_attempts=s.code_attempts,
            data=json.dumps(s.data) if s.data else None,
        )
    )


def destroy(conn: Connection, s: Session) -> None:
    conn.execute(delete(web_session).where(web_session.c.token_hash == s.token_hash))


def destroy_all(conn: Connection, account_id: UUID) -> int:
    """Log out everywhere: every session of the account, on every device."""
    return conn.execute(delete(web_session).where(web_session.c.account_id == account_id)).rowcount


def count_for(conn: Connection, account_id: UUID) -> int:
    return len(
        conn.execute(select(web_session.c.token_hash).where(web_session.c.account_id == account_id)).all()
    )


def purge_expired(conn: Connection, now: datetime) -> None:
    """Drop sessions past their absolute timeout or idle for longer than any stage allows."""
    longest_idle = max(IDLE.values())
    conn.execute(
        delete(web_session).where(
            or_(web_session.c.expires_at <= now, web_session.c.last_seen_at <= now - longest_idle)
        )
    )
