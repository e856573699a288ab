"""Ingestion: the clinical facts of newly stored documents, in the publication's transaction.

Called right after a publication has stored its documents (a CDA or a FHIR document:
``dmp.clinical.read_document``). It never refuses nor loses a
document: extraction does not raise (``dmp.clinical.extract``), and writing one document's facts
runs in a savepoint, so a failure there is rolled back alone and recorded in
``clinical_ingestion`` with its reason (status ``error``), the document staying published.

Facts are FHIR resources sealed with the record's key (AES-GCM, the same envelope as document
bytes, bound to the record and to the resource's SHA-256). The columns beside them (kind, code,
date, value, unit) are in clear for searches, like the document's own metadata columns.
Access: ``dmp.services.facts`` serves them, filtered exactly as their source document.

The same pass writes the document's encrypted full-text index (``dmp.services.fulltext``: title,
body text, embedded PDF text, facts' display texts), in the same savepoint as its facts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Connection, insert, select

from dmp.clinical import Extraction, Fact, read_document
from dmp.clinical.fhir import RESOURCE_TYPES, system_uri, to_fhir
from dmp.clinical.pdftext import pdf_text
from dmp.fhir.common import dumps, instant
from dmp.services import fulltext
from dmp.store import crypto, sealed_fields
from dmp.store.schema import clinical_fact, clinical_ingestion, document, document_text, document_token

# 2: lab values in one unit per analyte (ADR 0013); 3: FHIR documents, devices, directives (ADR 0016).
EXTRACTOR_VERSION = 3
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ingested:
    document_id: UUID
    status: str  # ok | partial | skipped | error
    fact_count: int
    detail: str | None


def effective_instant(value: str | None) -> datetime | None:
    """First instant of a FHIR date/dateTime at its precision (a date alone: midnight UTC)."""
    if not value:
        return None
    try:
        if "T" in value:
            return datetime.fromisoformat(value).astimezone(UTC)
        parts = [int(p) for p in value.split("-")]
        while len(parts) < 3:
            parts.append(1)
        return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
    except ValueError:
        return None


def fact_row(
    pid: UUID, doc_id: UUID, dek: bytes, ordinal: int, fact: Fact, now: datetime
) -> dict[str, object]:
    fact_id = f"{doc_id}-{ordinal}"
    resource = to_fhir(fact, resource_id=fact_id, document_id=str(doc_id), patient_id=str(pid))
    # A fact never changes once stored (a replacement's facts are new rows): stored = last updated.
    resource["meta"] = {**resource.get("meta", {}), "lastUpdated": instant(now)}
    plain = dumps(resource)
    sha = hashlib.sha256(plain).hexdigest()
    return dict(
        patient_id=pid,
        id=fact_id,
        document_id=doc_id,
        ordinal=ordinal,
        kind=fact.kind,
        resource_type=RESOURCE_TYPES[fact.kind],
        code_system=system_uri(fact.code.system) if fact.code and fact.code.code else None,
        code=(fact.code.code or None) if fact.code else None,
        status=fact.status,
        effective_time=effective_instant(fact.effective_start),
        value_number=fact.value.number if fact.value is not None else None,
        value_unit=fact.value.unit if fact.value is not None else None,
        sha256_hex=sha,
        resource_sealed=crypto.seal(dek, pid, sha, plain),
        created=now,
    )


def readable_text(title: str | None, content: bytes) -> str:
    """What the full-text index reads of a document, as ingestion reads it (without its facts' rows)."""
    e = read_document(content)
    body = pdf_text(content).text if e is None and content[:5] == b"%PDF-" else None
    return fulltext.indexed_text(title, e, body)


def _titles(conn: Connection, pid: UUID, dek: bytes, ids: list[UUID]) -> dict[UUID, str | None]:
    """The documents' titles, opened (sealed under the record's key, SE-02)."""
    d = document.c
    rows = conn.execute(select(d.id, d.title).where(d.patient_id == pid, d.id.in_(ids)))
    return {r.id: sealed_fields.open_text(dek, pid, "document.title", r.id, r.title) for r in rows}


def _outcome(e: Extraction) -> tuple[str, str | None]:
    if e.error:
        return "error", e.error
    return "partial" if e.failed_entries else "ok", " ; ".join(e.notes) or None


def ingest_documents(
    conn: Connection,
    pid: UUID,
    dek: bytes,
    documents: Iterable[tuple[UUID, bytes]],
    now: datetime,
) -> list[Ingested]:
    """Extract and store the facts of each (document id, bytes); record each outcome. Never raises
    for a document's content; a database failure while writing one document's facts is recorded too."""
    out: list[Ingested] = []
    docs = list(documents)
    titles = _titles(conn, pid, dek, [i for i, _ in docs])
    for doc_id, content in docs:
        rows: list[dict[str, object]] = []
        detail: str | None
        body_text: str | None = None
        e = read_document(content)  # a CDA or a FHIR document; None: nothing to read
        if e is None:
            status, detail = "skipped", "document ni CDA ni FHIR : pas d'extraction"
            if content[:5] == b"%PDF-":
                found = pdf_text(content)  # no facts in a PDF; its text is indexed
                body_text, detail = found.text, found.error or found.note or detail
                status = "error" if found.error else status
        else:
            status, detail = _outcome(e)
            try:
                rows = [fact_row(pid, doc_id, dek, n, f, now) for n, f in enumerate(e.facts)]
            except Exception as exc:  # a bug of the mapping must not cost the document
                _log.exception("clinical mapping failed for %s", doc_id)
                status, detail, rows = (
                    "error",
                    f"transformation en FHIR impossible : {type(exc).__name__}",
                    [],
                )
        index = fulltext.index_rows(pid, doc_id, dek, fulltext.indexed_text(titles.get(doc_id), e, body_text))
        try:
            with conn.begin_nested():
                if rows:
                    conn.execute(insert(clinical_fact), rows)
                if index.tokens:
                    conn.execute(insert(document_token), index.tokens)
                conn.execute(insert(document_text), index.text)
                conn.execute(
                    insert(clinical_ingestion),
                    dict(
                        patient_id=pid,
                        document_id=doc_id,
                        status=status,
                        fact_count=len(rows),
                        detail=detail,
                        extractor_version=EXTRACTOR_VERSION,
                        at=now,
                    ),
                )
        except Exception as exc:
            _log.exception("storing clinical facts failed for %s", doc_id)
            status, detail, rows = "error", f"enregistrement des faits impossible : {type(exc).__name__}", []
            with conn.begin_nested():
                conn.execute(
                    insert(clinical_ingestion),
                    dict(
                        patient_id=pid,
                        document_id=doc_id,
                        status=status,
                        fact_count=0,
                        detail=detail,
                        extractor_version=EXTRACTOR_VERSION,
                        at=now,
                    ),
                )
        out.append(Ingested(doc_id, status, len(rows), detail))
    return out


def warning_outcome(ingested: Ingested | None) -> dict[str, object] | None:
    """The OperationOutcome warning telling a document's author that its clinical facts could not
    be read (error) or not all of them (partial); None when there is nothing to say. The document
    itself is stored either way."""
    if ingested is None or ingested.status not in {"error", "partial"}:
        return None
    what = "en échec" if ingested.status == "error" else "partielle"
    text = f"Document enregistré ; extraction des données cliniques {what}"
    if ingested.detail:
        text += f" : {ingested.detail}"
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "processing", "diagnostics": text[:1000]}],
    }
