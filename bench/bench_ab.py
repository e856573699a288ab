#!/usr/bin/env python
"""ITI-65 / ITI-67 of two git revisions in one run: A and B servers side by side, rounds interleaved.

    PYTHONPATH=src python bench/bench_ab.py REV_A REV_B [--rounds 6] [--quick]

Written for issue 15 (SE-02, the wider encryption): ``REV_A`` is the code before, ``REV_B`` after;
the figure asked for is the ratio B / A of p50 and p95, measured in one run so that the machine's
load (shared, 2 cores) weighs on both alike.

1. Each revision's ``src/`` is extracted with ``git archive`` to a temporary directory.
2. Each revision loads its own database (``dmp_ab_<commit>``) with its own code, in a subprocess
   whose PYTHONPATH is that snapshot: the schemas (migrations) and the storage formats (sealed
   columns after SE-02) differ, so no row is copied from one to the other. The data set is the
   same for both, built through the services (``records.create``, ``publish.publish``): a target
   record of 200 documents (1 KB PDFs of the 7 bench types, dates spread over ten years) and the 8
   publication records of bench_mhd.py. It is small (no 100,000-document filler: ITI-67 reads one
   record through its index) and rebuilt each run.
3. Both servers run at once (``uvicorn --workers 2`` each, idle when the other is measured).
4. Each round measures every scenario on A and on B back to back, the order alternating
   (A B, then B A) so that drift cancels: ITI-65 one 20 KB document per bundle, 1 client; ITI-67
   the target record's first page of 20, 1 client and 8 clients (bench_mhd.py's clients).
5. Prints, per scenario, the median over rounds of each side's p50 / p95 and the median of the
   per-round ratios B / A; writes bench/results/ab-*.json (every round).

Noise guard: before each measurement a short wait for the machine to be idle (``--quiet-wait``);
no measurement is redone (a redo would favour one side); the CPU other processes took during each
measurement is recorded with it and summarised.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_mhd as mhd
import httpx

ROOT = Path(__file__).resolve().parent
TARGET_DOCS = 200
SCENARIOS = [  # key, label, kind, clients, requests per client
    ("iti65-1", "ITI-65 publication, 1 × 20 KB", "iti65", 1, 400),
    ("iti67-1", "ITI-67 search, 200-doc record, page 20", "iti67", 1, 1200),
    ("iti67-8", "ITI-67 search, 200-doc record, page 20", "iti67", 8, 200),
]


@dataclass
class Side:
    label: str  # "A" or "B"
    rev: str
    commit: str
    src: Path  # the snapshot's src/
    db: str
    url: str = ""
    meta: dict[str, Any] | None = None
    server: mhd.Server | None = None


def snapshot(rev: str) -> tuple[str, Path]:
    repo = ROOT.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix=f"dmp-ab-src-{commit}-"))
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=repo, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    return commit, tmp / "src"


def snapshot_env(src: Path) -> dict[str, str]:
    """The environment of a process that must run the snapshot's code and nothing else of ours."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    env.pop("DMP_TEST_INSTANCE", None)
    return env


# ------------------------------------------------------------ loader (runs in the snapshot)


