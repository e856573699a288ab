"""Accounts of people: patients, legal representatives of minors, professionals (web login).

Service functions take the caller's connection and never commit (ADR 0001). Secrets: see
``keys.py``; sessions: ``sessions.py``; failed-attempt counting: ``throttle.py``. The flows
and the numbers (timeouts, lockouts) are described in docs/accounts.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, insert, select, update

from dmp.accounts import codes, sessions, throttle
from dmp.accounts.keys import AccountKeys, keys_for, same
from dmp.accounts.passwords import hash_password, needs_rehash, password_problems, verify_password
from dmp.audit.actions import AuditAction
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.professional import validate_profession, validate_rpps
from dmp.errors import DmpError
from dmp.outbox import EMAIL, NO_RECORD, SMS, enqueue
from dmp.outbox.privacy import normalize_recipient
from dmp.outbox.templates import PARIS
from dmp.services import trail
from dmp.settings import Settings
from dmp.store import locator
from dmp.store.schema import patient
from dmp.store.schema_accounts import account, account_recovery_code
from dmp.store.schema_policy import record_consent
from dmp.terminology.professions import validate_specialty

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

    @property
    def rpps(self) -> str | None:
        return self.login if self.kind == PROFESSIONAL else None


@dataclass(frozen=True)
class AuthResult:
    outcome: Outcome
    account: Account | None = None
    until: datetime | None = None  # end of the lock, for LOCKED

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(frozen=True)
class Issued:
    """An account created or updated at a desk or by an import, and its activation code."""

    account_id: UUID
    created: bool
    activation_code: str | None  # None when no new code was issued (account already active)


def _account(row: Any) -> Account:
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
    return _account(row) if row else None


def find(conn: Connection, realm: str, login: str) -> Account | None:
    row = conn.execute(
        select(account).where(account.c.realm == realm, account.c.login == normalize_login(realm, login))
    ).first()
    return _account(row) if row else None


def patient_account(conn: Connection, patient_id: UUID) -> Account | None:
    row = conn.execute(
        select(account).where(account.c.kind == PATIENT, account.c.patient_id == patient_id)
    ).first()
    return _account(row) if row else None


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
    return row


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
            display_name=display_name,
            email=email,
            phone=phone,
            status=PENDING,
            majority_confirmation=False,
            created_at=now,
            updated_at=now,
        )
    )
    return acc_id


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
            conn.execute(update(account).where(account.c.id == existing.id).values(**values))
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


# ---- legal representatives (AC-19, LC-08) -------------------------------------------------------


def majority_date(birth: date) -> date:
    try:
        return birth.replace(year=birth.year + MAJORITY_AGE)
    except ValueError:  # born on 29 February
        return date(birth.year + MAJORITY_AGE, 3, 1)


def _today(now: datetime) -> date:
    return now.astimezone(PARIS).date() if PARIS is not None else now.date()


def is_minor(birth: date, now: datetime) -> bool:
    return _today(now) < majority_date(birth)


def add_representative(
    conn: Connection,
    patient_id: UUID,
    now: datetime,
    *,
    settings: Settings,
    email: str,
    phone: str | None = None,
    name: str | None = None,
    agent: str,
) -> Issued:
    """Declare a legal representative of a minor (desk operation).

    Creates the representative's account if needed (identifier: the e-mail address; one
    account for all the children they represent) and the active ``representative`` consent row
    of the record. A new or not yet activated account gets an activation code, also sent by
    e-mail; an active account gets none (it simply sees one more record).
    """
    keys = keys_for(settings)
    row = _patient_row(conn, patient_id)
    if row.record_status != "open":
        raise DmpError("RECORD_CLOSED", "dossier fermé")
    if not is_minor(row.birth_date, now):
        raise DmpError(
            "INVALID_VALUE", "le titulaire du dossier est majeur : il n'a pas de représentant légal"
        )
    email_n, phone_n = _contact(email, phone)
    if email_n is None:
        raise DmpError("MISSING_ELEMENT", "adresse électronique du représentant légal")
    login = normalize_login(PERSON, email_n)
    existing = find(conn, PERSON, login)
    created = existing is None
    code: str | None = None
    if existing is not None:
        if existing.kind != REPRESENTATIVE:
            raise DmpError("INVALID_VALUE", "cette adresse est déjà l'identifiant d'un autre type de compte")
        acc_id = existing.id
        if phone_n and not existing.phone:
            conn.execute(update(account).where(account.c.id == acc_id).values(phone=phone_n, updated_at=now))
        if existing.status == PENDING:
            code = _new_activation(conn, keys, acc_id, now)
    else:
        acc_id = _new_person_account(
            conn, REPRESENTATIVE, login, name or email_n or login, email_n, phone_n, now
        )
        code = _new_activation(conn, keys, acc_id, now)
    if code is not None:
        _send_activation(conn, settings, acc_id, NO_RECORD, code, email_n, None, now, "/activation")
    active = conn.execute(
        select(record_consent.c.id).where(
            record_consent.c.patient_id == patient_id,
            record_consent.c.kind == "representative",
            record_consent.c.subject_id == str(acc_id),
            record_consent.c.status == "active",
        )
    ).first()
    if active is None:
        cid = uuid.uuid4()
        locator.register(conn, locator.CONSENT, [cid], patient_id)
        conn.execute(
            insert(record_consent).values(
                patient_id=patient_id,
                id=cid,
                kind="representative",
                subject_id=str(acc_id),
                permit=True,
                status="active",
                accepted=True,
                designated=True,
                created_at=now,
                created_by=f"guichet:{agent}",
            )
        )
        _trace_representatives(
            conn, desk_actor(agent), AuditAction.REPRESENTATIVE_ADD, patient_id, [cid], now,
            "représentant légal déclaré au guichet",
        )
    return Issued(acc_id, created, code)


def remove_representative(
    conn: Connection, patient_id: UUID, email: str, now: datetime, *, agent: str
) -> bool:
    """End a representative's access to one record; True if they had one."""
    acc = find(conn, PERSON, email)
    if acc is None or acc.kind != REPRESENTATIVE:
        return False
    ended = _end_representatives(
        conn,
        patient_id,
        f"guichet:{agent}",
        now,
        record_consent.c.subject_id == str(acc.id),
    )
    if not ended:
        return False
    _trace_representatives(
        conn, desk_actor(agent), AuditAction.REPRESENTATIVE_REMOVE, patient_id, ended, now,
        "accès du représentant légal retiré au guichet",
    )
    return True


