#!/usr/bin/env python
"""Cost of the audit trail (issue 5), trail on vs off in the same run, on PostgreSQL.

    python bench/bench_trail.py [--runs 5] [--requests 300] [--per-client 40] [--level both] [--floor]

Two levels, each comparing the code as shipped with the same code whose trail writes are
no-ops (for measurement only: ``bench/untraced_app.py`` and a patch inside this process;
nothing in ``src/`` ships a switch):

* **http** (the IHE transactions as a client sees them): two real servers (uvicorn, 2
  workers each, as deployed) on the same database, one built with the trail and one without. Sequential
  ITI-67 searches (one record of 200 documents, first page) and ITI-68 retrievals (a 20 KB
  document) over one keep-alive connection, alternating which server goes first in each run;
  then the same from 8 client processes, and ITI-65 publications from 8 client processes, each
  on its own record (the chain locks
  only the record's head, so unrelated patients must not wait for each other).
* with ``--floor``, two more servers for the sequential part: one whose trace is the cheapest
  durable write there can be (one bigserial row in the action's transaction), and the shipped
  trail on sessions with ``synchronous_commit=off``, and the cheapest trace with it (measurement
  only). They show what any durable write on a read's path costs on this machine, what waiting
  for the flush costs, and the least any trace in the read's transaction can cost.
* **service** (the use case alone, without HTTP, authentication or JSON rendering): the same
  search and retrieval in-process, and publication from 8 threads. This isolates the trace's
  own cost, which the HTTP level dilutes in the fixed cost of a request.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from dmp.demo.bundles import document_reference, provide_bundle
from dmp.demo.loader import qualified_record
from dmp.devtools.pgcluster import fresh_database, postgres_url
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import Sex, StrictTraits
from dmp.domain.ins import SYSTEM_NIR, compute_key, parse_ins
from dmp.fhir.bundle import parse_provide_bundle
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
# 20 KB, declared text/xml: a CDA (the server checks the bytes against the declared format and type).
CONTENT = (
    b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
    b'<code code="11488-4" codeSystem="2.16.840.1.113883.6.1"/><title>CR</title><text>'
    + base64.b64encode(os.urandom(15_000))[:19_800]
    + b"</text></ClinicalDocument>"
)


def nir(i: int) -> str:
    first13 = f"2800575056{i:03d}"
    return first13 + compute_key(first13)


def create(rt: Runtime, i: int) -> str:
    n = nir(i)
    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        traits = StrictTraits(
            birth_family_name=f"BENCH{i}",
            birth_given_names=("Marie",),
            sex=Sex.FEMALE,
            birth_date=date(1980, 5, 17),
            birth_place_insee="75056",
        )
        records.create(
            conn, rt, DOCTOR, qualified_record(parse_ins(SYSTEM_NIR, n, allow_test=False), traits, now), now
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


def summary_rows(results: dict[str, list[tuple[float, float]]]) -> list[str]:
    def med(key: str, i: int) -> float:
        return statistics.median(x[i] for x in results[key])

    rows = [
        "| scenario | trail on p50 | trail on p95 | trail off p50 | trail off p95 "
        "| cost at p50 | cost at p95 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for what, label in (
        ("search", "ITI-67 search, 200-document record"),
        ("retrieve", "ITI-68 retrieve, 20 KB"),
    ):
        on50, on95 = med(f"{what} on", 0), med(f"{what} on", 1)
        off50, off95 = med(f"{what} off", 0), med(f"{what} off", 1)
        rows.append(
            f"| {label} | {on50:.2f} ms | {on95:.2f} ms | {off50:.2f} ms | {off95:.2f} ms | "
            f"{100 * (on50 / off50 - 1):+.1f} % | {100 * (on95 / off95 - 1):+.1f} % |"
        )
    return rows


def rate_row(label: str, rates: dict[str, list[float]], unit: str, prefix: str = "") -> str:
    on, off = statistics.median(rates[prefix + "on"]), statistics.median(rates[prefix + "off"])
    return f"| {label} | trail on {on:.0f} {unit} | trail off {off:.0f} {unit} | ratio {on / off:.2f} |"


def load(rt: Runtime, n_docs: int, readers: int = 1) -> tuple[list[str], list[list[str]], list[str]]:
    """``readers`` records of ``n_docs`` documents (the first is the sequential target) and 8
    empty records for the publications."""
    targets = [create(rt, 1 + i) for i in range(readers)]
    doc_ids = [[publish_one(rt, t) for _ in range(n_docs)] for t in targets]
    writers = [create(rt, 100 + i) for i in range(8)]
    with rt.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return targets, doc_ids, writers


def service_level(args: argparse.Namespace, url: str) -> list[str]:
    engine = make_engine(url, pool_size=12)
    upgrade(engine)
    tmp = Path(tempfile.mkdtemp(prefix="dmp-bench-trail-"))
    rt = Runtime(
        Settings(var_dir=tmp, database_url=url),
        engine,
        KeyRing(b"t" * 32),
        FileBlobStore(tmp / "blobs", fsync=False),
    )
    print("Chargement (niveau service)…", file=sys.stderr)
    (target,), (doc_ids,), writers = load(rt, 200)
    params = [("patient.identifier", f"{SYSTEM_NIR}|{target}"), ("status", "current")]

    def do_search() -> None:
        with engine.begin() as conn:
            search.searchset(
                search.search_documents(conn, rt, DOCTOR, params), rt.fhir_base, "DocumentReference", params
            )

    def do_retrieve() -> None:
        with engine.begin() as conn:
            documents.retrieve(conn, rt, DOCTOR, UUID(doc_ids[7]))

    real_record = trail.record
    results: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("search on", "search off", "retrieve on", "retrieve off")
    }
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for run in range(args.runs):
        for mode in ("on", "off") if run % 2 == 0 else ("off", "on"):
            trail.record = real_record if mode == "on" else (lambda *a, **k: None)  # type: ignore[assignment]
            timed(do_search, 20)
            s = timed(do_search, args.requests)
            r = timed(do_retrieve, args.requests)
            results[f"search {mode}"].append((pct(s, 0.5), pct(s, 0.95)))
            results[f"retrieve {mode}"].append((pct(r, 0.5), pct(r, 0.95)))
            rates[mode].append(throughput(rt, writers, args.per_thread))
        trail.record = real_record  # type: ignore[assignment]
        print(
            f"service, run {run + 1}: "
            + ", ".join(f"{k} p95 {v[-1][1]:.2f} ms" for k, v in results.items())
            + f", publish 8 threads on {rates['on'][-1]:.0f}/s off {rates['off'][-1]:.0f}/s",
            file=sys.stderr,
        )
    engine.dispose()
    return [
        f"Service level (in-process, no HTTP), medians over {args.runs} runs:",
        "",
        *summary_rows(results),
        "",
        "| scenario | on | off | ratio |",
        "| --- | --- | --- | --- |",
        rate_row("ITI-65 publication, 8 threads on 8 records", rates, "docs/s"),
    ]


def http_level(args: argparse.Namespace, url: str) -> list[str]:
    import bench_mhd as mhd
    import httpx

    from dmp.bootstrap import build_runtime

    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    engine.dispose()
    mhd.DB_NAME = url.rsplit("/", 1)[-1]  # whose PostgreSQL backends the CPU figures count
    var_dir, card_dir = mhd.prepare_var_dir(url)
    rt = build_runtime(mhd.bench_settings(var_dir, url), pool_size=4)
    print("Chargement (niveau HTTP)…", file=sys.stderr)
    targets, doc_ids, writers = load(rt, 200, readers=8)
    target = targets[0]
    rt.engine.dispose()
    servers = {
        "on": mhd.start_server(url, var_dir, card_dir, workers=args.workers),
        "off": mhd.start_server(
            url, var_dir, card_dir, workers=args.workers, factory="untraced_app:asgi_app"
        ),
    }
    if args.floor:
        servers["floor"] = mhd.start_server(
            url, var_dir, card_dir, workers=args.workers, factory="untraced_app:floor_app"
        )
        # The trail as shipped, on sessions that do not wait for the WAL flush at commit
        # (not an option of the product: ADR 0006 keeps read traces durable before the response).
        nosync = {"PGOPTIONS": "-c synchronous_commit=off"}
        servers["nosync"] = mhd.start_server(url, var_dir, card_dir, workers=args.workers, extra_env=nosync)
        servers["floornosync"] = mhd.start_server(
            url, var_dir, card_dir, workers=args.workers, factory="untraced_app:floor_app", extra_env=nosync
        )
    search_path = mhd.SEARCH_PATH.format(system=SYSTEM_NIR, nir=target)
    binary_path = f"/fhir/Binary/{doc_ids[0][7]}"
    results: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    rates: dict[str, list[float]] = collections.defaultdict(list)
    same = {"pub_nirs": writers, "target_nir": target, "binary_path": binary_path}
    spread = {**same, "spread_nirs": targets, "binary_paths": [f"/fhir/Binary/{ids[7]}" for ids in doc_ids]}
    loaded: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    cpu: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    sizes = dataclasses.replace(mhd.QUICK, time_limit=60.0)

    def sequential(client: httpx.Client, path: str, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            r = client.get(path)
            out.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"{path} : {r.status_code} {r.text[:300]}")
        return out

    try:
        for run in range(args.runs):
            modes = [m for m in ("on", "floor", "nosync", "floornosync", "off") if m in servers]
            for mode in modes if run % 2 == 0 else modes[::-1]:
                server = servers[mode]
                mhd.wait_quiet(10.0)
                headers = {"Authorization": f"Bearer {mhd.get_token(server)}", "Accept": "*/*"}
                with httpx.Client(base_url=server.base, headers=headers, timeout=30.0) as client:
                    sequential(client, search_path, 20)
                    sequential(client, binary_path, 20)
                    s = sequential(client, search_path, args.requests)
                    r = sequential(client, binary_path, args.requests)
                results[f"search {mode}"].append((pct(s, 0.5), pct(s, 0.95)))
                results[f"retrieve {mode}"].append((pct(r, 0.5), pct(r, 0.95)))
                if mode != "on" and mode != "off":  # sequential only: about one request's latency
                    continue
                for where, meta in (("same", same), ("spread", spread)):
                    for kind in ("iti67", "iti68"):
                        got = mhd.http_scenario(kind, 8, args.per_client * 5, server, meta, sizes, seed=run)
                        if got["errors"]:
                            raise RuntimeError(f"{kind} : {got['errors']} erreurs, {got['first_error']}")
                        loaded[f"{where} {kind} {mode}"].append((got["p50_ms"], got["p95_ms"]))
                        cpu[f"{where} {kind} {mode}"].append(got["cpu_ms_per_req"])
                        rates[f"{where} {kind} {mode}"].append(got["rate"])
                pub = mhd.http_scenario("iti65", 8, args.per_client, server, same, sizes, seed=run)
                if pub["errors"]:
                    raise RuntimeError(f"ITI-65 : {pub['errors']} erreurs, {pub['first_error']}")
                rates[mode].append(pub["rate"])
            print(
                f"http, run {run + 1}: "
                + ", ".join(f"{k} p95 {v[-1][1]:.2f} ms" for k, v in results.items())
                + f", ITI-65 x8 on {rates['on'][-1]:.0f}/s off {rates['off'][-1]:.0f}/s",
                file=sys.stderr,
            )
    finally:
        for server in servers.values():
            mhd.stop_server(server)

    def variant(title: str, mode: str) -> list[str]:
        """The sequential table with server ``mode`` in the place of the shipped trail."""
        picked = {
            f"{what} {m}": results[f"{what} {src}"]
            for what in ("search", "retrieve")
            for m, src in (("on", mode), ("off", "off"))
        }
        return [f"The same, with {title}:", "", *summary_rows(picked), ""]

    def under_load(where: str) -> dict[str, list[tuple[float, float]]]:
        return {
            k.removeprefix(where + " ").replace("iti67", "search").replace("iti68", "retrieve"): v
            for k, v in loaded.items()
            if k.startswith(where + " ")
        }

    return [
        f"HTTP level ({len(servers)} uvicorn servers, {args.workers} worker(s) each), "
        f"medians over {args.runs} runs.",
        "",
        "One client, sequential requests:",
        "",
        *summary_rows(results),
        "",
        *(
            [
                *variant(
                    "the cheapest durable trace (one bigserial row, same transaction) in place of the trail",
                    "floor",
                ),
                *variant(
                    "the trail as shipped, with synchronous_commit=off (no wait for the WAL flush; "
                    "measurement only)",
                    "nosync",
                ),
                *variant(
                    "the cheapest trace with synchronous_commit=off (the least any trace written in "
                    "the read's transaction can cost; measurement only)",
                    "floornosync",
                ),
            ]
            if args.floor
            else []
        ),
        "8 client processes, all on the same record:",
        "",
        *summary_rows(under_load("same")),
        "",
        "8 client processes, each on its own record (8 records of 200 documents):",
        "",
        *summary_rows(under_load("spread")),
        "",
        "| scenario | on | off | ratio |",
        "| --- | --- | --- | --- |",
        rate_row("ITI-67 search, 8 clients, same record", rates, "req/s", "same iti67 "),
        rate_row("ITI-68 retrieve, 8 clients, same record", rates, "req/s", "same iti68 "),
        rate_row("ITI-67 search, 8 clients, 8 records", rates, "req/s", "spread iti67 "),
        rate_row("ITI-68 retrieve, 8 clients, 8 records", rates, "req/s", "spread iti68 "),
        rate_row("ITI-65 publication, 8 clients on 8 records", rates, "req/s"),
        "",
        "CPU per request under load (ms, medians; server = the uvicorn workers, postgres = its backends):",
        "",
        "| scenario | server on | server off | postgres on | postgres off |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {k} | "
            + " | ".join(
                f"{statistics.median(c[who] for c in cpu[f'{k} {m}']):.2f}"
                for who in ("server", "postgres")
                for m in ("on", "off")
            )
            + " |"
            for k in ("same iti67", "same iti68", "spread iti67", "spread iti68")
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300, help="sequential ITI-67 and ITI-68 requests per run")
    ap.add_argument("--per-thread", type=int, default=40, help="service level: publications per thread")
    ap.add_argument("--per-client", type=int, default=40, help="HTTP level: publications per client")
    ap.add_argument("--level", choices=("http", "service", "both"), default="both")
    ap.add_argument("--workers", type=int, default=2, help="HTTP level: uvicorn workers per server")
    ap.add_argument(
        "--floor", action="store_true", help="HTTP level: also a server whose trace is one tiny durable row"
    )
    args = ap.parse_args()
    out: list[str] = []
    if args.level in ("http", "both"):
        out += http_level(args, fresh_database(postgres_url(), "dmp_bench_trail_http"))
        out.append("")
    if args.level in ("service", "both"):
        out += service_level(args, fresh_database(postgres_url(), "dmp_bench_trail"))
    print("\n" + "\n".join(out))


if __name__ == "__main__":
    main()
