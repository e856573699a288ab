"""Tables of the access policy: consents, emergency sessions, the patient's notifications."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from dmp.store.schema import metadata
from dmp.store.types import UtcDateTime

# Authorisations, blocks, médecin traitant, administrators, care teams, emergency consents.
record_consent = Table(
    "record_consent",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject_id", String(64)),  # IDNPS, structure id or representative account
    Column("permit", Boolean, nullable=False),
    Column("status", String(12), nullable=False),  # proposed | active | inactive
    Column("accepted", Boolean, nullable=False),  # médecin traitant: accepted by the doctor
    Column("designated", Boolean, nullable=False),  # médecin traitant: designated by the patient
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("ended_at", UtcDateTime),
    Column("ended_by", String(64)),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
    Index("ix_record_consent_patient_status", "patient_id", "status"),
)

# Emergency accesses (break-glass, centre 15): one session per professional and record,
# time-limited; the patient is notified when one opens.
emergency_access = Table(
    "emergency_access",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("actor_name", Text, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("justification", Text),
    Column("started_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
    Index("ix_emergency_access_actor", "patient_id", "actor_id", "expires_at"),
)

# The patient's notification centre (Mon espace santé style); e-mail/SMS copies go
# through the outbox when the patient has a contact.
patient_notification = Table(
    "patient_notification",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),  # French
    Column("read", Boolean, nullable=False),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
)


# Professionals who already accessed a record: the first access of a new one alerts the patient.
professional_seen = Table(
    "professional_seen",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("first_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("patient_id", "actor_id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
)

# The patient's alert preferences (Mon espace santé "NOTIF_DOCUMENT"): new documents are opt-in.
alert_preference = Table(
    "alert_preference",
    metadata,
    Column("patient_id", Uuid, primary_key=True),
    Column("new_documents", Boolean, nullable=False),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
)
