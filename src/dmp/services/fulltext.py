"""The encrypted full-text index of documents (CS-04, CS-05; docs/adr/0014-encrypted-full-text-search.md).

Written at ingestion (``dmp.services.ingest``, in the publication's transaction): the text of a
document (title, CDA narrative or level-1 text, embedded PDF text, the display texts of its facts)
normalised to French stems (``dmp.clinical.text``); each distinct stem stored as a keyed hash under
the record's index key, with its count in the document; the text itself sealed with the record's
key for the snippets. Nothing of the text is stored in clear.

Read by ``dmp.services.search`` (``_content``): the query is normalised the same way, hashed under
the same record's key, and matched inside the document search's own SQL, under its policy
condition; a replaced or deleted document leaves the results as it leaves the document search.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, Subquery, func, select

from dmp.clinical import Extraction
from dmp.clinical import text as words_of
from dmp.store import blind, crypto
from dmp.store.schema import document_text, document_token

MAX_TEXT = 500_000  # characters indexed per document (a long PDF is indexed from its start)
MAX_TF = 32767  # smallint
MAX_QUERY_TERMS = 20
SNIPPET_BEFORE = 60
SNIPPET_AFTER = 160

_SPACES = re.compile(r"\s+")
Segment = tuple[str, bool]  # (text, is a matched word)


@dataclass(frozen=True)
class IndexRows:
    tokens: list[dict[str, object]]
    text: dict[str, object]


def _fact_labels(e: Extraction) -> Iterable[str]:
    for f in e.facts:
        for code in (f.code, f.value_code):
            if code is not None and code.label:
                yield code.label


def indexed_text(title: str | None, extraction: Extraction | None, body_text: str | None = None) -> str:
    """What a search reads of a document: its title, its body's text, its facts' display texts."""
    parts = [title or ""]
    if extraction is not None:
        parts += [extraction.text or "", *_fact_labels(extraction)]
    parts.append(body_text or "")
    return "\n".join(p for p in parts if p)[:MAX_TEXT]


def index_rows(pid: UUID, doc_id: UUID, dek: bytes, text: str) -> IndexRows:
    """The token rows of ``text`` and its sealed copy (written even when empty: it marks the
    document as indexed, see ``dmp.services.reindex``)."""
    key = blind.index_key(dek)
    tokens = [
        dict(patient_id=pid, token=blind.token(key, stem), document_id=doc_id, tf=min(n, MAX_TF))
        for stem, n in words_of.term_frequencies(text).items()
    ]
    plain = text.encode()
    sha = hashlib.sha256(plain).hexdigest()
    sealed = dict(
        patient_id=pid, document_id=doc_id, sha256_hex=sha, text_sealed=crypto.seal(dek, pid, sha, plain)
    )
    return IndexRows(tokens, sealed)


def matching(pid: UUID, dek: bytes, stems: list[str]) -> Subquery:
    """The documents of record ``pid`` holding every stem, with their summed term frequency."""
    key = blind.index_key(dek)
    tokens = sorted({blind.token(key, s) for s in stems})
    t = document_token.c
    return (
        select(t.document_id, func.sum(t.tf).label("score"))
        .where(t.patient_id == pid, t.token.in_(tokens))
        .group_by(t.document_id)
        .having(func.count() == len(tokens))  # one row per (token, document): all of them present
        .subquery("content_match")
    )


def snippets(
    conn: Connection, pid: UUID, dek: bytes, doc_ids: list[UUID], query: str
) -> dict[UUID, list[Segment]]:
    """For documents already found (and so visible): a passage of each one's indexed text around its
    first matching word, the matching words marked."""
    if not doc_ids:
        return {}
    wanted = set(words_of.query_stems(query))
    d = document_text.c
    rows = conn.execute(
        select(d.document_id, d.sha256_hex, d.text_sealed).where(
            d.patient_id == pid, d.document_id.in_(doc_ids)
        )
    )
    out: dict[UUID, list[Segment]] = {}
    for r in rows:
        plain = crypto.open_sealed(dek, pid, r.sha256_hex, r.text_sealed).decode()
        out[r.document_id] = passage(plain, wanted)
    return out


def passage(text: str, wanted: set[str]) -> list[Segment]:
    """The passage around the first matching word, split into plain and marked segments."""
    hits = [w for w in words_of.words(text) if w.stem in wanted]
    if not hits:
        return []
    start = max(0, hits[0].start - SNIPPET_BEFORE)
    end = min(len(text), hits[0].end + SNIPPET_AFTER)
    if start > 0:  # start and end on word boundaries
        start = next((i + 1 for i in range(start, hits[0].start) if text[i].isspace()), start)
    if end < len(text):
        end = next((i for i in range(end, start, -1) if text[i].isspace()), end)
    segments: list[Segment] = [("… ", False)] if start > 0 else []
    at = start
    for w in hits:
        if w.start < start or w.end > end:
            continue
        segments.append((_flat(text[at : w.start]), False))
        segments.append((text[w.start : w.end], True))
        at = w.end
    segments.append((_flat(text[at:end]), False))
    if end < len(text):
        segments.append((" …", False))
    return [(s, marked) for s, marked in segments if s]


def _flat(s: str) -> str:
    return _SPACES.sub(" ", s)
