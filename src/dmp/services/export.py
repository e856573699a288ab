"""CS-06 « tout télécharger »: the whole record an actor may see, as one ZIP archive (a FHIR
Bundle and every document's original bytes) or as a printable French PDF summary.

Visibility is the reading path's, not a rule of its own: the record is opened by the policy
(``access.open_record``, a refusal answered as a missing record: 404 for everyone), the documents
are those the policy's SQL condition (``Opened.condition``) lets through, each checked again by
the policy's decision (``access.document_visible_for``), the submission sets and facts those
``search_lists`` and ``record_facts`` show. Exporting is reading (``Action.READ``): a professional
exports exactly where they may read, the patient and a representative what they see. The export
is one trail entry naming every document exported (``record.export``; ``record.summary_pdf`` for
the summary).

Memory is bounded by one document: the metadata of the documents is held (a few kilobytes each,
a few megabytes for 1,000 documents), their bytes are not. ``archive_chunks`` produces the ZIP as
a stream, reading each document from the blob store, decrypting and checking it, deflating it into
the archive and dropping it before the next (docs/export.md, ADR 0012).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from dmp.clinical import summary_pdf
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.fhir.common import Json, dumps, instant, loads
from dmp.fhir.patient import patient_resource
from dmp.services import access, consents, documents, facts, search
from dmp.services.context import Runtime
from dmp.services.trail import AuditAction
from dmp.store import sealed_fields
from dmp.store.schema import document
from dmp.terminology import valueset

_EXTENSIONS = {
    "text/xml": ".xml",
    "application/xml": ".xml",
    "application/hl7-v3+xml": ".xml",
    "application/fhir+json": ".json",
    "application/fhir+xml": ".xml",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "image/png": ".png",
}
_LINES_CHUNK = 500  # ids per IN (...) of the document-list query
# What an export holds of each document row: the policy's facts (access.document_facts), the
# DocumentReference, and where its bytes are; not the row's other (possibly large) columns.
_ROW_COLUMNS = (
    "id", "patient_id", "type_code", "class_code", "flags", "availability", "author_id", "published_by",
    "submission_time", "occupational", "resource_json", "sha256_hex", "blob_key",
)


@dataclass(frozen=True)
class ExportedDocument:
    id: UUID
    line: summary_pdf.DocumentEntry
    mime_type: str
    row: Any = field(repr=False)  # the document row its bytes are opened from (blob key, hash)

    @property
    def path(self) -> str:
        """``documents/<date>-<title>-<id>.<ext>``: sorted by date, readable, unique by the id."""
        title = ascii_slug(self.line.title, 60)
        return f"documents/{self.line.date:%Y-%m-%d}-{title}-{self.id}{extension(self.mime_type)}"


@dataclass(frozen=True)
class RecordExport:
    patient_id: UUID
    identity: summary_pdf.Identity
    patient: Json
    documents: list[ExportedDocument]
    lists: list[Json]
    facts: list[Json]
    exported_at: datetime
    base: str
    dek: bytes = field(repr=False)


def extension(mime_type: str) -> str:
    return _EXTENSIONS.get(mime_type) or mimetypes.guess_extension(mime_type) or ".bin"


def ascii_slug(text: str, limit: int) -> str:
    """A file-name-safe ASCII form of ``text`` (accents dropped, anything else a hyphen)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", folded).strip("-")[:limit].strip("-") or "document"


def _type_label(code: str) -> str:
    found = valueset("J66").lookup(code)
    return found[0].display if found else code


def _open(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, action: AuditAction
) -> tuple[Any, access.Opened]:
    """The record's row and its opening for reading, or the answer about a record that does not
    exist (a refusal too, traced by the unit of work)."""
    found = consents.record_by_id(conn, patient_id)
    if found is None:
        raise DmpError("NOT_FOUND")
    rec, record_facts = found
    opened = access.open_record(conn, rt, actor, rec, attempted=action, hide_refusal=True, facts=record_facts)
    return rec, opened


