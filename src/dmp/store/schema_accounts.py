"""Tables of people's accounts: patients, legal representatives, professionals (web login),
server-side sessions, login throttling, OAuth2 clients and authorization codes.

Accounts are global (a representative acts on several records, a professional on many): they
are keyed by their own id, like ``ins_index``; a patient account points to its record. No
secret is stored in clear: passwords are argon2id hashes, codes and session tokens are keyed
hashes (HMAC-SHA-256) or SHA-256 digests, TOTP secrets are sealed with AES-256-GCM under a key
derived from the master key (docs/accounts.md).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

account = Table(
    "account",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("realm", String(8), nullable=False),  # person (patients, representatives) | pro
    Column("kind", String(16), nullable=False),  # patient | representative | professional
    Column("login", String(254), nullable=False),  # NIR/NIA, e-mail address, or RPPS
    Column("patient_id", Uuid),  # a patient account's record
    Column("display_name", Text, nullable=False),
    # Sealed for a patient's account (SE-02, longer than the clear value): TEXT on PostgreSQL; SQLite
    # does not enforce a VARCHAR length and keeps its original DDL (no table copy, see migration).
    Column("email", String(254).with_variant(Text(), "postgresql")),
    Column("phone", String(20).with_variant(Text(), "postgresql")),  # E.164 when clear
    Column("status", String(12), nullable=False),  # pending | active | suspended
    Column("password_hash", Text),  # argon2id
    Column("password_changed_at", UtcDateTime),
    Column("second_factor", String(8)),  # email | sms | totp
    Column("totp_secret", LargeBinary),  # sealed (AES-256-GCM)
    Column("totp_pending", LargeBinary),  # sealed, while the authenticator is being set up
    Column("totp_last_step", BigInteger),  # last accepted time step: a code is never accepted twice
    Column("activation_hash", String(64)),  # HMAC of the activation code
    Column("activation_expires_at", UtcDateTime),
    Column("majority_confirmation", Boolean, nullable=False, default=False),
    Column("profession", String(8)),  # professionals: TRE_G15
    Column("specialty", String(16)),
    Column("structure_id", String(64)),
    Column("structure_name", Text),
    Column("setting", String(16)),  # professionals: practice setting TRE_A01 (e.g. SAMU_SMUR)
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime),
    UniqueConstraint("realm", "login"),
    Index("ix_account_patient_id", "patient_id"),
)

account_recovery_code = Table(
    "account_recovery_code",
    metadata,
    Column("account_id", Uuid, nullable=False),
    Column("id", Integer, nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
    PrimaryKeyConstraint("account_id", "id"),
    ForeignKeyConstraint(["account_id"], ["account.id"]),
)

# Server-side sessions: the cookie carries a random token, the table only its SHA-256.
web_session = Table(
    "web_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("realm", String(8), nullable=False),
    Column("account_id", Uuid),  # none before login
    Column("stage", String(8), nullable=False),  # anon | mfa | setup | full
    Column("csrf", String(64), nullable=False),  # synchronizer token of the forms
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),  # absolute timeout
    Column("patient_id", Uuid),  # the record being consulted (representatives)
    Column("code_hash", String(64)),  # one-time code sent by e-mail or SMS
    Column("code_expires_at", UtcDateTime),
    Column("code_attempts", Integer, nullable=False, default=0),
    Column("data", Text),  # small JSON: pending contact, page to return to
    Index("ix_web_session_account_id", "account_id"),
    Index("ix_web_session_expires_at", "expires_at"),
)

# Failed attempts per identifier and per address (keys are keyed hashes, never in clear).
auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_failure_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime),
)

# OAuth2 public clients (patient applications): authorization code + PKCE (S256).
oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("redirect_uris", Text, nullable=False),  # JSON list, exact match
    Column("status", String(12), nullable=False),  # active | disabled
    Column("created_at", UtcDateTime, nullable=False),
)

oauth_code = Table(
    "oauth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("account_id", Uuid, nullable=False),
    Column("patient_id", Uuid, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
    Index("ix_oauth_code_expires_at", "expires_at"),
)
