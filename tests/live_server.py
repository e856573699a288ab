"""A real ``dmp serve`` in a subprocess, for the tests that drive it with real FHIR clients.

The server is started exactly as the README says (``dmp pki init``, ``dmp pki issue-card``,
``dmp serve``) in a throwaway instance directory, on SQLite or on a fresh PostgreSQL database,
and answers on a free loopback port. The test process only speaks HTTP to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmp.demo.bundles import document_reference, provide_bundle
from dmp.demo.client import request_token

FHIR_JSON = "application/fhir+json"
DOCTOR = {"rpps": "10001234565", "profession": "10", "specialty": "SM26", "name": "Charles MULLER"}
# One command line for every ``dmp`` call: the interpreter running the tests, so the server is
# the code under test whether or not the ``dmp`` script is on PATH.
DMP = [sys.executable, "-c", "from dmp.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base: str
    token: str
    card: Path
    env: dict[str, str]
    log: Path
    records: list[str] = field(default_factory=list)

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One FHIR JSON call with the doctor's token (for seeding, not for the clients' tests)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.fhir}/{path}".rstrip("/"), data=data, method=method)  # noqa: S310
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", FHIR_JSON)
        if data is not None:
            req.add_header("Content-Type", FHIR_JSON)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


def _wait_until_up(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dmp serve s'est arrêté : {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/fhir/metadata", timeout=1):  # noqa: S310 (loopback)
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"dmp serve ne répond pas : {log.read_text()}")


@dataclass
class Instance:
    """A prepared instance (PKI, doctor's card) and the ``dmp serve`` process serving it, if any."""

    dir: Path
    base: str
    port: int
    env: dict[str, str]
    card: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    workers: int = 1

    def start(self) -> LiveServer:
        """Start ``dmp serve`` (again) on the same var/ and database; wait until it answers."""
        assert self.proc is None, "already running"
        with self.log.open("ab") as out:
            # Its own process group: kill() reaches uvicorn's workers too.
            self.proc = subprocess.Popen(  # noqa: S603 (our own command line)
                [*DMP, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_until_up(self.proc, self.base, self.log)
        return LiveServer(self.base, request_token(self.base, self.card), self.card, self.env, self.log)

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash: no shutdown, no rollback by the server."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None


def prepare_instance(instance: Path, database_url: str = "") -> Instance:
    """The README's first steps for ``instance`` (its var/ directory): CA, a doctor's card."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DMP_VAR_DIR": str(instance / "var"),
        "DMP_BASE_URL": base,
        "DMP_DATABASE_URL": database_url,
    }
    card = instance / "card-doctor"
    subprocess.run([*DMP, "pki", "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*DMP, "pki", "issue-card", *(f"--{k}={v}" for k, v in DOCTOR.items()), "--out", str(card)],
        env=env,
        check=True,
        capture_output=True,
    )
    return Instance(instance, base, port, env, card, instance / "serve.log")


@contextmanager
def live_server(instance: Path, database_url: str = "", workers: int = 1) -> Iterator[LiveServer]:
    """Start ``dmp serve`` for ``instance`` (its var/ directory) and yield it, with a doctor's token."""
    inst = prepare_instance(instance, database_url)
    inst.workers = workers
    try:
        yield inst.start()
    finally:
        inst.stop()


# ---- seeding over HTTP ----------------------------------------------------------------------

CDA = b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'


def publish_documents(server: LiveServer, system: str, nir: str, count: int) -> list[str]:
    """Publish ``count`` documents (one ITI-65 each) into the record; return their uniqueIds."""
    unique_ids = []
    for n in range(count):
        unique_id = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
        content = CDA.replace(b"/>", f"><!-- {n} --></ClinicalDocument>".encode())
        docref = document_reference(
            content,
            ins_system=system,
            ins_value=nir,
            unique_id=unique_id,
            type_code="11488-4",
            title=f"CR de consultation n° {n + 1}",
            date=f"2026-11-{10 + n:02d}T10:00:00+01:00",
            author_idnps="810001234565",
            author_name="Charles MULLER",
            binary_url=f"urn:uuid:{uuid.uuid4()}",
        )
        bundle = provide_bundle([(docref, content)], ins_system=system, ins_value=nir)
        status, body = server.call("POST", "", bundle)
        if status != 200:
            raise RuntimeError(f"ITI-65 refusé ({status}) : {body}")
        unique_ids.append(unique_id)
    return unique_ids
