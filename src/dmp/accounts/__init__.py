"""People's accounts: patients, legal representatives of minors, professionals' web login,
sessions, second factors, OAuth2 for patient apps (docs/accounts.md).

The functions other modules call:

* ``create_patient_account(conn, patient_id, now, *, settings, email=None, phone=None) -> str``
  in the transaction that creates a record: returns the activation code to hand to the patient.
* ``add_representative(...)`` / ``remove_representative(...)``: desk operations (AC-19).
* ``check_majority(conn, patient_id, now)`` / ``majority_check_all(conn, now)`` (LC-08).
* ``upsert_professional(conn, DirectoryEntry(...), now, *, settings)``: directory (AU-05).
"""

from __future__ import annotations

from dmp.accounts.keys import AccountKeys, keys_for
from dmp.accounts.login import actor_for
from dmp.accounts.model import Account, Issued, patient_account
from dmp.accounts.patients import create_patient_account, issue_patient_activation
from dmp.accounts.professionals import DirectoryEntry, upsert_professional
from dmp.accounts.representatives import (
    add_representative,
    check_majority,
    majority_check_all,
    remove_representative,
    represented_records,
)

__all__ = [
    "Account",
    "AccountKeys",
    "DirectoryEntry",
    "Issued",
    "actor_for",
    "add_representative",
    "check_majority",
    "create_patient_account",
    "issue_patient_activation",
    "keys_for",
    "majority_check_all",
    "patient_account",
    "remove_representative",
    "represented_records",
    "upsert_professional",
]
