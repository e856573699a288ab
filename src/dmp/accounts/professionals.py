"""Professionals' accounts from the directory (AU-05): create or update, suspend or reactivate.

The RPPS-extract file import that feeds it is ``directory.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, update

from dmp.accounts import sessions
from dmp.accounts.keys import keys_for
from dmp.accounts.model import (
    PENDING,
    PRO,
    PROFESSIONAL,
    SUSPENDED,
    Issued,
    _new_activation,
    _send_activation,
    find,
)
from dmp.domain.professional import validate_profession, validate_rpps
from dmp.errors import DmpError
from dmp.outbox import EMAIL, NO_RECORD
from dmp.outbox.privacy import normalize_recipient
from dmp.settings import Settings
from dmp.store.schema_accounts import account
from dmp.terminology import valueset
from dmp.terminology.professions import validate_specialty


@dataclass(frozen=True)
class DirectoryEntry:
    rpps: str
    profession: str
    name: str
    specialty: str | None = None
    structure_id: str | None = None
    structure_name: str | None = None
    email: str | None = None
    setting: str | None = None  # practice setting (TRE_A01, JDV_J04), e.g. SAMU_SMUR

    def validated(self) -> DirectoryEntry:
        """The entry with its codes checked (DmpError/ValueError with a French message)."""
        rpps = validate_rpps(self.rpps)
        profession = validate_profession(self.profession)
        specialty = validate_specialty(self.specialty, profession) if self.specialty else None
        if not self.name.strip():
            raise DmpError("MISSING_ELEMENT", "nom du professionnel")
        email = normalize_recipient(EMAIL, self.email) if self.email else None
        setting = (self.setting or "").strip().upper() or None
        if setting is not None and not valueset("J04").lookup(setting):
            raise DmpError("INVALID_VALUE", f"cadre d'exercice « {setting} » absent de JDV_J04")
        return DirectoryEntry(
            rpps,
            profession,
            " ".join(self.name.split()),
            specialty,
            (self.structure_id or "").strip() or None,
            (self.structure_name or "").strip() or None,
            email,
            setting,
        )


def upsert_professional(
    conn: Connection, entry: DirectoryEntry, now: datetime, *, settings: Settings, reissue: bool = True
) -> Issued:
    """Create or update a professional's account from the directory.

    A new account is pending with an activation code (sent by e-mail when the directory has an
    address). An existing one gets its directory fields updated; a still pending one gets a new
    code only when ``reissue`` (``dmp pro add``), not on a re-import.
    """
    keys = keys_for(settings)
    e = entry.validated()
    fields = {
        "display_name": e.name,
        "profession": e.profession,
        "specialty": e.specialty,
        "structure_id": e.structure_id,
        "structure_name": e.structure_name,
        "setting": e.setting,
        "updated_at": now,
    }
    if e.email:
        fields["email"] = e.email
    existing = find(conn, PRO, e.rpps)
    if existing is not None:
        conn.execute(update(account).where(account.c.id == existing.id).values(**fields))
        code = None
        if existing.status == PENDING and reissue:
            code = _new_activation(conn, keys, existing.id, now)
            _send_activation(
                conn,
                settings,
                existing.id,
                NO_RECORD,
                code,
                e.email or existing.email,
                None,
                now,
                "/pro/activation",
            )
        return Issued(existing.id, False, code)
    acc_id = uuid.uuid4()
    conn.execute(
        insert(account).values(
            id=acc_id,
            realm=PRO,
            kind=PROFESSIONAL,
            login=e.rpps,
            status=PENDING,
            majority_confirmation=False,
            created_at=now,
            **fields,
        )
    )
    code = _new_activation(conn, keys, acc_id, now)
    _send_activation(conn, settings, acc_id, NO_RECORD, code, e.email, None, now, "/pro/activation")
    return Issued(acc_id, True, code)


def set_status(conn: Connection, realm: str, login: str, status: str, now: datetime) -> bool:
    """Suspend (every session ends) or reactivate an account; False if unknown."""
    acc = find(conn, realm, login)
    if acc is None:
        return False
    new = status if acc.has_password or status == SUSPENDED else PENDING
    conn.execute(update(account).where(account.c.id == acc.id).values(status=new, updated_at=now))
    if status == SUSPENDED:
        sessions.destroy_all(conn, acc.id)
    return True
