"""Blob hygiene: a rolled-back publication leaves no encrypted file; gc removes old orphans only."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import CDA, bundle, doc, failing_blobs
from outcomes import assert_outcome
from starlette.testclient import TestClient

from conftest import BASE, Api, Identity
from dmp.api.app import create_app
from dmp.auth.pki import load_ca
from dmp.auth.tokens import TokenSigner
from dmp.cli import main
from dmp.services import blob_hygiene
from dmp.services.context import Runtime
from dmp.services.publish import blob_key, record_dek
from dmp.store.crypto import seal
from dmp.store.schema import document

HOUR = 3600.0


def blob_files(rt: Runtime) -> set[str]:
    root = rt.settings.blob_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def patient_uuid(api: Api, ident: Identity) -> uuid.UUID:
    found = api.get("Patient", params={"identifier": f"{ident.system}|{ident.nir}"}).json()
    return uuid.UUID(found["entry"][0]["resource"]["id"])


def content(n: int | str) -> bytes:
    return CDA.replace(b"/>", f"><!-- {n} --></ClinicalDocument>".encode())


def publish(api: Api, ident: Identity, data: bytes) -> str:
    resp = api.post("", bundle(ident, (doc(ident, data), data)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def referenced_keys(rt: Runtime) -> set[str]:
    with rt.engine.connect() as conn:
        return set(conn.execute(document.select().with_only_columns(document.c.blob_key)).scalars())


def orphan(api: Api, ident: Identity, age: float, data: bytes | None = None) -> str:
    """An encrypted file no row names (as a crash between the write and the commit leaves it)."""
    rt = api.runtime
    pid = patient_uuid(api, ident)
    data = data if data is not None else content(uuid.uuid4())
    sha = hashlib.sha256(data).hexdigest()
    with rt.engine.connect() as conn:
        dek = record_dek(conn, rt, pid)
    key = blob_key(dek, pid, sha)
    rt.blobs.put(key, seal(dek, pid, sha, data))
    stamp = time.time() - age
    os.utime(rt.settings.blob_dir / key, (stamp, stamp))
    return key


# ---- (a) a rollback the code sees removes this unit of work's blobs ----------------------------


def test_an_injected_failure_after_the_blob_write_leaves_no_file(api: Api, patient: Identity) -> None:
    publish(api, patient, content("first"))
    before = blob_files(api.runtime)
    one, two = content("a"), content("b")
    b = bundle(patient, (doc(patient, one), one), (doc(patient, two), two))
    # The second document's write fails, after the first document's blob was written.
    client = TestClient(api.app, base_url=BASE, raise_server_exceptions=False)
    with failing_blobs(api, fail_at=2), client:
        headers = api.headers(**{"Content-Type": "application/fhir+json"})
        resp = client.post("/fhir/", content=json.dumps(b), headers=headers)
    assert resp.status_code == 500
    assert blob_files(api.runtime) == before


def test_a_refusal_after_the_blob_write_leaves_no_file(api: Api, patient: Identity) -> None:
    before = blob_files(api.runtime)
    first = doc(patient, content("kept?"))
    second = doc(patient, content("replaces"), replaces="uid:1.2.250.1.999.404")  # unknown target
    resp = api.post("", bundle(patient, (first, content("kept?")), (second, content("replaces"))))
    assert_outcome(resp, 422, "REPLACED_UNKNOWN")
    assert blob_files(api.runtime) == before


def test_a_rollback_keeps_a_blob_that_a_committed_document_shares(api: Api, patient: Identity) -> None:
    shared = content("the same bytes")
    doc_id = publish(api, patient, shared)
    files = blob_files(api.runtime)
    assert len(files) == 1
    # The same bytes again (same key), then a refusal: the committed document's blob stays.
    second = doc(patient, content("x"), replaces="uid:1.2.250.1.999.405")
    resp = api.post("", bundle(patient, (doc(patient, shared), shared), (second, content("x"))))
    assert resp.status_code >= 400
    assert blob_files(api.runtime) == files
    binary = api.client.get(f"/fhir/Binary/{doc_id}", headers=api.headers(Accept="*/*"))
    assert binary.status_code == 200 and binary.content == shared


def test_remove_unreferenced_keeps_referenced_and_foreign_keys(api: Api, patient: Identity) -> None:
    rt = api.runtime
    publish(api, patient, content("committed"))
    (committed,) = referenced_keys(rt)
    stray = orphan(api, patient, age=0)
    assert blob_hygiene.remove_unreferenced(rt.engine, rt.blobs, [committed, stray, "not-a-record-key"]) == 1
    assert blob_files(rt) == {committed}


# ---- (b) the garbage collector ----------------------------------------------------------------


def test_gc_removes_old_orphans_keeps_young_and_referenced(api: Api, patient: Identity) -> None:
    rt = api.runtime
    publish(api, patient, content("referenced"))
    (referenced,) = referenced_keys(rt)
    os.utime(rt.settings.blob_dir / referenced, (time.time() - 10 * HOUR,) * 2)  # old, but named
    old = orphan(api, patient, age=2 * HOUR)
    young = orphan(api, patient, age=60)
    partial = rt.settings.blob_dir / referenced.split("/")[0] / ".tmp-interrupted"
    partial.write_bytes(b"half a write")
    os.utime(partial, (time.time() - 2 * HOUR,) * 2)

    report = blob_hygiene.collect_garbage(rt.engine, rt.blobs, older_than=timedelta(hours=1))
    assert (report.examined, report.removed, report.referenced, report.young) == (4, 2, 1, 1)
    assert blob_files(rt) == {referenced, young}
    assert old not in blob_files(rt)
    # Idempotent: a second pass removes nothing.
    again = blob_hygiene.collect_garbage(rt.engine, rt.blobs, older_than=timedelta(hours=1))
    assert (again.examined, again.removed, again.kept) == (2, 0, 2)


def test_gc_keeps_an_old_orphan_that_a_publication_now_references(api: Api, patient: Identity) -> None:
    """An orphan whose bytes are published again is the new document's blob: never removed."""
    rt = api.runtime
    data = content("crashed, then published again")
    key = orphan(api, patient, age=3 * HOUR, data=data)
    doc_id = publish(api, patient, data)  # same bytes, same key: the file exists already
    report = blob_hygiene.collect_garbage(rt.engine, rt.blobs, older_than=timedelta(0))
    assert report.removed == 0 and report.referenced == 1
    assert blob_files(rt) == {key}
    binary = api.client.get(f"/fhir/Binary/{doc_id}", headers=api.headers(Accept="*/*"))
    assert binary.content == data


