#!/usr/bin/env python
"""Full-text search (``_content``) latency on PostgreSQL: the real service, and the raw ceiling.

    PYTHONPATH=src python bench/bench_fulltext.py [--records 500] [--docs 200] [--searches 400]

1. Creates a database ``dmp_bench_fts`` (``dmp.devtools.pgcluster``; recreated each run) migrated by
   Alembic, with ``--records`` records of ``--docs`` documents each (default 500 x 200 = 100,000).
   Each record gets its own data key (wrapped as in production). Documents and index rows are
   bulk-inserted with COPY, not published: each document's text is the indexed text of one ANS
   example (tests/fixtures/cda, title + narrative or PDF text + facts' display texts, as ingestion
   builds it) plus 40 words drawn from the examples' vocabulary, normalised by ``dmp.clinical.text``
   and hashed under the record's index key (``dmp.store.blind``): the same rows ingestion writes.
   The sealed texts (``document_text``) are not written: only the portals' snippets read them.
2. Measures ``search.search_documents`` (policy opening of the record, the search with its policy
   condition and the index join, the count, the trail entry, in one transaction per search, as the
   FHIR route runs it but without HTTP), as the record's patient, first page of 20, ``_total``
   accurate, for a drug, a diagnosis, a lab test, two words, a frequent word and a word found nowhere,
   on random records.
3. The raw ceiling: the same index lookup and join in one SQL statement through psycopg alone
   (tokens hashed in the loop), no policy, no trail.

Prints p50/p95/p99 per query and overall, and the size of the index; writes bench/results/fulltext.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DB_NAME = "dmp_bench_fts"
EXAMPLES = ROOT.parent / "tests" / "fixtures" / "cda"
QUERIES = {
    "médicament (Plavix)": "plavix",
    "diagnostic (pyélonéphrite, sans accents)": "pyelonephrite",
    "analyse (hémoglobines, pluriel)": "hemoglobines",
    "deux mots (glucose sérum)": "glucose sérum",
    "mot fréquent (numérique)": "numérique",
    "mot absent": "introuvable",
    "référence : la même recherche sans _content": "",
}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def example_texts() -> list[str]:
    from dmp.cda import parse_header
    from dmp.clinical import extract
    from dmp.services.fulltext import indexed_text

    texts = []
    for path in sorted(EXAMPLES.glob("*.xml")):
        content = path.read_bytes()
        try:
            title = parse_header(content).title
        except Exception:  # noqa: BLE001 (a header the bench does not need)
            title = path.stem
        texts.append(indexed_text(title, extract(content)))
    return texts


def _copy(cur: psycopg.Cursor[Any], table: str, columns: list[str], rows: Any) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def load(dsn: str, records: int, docs: int, seed: int) -> tuple[list[uuid.UUID], dict[uuid.UUID, bytes]]:
    from dmp.clinical.text import term_frequencies
    from dmp.store import blind
    from dmp.store.crypto import KeyRing

    keyring = KeyRing(b"b" * 32)
    rng = random.Random(seed)
    templates = [term_frequencies(t) for t in example_texts()]
    vocabulary = sorted({s for t in templates for s in t})
    log(f"{len(templates)} textes d'exemples ANS, vocabulaire de {len(vocabulary)} racines")
    pids = [uuid.uuid4() for _ in range(records)]
    deks: dict[uuid.UUID, bytes] = {}
    token_count = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        # The index is built after the COPY (faster than maintaining it row by row).
        cur.execute("ALTER TABLE document_token DROP CONSTRAINT pk_document_token")
        cur.execute(
            "ALTER TABLE document_token DROP CONSTRAINT fk_document_token_patient_id_document_id_document"
        )
        for n, pid in enumerate(pids):
            dek, wrapped = keyring.new_record_key()
            deks[pid] = dek
            cur.execute(
                "INSERT INTO patient (id, ins_oid, ins_value, birth_family_name, birth_given_names, sex,"
                " birth_date, birth_place_insee, identity_status, traits_key, record_status, created_at,"
                " updated_at, version) VALUES (%s, '1.2.250.1.213.1.4.8', %s, 'BENCH', 'Marie', 'female',"
                " %s, '75056', 'QUAL', %s, 'open', %s, %s, 1)",
                (pid, f"{n:015d}", date(1980, 1, 1), f"bench-{n}", NOW, NOW),
            )
            cur.execute(
                "INSERT INTO record_key (patient_id, wrapped_key, kek_id) VALUES (%s, %s, %s)",
                (pid, wrapped, keyring.kek_id),
            )
            key = blind.index_key(dek)
            tokens = {s: blind.token(key, s) for s in vocabulary}
            doc_rows, token_rows = [], []
            for i in range(docs):
                doc_id = uuid.uuid4()
                when = NOW - timedelta(days=rng.randrange(3650), seconds=i)
                tf = dict(templates[rng.randrange(len(templates))])
                for s in rng.choices(vocabulary, k=40):
                    tf[s] = tf.get(s, 0) + 1
                doc_rows.append(_document_row(pid, doc_id, when))
                token_rows += [(pid, tokens[s], doc_id, min(c, 32767)) for s, c in tf.items()]
            _copy(cur, "document", DOCUMENT_COLUMNS, doc_rows)
            _copy(cur, "document_token", ["patient_id", "token", "document_id", "tf"], token_rows)
            token_count += len(token_rows)
            if (n + 1) % 50 == 0:
                conn.commit()
                log(f"  {n + 1}/{records} dossiers, {token_count} lignes d'index")
        conn.commit()
        log("construction de la clé primaire de l'index…")
        cur.execute(
            "ALTER TABLE document_token ADD CONSTRAINT pk_document_token"
            " PRIMARY KEY (patient_id, token, document_id)"
        )
        cur.execute(
            "ALTER TABLE document_token ADD CONSTRAINT fk_document_token_patient_id_document_id_document"
            " FOREIGN KEY (patient_id, document_id) REFERENCES document (patient_id, id)"
        )
        conn.commit()
        cur.execute("ANALYZE")
    return pids, deks


DOCUMENT_COLUMNS = [
    "patient_id", "id", "unique_id", "version_id", "availability", "class_code", "type_system",
    "type_code", "format_code", "facility_code", "practice_code", "confidentiality", "flags",
    "author_id", "creation_time", "period_start", "submission_time", "submission_set_id", "title",
    "mime_type", "language", "size", "sha1_b64", "sha256_hex", "blob_key", "published_by",
    "occupational", "last_updated", "resource_json",
]  # fmt: skip


def _document_row(pid: uuid.UUID, doc_id: uuid.UUID, when: datetime) -> tuple[Any, ...]:
    resource = json.dumps({"resourceType": "DocumentReference", "id": str(doc_id), "status": "current"})
    return (
        pid, doc_id, f"urn:uuid:{doc_id}", 1, "approved", "11", "http://loinc.org", "11488-4",
        "urn:ihe:iti:xds-sd:text:2008", "SA01", "AMBULATOIRE", "N", 0, "810001234565", when, when, when,
        uuid.uuid4(), "Compte rendu", "text/xml", "fr-FR", 1000, "x", "0" * 64, "k", "810001234565",
        False, when, resource.encode(),
    )  # fmt: skip


def bench_service(url: str, pids: list[uuid.UUID], searches: int, seed: int) -> dict[str, list[float]]:
    from dmp.domain.actor import Actor, ActorKind
    from dmp.services import search
    from dmp.services.context import Runtime
    from dmp.services.unit_of_work import transaction
    from dmp.settings import Settings
    from dmp.store.blobs import FileBlobStore
    from dmp.store.crypto import KeyRing
    from dmp.store.db import make_engine

    engine = make_engine(url, pool_size=2)
    tmp = Path(tempfile.mkdtemp(prefix="dmp-bench-fts-"))
    rt = Runtime(
        settings=Settings(var_dir=tmp, database_url=url),
        engine=engine,
        keyring=KeyRing(b"b" * 32),
        blobs=FileBlobStore(tmp / "blobs", fsync=False),
    )
    rng = random.Random(seed)
    out: dict[str, list[float]] = {label: [] for label in QUERIES}
    hits: dict[str, list[int]] = {label: [] for label in QUERIES}
    for n in range(searches + 30):
        label = list(QUERIES)[n % len(QUERIES)]
        pid = rng.choice(pids)
        actor = Actor(ActorKind.PATIENT, str(pid), "Patient")
        words = [("_content", QUERIES[label])] if QUERIES[label] else []
        params = [("patient", f"Patient/{pid}"), *words, ("_count", "20"), ("_total", "accurate")]
        t = time.perf_counter()
        with transaction(engine) as conn:
            page = search.search_documents(conn, rt, actor, params)
        elapsed = (time.perf_counter() - t) * 1000
        if n >= 30:  # warm-up (caches, key unwrapping)
            out[label].append(elapsed)
            hits[label].append(page.total or 0)
    engine.dispose()
    for label in QUERIES:
        log(f"  {label}: {statistics.mean(hits[label]):.0f} documents trouvés en moyenne")
    return out


RAW = (
    "SELECT d.id, d.resource_json FROM document d JOIN ("
    " SELECT document_id, sum(tf) AS score FROM document_token"
    " WHERE patient_id = %(pid)s AND token = ANY(%(tokens)s)"
    " GROUP BY document_id HAVING count(*) = %(n)s) m ON m.document_id = d.id"
    " WHERE d.patient_id = %(pid)s AND d.availability = 'approved'"
    " ORDER BY m.score DESC, d.creation_time DESC, d.id DESC LIMIT 21"
)


def bench_raw(dsn: str, deks: dict[uuid.UUID, bytes], searches: int, seed: int) -> dict[str, list[float]]:
    from dmp.clinical.text import query_stems
    from dmp.store import blind

    rng = random.Random(seed)
    pids = list(deks)
    out: dict[str, list[float]] = {label: [] for label in QUERIES}
    with psycopg.connect(dsn) as conn:
        for n in range(searches + 30):
            label = list(QUERIES)[n % len(QUERIES)]
            pid = rng.choice(pids)
            if not QUERIES[label]:
                continue
            t = time.perf_counter()
            key = blind.index_key(deks[pid])
            tokens = sorted({blind.token(key, s) for s in query_stems(QUERIES[label])})
            conn.execute(RAW, {"pid": pid, "tokens": tokens, "n": len(tokens)}).fetchall()
            conn.commit()
            elapsed = (time.perf_counter() - t) * 1000
            if n >= 30:
                out[label].append(elapsed)
    return out


def _line(label: str, values: list[float]) -> str:
    p50, p95, p99 = (pct(values, q) for q in (0.5, 0.95, 0.99))
    return f"| {label} | {len(values)} | {p50:.2f} | {p95:.2f} | {p99:.2f} |"


def table(title: str, results: dict[str, list[float]]) -> str:
    lines = [
        f"### {title}",
        "",
        "| requête | n | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    every: list[float] = []
    for label, values in results.items():
        if not values:
            continue
        if QUERIES[label]:
            every += values
        lines.append(_line(label, values))
    lines.append(_line("**toutes (avec _content)**", every))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--docs", type=int, default=200, help="documents per record")
    parser.add_argument("--searches", type=int, default=600)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()

    from dmp.devtools.pgcluster import fresh_database, postgres_url
    from dmp.store.db import make_engine, upgrade

    url = fresh_database(postgres_url(), DB_NAME)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    t = time.perf_counter()
    pids, deks = load(dsn, args.records, args.docs, args.seed)
    load_s = time.perf_counter() - t
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM document_token").fetchone()
        size = conn.execute("SELECT pg_total_relation_size('document_token')").fetchone()
        docs = conn.execute("SELECT count(*) FROM document").fetchone()
    assert rows and size and docs
    log(
        f"chargé en {load_s:.0f} s : {docs[0]} documents, {rows[0]} lignes d'index, {size[0] / 2**20:.0f} Mio"
    )
    service = bench_service(url, pids, args.searches, args.seed)
    raw = bench_raw(dsn, deks, args.searches, args.seed)
    report = "\n\n".join(
        [
            f"{docs[0]} documents ({args.records} dossiers x {args.docs}), {rows[0]} lignes d'index "
            f"({rows[0] / docs[0]:.0f} par document), index {size[0] / 2**20:.0f} Mio, "
            f"chargé en {load_s:.0f} s",
            table("search.search_documents (_content, 20 premiers, total exact, trace)", service),
            table("plafond : la même recherche d'index en SQL seul (psycopg)", raw),
        ]
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fulltext.json").write_text(
        json.dumps(
            {
                "records": args.records,
                "docs_per_record": args.docs,
                "documents": docs[0],
                "index_rows": rows[0],
                "index_bytes": size[0],
                "load_seconds": load_s,
                "service_ms": service,
                "raw_ms": raw,
            },
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
