#!/usr/bin/env python
"""Issue 12's figures: the cost of ingestion at publication, and ``$summary`` on a 1,000-document record.

    PYTHONPATH=src python bench/bench_ingest.py [--blocks 12] [--block 20] [--summary-docs 1000]

Both on PostgreSQL, in a database ``dmp_bench_ingest`` recreated each run, with the code of the
working tree (``PYTHONPATH=src``; the commit is printed).

1. **Ingestion on / off**, in-process: ``publish.publish`` of one level-3 CDA per transaction
   (the ITI-65 service path without HTTP: coherence, policy, blob written with fsync, rows, trail,
   ingestion), alternating blocks of ``--block`` publications with ingestion on and off, the same
   documents in the same order on both sides (the ANS examples ``VSM_1.4_2022.01.xml`` and
   ``CR-BIO_demo_glycemie.xml`` from src/dmp/demo/data, alternately, their INS and ids rewritten
   per record and per copy as the demo loader does: ``dmp.demo.recordtarget.for_patient``).
   "Off" replaces ``dmp.services.ingest.ingest_documents`` by a function returning no outcome,
   in this process only (a bench switch, no production setting): no facts, no full-text index
   rows, no ingestion status. Reports the throughput of each side (publications per second of
   time spent in ``publish`` + commit), p50 / p95 latency, and the cost of ingestion as
   ``1 - on / off`` of throughput, median over block pairs.
2. **$summary**, through HTTP against the real server (``uvicorn --workers 2``, bench_mhd.py's
   start): one record receives ``--summary-docs`` level-3 CDA (the five level-3 examples of
   src/dmp/demo/data in turn, ingestion on) by the service in-process; then
   ``GET /fhir/Patient/{id}/$summary`` sequentially, 1 client, ``--summary-runs`` runs of
   ``--summary-requests`` requests; p50 / p95 per run and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_mhd as mhd
import httpx

ROOT = Path(__file__).resolve().parent
DB_NAME = "dmp_bench_ingest"
INGEST_DOCS = ("VSM_1.4_2022.01.xml", "CR-BIO_demo_glycemie.xml")
LEVEL3_DOCS = (
    "VSM_1.4_2022.01.xml",
    "CR-BIO_demo_glycemie.xml",
    "LDL-SES_2022.01.xml",
    "VAC_2023.01.xml",
    "BIO-TROD_2024.01_COVID-19.xml",
)
N_RECORDS = 8  # publication records of part 1; the summary record is the ninth


def examples() -> dict[str, bytes]:
    data = ROOT.parent / "src" / "dmp" / "demo" / "data"
    return {p.name: p.read_bytes() for p in data.glob("*.xml")}


class Bench:
    def __init__(self, url: str, var_dir: Path) -> None:
        from dmp.domain.actor import Actor, ActorKind
        from dmp.services.context import Runtime
        from dmp.store.blobs import FileBlobStore
        from dmp.store.crypto import KeyRing
        from dmp.store.db import make_engine, upgrade

        self.settings = mhd.bench_settings(var_dir, url)
        self.engine = make_engine(url, pool_size=2)
        upgrade(self.engine)
        self.rt = Runtime(
            settings=self.settings,
            engine=self.engine,
            keyring=KeyRing(self.settings.master_key()),
            blobs=FileBlobStore(self.settings.blob_dir),  # fsync, as in production
        )
        card = mhd.CARD
        self.actor = Actor(
            kind=ActorKind.PROFESSIONAL,
            id="8" + card["rpps"],
            name=card["name"],
            profession=card["profession"],
            specialty=card["specialty"],
        )
        self.idents = mhd.bench_identities(N_RECORDS + 1)
        self.pids = []
        from dmp.demo.loader import qualified_record
        from dmp.domain.ins import SYSTEM_NIR, parse_ins
        from dmp.services import records

        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            for nir, traits in self.idents:
                ins = parse_ins(SYSTEM_NIR, nir, allow_test=False)
                self.pids.append(
                    records.create(conn, self.rt, self.actor, qualified_record(ins, traits, now), now)
                )
        self.examples = examples()
        self.copies = 0

    def request(self, record: int, name: str) -> Any:
        """A ProvideRequest of example ``name`` for record ``record``, with ids of its own."""
        from dmp.cda import parse_header
        from dmp.demo.bundles import bundle_from_cda
        from dmp.demo.recordtarget import Target
        from dmp.domain.ins import SYSTEM_NIR, parse_ins
        from dmp.fhir.bundle import parse_provide_bundle

        nir, traits = self.idents[record]
        self.copies += 1
        target = Target(parse_ins(SYSTEM_NIR, nir, allow_test=False), traits, f"{os.getpid()}.{self.copies}")
        from dmp.demo.recordtarget import for_patient

        content = for_patient(self.examples[name], target)
        bundle = bundle_from_cda(content, parse_header(content), ins_system=SYSTEM_NIR, ins_value=nir)
        return parse_provide_bundle(bundle, max_document_bytes=self.settings.max_document_bytes)

    def publish(self, req: Any) -> tuple[float, Any]:
        from dmp.services import publish

        t = time.perf_counter()
        with self.engine.begin() as conn:
            out = publish.publish(conn, self.rt, self.actor, req, datetime.now(UTC))
        return time.perf_counter() - t, out


def ingestion_off() -> Iterator[None]:
    """Swap ``ingest.ingest_documents`` for a no-op in this process (the bench's switch)."""
    from dmp.services import ingest

    real = ingest.ingest_documents
    ingest.ingest_documents = lambda *_a, **_k: []  # type: ignore[assignment]
    try:
        yield
    finally:
        ingest.ingest_documents = real


def ingestion_cost(b: Bench, blocks: int, block: int) -> dict[str, Any]:
    import contextlib

    off_ctx = contextlib.contextmanager(ingestion_off)
    for i in range(10):  # warm-up: imports, caches, both paths
        b.publish(b.request(i % N_RECORDS, INGEST_DOCS[i % 2]))
        with off_ctx():
            b.publish(b.request(i % N_RECORDS, INGEST_DOCS[i % 2]))
    pairs: list[dict[str, Any]] = []
    lat: dict[str, list[float]] = {"on": [], "off": []}
    for n in range(blocks):
        reqs = {
            side: [b.request(i % N_RECORDS, INGEST_DOCS[i % 2]) for i in range(block)]
            for side in ("on", "off")
        }
        pair: dict[str, Any] = {"load_avg": os.getloadavg()[0]}
        for side in ("on", "off") if n % 2 == 0 else ("off", "on"):
            mhd.wait_quiet(2.0)
            b0 = mhd.machine_busy()
            t0 = time.perf_counter()
            times = []
            ctx = off_ctx() if side == "off" else contextlib.nullcontext()
            with ctx:
                for req in reqs[side]:
                    dt, out = b.publish(req)
                    times.append(dt)
            wall = time.perf_counter() - t0
            lat[side].extend(times)
            s = sorted(times)
            pair[side] = {
                "rate": len(times) / sum(times),
                "p50_ms": mhd.percentile(s, 0.5) * 1000,
                "p95_ms": mhd.percentile(s, 0.95) * 1000,
                "machine_cores": (mhd.machine_busy() - b0) / wall,
            }
        pair["cost"] = 1 - pair["on"]["rate"] / pair["off"]["rate"]
        pairs.append(pair)
        mhd.log(
            f"bloc {n + 1}: on {pair['on']['rate']:.1f}/s p50 {pair['on']['p50_ms']:.1f} ms | "
            f"off {pair['off']['rate']:.1f}/s p50 {pair['off']['p50_ms']:.1f} ms | coût {pair['cost']:.1%}"
        )
    with b.engine.connect() as conn:
        from sqlalchemy import text

        facts = conn.execute(text("SELECT count(*) FROM clinical_fact")).scalar_one()
        tokens = conn.execute(text("SELECT count(*) FROM document_token")).scalar_one()
    out: dict[str, Any] = {"pairs": pairs, "facts_total": facts, "index_rows_total": tokens}
    for side in ("on", "off"):
        s = sorted(lat[side])
        out[side] = {
            "rate_median": statistics.median(p[side]["rate"] for p in pairs),
            "p50_ms_median": statistics.median(p[side]["p50_ms"] for p in pairs),
            "p95_ms_median": statistics.median(p[side]["p95_ms"] for p in pairs),
            "p50_ms_pooled": mhd.percentile(s, 0.5) * 1000,
            "p95_ms_pooled": mhd.percentile(s, 0.95) * 1000,
            "n": len(s),
        }
    costs = [p["cost"] for p in pairs]
    out["cost_median"] = statistics.median(costs)
    out["cost_min"], out["cost_max"] = min(costs), max(costs)
    out["p95_ratio_median"] = statistics.median(p["on"]["p95_ms"] / p["off"]["p95_ms"] for p in pairs)
    return out


def profile_ingestion(b: Bench, n: int) -> list[dict[str, Any]]:
    """cProfile of ``n`` publications with ingestion on: where ingestion's time goes (per publication)."""
    import cProfile
    import pstats

    reqs = [b.request(i % N_RECORDS, INGEST_DOCS[i % 2]) for i in range(n)]
    prof = cProfile.Profile()
    prof.enable()
    for req in reqs:
        b.publish(req)
    prof.disable()
    rows = []
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        if short.startswith("dmp/") or "lxml" in short or "snowball" in short.lower():
            rows.append({"func": f"{func} ({short}:{line})", "cum_ms": ct * 1000 / n, "calls": nc / n})
    rows.sort(key=lambda r: -r["cum_ms"])
    return rows[:40]


def profile_summary(b: Bench, pid: Any, n: int) -> dict[str, Any]:
    """In-process, the work of the ``$summary`` route (``api.fhir_routes.patient_summary``) ``n`` times:
    stage times, then a cProfile (cumulative ms per summary) of the same loop."""
    import cProfile
    import pstats

    import orjson

    from dmp.fhir.common import dumps, instant
    from dmp.fhir.patient import patient_resource
    from dmp.fhir.summary import summary_bundle
    from dmp.services import consents, facts

    stages: dict[str, float] = {"record_facts (SQL, opening, trail)": 0.0, "orjson.loads": 0.0}
    stages |= {"summary_bundle": 0.0, "dumps": 0.0}

    def once() -> int:
        t0 = time.perf_counter()
        with b.engine.begin() as conn:
            row = consents.record_by_id(conn, pid)[0]  # type: ignore[index]
            shown = facts.record_facts(conn, b.rt, b.actor, pid, (*facts.FACT_TYPES, "Consent"))
        t1 = time.perf_counter()
        resources = [orjson.loads(f.resource_json) for f in shown]
        t2 = time.perf_counter()
        bundle = summary_bundle(
            patient_resource(row), resources, base=b.rt.fhir_base, now=instant(b.rt.now())
        )
        t3 = time.perf_counter()
        dumps(bundle)
        t4 = time.perf_counter()
        for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[k] += dt
        return len(shown)

    shown = once()
    for k in stages:
        stages[k] = 0.0
    for _ in range(n):
        once()
    out: dict[str, Any] = {"facts_read": shown, "stages_ms": {k: v * 1000 / n for k, v in stages.items()}}
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        once()
    prof.disable()
    rows = []
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        if (
            short.startswith(("dmp/", "sqlalchemy/engine", "psycopg/"))
            or "AESGCM" in func
            or "orjson" in func
        ):
            rows.append({"func": f"{func} ({short}:{line})", "cum_ms": ct * 1000 / n, "calls": nc / n})
    rows.sort(key=lambda r: -r["cum_ms"])
    out["cprofile"] = rows[:40]
    return out


def summary_bench(b: Bench, url: str, docs: int, runs: int, requests: int, profile: bool) -> dict[str, Any]:
    record = N_RECORDS  # the ninth record
    pid = b.pids[record]
    t = time.perf_counter()
    for i in range(docs):
        b.publish(b.request(record, LEVEL3_DOCS[i % len(LEVEL3_DOCS)]))
        if (i + 1) % 200 == 0:
            mhd.log(f"$summary : {i + 1} documents publiés ({time.perf_counter() - t:.0f} s)")
    load_s = time.perf_counter() - t
    with b.engine.connect() as conn:
        from sqlalchemy import text

        n_facts = conn.execute(
            text("SELECT count(*) FROM clinical_fact WHERE patient_id = :p"), {"p": pid}
        ).scalar_one()
        n_docs = conn.execute(
            text("SELECT count(*) FROM document WHERE patient_id = :p"), {"p": pid}
        ).scalar_one()
        conn.execute(text("ANALYZE"))
    b.engine.dispose()
    var_dir, card_dir = mhd.prepare_var_dir(url)
    server = mhd.start_server(url, var_dir, card_dir, 2)
    try:
        token = mhd.get_token(server)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        path = f"/fhir/Patient/{pid}/$summary"
        per_run = []
        size = 0
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
            for _ in range(10):
                r = client.get(path)
                if r.status_code != 200:
                    raise RuntimeError(f"$summary : {r.status_code} {r.text[:300]}")
                size = len(r.content)
            entries = len(r.json().get("entry", []))
            for n in range(runs):
                mhd.wait_quiet(3.0)
                b0, t0 = mhd.machine_busy(), time.perf_counter()
                lat = []
                for _ in range(requests):
                    s = time.perf_counter()
                    r = client.get(path)
                    lat.append(time.perf_counter() - s)
                    if r.status_code != 200:
                        raise RuntimeError(f"$summary : {r.status_code}")
                wall = time.perf_counter() - t0
                lat.sort()
                per_run.append({
                    "p50_ms": mhd.percentile(lat, 0.5) * 1000,
                    "p95_ms": mhd.percentile(lat, 0.95) * 1000,
                    "p99_ms": mhd.percentile(lat, 0.99) * 1000,
                    "machine_cores": (mhd.machine_busy() - b0) / wall,
                    "load_avg": os.getloadavg()[0],
                })  # fmt: skip
                last = per_run[-1]
                mhd.log(f"$summary run {n + 1}: p50 {last['p50_ms']:.1f} ms p95 {last['p95_ms']:.1f} ms")
    finally:
        mhd.stop_server(server)
    prof = profile_summary(b, pid, 5) if profile else {}
    return {
        "profile": prof,
        "documents": n_docs,
        "facts": n_facts,
        "load_seconds": load_s,
        "bundle_bytes": size,
        "bundle_entries": entries,
        "runs": per_run,
        "p50_ms_median": statistics.median(r["p50_ms"] for r in per_run),
        "p95_ms_median": statistics.median(r["p95_ms"] for r in per_run),
        "p95_ms_max": max(r["p95_ms"] for r in per_run),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=12, help="blocks per side (on / off alternate)")
    ap.add_argument("--block", type=int, default=20, help="publications per block")
    ap.add_argument("--summary-docs", type=int, default=1000)
    ap.add_argument("--summary-runs", type=int, default=3)
    ap.add_argument("--summary-requests", type=int, default=100)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-summary", action="store_true")
    ap.add_argument("--profile", type=int, default=0, help="cProfile N publications with ingestion (after)")
    args = ap.parse_args()
    from dmp.devtools.pgcluster import fresh_database, postgres_url

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT.parent, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src"], cwd=ROOT.parent, capture_output=True, text=True
    )
    mhd.log(f"code mesuré : src/ du commit {commit}{' (src/ modifié !)' if dirty.stdout.strip() else ''}")
    url = fresh_database(postgres_url(), DB_NAME)
    mhd.DB_NAME = DB_NAME
    var_dir = Path(tempfile.mkdtemp(prefix="dmp-bench-ingest-"))
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    b = Bench(url, var_dir)
    result: dict[str, Any] = {
        "command": " ".join(["python", "bench/bench_ingest.py", *sys.argv[1:]]),
        "commit": commit,
        "started": started.isoformat(timespec="seconds"),
        "load_avg_start": load_start,
    }
    if not args.skip_ingest:
        result["ingestion"] = ing = ingestion_cost(b, args.blocks, args.block)
        on, off = ing["on"], ing["off"]
        print(
            f"\ningestion on : {on['rate_median']:.1f} publications/s, "
            f"p50 {on['p50_ms_median']:.1f} ms, p95 {on['p95_ms_median']:.1f} ms\n"
            f"ingestion off: {off['rate_median']:.1f} publications/s, "
            f"p50 {off['p50_ms_median']:.1f} ms, p95 {off['p95_ms_median']:.1f} ms\n"
            f"cost of ingestion (1 - on/off throughput, median of {args.blocks} block pairs): "
            f"{ing['cost_median']:.1%} (min {ing['cost_min']:.1%}, max {ing['cost_max']:.1%}); "
            f"p95 on/off {ing['p95_ratio_median']:.2f}",
            flush=True,
        )
    if args.profile:
        result["profile"] = prof = profile_ingestion(b, args.profile)
        print(f"\ncProfile, {args.profile} publications with ingestion, cumulative ms per publication:")
        for r in prof:
            print(f"  {r['cum_ms']:8.2f} ms {r['calls']:7.1f} calls  {r['func']}")
    if not args.skip_summary:
        result["summary"] = s = summary_bench(
            b, url, args.summary_docs, args.summary_runs, args.summary_requests, bool(args.profile)
        )
        print(
            f"\n$summary on {s['documents']} documents ({s['facts']} facts, {s['bundle_entries']} entries, "
            f"{s['bundle_bytes'] / 1024:.0f} KiB): p50 {s['p50_ms_median']:.1f} ms, "
            f"p95 {s['p95_ms_median']:.1f} ms "
            f"(median of {args.summary_runs} runs; worst p95 {s['p95_ms_max']:.1f} ms)",
            flush=True,
        )
        if s["profile"]:
            sp = s["profile"]
            print(f"in-process $summary ({sp['facts_read']} facts read), ms per summary:")
            for k, v in sp["stages_ms"].items():
                print(f"  {v:8.1f}  {k}")
            print("cProfile, cumulative ms per summary:")
            for r in sp["cprofile"]:
                print(f"  {r['cum_ms']:8.2f} ms {r['calls']:8.1f} calls  {r['func']}")
    result["load_avg_end"] = os.getloadavg()
    result["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    mhd.RESULTS.mkdir(parents=True, exist_ok=True)
    path = mhd.RESULTS / f"ingest-{commit}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"load average at start {load_start}, at end {result['load_avg_end']}; results: {path}")
    import shutil

    shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
