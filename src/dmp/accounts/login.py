"""Login: the password, then the second factor (code received, authenticator or recovery code);
the Actor of a logged-in account.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, and_, select, update

from dmp.accounts import codes, sessions, throttle
from dmp.accounts.challenge import (
    _check_session_code,
    _code_failure,
    _fail,
    _locks,
    start_code_challenge,
)
from dmp.accounts.keys import AccountKeys, same
from dmp.accounts.model import (
    ACTIVE,
    PATIENT,
    REPRESENTATIVE,
    SUSPENDED,
    TOTP,
    Account,
    AuthResult,
    Outcome,
    _account,
    normalize_login,
)
from dmp.accounts.passwords import hash_password, needs_rehash, verify_password
from dmp.domain.actor import Actor, ActorKind
from dmp.outbox import EMAIL, SMS
from dmp.store.schema_accounts import account, account_recovery_code


def login_password(
    conn: Connection, keys: AccountKeys, realm: str, login: str, password: str, now: datetime, address: str
) -> AuthResult:
    """First step. The same work (one argon2id verification) and the same answer for an unknown
    identifier, a not yet activated account and a wrong password."""
    id_key, addr_key = _locks(keys, realm, login, address)
    until = throttle.any_locked(conn, [id_key, addr_key], now)
    if until is not None:
        return AuthResult(Outcome.LOCKED, until=until)
    row = conn.execute(
        select(account).where(account.c.realm == realm, account.c.login == normalize_login(realm, login))
    ).first()
    usable = row is not None and row.status in (ACTIVE, SUSPENDED) and row.second_factor is not None
    if (
        not verify_password(row.password_hash if usable and row is not None else None, password)
        or row is None
    ):
        return _fail(conn, id_key, addr_key, now)
    if row.status == SUSPENDED:
        return AuthResult(Outcome.SUSPENDED)
    if needs_rehash(row.password_hash):
        conn.execute(
            update(account).where(account.c.id == row.id).values(password_hash=hash_password(password))
        )
    return AuthResult(Outcome.OK, _account(row, conn))


def send_login_code(
    conn: Connection, keys: AccountKeys, s: sessions.Session, acc: Account, now: datetime
) -> None:
    """E-mail/SMS second factor: a fresh code for this login attempt."""
    if acc.second_factor == EMAIL and acc.email:
        start_code_challenge(conn, keys, s, acc, EMAIL, acc.email, now)
    elif acc.second_factor == SMS and acc.phone:
        start_code_challenge(conn, keys, s, acc, SMS, acc.phone, now)


def verify_second_factor(
    conn: Connection,
    keys: AccountKeys,
    s: sessions.Session,
    acc: Account,
    code: str,
    now: datetime,
    address: str,
    *,
    recovery: bool = False,
) -> AuthResult:
    """Second step: the code received, the authenticator's code, or a recovery code."""
    id_key, addr_key = _locks(keys, acc.realm, acc.login, address)
    until = throttle.any_locked(conn, [id_key, addr_key], now)
    if until is not None:
        return AuthResult(Outcome.LOCKED, until=until)
    row = conn.execute(select(account).where(account.c.id == acc.id)).one()
    if row.status != ACTIVE:
        return AuthResult(Outcome.SUSPENDED if row.status == SUSPENDED else Outcome.INVALID)
    ok = False
    if recovery:
        ok = use_recovery_code(conn, keys, acc.id, code, now)
    elif row.second_factor == TOTP and row.totp_secret:
        step = codes.totp_match(keys.open_totp(acc.id, row.totp_secret), code, now, row.totp_last_step)
        if step is not None:
            conn.execute(update(account).where(account.c.id == acc.id).values(totp_last_step=step))
            ok = True
    elif row.second_factor in (EMAIL, SMS):
        ok = _check_session_code(keys, s, code, now)
    if not ok:
        return _code_failure(conn, keys, s, acc, now, address)
    throttle.clear(conn, id_key)
    conn.execute(update(account).where(account.c.id == acc.id).values(last_login_at=now))
    return AuthResult(Outcome.OK, _account(row, conn), previous_login=row.last_login_at)


def use_recovery_code(
    conn: Connection, keys: AccountKeys, account_id: UUID, code: str, now: datetime
) -> bool:
    digest = keys.digest("recovery", codes.normalize_code(code))
    rows = conn.execute(
        select(account_recovery_code.c.id, account_recovery_code.c.code_hash).where(
            account_recovery_code.c.account_id == account_id, account_recovery_code.c.used_at.is_(None)
        )
    ).all()
    found: int | None = None
    for r in rows:  # compare them all: no early exit
        if same(digest, r.code_hash) and found is None:
            found = r.id
    if found is None:
        return False
    used = conn.execute(
        update(account_recovery_code)
        .where(
            and_(
                account_recovery_code.c.account_id == account_id,
                account_recovery_code.c.id == found,
                account_recovery_code.c.used_at.is_(None),
            )
        )
        .values(used_at=now)
    ).rowcount
    return bool(used)


def actor_for(acc: Account, *, source_address: str | None = None) -> Actor:
    """The Actor of a logged-in account: the same as an API token's for that person."""
    if acc.kind == PATIENT:
        if acc.patient_id is None:
            raise RuntimeError(f"patient account {acc.id} has no patient")
        return Actor(
            kind=ActorKind.PATIENT,
            id=str(acc.patient_id),
            name=acc.display_name,
            source_address=source_address,
        )
    if acc.kind == REPRESENTATIVE:
        return Actor(
            kind=ActorKind.REPRESENTATIVE,
            id=str(acc.id),
            name=acc.display_name,
            source_address=source_address,
        )
    return Actor(
        kind=ActorKind.PROFESSIONAL,
        id="8" + acc.login,
        name=acc.display_name,
        profession=acc.profession,
        specialty=acc.specialty,
        structure_id=acc.structure_id,
        structure_name=acc.structure_name,
        setting=acc.setting,
        source_address=source_address,
    )
