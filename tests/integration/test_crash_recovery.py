"""kill -9 of a real ``dmp serve`` in the middle of concurrent publications, on PostgreSQL.

Every publication the server acknowledged (HTTP 200) must survive the crash: found by ITI-67,
served by ITI-68 with the very bytes published, traced in the record's trail, the hash chains
intact. The publications in flight at the crash leave at most orphan blobs, which
``dmp blobs gc`` removes, and nothing the database references.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import _drop_database, _postgres_url, new_identity, patient_resource
from dmp.demo.bundles import document_reference, provide_bundle
from dmp.domain.ins import SYSTEM_NIR
from dmp.store.db import make_engine
from dmp.store.schema import document
from live_server import DMP, FHIR_JSON, LiveServer, prepare_instance

pytestmark = pytest.mark.slow

THREADS = 4
RECORDS = 2  # two threads per record: concurrent publications into the same chain too
KILL_AFTER_ACKS = 80  # or after KILL_AFTER_SECONDS, whichever comes first
KILL_AFTER_SECONDS = 8.0


@dataclass(frozen=True)
class Acked:
    record: int
    unique_id: str
    doc_id: str
    sha256: str


def _document(nir: str, worker: int, n: int) -> tuple[str, bytes, dict[str, Any]]:
    unique_id = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
    # Distinct bytes every time (distinct blobs), a few kilobytes so that writes take a while.
    filler = os.urandom(3000).hex()
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
        f"<!-- worker {worker} document {n} {filler} --></ClinicalDocument>"
    ).encode()
    docref = document_reference(
        content,
        ins_system=SYSTEM_NIR,
        ins_value=nir,
        unique_id=unique_id,
        type_code="11488-4",
        title=f"CR {worker}-{n}",
        date="2026-11-20T10:00:00+01:00",
        author_idnps="810001234565",
        author_name="Charles MULLER",
        binary_url=f"urn:uuid:{uuid.uuid4()}",
    )
    return unique_id, content, provide_bundle([(docref, content)], ins_system=SYSTEM_NIR, ins_value=nir)


def _post(server: LiveServer, bundle: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(server.fhir, data=json.dumps(bundle).encode(), method="POST")  # noqa: S310
    req.add_header("Authorization", f"Bearer {server.token}")
    req.add_header("Content-Type", FHIR_JSON)
    req.add_header("Accept", FHIR_JSON)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _get_bytes(server: LiveServer, url: str, accept: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url)  # noqa: S310
    req.add_header("Authorization", f"Bearer {server.token}")
    req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _pages(server: LiveServer, url: str) -> Iterator[dict[str, Any]]:
    """A searchset and its next pages."""
    next_url: str | None = url
    while next_url:
        status, body = _get_bytes(server, next_url, FHIR_JSON)
        assert status == 200, body[:500]
        page = json.loads(body)
        yield page
        next_url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)


def _found_documents(server: LiveServer, nir: str) -> dict[str, str]:
    """ITI-67 on the record of ``nir``: document id -> masterIdentifier value, every page."""
    found: dict[str, str] = {}
    search = f"{server.fhir}/DocumentReference?patient.identifier={SYSTEM_NIR}|{nir}&_count=500"
    for page in _pages(server, search):
        for entry in page.get("entry", []):
            resource = entry["resource"]
            found[resource["id"]] = resource["masterIdentifier"]["value"]
    return found


def _traced_references(server: LiveServer, patient_id: str) -> set[str]:
    """Every entity reference the record's AuditEvents name, every page."""
    traced: set[str] = set()
    trail = f"{server.fhir}/AuditEvent?patient=Patient/{patient_id}&_count=500"
    for page in _pages(server, trail):
        for entry in page.get("entry", []):
            for entity in entry["resource"].get("entity", []):
                traced.add(entity.get("what", {}).get("reference", ""))
    return traced


def _dmp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DMP, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture()
def pg_url() -> Iterator[str]:
    from dmp.devtools.pgcluster import fresh_database

    url = fresh_database(_postgres_url(), f"dmp_crash_{os.getpid()}")
    yield url
    _drop_database(url)