def test_cli_blobs_gc(api: Api, patient: Identity, tmp_path: Path) -> None:
    rt = api.runtime
    publish(api, patient, content("cli"))
    (referenced,) = referenced_keys(rt)
    os.utime(rt.settings.blob_dir / referenced, (time.time() - 5 * HOUR,) * 2)
    old = orphan(api, patient, age=2 * HOUR)
    young = orphan(api, patient, age=10)
    env = {
        "DMP_VAR_DIR": str(rt.settings.var_dir),
        "DMP_DATABASE_URL": rt.engine.url.render_as_string(hide_password=False),
    }
    result = CliRunner().invoke(main, ["blobs", "gc"], env=env)
    assert result.exit_code == 0, result.output
    assert "Fichiers examinés : 3" in result.output
    assert "Supprimés (orphelins plus anciens que 1h) : 1" in result.output
    assert "Conservés : 2 (référencés : 1, récents : 1, hors dossiers : 0)" in result.output
    assert old not in blob_files(rt) and young in blob_files(rt)

    result = CliRunner().invoke(main, ["blobs", "gc", "--older-than", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "Supprimés (orphelins plus anciens que 0) : 1" in result.output
    assert blob_files(rt) == referenced_keys(rt)

    result = CliRunner().invoke(main, ["blobs", "gc", "--older-than", "bientôt"], env=env)
    assert result.exit_code == 1
    assert "durée attendue" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90s", 90), ("30min", 1800), ("2h", 7200), ("1j", 86400)]
)
def test_durations(text: str, seconds: float) -> None:
    from dmp.cli import _duration

    assert _duration(text) == seconds


def test_the_server_collects_periodically(
    api: Api, patient: Identity, pki_dir: Path, signer: TokenSigner
) -> None:
    """The app's lifespan runs the gc every DMP_BLOB_GC_INTERVAL seconds (here 1 s)."""
    rt = api.runtime
    publish(api, patient, content("kept"))
    old = orphan(api, patient, age=2 * HOUR)
    young = orphan(api, patient, age=60)
    fast = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, blob_gc_interval=1))
    app = create_app(fast, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    with TestClient(app, base_url=BASE):
        deadline = time.monotonic() + 10
        while old in blob_files(rt) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert old not in blob_files(rt)
    assert young in blob_files(rt) and referenced_keys(rt) <= blob_files(rt)


def test_removal_waits_for_an_in_flight_publication_of_the_record(api: Api, patient: Identity) -> None:
    """The record's lock: a cleanup (or gc) does not look for references before it commits."""
    rt = api.runtime
    pid = patient_uuid(api, patient)
    key = orphan(api, patient, age=2 * HOUR)
    done = threading.Event()
    with rt.engine.begin() as conn:
        blob_hygiene.hold_for_publication(conn, pid)  # an in-flight publication that uses `key`
        worker = threading.Thread(
            target=lambda: (blob_hygiene.remove_unreferenced(rt.engine, rt.blobs, [key]), done.set())
        )
        worker.start()
        time.sleep(0.5)
        assert not done.is_set() and key in blob_files(rt)  # waiting for the publication's outcome
    worker.join(timeout=30)
    assert done.is_set() and key not in blob_files(rt)  # it committed no row naming it