def load_side(db: str, out: Path) -> None:
    """Subprocess entry: fresh database ``db`` loaded by this process's (the snapshot's) code."""
    import dmp
    from dmp.demo.loader import qualified_record
    from dmp.devtools.pgcluster import fresh_database, postgres_url
    from dmp.domain.actor import Actor, ActorKind
    from dmp.domain.ins import SYSTEM_NIR, parse_ins
    from dmp.fhir.bundle import parse_provide_bundle
    from dmp.services import publish, records
    from dmp.services.context import Runtime
    from dmp.store.blobs import FileBlobStore
    from dmp.store.crypto import KeyRing
    from dmp.store.db import make_engine, upgrade

    mhd.log(f"chargement de {db} par {Path(dmp.__file__).parent}")
    url = fresh_database(postgres_url(), db)
    var_dir, card_dir = mhd.prepare_var_dir(url)
    settings = mhd.bench_settings(var_dir, url)
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    rt = Runtime(
        settings=settings,
        engine=engine,
        keyring=KeyRing(settings.master_key()),
        blobs=FileBlobStore(settings.blob_dir, fsync=False),
    )
    card = mhd.CARD
    actor = Actor(
        kind=ActorKind.PROFESSIONAL,
        id="8" + card["rpps"],
        name=card["name"],
        profession=card["profession"],
        specialty=card["specialty"],
    )
    now = datetime.now(UTC)
    idents = mhd.bench_identities(1 + mhd.N_PUB_PATIENTS)
    import random

    rng = random.Random(1)
    with engine.begin() as conn:
        pids = [
            records.create(
                conn, rt, actor, qualified_record(parse_ins(SYSTEM_NIR, n, allow_test=False), t, now), now
            )
            for n, t in idents
        ]
        for i in range(TARGET_DOCS):
            when = (now - timedelta(days=rng.randint(0, 3650))).replace(microsecond=0)
            bundle = mhd.publication_bundle(
                idents[0][0],
                rng.randbytes(mhd.TEMPLATE_BYTES),
                type_code=mhd.DOC_TYPES[i % len(mhd.DOC_TYPES)],
                when=when,
            )
            req = parse_provide_bundle(bundle, max_document_bytes=settings.max_document_bytes)
            publish.publish(conn, rt, actor, req, now)
    engine.dispose()
    import psycopg

    with psycopg.connect(mhd.dsn_of(url), autocommit=True) as pg:
        pg.execute("VACUUM (ANALYZE)")
        pg.execute("CHECKPOINT")
    meta = {
        "url": url,
        "var_dir": str(var_dir),
        "card_dir": str(card_dir),
        "target_pid": str(pids[0]),
        "target_nir": idents[0][0],
        "pub_nirs": [n for n, _ in idents[1:]],
        "code": str(Path(dmp.__file__).parent),
    }
    out.write_text(json.dumps(meta))


def anatomy_side(meta_in: Path, out: Path, n65: int, n67: int) -> None:
    """Subprocess entry: bench_mhd's in-process anatomy (stages, cProfile) with the snapshot's code."""
    meta = json.loads(meta_in.read_text())
    mhd.DB_NAME = meta["url"].rsplit("/", 1)[1]
    out.write_text(json.dumps(mhd.anatomy(meta["url"], meta, n65, n67), default=str))


def anatomies(sides: list[Side], n65: int, n67: int) -> dict[str, Any]:
    """Where B's extra time goes: the anatomy of each side, one after the other (A, B)."""
    found: dict[str, Any] = {}
    for side in sides:
        assert side.meta is not None
        meta_in = Path(tempfile.mkstemp(prefix="dmp-ab-meta-")[1])
        out = Path(tempfile.mkstemp(prefix="dmp-ab-anatomy-")[1])
        meta_in.write_text(json.dumps(side.meta))
        mhd.wait_quiet(5.0)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--anatomy-of",
            str(meta_in),
            "--meta-out",
            str(out),
        ]
        subprocess.run([*cmd, "--anatomy-n", f"{n65},{n67}"], env=snapshot_env(side.src), check=True)
        found[side.label] = json.loads(out.read_text())
        meta_in.unlink()
        out.unlink()
    return found


def print_anatomies(an: dict[str, Any]) -> None:
    for kind in ("iti65", "iti67"):
        a, b = an["A"][kind], an["B"][kind]
        print(
            f"\n### In-process anatomy, {kind}: "
            f"A {a['total_ms_per_req']} ms, B {b['total_ms_per_req']} ms per request"
        )
        for stage in sorted(set(a["stages_ms"]) | set(b["stages_ms"])):
            sa, sb = a["stages_ms"].get(stage, 0.0), b["stages_ms"].get(stage, 0.0)
            print(f"  {stage:55s} A {sa:7.3f}  B {sb:7.3f}  B-A {sb - sa:+7.3f} ms")
        print(
            f"  SQL statements per request: A {a['sql_statements_per_req']}, B {b['sql_statements_per_req']}"
        )
        print("  B, cumulative time of the sealing code (ms per request):")
        for row in b.get("cprofile_sealing", []):
            print(f"    {row['cumtime_ms_per_req']:7.3f}  {row['calls_per_req']:6.1f} calls  {row['func']}")


# ------------------------------------------------------------------------------ servers