def test_kill_9_loses_no_acknowledged_publication(tmp_path: Path, pg_url: str) -> None:
    started = time.monotonic()
    instance = prepare_instance(tmp_path, pg_url)
    server = instance.start()
    try:
        records = []
        for _ in range(RECORDS):
            ident = new_identity(family="CRASH")
            status, created = server.call("POST", "Patient", patient_resource(ident))
            assert status == 201, created
            records.append((ident.nir, created["id"]))

        acked: list[Acked] = []
        lock = threading.Lock()
        attempts = [0] * THREADS
        failures: list[str] = []

        def publish(worker: int) -> None:
            nir, _ = records[worker % RECORDS]
            n = 0
            while True:
                unique_id, content, bundle = _document(nir, worker, n)
                n += 1
                attempts[worker] += 1
                try:
                    status, body = _post(server, bundle)
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    return  # the server is gone: this publication's outcome is unknown
                if status != 200:
                    failures.append(f"{status} {body!r}"[:300])
                    return
                location = body["entry"][1]["response"]["location"]
                doc_id = location.split("/")[1]
                with lock:
                    acked.append(
                        Acked(worker % RECORDS, unique_id, doc_id, hashlib.sha256(content).hexdigest())
                    )

        threads = [threading.Thread(target=publish, args=(w,), daemon=True) for w in range(THREADS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + KILL_AFTER_SECONDS
        while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline and not failures:
            time.sleep(0.02)
        instance.kill()  # SIGKILL to the process group, publications in flight
        for t in threads:
            t.join(timeout=40)
        assert not failures, failures
        assert not any(t.is_alive() for t in threads)
        assert acked, "no publication acknowledged before the crash"
        in_flight = sum(attempts) - len(acked)

        # Restart on the same database and var/.
        server = instance.start()
        var = Path(instance.env["DMP_VAR_DIR"])
        blob_root = var / "blobs"

        def files() -> set[str]:
            return {str(p.relative_to(blob_root)) for p in blob_root.rglob("*") if p.is_file()}

        engine = make_engine(pg_url, pool_size=1)
        try:
            with engine.connect() as conn:
                referenced = set(conn.execute(select(document.c.blob_key)).scalars())
        finally:
            engine.dispose()
        orphans_before = files() - referenced
        assert referenced <= files()

        gc = _dmp(instance.env, "blobs", "gc", "--older-than", "0")
        assert gc.returncode == 0, gc.stderr
        summary = re.search(r"Supprimés \(orphelins plus anciens que 0\) : (\d+)", gc.stdout)
        assert summary is not None, gc.stdout
        assert int(summary[1]) == len(orphans_before)
        assert files() == referenced  # no orphan remains, nothing referenced was removed

        # Every acknowledged document: found (ITI-67), same bytes (ITI-68), traced.
        for index, (nir, patient_id) in enumerate(records):
            mine = {a.doc_id: a for a in acked if a.record == index}
            found = _found_documents(server, nir)
            assert set(mine) <= set(found), f"lost: {sorted(set(mine) - set(found))}"
            for doc_id, a in mine.items():
                assert found[doc_id].endswith(a.unique_id)
                status, data = _get_bytes(server, f"{server.fhir}/Binary/{doc_id}", "*/*")
                assert status == 200, data[:300]
                assert hashlib.sha256(data).hexdigest() == a.sha256
            traced = _traced_references(server, patient_id)
            untraced = {d for d in mine if f"DocumentReference/{d}" not in traced}
            assert not untraced, f"not in the trail: {sorted(untraced)}"

        verify = _dmp(instance.env, "audit", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "journal intègre" in verify.stdout
    finally:
        instance.stop()
    elapsed = time.monotonic() - started
    print(  # the figures, for the record (pytest -s)
        f"\ncrash: {len(acked)} acknowledged, 0 lost, {in_flight} in flight at the kill, "
        f"{len(orphans_before)} orphan blob(s) removed by gc, {len(referenced)} referenced kept, "
        f"{elapsed:.1f} s"
    )