def desk_actor(agent: str) -> Actor:
    """The desk agent (CLI ``--agent``) as the trail's actor; ``created_by`` of their consent rows."""
    return Actor(kind=ActorKind.OPERATOR, id=f"guichet:{agent}", name=agent)


MAJORITY_ACTOR = Actor(kind=ActorKind.SYSTEM, id=SYSTEM_AGENT, name="Service DMP")


def _end_representatives(
    conn: Connection, patient_id: UUID, ended_by: str, now: datetime, *cond: Any
) -> list[UUID]:
    """End the record's active representative consents matching ``cond``; their ids."""
    where = (
        record_consent.c.patient_id == patient_id,
        record_consent.c.kind == "representative",
        record_consent.c.status == "active",
        *cond,
    )
    ids = list(conn.execute(select(record_consent.c.id).where(*where)).scalars())
    if ids:
        conn.execute(
            update(record_consent)
            .where(*where, record_consent.c.id.in_(ids))
            .values(status="inactive", ended_at=now, ended_by=ended_by)
        )
    return ids


def _trace_representatives(
    conn: Connection,
    actor: Actor,
    action: AuditAction,
    patient_id: UUID,
    consent_ids: list[UUID],
    now: datetime,
    detail: str,
) -> None:
    """The representatives' changes are in the record's trail like the patient's own consents:
    the representative is named by the ``Consent/<id>`` of their ``representative`` row."""
    trail.record(
        conn,
        actor,
        action,
        patient_id=patient_id,
        at=now,
        targets=[f"Consent/{cid}" for cid in consent_ids],
        detail=detail,
    )


@dataclass(frozen=True)
class RepresentedRecord:
    patient_id: UUID
    name: str
    birth_date: date


def represented_records(conn: Connection, account_id: UUID) -> list[RepresentedRecord]:
    rows = conn.execute(
        select(
            patient.c.id,
            patient.c.birth_given_names,
            patient.c.birth_family_name,
            patient.c.usual_given_name,
            patient.c.usual_family_name,
            patient.c.birth_date,
        )
        .join(record_consent, record_consent.c.patient_id == patient.c.id)
        .where(
            record_consent.c.kind == "representative",
            record_consent.c.subject_id == str(account_id),
            record_consent.c.status == "active",
            patient.c.record_status == "open",
        )
        .order_by(patient.c.birth_date, patient.c.id)
    ).all()
    return [RepresentedRecord(r.id, patient_display_name(r), r.birth_date) for r in rows]