def _visible_documents(conn: Connection, o: access.Opened) -> list[ExportedDocument]:
    """Every document of the record the actor may see, newest first, with its list line (read
    through ``documents.list_lines``, the service that owns how a title is stored)."""
    d = document.c
    rows = [
        r
        for r in sealed_fields.open_rows(  # the DocumentReference is sealed (SE-02)
            conn,
            conn.execute(
                select(*(d[name] for name in _ROW_COLUMNS))
                .where(d.patient_id == o.patient_id, o.condition())
                .order_by(d.creation_time.desc(), d.id.desc())
            ),
            "document",
            ("resource_json",),
        )
        if access.document_visible_for(o, r)  # the policy's decision agrees with its SQL
    ]
    lines: dict[UUID, Any] = {}
    for start in range(0, len(rows), _LINES_CHUNK):
        ids = [r.id for r in rows[start : start + _LINES_CHUNK]]
        lines.update((ln.id, ln) for ln in documents.list_lines(conn, o.patient_id, ids))
    out = []
    for r in rows:
        ln = lines[r.id]
        entry = summary_pdf.DocumentEntry(
            ln.creation_time, _type_label(ln.type_code), ln.title or "Document", ln.author_name or ""
        )
        out.append(ExportedDocument(r.id, entry, ln.mime_type, r))
    return out


def _identity(row: Any) -> summary_pdf.Identity:
    return summary_pdf.Identity(
        row.birth_family_name,
        row.birth_given_names,
        row.usual_family_name,
        row.usual_given_name,
        row.birth_date,
        row.ins_value,
    )


def prepare(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_id: UUID,
    action: AuditAction = AuditAction.RECORD_EXPORT,
) -> RecordExport:
    """What ``actor`` may see of the record, traced as one ``action`` naming every document.

    Call it inside the unit of work; the bytes are read afterwards (``archive_chunks``), once
    the trail entry is committed, as a download's are."""
    rec, o = _open(conn, rt, actor, patient_id, action)
    docs = _visible_documents(conn, o)
    lists = [loads(r.resource_json) for r in search.record_lists(conn, o)]
    fact_rows = facts.opened_facts(conn, rt, o, facts.FACT_TYPES)
    o.trace(conn, action, [d.id for d in docs])
    return RecordExport(
        patient_id=o.patient_id,
        identity=_identity(rec),
        patient=patient_resource(rec),
        documents=docs,
        lists=lists,
        facts=[loads(f.resource_json) for f in fact_rows],
        exported_at=o.ctx.now,
        base=rt.fhir_base,
        dek=rt.keyring.unwrap(o.patient_id, rec.wrapped_key),
    )


def bundle_json(export: RecordExport) -> Iterator[bytes]:
    """The FHIR ``collection`` Bundle of the export, as JSON in pieces: the Patient, every
    DocumentReference (its stored JSON as is, never parsed again), every submission set (List)
    and every clinical fact the actor may see. The IPS ``document`` Bundle stays ``$summary``'s:
    a collection carries the documents too, which a Composition does not."""
    base, pid = export.base, export.patient_id
    bundle_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/Patient/{pid}/export/{instant(export.exported_at)}")
    head = {
        "resourceType": "Bundle",
        "id": str(bundle_id),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": instant(export.exported_at),
    }
    yield dumps(head)[:-1] + b',"entry":['
    yield dumps({"fullUrl": f"{base}/Patient/{pid}", "resource": export.patient})
    for d in export.documents:
        url = dumps(f"{base}/DocumentReference/{d.id}")
        yield b',{"fullUrl":' + url + b',"resource":' + bytes(d.row.resource_json) + b"}"
    for lst in export.lists:
        yield b"," + dumps({"fullUrl": f"{base}/List/{lst['id']}", "resource": lst})
    for f in export.facts:
        yield b"," + dumps({"fullUrl": f"{base}/{f['resourceType']}/{f['id']}", "resource": f})
    yield b"]}"


