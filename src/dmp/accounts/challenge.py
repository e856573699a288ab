"""What activation and login share: failed-attempt locks and one-time codes sent by e-mail or SMS."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from dmp.accounts import codes, sessions, throttle
from dmp.accounts.keys import AccountKeys, same
from dmp.accounts.model import (
    OTP_MAX_ATTEMPTS,
    OTP_VALIDITY,
    Account,
    AuthResult,
    Outcome,
    normalize_login,
)
from dmp.outbox import NO_RECORD, enqueue


def _locks(keys: AccountKeys, realm: str, login: str, address: str) -> tuple[str, str]:
    return (
        throttle.key(keys, "id", f"{realm}:{normalize_login(realm, login)}"),
        throttle.key(keys, "ip", address),
    )


def _fail(conn: Connection, id_key: str, addr_key: str, now: datetime) -> AuthResult:
    lock = throttle.record_failure(conn, id_key, throttle.IDENTIFIER, now)
    addr_lock = throttle.record_failure(conn, addr_key, throttle.ADDRESS, now)
    until = max([t for t in (lock, addr_lock) if t is not None], default=None)
    return AuthResult(Outcome.LOCKED, until=until) if until else AuthResult(Outcome.INVALID)


def start_code_challenge(
    conn: Connection,
    keys: AccountKeys,
    s: sessions.Session,
    acc: Account,
    channel: str,
    recipient: str,
    now: datetime,
) -> None:
    """Send a one-time code by e-mail or SMS (through the outbox) and remember its digest in the session."""
    code = codes.otp_code()
    s.code_hash = keys.digest("otp:" + s.token_hash, code)
    s.code_expires_at = now + OTP_VALIDITY
    s.code_attempts = 0
    sessions.save(conn, s)
    enqueue(
        conn,
        patient_id=acc.patient_id or NO_RECORD,
        channel=channel,
        recipient=recipient,
        template="otp_code",
        params={"code": code, "minutes": int(OTP_VALIDITY.total_seconds() // 60)},
        now=now,
    )


def _check_session_code(keys: AccountKeys, s: sessions.Session, code: str, now: datetime) -> bool:
    digest = keys.digest("otp:" + s.token_hash, "".join(ch for ch in code if ch.isdigit()))
    stored = s.code_hash or "0" * 64
    return (
        same(digest, stored)
        and s.code_hash is not None
        and s.code_expires_at is not None
        and s.code_expires_at > now
    )


def _code_failure(
    conn: Connection, keys: AccountKeys, s: sessions.Session, acc: Account, now: datetime, address: str
) -> AuthResult:
    s.code_attempts += 1
    sessions.save(conn, s)
    id_key, addr_key = _locks(keys, acc.realm, acc.login, address)
    result = _fail(conn, id_key, addr_key, now)
    if result.outcome is Outcome.LOCKED:
        return result
    if s.code_attempts >= OTP_MAX_ATTEMPTS:
        return AuthResult(Outcome.EXPIRED)
    return result
