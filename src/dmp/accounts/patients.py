"""Patients' accounts: created with the record, activation code handed at the desk."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, update

from dmp.accounts.keys import keys_for
from dmp.accounts.model import (
    PATIENT,
    PENDING,
    _contact,
    _new_activation,
    _new_person_account,
    _patient_row,
    _send_activation,
    patient_account,
    patient_display_name,
    seal_contact,
)
from dmp.errors import DmpError
from dmp.settings import Settings
from dmp.store.schema_accounts import account


def create_patient_account(
    conn: Connection,
    patient_id: UUID,
    now: datetime,
    *,
    settings: Settings,
    email: str | None = None,
    phone: str | None = None,
) -> str:
    """Create the record holder's account (pending) and return its activation code.

    To be called in the transaction that creates the record. The code is to be handed to the
    patient (printed at the desk, shown to the professional); it is also sent to the e-mail
    address (else the mobile number) when one is given; nothing is queued without a contact.
    The patient's identifier is the record's INS matricule (NIR or NIA). If the account
    already exists and is not yet activated, a new code replaces the previous one (and the
    contact is updated when given); an activated account is refused (``INVALID_VALUE``).
    Invalid contacts raise ``ValueError`` (French message).
    """
    keys = keys_for(settings)
    row = _patient_row(conn, patient_id)
    email_n, phone_n = _contact(email, phone)
    existing = patient_account(conn, patient_id)
    if existing is not None:
        if existing.status != PENDING:
            raise DmpError("INVALID_VALUE", "le compte de ce patient est déjà activé")
        values: dict[str, Any] = {}
        if email_n:
            values["email"] = email_n
        if phone_n:
            values["phone"] = phone_n
        if values:
            sealed = seal_contact(conn, patient_id, existing.id, **values)
            conn.execute(update(account).where(account.c.id == existing.id).values(**sealed))
        code = _new_activation(conn, keys, existing.id, now)
        _send_activation(
            conn,
            settings,
            existing.id,
            patient_id,
            code,
            email_n or existing.email,
            phone_n or existing.phone,
            now,
            "/activation",
        )
        return code
    acc_id = _new_person_account(
        conn, PATIENT, row.ins_value, patient_display_name(row), email_n, phone_n, now, patient_id=patient_id
    )
    code = _new_activation(conn, keys, acc_id, now)
    _send_activation(conn, settings, acc_id, patient_id, code, email_n, phone_n, now, "/activation")
    return code


def issue_patient_activation(
    conn: Connection,
    patient_id: UUID,
    now: datetime,
    *,
    settings: Settings,
    email: str | None = None,
    phone: str | None = None,
) -> str:
    """Desk operation: the patient account's activation code (created if the record has none)."""
    return create_patient_account(conn, patient_id, now, settings=settings, email=email, phone=phone)