def readme(export: RecordExport, local: tzinfo = UTC) -> str:
    """LISEZMOI.txt: what the archive holds, in French."""
    when = export.exported_at.astimezone(local)
    who = export.identity
    return "\n".join(
        [
            "Dossier Médical Partagé — export du dossier",
            "",
            f"Patient : {who.display} (né(e) le {summary_pdf.french_date(who.birth_date)}, INS {who.ins})",
            f"Export réalisé le {summary_pdf.french_date(when.date())} à {when:%H:%M}.",
            "",
            "Cette archive contient tout ce que la personne qui l'a téléchargée est autorisée à voir",
            "du dossier à ce moment-là :",
            "",
            f"- documents/ : les {len(export.documents)} document(s), chacun tel qu'il a été déposé",
            "  (fichiers identiques aux originaux). Le nom de chaque fichier commence par la date du",
            "  document, suivie de son titre et de son identifiant.",
            "- documents.csv : la liste des documents (date, type, titre, auteur, fichier), lisible",
            "  dans un tableur.",
            "- bundle.json : le dossier au format FHIR R4 (norme internationale d'échange de données",
            "  de santé) : l'identité du patient, la description de chaque document, les lots de",
            "  documents déposés ensemble et les informations médicales extraites des documents",
            "  (allergies, problèmes de santé, traitements, résultats, vaccinations).",
            "- ERREURS.txt (seulement en cas de problème) : les documents qui n'ont pas pu être",
            "  joints.",
            "",
            "Les documents masqués ou non visibles pour la personne qui a téléchargé l'archive n'y",
            "figurent pas. Ce téléchargement est inscrit dans l'historique des accès du dossier.",
            "",
            "Ces fichiers contiennent des données de santé : conservez-les en lieu sûr et ne les",
            "transmettez qu'à des personnes de confiance.",
            "",
        ]
    )


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def document_index(export: RecordExport) -> str:
    """documents.csv (separator « ; », as French spreadsheets expect)."""
    lines = ["date;type;titre;auteur;fichier"]
    for d in export.documents:
        cells = (f"{d.line.date:%Y-%m-%d}", d.line.type_label, d.line.title, d.line.author, d.path)
        lines.append(";".join(_csv_field(c) for c in cells))
    return "\r\n".join(lines) + "\r\n"


class _Chunks:
    """A write-only, unseekable file: zipfile then writes data descriptors and streams."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def archive_chunks(rt: Runtime, export: RecordExport, local: tzinfo = UTC) -> Iterator[bytes]:
    """The ZIP archive, chunk by chunk (one document in memory at a time). A document whose bytes
    cannot be opened or fail their hash is left out and named in ERREURS.txt, the archive stays
    readable."""
    sink = _Chunks()
    failed: list[ExportedDocument] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("LISEZMOI.txt", readme(export, local).encode("utf-8"))
        with zf.open("bundle.json", "w") as out:
            for piece in bundle_json(export):
                out.write(piece)
        zf.writestr("documents.csv", document_index(export).encode("utf-8-sig"))
        yield sink.take()
        for d in export.documents:
            try:
                data = documents.document_bytes(rt, d.row, export.dek)
            except DmpError:
                failed.append(d)
                continue
            zf.writestr(d.path, data)
            del data
            yield sink.take()
        if failed:
            text = "Documents qui n'ont pas pu être joints (contenu illisible ou altéré) :\n" + "".join(
                f"- {d.path}\n" for d in failed
            )
            zf.writestr("ERREURS.txt", text.encode("utf-8"))
    yield sink.take()


def summary_pdf_bytes(export: RecordExport, local: tzinfo = UTC) -> bytes:
    lines = [d.line for d in export.documents]
    return summary_pdf.render(export.identity, export.facts, lines, export.exported_at.astimezone(local))


def file_name(export: RecordExport, suffix: str, local: tzinfo = UTC) -> str:
    """An ASCII file name for Content-Disposition: ``DMP-<Nom>-<Prenom>-<date><suffix>``."""
    who = export.identity
    family = ascii_slug(who.usual_family_name or who.birth_family_name, 40)
    given = ascii_slug(who.usual_given_name or who.birth_given_names.split()[0], 30)
    return f"DMP-{family}-{given}-{export.exported_at.astimezone(local):%Y-%m-%d}{suffix}"
