"""The database schema (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Everything keyed by patient carries ``patient_id`` (an internal UUID, never the INS)
in its primary key, so that the tables can be distributed on it later (Citus);
global look-ups (INS → patient, document uniqueId → document) go through small
index tables. See docs/adr/0002-storage.md.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    false,
)

from dmp.store.types import UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

patient = Table(
    "patient",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ins_oid", String(64), nullable=False),
    Column("ins_value", String(15), nullable=False),
    Column("birth_family_name", Text, nullable=False),
    Column("birth_given_names", Text, nullable=False),  # space-separated, first = premier prénom
    Column("usual_family_name", Text),
    Column("usual_given_name", Text),
    Column("sex", String(8), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("birth_place_insee", String(5), nullable=False),
    Column("identity_status", String(5), nullable=False),
    # StrictTraits.key: normalised strict traits, to find one identity under two INS.
    Column("traits_key", Text, nullable=False, index=True),
    Column("record_status", String(8), nullable=False),  # open | closed
    Column("closed_at", UtcDateTime),
    Column("closure_reason", Text),
    # LC-08: the holder turned 18 and has not yet confirmed (nor refused) the record's continuation.
    Column("majority_pending_since", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

# INS -> patient: the only place where the national identifier is a key.
ins_index = Table(
    "ins_index",
    metadata,
    Column("ins_oid", String(64), nullable=False),
    Column("ins_value", String(15), nullable=False),
    Column("patient_id", Uuid, nullable=False),
    # A reservation (ADR 0009 b), written before the record; null: written with it, before 0008.
    Column("reserved_at", UtcDateTime),
    PrimaryKeyConstraint("ins_oid", "ins_value"),
    Index("ix_ins_index_reserved_at", "reserved_at"),
)

# Lifecycle history of a record: creation (with the consent attestation), closure,
# reactivation. Append-only.
record_event = Table(
    "record_event",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),  # created | closed | reactivated
    Column("actor_id", String(64), nullable=False),
    Column("actor_name", Text, nullable=False),
    Column("channel", String(32)),
    Column("detail", Text),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
)

# One data key per record, wrapped by the instance master key (envelope encryption).
record_key = Table(
    "record_key",
    metadata,
    Column("patient_id", Uuid, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("kek_id", String(32), nullable=False),
    # Seals the record's trail free text (break-glass justification): the trail is append-only,
    # so this key is not rotated with the data key; created on first use (docs/encryption.md).
    Column("trail_key", LargeBinary),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
)

document = Table(
    "document",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("unique_id", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("availability", String(12), nullable=False),  # approved|deprecated|archived|deleted
    Column("class_code", String(64), nullable=False),
    Column("type_system", Text, nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("format_code", Text, nullable=False),
    Column("facility_code", String(64), nullable=False),
    Column("practice_code", String(64), nullable=False),
    Column("confidentiality", String(1), nullable=False),  # N | R | V
    Column("flags", Integer, nullable=False),  # bit set of the J58 DMP flags
    Column("author_id", String(64)),  # IDNPS, patient INS, or device id
    Column("author_name", Text),
    Column("author_role", String(64)),
    Column("author_specialty", String(64)),
    Column("author_org_id", String(64)),
    Column("creation_time", UtcDateTime, nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime),
    Column("submission_time", UtcDateTime, nullable=False),
    Column("submission_set_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("mime_type", String(128), nullable=False),
    Column("language", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha1_b64", String(28), nullable=False),
    Column("sha256_hex", String(64), nullable=False),
    Column("blob_key", String(160), nullable=False),
    Column("replaces_id", Uuid),
    Column("replaced_by_id", Uuid),
    Column("published_by", String(64), nullable=False),
    # Deposited by occupational medicine (AC-17): read only by the médecin traitant and in
    # emergency modes. Set at publication from the publishing actor (rules.is_occupational).
    Column("occupational", Boolean, nullable=False, server_default=false()),
    Column("last_updated", UtcDateTime, nullable=False),
    Column("resource_json", LargeBinary, nullable=False),  # the DocumentReference as served
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
    # Searches walk this index in date order and stop after one page (no sort of the record).
    Index("ix_document_patient_date", "patient_id", "creation_time", "id"),
    Index("ix_document_id", "id"),
)

# document uniqueId -> document: global uniqueness of XDS uniqueIds.
document_uid = Table(
    "document_uid",
    metadata,
    Column("unique_id", Text, primary_key=True),
    Column("patient_id", Uuid, nullable=False),
    Column("document_id", Uuid, nullable=False),
    # A reservation (ADR 0009 b), written before the document; null: written with it, before 0008.
    Column("reserved_at", UtcDateTime),
    Index("ix_document_uid_reserved_at", "reserved_at"),
)

document_event = Table(
    "document_event",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("document_id", Uuid, nullable=False),
    Column("system", Text, nullable=False),
    Column("code", String(64), nullable=False),
    PrimaryKeyConstraint("patient_id", "document_id", "system", "code"),
    ForeignKeyConstraint(["patient_id", "document_id"], ["document.patient_id", "document.id"]),
)

# Clinical facts read from a document's body (dmp.clinical); the FHIR resource is sealed with the
# record's key (AES-GCM, bound to the record and to the resource's hash), the columns beside it are
# what searches and the synthesis need to select facts without opening them.
clinical_fact = Table(
    "clinical_fact",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", String(64), nullable=False),  # the FHIR id: <document id>-<ordinal>
    Column("document_id", Uuid, nullable=False),
    Column("ordinal", Integer, nullable=False),  # rank of the fact in its document's extraction
    Column("kind", String(16), nullable=False),  # allergy|problem|medication|lab_result|vital_sign|...
    Column("resource_type", String(32), nullable=False),
    Column("code_system", Text),
    Column("code", String(64)),
    Column("status", String(16)),
    Column("effective_time", UtcDateTime),  # start of the fact's own date, at its precision's first instant
    Column("value_number", Float),
    Column("value_unit", String(64)),
    Column("sha256_hex", String(64), nullable=False),  # of the plain FHIR JSON
    Column("resource_sealed", LargeBinary, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id", "document_id"], ["document.patient_id", "document.id"]),
    Index("ix_clinical_fact_patient_code", "patient_id", "code", "effective_time"),
    Index("ix_clinical_fact_document", "patient_id", "document_id"),
)

# One row per document the ingestion looked at: what it found, or why it could not.
clinical_ingestion = Table(
    "clinical_ingestion",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("document_id", Uuid, nullable=False),
    Column("status", String(8), nullable=False),  # ok | skipped | error
    Column("fact_count", Integer, nullable=False),
    Column("detail", Text),  # French: the error, or the notes (e.g. PDF text not extracted yet)
    Column("extractor_version", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("patient_id", "document_id"),
    ForeignKeyConstraint(["patient_id", "document_id"], ["document.patient_id", "document.id"]),
    Index("ix_clinical_ingestion_status", "status"),
)

# The encrypted full-text index (docs/adr/0014-encrypted-full-text-search.md): one row per distinct
# stem of a document's text, the stem as a keyed hash under the record's index key (derived from
# its data key), so neither words nor equal words across records can be read from the table.
document_token = Table(
    "document_token",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("token", LargeBinary(16), nullable=False),  # truncated HMAC-SHA256 of the stem
    Column("document_id", Uuid, nullable=False),
    Column("tf", SmallInteger, nullable=False),  # occurrences of the stem in the document (ranking)
    PrimaryKeyConstraint("patient_id", "token", "document_id"),
    ForeignKeyConstraint(["patient_id", "document_id"], ["document.patient_id", "document.id"]),
)

# The text a document was indexed from, sealed with the record's key: what search snippets show.
document_text = Table(
    "document_text",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("document_id", Uuid, nullable=False),
    Column("sha256_hex", String(64), nullable=False),  # of the plain UTF-8 text
    Column("text_sealed", LargeBinary, nullable=False),
    PrimaryKeyConstraint("patient_id", "document_id"),
    ForeignKeyConstraint(["patient_id", "document_id"], ["document.patient_id", "document.id"]),
)

submission_set = Table(
    "submission_set",
    metadata,
    Column("patient_id", Uuid, nullable=False),
    Column("id", Uuid, nullable=False),
    Column("unique_id", Text, nullable=False),
    Column("source_id", Text, nullable=False),
    Column("submission_time", UtcDateTime, nullable=False),
    Column("author_id", String(64)),
    Column("content_type_code", String(64)),
    Column("title", Text),
    Column("archived", Boolean, nullable=False),
    Column("resource_json", LargeBinary, nullable=False),
    PrimaryKeyConstraint("patient_id", "id"),
    ForeignKeyConstraint(["patient_id"], ["patient.id"]),
    Index("ix_submission_set_patient_time", "patient_id", "submission_time"),
    Index("ix_submission_set_id", "id"),  # List/<id> reads carry no patient id
)

# resource id -> record: a read by id finds the record (its shard) without a scatter (ADR 0009).
# Written with the resource; on a distributed deployment it is distributed on ``id``.
resource_locator = Table(
    "resource_locator",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(16), nullable=False),  # document | list | consent
    Column("patient_id", Uuid, nullable=False),
)

revoked_certificate = Table(
    "revoked_certificate",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("revoked_at", UtcDateTime, nullable=False),
    Column("reason", Text),
)

# Client-assertion jti already used (replay protection), purged once expired.
used_assertion = Table(
    "used_assertion",
    metadata,
    Column("jti", String(255), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
)
