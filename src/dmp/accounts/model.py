"""Accounts of people: the account model and the helpers every concern shares.

Service functions take the caller's connection and never commit (ADR 0001). Secrets: see
``keys.py``; sessions: ``sessions.py``; failed-attempt counting: ``throttle.py``. The flows
and the numbers (timeouts, lockouts) are described in docs/accounts.md. The concerns live in
``patients.py``, ``representatives.py``, ``professionals.py``, ``activation.py``, ``login.py``
and ``proofing.py``; ``service.py`` re-exports them all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from dmp.accounts import codes
from dmp.accounts.keys import AccountKeys
from dmp.errors import DmpError
from dmp.outbox import EMAIL, SMS, enqueue
from dmp.outbox.privacy import normalize_recipient
from dmp.settings import Settings
from dmp.store import sealed_fields
from dmp.store.schema import patient
from dmp.store.schema_accounts import account

PERSON, PRO = "person", "pro"
PATIENT, REPRESENTATIVE, PROFESSIONAL = "patient", "representative", "professional"
PENDING, ACTIVE, SUSPENDED = "pending", "active", "suspended"
TOTP = "totp"
FACTORS = (EMAIL, SMS, TOTP)

ACTIVATION_VALIDITY = timedelta(days=60)  # a letter handed at a desk or posted
OTP_VALIDITY = timedelta(minutes=10)
OTP_MAX_ATTEMPTS = 5  # per code; the identifier lockout (throttle.IDENTIFIER) applies as well
MAJORITY_AGE = 18
SYSTEM_AGENT = "systeme:majorite"


class Outcome(StrEnum):
    OK = "ok"
    INVALID = "invalid"  # wrong identifier, password or code (one answer for all)
    LOCKED = "locked"  # too many failures for this identifier or address
    SUSPENDED = "suspended"  # right password, account suspended (said only after the password)
    EXPIRED = "expired"  # the one-time code has expired or was used up


@dataclass(frozen=True)
class Account:
    id: UUID
    realm: str
    kind: str
    login: str
    patient_id: UUID | None
    display_name: str
    email: str | None
    phone: str | None
    status: str
    second_factor: str | None
    has_password: bool
    majority_confirmation: bool
    profession: str | None
    specialty: str | None
    structure_id: str | None
    structure_name: str | None
    setting: str | None = None  # professionals: practice setting TRE_A01 (e.g. SAMU_SMUR)

    @property
    def rpps(self) -> str | None:
        return self.login if self.kind == PROFESSIONAL else None


@dataclass(frozen=True)
class AuthResult:
    outcome: Outcome
    account: Account | None = None
    until: datetime | None = None  # end of the lock, for LOCKED
    previous_login: datetime | None = None  # OK second step: the login before this one (« quoi de neuf »)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(frozen=True)
class Issued:
    """An account created or updated at a desk or by an import, and its activation code."""

    account_id: UUID
    created: bool
    activation_code: str | None  # None when no new code was issued (account already active)


# SE-02: a patient account's name and contact details are sealed under the record's key.
_SEALED_CONTACT = sealed_fields.SEALED["account"]


def seal_contact(
    conn: Connection, patient_id: UUID | None, acc_id: UUID, **values: str | None
) -> dict[str, Any]:
    """``values`` (display_name, email, phone) as stored: sealed for a patient's account; in clear
    for the accounts that belong to no record (professionals, representatives: docs/encryption.md)."""
    if patient_id is None:
        return dict(values)
    dek = sealed_fields.write_dek(conn, patient_id)
    return sealed_fields.seal_columns(dek, patient_id, "account", acc_id, **values)


def _account(row: Any, conn: Connection) -> Account:
    if row.patient_id is not None:
        row = sealed_fields.open_row(conn, row, "account", _SEALED_CONTACT, patient_id=row.patient_id)
    return Account(
        id=row.id,
        realm=row.realm,
        kind=row.kind,
        login=row.login,
        patient_id=row.patient_id,
        display_name=row.display_name,
        email=row.email,
        phone=row.phone,
        status=row.status,
        second_factor=row.second_factor,
        has_password=row.password_hash is not None,
        majority_confirmation=bool(row.majority_confirmation),
        profession=row.profession,
        specialty=row.specialty,
        structure_id=row.structure_id,
        structure_name=row.structure_name,
        setting=row.setting,
    )


def normalize_login(realm: str, raw: str) -> str:
    """Identifiers as typed: NIR/NIA (spaces ignored) or e-mail (lower case); RPPS (digits)."""
    value = raw.strip()
    if realm == PRO:
        return "".join(value.split())
    if "@" in value:
        return value.lower()
    return "".join(value.split()).upper()


def get(conn: Connection, account_id: UUID) -> Account | None:
    row = conn.execute(select(account).where(account.c.id == account_id)).first()
    return _account(row, conn) if row else None


def find(conn: Connection, realm: str, login: str) -> Account | None:
    row = conn.execute(
        select(account).where(account.c.realm == realm, account.c.login == normalize_login(realm, login))
    ).first()
    return _account(row, conn) if row else None


def patient_account(conn: Connection, patient_id: UUID) -> Account | None:
    row = conn.execute(
        select(account).where(account.c.kind == PATIENT, account.c.patient_id == patient_id)
    ).first()
    return _account(row, conn) if row else None


def _contact(email: str | None, phone: str | None) -> tuple[str | None, str | None]:
    e = normalize_recipient(EMAIL, email) if email else None
    p = normalize_recipient(SMS, phone) if phone else None
    return e, p


def _preferred_channel(email: str | None, phone: str | None) -> tuple[str, str] | None:
    """Where to write to someone: the e-mail address if any, else the phone; None without either."""
    if email:
        return EMAIL, email
    if phone:
        return SMS, phone
    return None


def _patient_row(conn: Connection, patient_id: UUID) -> Any:
    row = conn.execute(select(patient).where(patient.c.id == patient_id)).first()
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    return sealed_fields.open_row(conn, row, "patient", sealed_fields.SEALED["patient"], patient_id=row.id)


def patient_display_name(row: Any) -> str:
    given = row.usual_given_name or row.birth_given_names.split()[0]
    return f"{given} {row.usual_family_name or row.birth_family_name}"


def _send_activation(
    conn: Connection,
    settings: Settings,
    acc_id: UUID,
    patient_id: UUID,
    code: str,
    email: str | None,
    phone: str | None,
    now: datetime,
    path: str,
) -> None:
    target = _preferred_channel(email, phone)
    if target is None:
        return
    link = f"{settings.base_url.rstrip('/')}{path}?code={code}"
    channel, recipient = target
    enqueue(
        conn,
        patient_id=patient_id,
        channel=channel,
        recipient=recipient,
        template="account_activation",
        params={"link": link, "valid_until": now + ACTIVATION_VALIDITY},
        now=now,
    )


def _new_activation(conn: Connection, keys: AccountKeys, acc_id: UUID, now: datetime) -> str:
    code = codes.activation_code()
    conn.execute(
        update(account)
        .where(account.c.id == acc_id)
        .values(
            activation_hash=keys.digest("activation", codes.normalize_code(code)),
            activation_expires_at=now + ACTIVATION_VALIDITY,
            updated_at=now,
        )
    )
    return code


def _new_person_account(
    conn: Connection,
    kind: str,
    login: str,
    display_name: str,
    email: str | None,
    phone: str | None,
    now: datetime,
    *,
    patient_id: UUID | None = None,
) -> UUID:
    """A pending account of a patient or a legal representative; returns its id."""
    acc_id = uuid.uuid4()
    conn.execute(
        insert(account).values(
            id=acc_id,
            realm=PERSON,
            kind=kind,
            login=login,
            patient_id=patient_id,
            **seal_contact(conn, patient_id, acc_id, display_name=display_name, email=email, phone=phone),
            status=PENDING,
            majority_confirmation=False,
            created_at=now,
            updated_at=now,
        )
    )
    return acc_id