def start(side: Side) -> mhd.Server:
    """bench_mhd.start_server without its in-process migration (that would be this process's code)."""
    assert side.meta is not None
    var_dir, card_dir = Path(side.meta["var_dir"]), Path(side.meta["card_dir"])
    port = mhd.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **snapshot_env(side.src),
        "DMP_DATABASE_URL": side.url,
        "DMP_VAR_DIR": str(var_dir),
        "DMP_BASE_URL": base,
        "DMP_MASTER_KEY": mhd.BENCH_MASTER_KEY,
    }
    log_path = var_dir / "server.log"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "dmp.bootstrap:asgi_app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=var_dir
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serveur {side.label} arrêté :\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/fhir/metadata", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        raise RuntimeError(f"serveur {side.label} muet après 90 s")
    for _ in range(10):
        httpx.get(f"{base}/fhir/metadata", timeout=5)
    mhd.log(f"serveur {side.label} ({side.commit}) prêt sur {base}")
    return mhd.Server(proc, base, var_dir, card_dir, log_path)


# ---------------------------------------------------------------------------- measuring


def measure(side: Side, kind: str, clients: int, per: int, sizes: mhd.Sizes, seed: int) -> dict[str, Any]:
    assert side.server is not None and side.meta is not None
    mhd.DB_NAME = side.db  # CPU accounting: this side's PostgreSQL backends are "ours"
    res = mhd.http_scenario(kind, clients, per, side.server, side.meta, sizes, seed=seed)
    res["background_cores"] = round(res["cpu_busy_cores"].get("other", 0.0), 3)
    return res


