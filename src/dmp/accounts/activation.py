"""Activation: identifier + activation code, password, second factor, recovery codes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from dmp.accounts import codes, sessions, throttle
from dmp.accounts.challenge import (
    _check_session_code,
    _code_failure,
    _fail,
    _locks,
    start_code_challenge,
)
from dmp.accounts.keys import AccountKeys, keys_for, same
from dmp.accounts.model import (
    ACTIVE,
    PENDING,
    PRO,
    TOTP,
    Account,
    AuthResult,
    Outcome,
    _account,
    get,
    normalize_login,
    seal_contact,
)
from dmp.accounts.passwords import hash_password, password_problems
from dmp.errors import DmpError
from dmp.outbox import EMAIL, SMS
from dmp.outbox.privacy import normalize_recipient
from dmp.settings import Settings
from dmp.store.schema import patient
from dmp.store.schema_accounts import account, account_recovery_code

_CONTACT_COLUMN = {EMAIL: "email", SMS: "phone"}

def check_activation(
    conn: Connection, keys: AccountKeys, realm: str, login: str, code: str, now: datetime, address: str
) -> AuthResult:
    """Identifier + activation code. One answer for an unknown identifier and a wrong code."""
    id_key, addr_key = _locks(keys, realm, login, address)
    until = throttle.any_locked(conn, [id_key, addr_key], now)
    if until is not None:
        return AuthResult(Outcome.LOCKED, until=until)
    row = conn.execute(
        select(account).where(account.c.realm == realm, account.c.login == normalize_login(realm, login))
    ).first()
    digest = keys.digest("activation", codes.normalize_code(code))
    stored = row.activation_hash if row is not None and row.activation_hash else "0" * 64
    valid = (
        same(digest, stored)
        and row is not None
        and row.status == PENDING
        and row.activation_expires_at is not None
        and row.activation_expires_at > now
    )
    if not valid:
        return _fail(conn, id_key, addr_key, now)
    throttle.clear(conn, id_key)
    return AuthResult(Outcome.OK, _account(row, conn))


def set_password(
    conn: Connection,
    account_id: UUID,
    password: str,
    confirmation: str,
    now: datetime,
    *,
    personal: list[str],
) -> list[str]:
    """Choose the password (activation); the list of problems, empty when it was set."""
    if password != confirmation:
        return ["Les deux mots de passe saisis ne sont pas identiques."]
    problems = password_problems(password, personal=personal)
    if problems:
        return problems
    conn.execute(
        update(account)
        .where(account.c.id == account_id)
        .values(password_hash=hash_password(password), password_changed_at=now, updated_at=now)
    )
    return []


def personal_words(conn: Connection, acc: Account) -> list[str]:
    words = [acc.login, *acc.display_name.split()]
    if acc.email:
        words.append(acc.email.split("@")[0])
    if acc.patient_id is not None:
        row = conn.execute(select(patient.c.birth_date).where(patient.c.id == acc.patient_id)).first()
        if row is not None:
            b = row.birth_date
            words += [f"{b:%d%m%Y}", f"{b:%Y%m%d}", f"{b:%d%m%y}"]
    return words


def start_contact_setup(
    conn: Connection,
    keys: AccountKeys,
    s: sessions.Session,
    acc: Account,
    channel: str,
    recipient: str,
    now: datetime,
) -> str | None:
    """Activation: send a code to the chosen address or number; an error message if it is invalid."""
    if channel not in (EMAIL, SMS) or acc.realm == PRO:
        return "Choisissez un moyen de recevoir vos codes."
    try:
        value = normalize_recipient(channel, recipient)
    except ValueError as exc:
        return f"{str(exc)[:1].upper()}{str(exc)[1:]}."
    s.data.update({"channel": channel, "recipient": value})
    start_code_challenge(conn, keys, s, acc, channel, value, now)
    return None


def confirm_contact_setup(
    conn: Connection,
    keys: AccountKeys,
    s: sessions.Session,
    acc: Account,
    code: str,
    now: datetime,
    address: str,
) -> AuthResult:
    if not _check_session_code(keys, s, code, now):
        return _code_failure(conn, keys, s, acc, now, address)
    channel, recipient = s.data.get("channel"), s.data.get("recipient")
    if channel not in (EMAIL, SMS) or not recipient:
        return AuthResult(Outcome.EXPIRED)
    conn.execute(
        update(account)
        .where(account.c.id == acc.id)
        .values(
            second_factor=channel,
            updated_at=now,
            **seal_contact(conn, acc.patient_id, acc.id, **{_CONTACT_COLUMN[channel]: recipient}),
        )
    )
    s.code_hash = None
    sessions.save(conn, s)
    return AuthResult(Outcome.OK, acc)


def start_totp_setup(conn: Connection, keys: AccountKeys, acc: Account, now: datetime) -> tuple[str, str]:
    """A new authenticator secret (kept sealed until confirmed); returns (secret, otpauth URI)."""
    secret = codes.new_totp_secret()
    conn.execute(
        update(account)
        .where(account.c.id == acc.id)
        .values(totp_pending=keys.seal_totp(acc.id, secret), updated_at=now)
    )
    label = f"{acc.rpps or acc.display_name}"
    return secret, codes.totp_uri(secret, label, "DMP Pro" if acc.realm == PRO else "DMP")


def pending_totp_secret(conn: Connection, keys: AccountKeys, acc: Account) -> str | None:
    sealed = conn.execute(select(account.c.totp_pending).where(account.c.id == acc.id)).scalar()
    return keys.open_totp(acc.id, sealed) if sealed else None


def confirm_totp_setup(
    conn: Connection,
    keys: AccountKeys,
    s: sessions.Session,
    acc: Account,
    code: str,
    now: datetime,
    address: str,
) -> AuthResult:
    secret = pending_totp_secret(conn, keys, acc)
    step = codes.totp_match(secret, code, now, None) if secret else None
    if step is None:
        return _code_failure(conn, keys, s, acc, now, address)
    conn.execute(
        update(account)
        .where(account.c.id == acc.id)
        .values(
            totp_secret=keys.seal_totp(acc.id, secret or ""),
            totp_pending=None,
            totp_last_step=step,
            second_factor=TOTP,
            updated_at=now,
        )
    )
    return AuthResult(Outcome.OK, acc)


def finish_activation(conn: Connection, keys: AccountKeys, account_id: UUID, now: datetime) -> list[str]:
    """Password and second factor set: the account becomes active; returns its recovery codes."""
    conn.execute(
        update(account)
        .where(account.c.id == account_id)
        # The activation opens the first session: the next login's « quoi de neuf » starts there.
        .values(
            status=ACTIVE, activation_hash=None, activation_expires_at=None, updated_at=now, last_login_at=now
        )
    )
    return new_recovery_codes(conn, keys, account_id, now)


def provision(
    conn: Connection, account_id: UUID, now: datetime, *, settings: Settings, password: str, totp_secret: str
) -> list[str]:
    """Activate an account with a known password and TOTP secret, without the activation pages.

    For the demonstration instance (``dmp demo``) and tests only: the password still has to pass
    the policy (``ValueError`` otherwise). Returns the recovery codes.
    """
    acc = get(conn, account_id)
    if acc is None:
        raise DmpError("NOT_FOUND")
    problems = password_problems(password, personal=personal_words(conn, acc))
    if problems:
        raise ValueError(" ".join(problems))
    keys = keys_for(settings)
    conn.execute(
        update(account)
        .where(account.c.id == account_id)
        .values(
            password_hash=hash_password(password),
            password_changed_at=now,
            totp_secret=keys.seal_totp(account_id, totp_secret),
            totp_pending=None,
            totp_last_step=None,
            second_factor=TOTP,
            updated_at=now,
        )
    )
    return finish_activation(conn, keys, account_id, now)


def new_recovery_codes(conn: Connection, keys: AccountKeys, account_id: UUID, now: datetime) -> list[str]:
    """Ten single-use recovery codes (shown once; only their digests are kept)."""
    from sqlalchemy import delete

    conn.execute(delete(account_recovery_code).where(account_recovery_code.c.account_id == account_id))
    fresh = codes.recovery_codes()
    conn.execute(
        insert(account_recovery_code),
        [
            {
                "account_id": account_id,
                "id": i,
                "code_hash": keys.digest("recovery", codes.normalize_code(c)),
                "created_at": now,
                "used_at": None,
            }
            for i, c in enumerate(fresh)
        ],
    )
    return fresh


def remaining_recovery_codes(conn: Connection, account_id: UUID) -> int:
    return len(
        conn.execute(
            select(account_recovery_code.c.id).where(
                account_recovery_code.c.account_id == account_id, account_recovery_code.c.used_at.is_(None)
            )
        ).all()
    )
