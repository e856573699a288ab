#!/usr/bin/env python
"""Cost of the audit trail (issue 5), trail on vs off in the same run, on PostgreSQL.

    python bench/bench_trail.py [--runs 5] [--requests 300]

In-process, at the service level, like bench_policy.py:
* ITI-67 search (one record of 200 documents, first page) and ITI-68 retrieve (a 20 KB
  document), sequential: p50/p95 with the trail, and with ``dmp.services.trail.record``
  replaced by a no-op for measurement only (inside this process; nothing ships a switch);
* ITI-65 publication throughput with 8 threads, each on its own record (the chain locks
  only the record's head, so unrelated patients must not wait for each other).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dmp.demo.bundles import document_reference, provide_bundle
from dmp.devtools.pgcluster import fresh_database, postgres_url
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
from dmp.domain.ins import SYSTEM_NIR, compute_key, parse_ins
from dmp.fhir.bundle import parse_provide_bundle
from dmp.fhir.patient import CreationRequest
from dmp.services import documents, publish, records, search, trail
from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.blobs import FileBlobStore
from dmp.store.crypto import KeyRing
from dmp.store.db import make_engine, upgrade

DOCTOR = Actor(
    ActorKind.PROFESSIONAL,
    "810001234565",
    "Dr Muller",
    profession="10",
    specialty="SM26",
    software="bench",
    source_address="127.0.0.1",
)
CONTENT = base64.b64encode(os.urandom(15_000))[:20_000]  # 20 KB


def nir(i: int) -> str:
    first13 = f"2800575056{i:03d}"
    return first13 + compute_key(first13)


def create(rt: Runtime, i: int) -> str:
    n = nir(i)
    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        records.create(
            conn,
            rt,
            DOCTOR,
            CreationRequest(
                ins=parse_ins(SYSTEM_NIR, n, allow_test=False),
                traits=StrictTraits(
                    birth_family_name=f"BENCH{i}",
                    birth_given_names=("Marie",),
                    sex=Sex.FEMALE,
                    birth_date=date(1980, 5, 17),
                    birth_place_insee="75056",
                ),
                identity_status=IdentityStatus.QUAL,
                usual_family_name=None,
                usual_given_name=None,
                consent_at=now,
                consent_channel="professional-software",
            ),
            now,
        )
    return n


_uid = iter(range(10**9))


def publish_one(rt: Runtime, n: str) -> str:
    dr = document_reference(
        CONTENT,
        ins_system=SYSTEM_NIR,
        ins_value=n,
        unique_id=f"1.2.250.1.999.88.{os.getpid()}.{next(_uid)}",
        type_code="11488-4",
        title="CR",
        date="2026-03-10T10:00:00+01:00",
        author_idnps=DOCTOR.id,
        author_name="Charles MULLER",
    )
    b = parse_provide_bundle(
        provide_bundle([(dr, None)], ins_system=SYSTEM_NIR, ins_value=n), max_document_bytes=10**7
    )
    with rt.engine.begin() as conn:
        return str(publish.publish(conn, rt, DOCTOR, b, datetime.now(UTC)).document_ids[0])


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def throughput(rt: Runtime, nirs: list[str], per_thread: int) -> float:
    barrier = threading.Barrier(len(nirs) + 1)

    def work(n: str) -> None:
        barrier.wait()
        for _ in range(per_thread):
            publish_one(rt, n)

    threads = [threading.Thread(target=work, args=(n,)) for n in nirs]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return len(nirs) * per_thread / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--per-thread", type=int, default=40)
    args = ap.parse_args()
    url = fresh_database(postgres_url(), "dmp_bench_trail")
    engine = make_engine(url, pool_size=12)
    upgrade(engine)
    tmp = Path(tempfile.mkdtemp(prefix="dmp-bench-trail-"))
    rt = Runtime(
        Settings(var_dir=tmp, database_url=url),
        engine,
        KeyRing(b"t" * 32),
        FileBlobStore(tmp / "blobs", fsync=False),
    )
    print("Chargement…", file=sys.stderr)
    target = create(rt, 1)
    doc_ids = [publish_one(rt, target) for _ in range(200)]
    writers = [create(rt, 100 + i) for i in range(8)]
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    params = [("patient.identifier", f"{SYSTEM_NIR}|{target}"), ("status", "current")]

    def do_search() -> None:
        with engine.begin() as conn:
            search.searchset(
                search.search_documents(conn, rt, DOCTOR, params), rt.fhir_base, "DocumentReference", params
            )

    def do_retrieve() -> None:
        from uuid import UUID

        with engine.begin() as conn:
            documents.retrieve(conn, rt, DOCTOR, UUID(doc_ids[7]))

    real_record = trail.record
    results: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("search on", "search off", "retrieve on", "retrieve off")
    }
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for run in range(args.runs):
        for mode in ("on", "off"):
            trail.record = real_record if mode == "on" else (lambda *a, **k: None)  # type: ignore[assignment]
            timed(do_search, 20)
            s = timed(do_search, args.requests)
            r = timed(do_retrieve, args.requests)
            results[f"search {mode}"].append((pct(s, 0.5), pct(s, 0.95)))
            results[f"retrieve {mode}"].append((pct(r, 0.5), pct(r, 0.95)))
            rates[mode].append(throughput(rt, writers, args.per_thread))
        trail.record = real_record  # type: ignore[assignment]
        print(
            f"run {run + 1}: "
            + ", ".join(f"{k} p95 {v[-1][1]:.2f} ms" for k, v in results.items())
            + f", publish 8 threads on {rates['on'][-1]:.0f}/s off {rates['off'][-1]:.0f}/s",
            file=sys.stderr,
        )

    def med(key: str, i: int) -> float:
        return statistics.median(x[i] for x in results[key])

    print(f"\nMedians over {args.runs} runs (PostgreSQL, in-process, service level):\n")
    print("| scenario | trail on p50 | trail on p95 | trail off p50 | trail off p95 | cost at p95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for what, label in (
        ("search", "ITI-67 search, 200-document record"),
        ("retrieve", "ITI-68 retrieve, 20 KB"),
    ):
        on50, on95, off50, off95 = (
            med(f"{what} on", 0),
            med(f"{what} on", 1),
            med(f"{what} off", 0),
            med(f"{what} off", 1),
        )
        print(
            f"| {label} | {on50:.2f} ms | {on95:.2f} ms | {off50:.2f} ms | {off95:.2f} ms | "
            f"{100 * (on95 / off95 - 1):+.1f} % |"
        )
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(
        f"\n| ITI-65, 8 threads on 8 records | trail on {on:.0f} docs/s | trail off {off:.0f} docs/s | "
        f"ratio {on / off:.2f} |"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
