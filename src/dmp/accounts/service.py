"""Accounts of people: patients, legal representatives of minors, professionals (web login).

A compatibility module: the code lives in one module per concern and every public name is
re-exported here, so ``from dmp.accounts import service`` / ``service.x`` keep working.

* ``model.py``: the account model (``Account``, ``AuthResult``, ``Issued``, ``Outcome``), the
  constants, look-ups (``get``, ``find``, ``patient_account``) and the activation-code helpers;
* ``patients.py``: patients' accounts (created with the record);
* ``representatives.py``: legal representatives of minors (AC-19) and majority (LC-08);
* ``professionals.py``: professionals' accounts from the directory (AU-05), suspension;
* ``challenge.py``: failed-attempt locks and one-time codes, shared by activation and login;
* ``activation.py``: activation code, password, second factor, recovery codes;
* ``login.py``: password and second factor at login, the Actor of an account;
* ``proofing.py``: online identity proofing.

Service functions take the caller's connection and never commit (ADR 0001). The flows and the
numbers (timeouts, lockouts) are described in docs/accounts.md.
"""

from __future__ import annotations

from dmp.accounts.activation import (
    check_activation,
    confirm_contact_setup,
    confirm_totp_setup,
    finish_activation,
    new_recovery_codes,
    pending_totp_secret,
    personal_words,
    provision,
    remaining_recovery_codes,
    set_password,
    start_contact_setup,
    start_totp_setup,
)
from dmp.accounts.challenge import (
    start_code_challenge,
)
from dmp.accounts.login import (
    actor_for,
    login_password,
    send_login_code,
    use_recovery_code,
    verify_second_factor,
)
from dmp.accounts.model import (
    ACTIVATION_VALIDITY,
    ACTIVE,
    FACTORS,
    MAJORITY_AGE,
    OTP_MAX_ATTEMPTS,
    OTP_VALIDITY,
    PATIENT,
    PENDING,
    PERSON,
    PRO,
    PROFESSIONAL,
    REPRESENTATIVE,
    SUSPENDED,
    SYSTEM_AGENT,
    TOTP,
    Account,
    AuthResult,
    Issued,
    Outcome,
    find,
    get,
    normalize_login,
    patient_account,
    patient_display_name,
)
from dmp.accounts.patients import (
    create_patient_account,
    issue_patient_activation,
)
from dmp.accounts.professionals import (
    DirectoryEntry,
    set_status,
    upsert_professional,
)
from dmp.accounts.proofing import (
    proof_identity,
)
from dmp.accounts.representatives import (
    MAJORITY_ACTOR,
    RepresentedRecord,
    add_representative,
    check_majority,
    confirm_majority,
    desk_actor,
    is_minor,
    majority_check_all,
    majority_date,
    refuse_majority,
    remove_representative,
    represented_records,
)

__all__ = [
    "ACTIVATION_VALIDITY",
    "ACTIVE",
    "Account",
    "AuthResult",
    "DirectoryEntry",
    "FACTORS",
    "Issued",
    "MAJORITY_ACTOR",
    "MAJORITY_AGE",
    "OTP_MAX_ATTEMPTS",
    "OTP_VALIDITY",
    "Outcome",
    "PATIENT",
    "PENDING",
    "PERSON",
    "PRO",
    "PROFESSIONAL",
    "REPRESENTATIVE",
    "RepresentedRecord",
    "SUSPENDED",
    "SYSTEM_AGENT",
    "TOTP",
    "actor_for",
    "add_representative",
    "check_activation",
    "check_majority",
    "confirm_contact_setup",
    "confirm_majority",
    "confirm_totp_setup",
    "create_patient_account",
    "desk_actor",
    "find",
    "finish_activation",
    "get",
    "is_minor",
    "issue_patient_activation",
    "login_password",
    "majority_check_all",
    "majority_date",
    "refuse_majority",
    "new_recovery_codes",
    "normalize_login",
    "patient_account",
    "patient_display_name",
    "pending_totp_secret",
    "personal_words",
    "proof_identity",
    "provision",
    "remaining_recovery_codes",
    "remove_representative",
    "represented_records",
    "send_login_code",
    "set_password",
    "set_status",
    "start_code_challenge",
    "start_contact_setup",
    "start_totp_setup",
    "upsert_professional",
    "use_recovery_code",
    "verify_second_factor",
]
