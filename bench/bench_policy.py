#!/usr/bin/env python
"""Cost of the access policy on ITI-67 search (policy on vs off, same run, PostgreSQL).

    python bench/bench_policy.py [--runs 5] [--requests 400] [--docs 1000]

In-process, at the service level (no HTTP, so the difference is not drowned in
transport noise): ``search_documents`` for one record of ``--docs`` documents
(mixed types, some masked), first page of 20 and ``_total=accurate``, as an
authorised doctor. "Off" replaces, for measurement only and inside this process,
the policy's record decision and SQL condition with the bare status filter every
search applies anyway; the service ships no switch to do so.
Prints p50/p95 of each variant per run, the medians over runs, and the overhead.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import ColumnElement

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dmp.demo.bundles import document_reference, provide_bundle  # noqa: E402
from dmp.demo.loader import qualified_record  # noqa: E402
from dmp.devtools.pgcluster import fresh_database, postgres_url  # noqa: E402
from dmp.domain.actor import Actor, ActorKind  # noqa: E402
from dmp.domain.identity import Sex, StrictTraits  # noqa: E402
from dmp.domain.ins import SYSTEM_NIR, compute_key, parse_ins  # noqa: E402
from dmp.fhir.bundle import parse_provide_bundle  # noqa: E402
from dmp.policy import AccessMode, Decision, Effect  # noqa: E402
from dmp.policy.matrix import TypeRule  # noqa: E402
from dmp.policy.rules import RecordAccess  # noqa: E402
from dmp.services import access, consents, publish, records, search  # noqa: E402
from dmp.services.context import Runtime  # noqa: E402
from dmp.settings import Settings  # noqa: E402
from dmp.store.blobs import FileBlobStore  # noqa: E402
from dmp.store.crypto import KeyRing  # noqa: E402
from dmp.store.db import make_engine, upgrade  # noqa: E402
from dmp.store.schema import document, metadata  # noqa: E402

DOCTOR = Actor(ActorKind.PROFESSIONAL, "810001234565", "Dr Muller", profession="10", specialty="SM26")
TYPES = ["11488-4", "11502-2", "18748-4", "60591-5", "89601-9", "34133-9", "11490-0"]


def load(rt: Runtime, n_docs: int) -> str:
    first13 = "2800575056001"
    nir = first13 + compute_key(first13)
    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        traits = StrictTraits(
            birth_family_name="BENCH",
            birth_given_names=("Marie",),
            sex=Sex.FEMALE,
            birth_date=datetime(1980, 5, 17).date(),
            birth_place_insee="75056",
        )
        req = qualified_record(parse_ins(SYSTEM_NIR, nir, allow_test=False), traits, now)
        records.create(conn, rt, DOCTOR, req, now)
    rng = random.Random(7)
    content = b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"
    for i in range(n_docs):
        flags = ("MASQUE_PS",) if rng.random() < 0.1 else ()
        day = 1 + i % 28
        dr = document_reference(
            content,
            ins_system=SYSTEM_NIR,
            ins_value=nir,
            unique_id=f"1.2.250.1.999.77.{i}",
            type_code=rng.choice(TYPES),
            title=f"Document {i}",
            date=f"2026-0{1 + i % 9}-{day:02d}T10:00:00+01:00",
            author_idnps="810002345675",
            author_name="Charles DAVID",
            flags=flags,
        )
        b = parse_provide_bundle(
            provide_bundle([(dr, None)], ins_system=SYSTEM_NIR, ins_value=nir), max_document_bytes=10**6
        )
        with rt.engine.begin() as conn:
            publish.publish(conn, rt, DOCTOR, b, now)
    return nir


def policy_off() -> None:
    """Measurement only: open every record and keep only the status filter."""

    def open_record(conn, rt, actor, row, *, attempted, history=False, hide_refusal=False, targets=(), facts=None):  # type: ignore[no-untyped-def]  # noqa: E501
        # No consents loaded, no decision: only what a search does without a policy.
        permitted = Decision(Effect.PERMIT, "OFF", AccessMode.NORMAL)
        acc = RecordAccess(permitted, "professional", actor.id, TypeRule(True, frozenset()), True)
        return access.Opened(row.id, None, acc, access.context(rt, history=history), actor)  # type: ignore[arg-type]

    def condition(self: access.Opened) -> ColumnElement[bool]:
        return document.c.availability.in_(["approved", "archived"])

    def record_by_ins(conn, oid, value):  # type: ignore[no-untyped-def]
        from dmp.domain.ins import Ins

        row = records.find_by_ins(conn, Ins(value, oid))  # the record without its consents
        return (row, None) if row is not None else None

    access.open_record = open_record  # type: ignore[assignment]
    access.Opened.condition = condition  # type: ignore[method-assign]
    consents.record_by_ins = record_by_ins  # type: ignore[assignment]


def measure(rt: Runtime, nir: str, n: int) -> list[float]:
    params = [("patient.identifier", f"{SYSTEM_NIR}|{nir}"), ("status", "current"), ("_total", "accurate")]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with rt.engine.begin() as conn:
            page = search.search_documents(conn, rt, DOCTOR, params)
            search.searchset(page, rt.fhir_base, "DocumentReference", params)
        times.append(time.perf_counter() - t)
    return times


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--docs", type=int, default=1000)
    args = ap.parse_args()
    url = fresh_database(postgres_url(), "dmp_bench_policy")
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    metadata.create_all(engine)
    tmp = Path(tempfile.mkdtemp(prefix="dmp-bench-policy-"))
    rt = Runtime(
        Settings(var_dir=tmp, database_url=url),
        engine,
        KeyRing(b"b" * 32),
        FileBlobStore(tmp / "blobs", fsync=False),
    )
    print(f"Chargement de {args.docs} documents…", file=sys.stderr)
    nir = load(rt, args.docs)
    with engine.begin() as conn:  # fresh statistics, as autovacuum would give a live server
        conn.exec_driver_sql("ANALYZE")
    saved = (access.open_record, access.Opened.condition, consents.record_by_ins)
    on_runs, off_runs = [], []
    for run in range(args.runs):
        measure(rt, nir, 20)  # warm-up
        on = measure(rt, nir, args.requests)
        policy_off()
        measure(rt, nir, 20)
        off = measure(rt, nir, args.requests)
        access.open_record, access.Opened.condition, consents.record_by_ins = saved  # type: ignore[method-assign]
        on_runs.append((pct(on, 0.5), pct(on, 0.95)))
        off_runs.append((pct(off, 0.5), pct(off, 0.95)))
        print(
            f"run {run + 1}: policy on p50 {on_runs[-1][0]:.2f} ms p95 {on_runs[-1][1]:.2f} ms | "
            f"off p50 {off_runs[-1][0]:.2f} ms p95 {off_runs[-1][1]:.2f} ms"
        )
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    on50, on95, off50, off95 = med(on_runs, 0), med(on_runs, 1), med(off_runs, 0), med(off_runs, 1)
    print(f"\n| ITI-67, 1 record of {args.docs} documents, page of 20 + total | p50 (ms) | p95 (ms) |")
    print("| --- | --- | --- |")
    print(f"| policy on | {on50:.2f} | {on95:.2f} |")
    print(f"| policy off (measurement only) | {off50:.2f} | {off95:.2f} |")
    print(f"| overhead | {100 * (on50 / off50 - 1):+.1f} % | {100 * (on95 / off95 - 1):+.1f} % |")
    engine.dispose()


if __name__ == "__main__":
    main()