def check_majority(conn: Connection, patient_id: UUID, now: datetime) -> bool:
    """At 18 the representatives lose access and the holder is asked to confirm the record.

    Representatives' consents become inactive, the patient is notified (notification centre,
    and ``majority_notice`` through the outbox when a contact is known) and the patient
    account is flagged so that its next login asks for confirmation. True if this happened now.
    """
    row = conn.execute(select(patient.c.id, patient.c.birth_date).where(patient.c.id == patient_id)).first()
    if row is None or is_minor(row.birth_date, now):
        return False
    ended = _end_representatives(conn, patient_id, SYSTEM_AGENT, now)
    if not ended:
        return False
    _trace_representatives(
        conn, MAJORITY_ACTOR, AuditAction.REPRESENTATIVE_END_AT_MAJORITY, patient_id, ended, now,
        "titulaire du dossier devenu majeur",
    )
    from dmp.services.notifications import notify

    when = majority_date(row.birth_date)
    notify(
        conn,
        patient_id,
        "majority",
        f"Depuis le {when:%d/%m/%Y}, vous êtes majeur(e) : vous gérez seul(e) votre DMP. Vos représentants "
        "légaux n'y ont plus accès. Confirmez la poursuite de votre dossier à votre prochaine connexion.",
        now,
    )
    acc = patient_account(conn, patient_id)
    if acc is not None:
        conn.execute(
            update(account).where(account.c.id == acc.id).values(majority_confirmation=True, updated_at=now)
        )
        target = _preferred_channel(acc.email, acc.phone)
        if target is not None:
            channel, recipient = target
            enqueue(
                conn,
                patient_id=patient_id,
                channel=channel,
                recipient=recipient,
                template="majority_notice",
                params={"majority_date": when},
                now=now,
                dedup_key=f"majority:{when.isoformat()}",
            )
    return True


def majority_check_all(conn: Connection, now: datetime) -> list[UUID]:
    """Run ``check_majority`` on every record that still has representatives and an adult holder."""
    today = _today(now)
    # Everyone born on or before this date is an adult (29 February handled by check_majority).
    cutoff = date(
        today.year - MAJORITY_AGE, today.month, 28 if (today.month, today.day) == (2, 29) else today.day
    )
    ids = (
        conn.execute(
            select(patient.c.id)
            .distinct()
            .join(record_consent, record_consent.c.patient_id == patient.c.id)
            .where(
                record_consent.c.kind == "representative",
                record_consent.c.status == "active",
                patient.c.birth_date <= cutoff,
            )
        )
        .scalars()
        .all()
    )
    return [pid for pid in ids if check_majority(conn, pid, now)]


def confirm_majority(conn: Connection, account_id: UUID, now: datetime) -> None:
    conn.execute(
        update(account).where(account.c.id == account_id).values(majority_confirmation=False, updated_at=now)
    )


# ---- professionals (directory) ------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryEntry:
    rpps: str
    profession: str
    name: str
    specialty: str | None = None
    structure_id: str | None = None
    structure_name: str | None = None
    email: str | None = None

    def validated(self) -> DirectoryEntry:
        """The entry with its codes checked (DmpError/ValueError with a French message)."""
        rpps = validate_rpps(self.rpps)
        profession = validate_profession(self.profession)
        specialty = validate_specialty(self.specialty, profession) if self.specialty else None
        if not self.name.strip():
            raise DmpError("MISSING_ELEMENT", "nom du professionnel")
        email = normalize_recipient(EMAIL, self.email) if self.email else None
        return DirectoryEntry(
            rpps,
            profession,
            " ".join(self.name.split()),
            specialty,
            (self.structure_id or "").strip() or None,
            (self.structure_name or "").strip() or None,
            email,
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


# ---- activation --------------------------------------------------------------------------------


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
    return AuthResult(Outcome.OK, _account(row))


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
            second_factor=channel, updated_at=now, **{"email" if channel == EMAIL else "phone": recipient}
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
        .values(status=ACTIVE, activation_hash=None, activation_expires_at=None, updated_at=now)
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


# ---- login -------------------------------------------------------------------------------------


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
    return AuthResult(Outcome.OK, _account(row))


def send_login_code(
    conn: Connection, keys: AccountKeys, s: sessions.Session, acc: Account, now: datetime
) -> None:
    """E-mail/SMS second factor: a fresh code for this login attempt."""
    if acc.second_factor == EMAIL and acc.email:
        start_code_challenge(conn, keys, s, acc, EMAIL, acc.email, now)
    elif acc.second_factor == SMS and acc.phone:
        start_code_challenge(conn, keys, s, acc, SMS, acc.phone, now)


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
    return AuthResult(Outcome.OK, _account(row))


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
        source_address=source_address,
    )


# ---- online identity proofing -----------------------------------------------------------------


def proof_identity(
    conn: Connection, patient_id_or_none: UUID | None, now: datetime, *, settings: Settings
) -> bool:
    """After the INS and strict traits matched a record: send a new activation code to the
    contact known for its (not yet activated) account. Nothing is shown on the page: the
    code only reaches the contact on file. True if a code was sent."""
    if patient_id_or_none is None:
        return False
    acc = patient_account(conn, patient_id_or_none)
    if acc is None or acc.status != PENDING or not (acc.email or acc.phone):
        return False
    keys = keys_for(settings)
    code = _new_activation(conn, keys, acc.id, now)
    _send_activation(
        conn, settings, acc.id, patient_id_or_none, code, acc.email, acc.phone, now, "/activation"
    )
    return True
