"""Resource id → record (ADR 0009): the one seam through which reads by id find their record.

DocumentReference, Binary and List are read (Consent revoked) by their own id, without the patient. Once the
per-patient tables are distributed on ``patient_id``, a lookup by id alone goes to every shard;
``resource_locator`` (distributed on ``id``) answers with one single-shard lookup, and the read
then addresses the record's shard by ``(patient_id, id)``.

``locate`` falls back to the table's own id index for a resource that has no locator row
(written by a path that does not register yet); every writer registering, the fallback and the
``ix_document_id`` / ``ix_submission_set_id`` indexes can go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, bindparam, delete, insert, select

from dmp.store.schema import document, resource_locator, submission_set
from dmp.store.schema_policy import record_consent

DOCUMENT = "document"
LIST = "list"
CONSENT = "consent"

_INSERT = insert(resource_locator)
_LOCATE = select(resource_locator.c.patient_id).where(
    resource_locator.c.id == bindparam("id"), resource_locator.c.kind == bindparam("kind")
)
_BY_OWN_ID: dict[str, Any] = {
    DOCUMENT: select(document.c.patient_id).where(document.c.id == bindparam("id")),
    LIST: select(submission_set.c.patient_id).where(submission_set.c.id == bindparam("id")),
    CONSENT: select(record_consent.c.patient_id).where(record_consent.c.id == bindparam("id")),
}


def register(conn: Connection, kind: str, ids: Iterable[UUID], patient_id: UUID) -> None:
    """Record where the resources ``ids`` of ``kind`` live, in the caller's transaction."""
    rows = [{"id": i, "kind": kind, "patient_id": patient_id} for i in ids]
    if rows:
        conn.execute(_INSERT, rows)


def locate(conn: Connection, kind: str, resource_id: UUID) -> UUID | None:
    """The record holding the resource ``resource_id`` of ``kind``, or None if there is none."""
    pid = conn.execute(_LOCATE, {"id": resource_id, "kind": kind}).scalar()
    if pid is None:
        pid = conn.execute(_BY_OWN_ID[kind], {"id": resource_id}).scalar()
    return cast(UUID | None, pid)


def unregister(conn: Connection, kind: str, ids: Iterable[UUID]) -> None:
    """Forget the resources ``ids`` of ``kind``, whose creation failed (a reservation released)."""
    keys = list(ids)
    if keys:
        conn.execute(
            delete(resource_locator).where(resource_locator.c.kind == kind, resource_locator.c.id.in_(keys))
        )