def pct(values: list[float], q: float) -> float:
    return mhd.percentile(sorted(values), q)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, *_ in SCENARIOS:
        a = [r[key]["A"] for r in rounds]
        b = [r[key]["B"] for r in rounds]
        row: dict[str, Any] = {}
        for m in ("p50_ms", "p95_ms", "rate"):
            ratios = [y[m] / x[m] for x, y in zip(a, b, strict=True)]
            row[m] = {
                "A_median": statistics.median(x[m] for x in a),
                "B_median": statistics.median(y[m] for y in b),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        row["requests_per_round"] = {"A": statistics.median(x["requests"] for x in a),
                                     "B": statistics.median(y["requests"] for y in b)}  # fmt: skip
        row["errors"] = sum(x["errors"] for x in a) + sum(y["errors"] for y in b)
        row["background_cores_median"] = statistics.median(
            [x["background_cores"] for x in a] + [y["background_cores"] for y in b]
        )
        out[key] = row
    return out


def markdown(summ: dict[str, Any], a: Side, b: Side, rounds: int) -> str:
    lines = [
        f"A = `{a.commit}` ({a.rev}), B = `{b.commit}` ({b.rev}); medians over {rounds} interleaved rounds; "
        "ratio = median of the per-round ratios B / A (min–max in brackets).",
        "",
        "| Scenario | Clients | A p50 ms | B p50 ms | B/A p50 | A p95 ms | B p95 ms | B/A p95 | A req/s | "
        "B req/s | B/A req/s | other procs (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label, _kind, clients, _per in SCENARIOS:
        s = summ[key]

        def cell(m: str, s: dict[str, Any] = s) -> str:
            r = s[m]
            return (
                f"{r['A_median']:.2f} | {r['B_median']:.2f} | **{r['ratio_median']:.3f}** "
                f"({r['ratio_min']:.2f}–{r['ratio_max']:.2f})"
            )

        lines.append(
            f"| {label} | {clients} | {cell('p50_ms')} | {cell('p95_ms')} | "
            f"{s['rate']['A_median']:.0f} | {s['rate']['B_median']:.0f} | {s['rate']['ratio_median']:.3f} | "
            f"{s['background_cores_median']:.2f} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    sides = []
    for label, rev in (("A", args.rev_a), ("B", args.rev_b)):
        commit, src = snapshot(rev)
        sides.append(Side(label, rev, commit, src, f"dmp_ab_{label.lower()}_{commit}"))
    a, b = sides
    sizes = mhd.QUICK if args.quick else mhd.FULL
    sizes = mhd.Sizes(**{**sizes.__dict__, "time_limit": args.time_limit})
    load_avg_start = os.getloadavg()
    started = datetime.now(UTC)
    try:
        for side in sides:
            out = Path(tempfile.mkstemp(prefix="dmp-ab-meta-")[1])
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--load-into",
                    side.db,
                    "--meta-out",
                    str(out),
                ],
                env=snapshot_env(side.src),
                check=True,
            )
            side.meta = json.loads(out.read_text())
            side.url = side.meta["url"]
            out.unlink()
            mhd.log(f"{side.label} chargé en {time.perf_counter() - t:.0f} s (code {side.meta['code']})")
        for side in sides:
            side.server = start(side)
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            order = (a, b) if n % 2 == 0 else (b, a)
            rnd: dict[str, Any] = {"load_avg": os.getloadavg()}
            for key, _label, kind, clients, per in SCENARIOS:
                count = max(1, per // (10 if args.quick else 1))
                rnd[key] = {}
                for side in order:
                    mhd.wait_quiet(args.quiet_wait)
                    rnd[key][side.label] = measure(side, kind, clients, count, sizes, seed=n + 1)
                ra, rb = rnd[key]["A"], rnd[key]["B"]
                mhd.log(
                    f"tour {n + 1} {key}: A p50 {ra['p50_ms']:.2f} p95 {ra['p95_ms']:.2f} "
                    f"({ra['requests']}) | "
                    f"B p50 {rb['p50_ms']:.2f} p95 {rb['p95_ms']:.2f} ({rb['requests']}) | "
                    f"autres {ra['background_cores']:.2f}/{rb['background_cores']:.2f} cœur"
                )
            rounds.append(rnd)
        for side in sides:
            mhd.stop_server(side.server)
        summ = summary(rounds) if rounds else {}
        table = markdown(summ, a, b, args.rounds) if rounds else "(no rounds: anatomy only)"
        result = {
            "command": " ".join(["python", "bench/bench_ab.py", *sys.argv[1:]]),
            "started": started.isoformat(timespec="seconds"),
            "ended": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_avg_start": load_avg_start,
            "load_avg_end": os.getloadavg(),
            "A": {"rev": a.rev, "commit": a.commit, "db": a.db},
            "B": {"rev": b.rev, "commit": b.commit, "db": b.db},
            "rounds": rounds,
            "summary": summ,
            "markdown": table,
        }
        mhd.RESULTS.mkdir(parents=True, exist_ok=True)
        path = mhd.RESULTS / f"ab-{a.commit}-{b.commit}-{datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        if args.anatomy:  # after the figures are safe: a failure here loses nothing measured
            result["anatomy"] = anatomies(sides, 150, 400)
            path.write_text(json.dumps(result, indent=2, default=str))
        print()
        print(table)
        if args.anatomy:
            print_anatomies(result["anatomy"])
        print(f"\nload average at start {load_avg_start}, at end {os.getloadavg()}; results: {path}")
        return 0
    except Exception:
        for side in sides:
            if side.server is not None and side.server.log_path.exists():
                print(side.server.log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        for side in sides:
            mhd.stop_server(side.server)
            if side.meta:
                shutil.rmtree(side.meta["var_dir"], ignore_errors=True)
            shutil.rmtree(side.src.parent, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev_a", nargs="?", help="the revision before (e.g. the merge's first parent)")
    ap.add_argument("rev_b", nargs="?", help="the revision after")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="a tenth of the requests (debugging)")
    ap.add_argument("--time-limit", type=float, default=8.0, help="seconds per measurement at most")
    ap.add_argument("--quiet-wait", type=float, default=3.0, help="wait up to N s for an idle machine")
    ap.add_argument("--anatomy", action="store_true", help="after the rounds, in-process anatomy of A and B")
    ap.add_argument("--load-into", help=argparse.SUPPRESS)
    ap.add_argument("--anatomy-of", help=argparse.SUPPRESS)
    ap.add_argument("--anatomy-n", default="150,400", help=argparse.SUPPRESS)
    ap.add_argument("--meta-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_into:
        load_side(args.load_into, Path(args.meta_out))
        return 0
    if args.anatomy_of:
        n65, n67 = (int(x) for x in args.anatomy_n.split(","))
        anatomy_side(Path(args.anatomy_of), Path(args.meta_out), n65, n67)
        return 0
    if not (args.rev_a and args.rev_b):
        ap.error("REV_A et REV_B sont requis")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
