"""The audit trail on SQLite and PostgreSQL: appending, concurrency, protection, anchors, export.

The tests run in a database of their own (same engine as the suite's ``engine`` fixture), with
the append-only triggers installed, so that nothing here disturbs the other tests' database.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result
from fhirclient.models.auditevent import AuditEvent
from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from dmp.audit import (
    GENESIS,
    NIL_PATIENT,
    AuditAction,
    AuditRecord,
    StoredEntry,
    append,
    count_entries,
    entry_hash,
    install_protection,
    iter_entries,
    restrict_role,
    snapshot,
    uninstall_protection,
    verify,
)
from dmp.cli import main
from dmp.store.db import make_engine
from dmp.store.schema import metadata
from dmp.store.schema_audit import audit_anchor, audit_anchor_head, audit_entry, audit_head

AUDIT_TABLES = [audit_entry, audit_head, audit_anchor, audit_anchor_head]
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
Cli = Callable[..., Result]


# ---- fixtures and helpers (also used by test_audit_tamper.py) -----------------------------


@pytest.fixture(scope="module", name="audit_engine")
def audit_engine_fixture(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    pg = engine.dialect.name == "postgresql"
    if pg:
        from dmp.devtools.pgcluster import fresh_database

        url = fresh_database(engine.url.render_as_string(hide_password=False),
                             f"dmp_audit_{os.getpid()}_{uuid4().hex[:8]}")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.sqlite3'}"
    eng = make_engine(url, pool_size=8)
    metadata.create_all(eng, tables=AUDIT_TABLES)
    with eng.begin() as conn:
        install_protection(conn)
    yield eng
    eng.dispose()
    if pg:
        from conftest import _drop_database

        _drop_database(url)


@pytest.fixture(name="db")
def db_fixture(audit_engine: Engine) -> Engine:
    """The audit database, emptied (the protection is lifted for that, then reinstalled)."""
    with audit_engine.begin() as conn:
        uninstall_protection(conn)
        for table in reversed(AUDIT_TABLES):
            conn.execute(delete(table))
        install_protection(conn)
    return audit_engine


@pytest.fixture(name="cli")
def cli_fixture(db: Engine, tmp_path: Path) -> Cli:
    env = {"DMP_DATABASE_URL": db.url.render_as_string(hide_password=False), "DMP_VAR_DIR": str(tmp_path)}

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["audit", *args], env=env)

    return run


def is_pg(db: Engine) -> bool:
    return db.dialect.name == "postgresql"


def rec(patient_id: UUID | None, i: int = 0, **kw: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "action": AuditAction.DOCUMENT_RETRIEVE,
        "patient_id": patient_id,
        "at": T0 + timedelta(minutes=i),
        "actor_kind": "professional",
        "actor_id": "810001234565",
        "actor_name": "Charles MULLER",
        "actor_profession": "10",
        "actor_structure_id": "1750803447",
        "actor_structure_name": "Cabinet du Parc",
        "software": "LPS Test 1.0",
        "rule_id": "R-LECTURE-PS",
        "target_ids": (f"DocumentReference/{uuid4()}",),
        "source_address": "192.0.2.10",
    }
    values.update(kw)
    return AuditRecord(**values)


def fill(db: Engine, patient_id: UUID | None, n: int, start: int = 0) -> list[StoredEntry]:
    with db.begin() as conn:
        return [append(conn, rec(patient_id, start + i)) for i in range(n)]


def chain(db: Engine, patient_id: UUID) -> list[StoredEntry]:
    with db.connect() as conn:
        return list(iter_entries(conn, patient_id))


@contextmanager
def tampering(db: Engine) -> Iterator[Connection]:
    """A superuser/owner connection with the append-only triggers out of the way."""
    with db.begin() as conn:
        if is_pg(db):
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table.name} DISABLE TRIGGER USER"))
        else:
            uninstall_protection(conn)
        yield conn
        if is_pg(db):
            for table in AUDIT_TABLES:
                conn.execute(text(f"ALTER TABLE {table.name} ENABLE TRIGGER USER"))
        else:
            install_protection(conn)


def reseal(conn: Connection, patient_id: UUID, seq: int, prev_hash: str) -> str:
    """Recompute an entry's hash after tampering, as a careful attacker would; return it."""
    row = conn.execute(
        select(audit_entry).where(audit_entry.c.patient_id == patient_id, audit_entry.c.seq == seq)
    ).one()
    e = StoredEntry.from_row(row)
    new = entry_hash(e.values(), prev_hash)
    conn.execute(
        update(audit_entry)
        .where(audit_entry.c.patient_id == patient_id, audit_entry.c.seq == seq)
        .values(prev_hash=prev_hash, hash=new)
    )
    return new


def set_head(conn: Connection, patient_id: UUID, seq: int, hash_hex: str) -> None:
    conn.execute(
        update(audit_head).where(audit_head.c.patient_id == patient_id).values(seq=seq, hash=hash_hex)
    )


# ---- appending ------------------------------------------------------------------------------


def test_append_builds_one_chain_per_record(db: Engine) -> None:
    a, b = uuid4(), uuid4()
    written = fill(db, a, 3) + fill(db, b, 2) + fill(db, None, 1)
    ea, eb = chain(db, a), chain(db, b)
    assert [e.seq for e in ea] == [1, 2, 3] and [e.seq for e in eb] == [1, 2]
    assert ea[0].prev_hash == GENESIS
    assert [e.prev_hash for e in ea[1:]] == [e.hash for e in ea[:-1]]
    # what is read back is what was written, and still hashes to its stored hash
    assert ea + eb == written[:5]
    assert all(entry_hash(e.values(), e.prev_hash) == e.hash for e in ea + eb)
    assert chain(db, NIL_PATIENT)[0].action == "document.retrieve"
    with db.connect() as conn:
        heads = {r.patient_id: (r.seq, r.hash) for r in conn.execute(select(audit_head))}
    assert heads == {a: (3, ea[-1].hash), b: (2, eb[-1].hash), NIL_PATIENT: (1, written[-1].hash)}


def test_entry_round_trips_every_field(db: Engine) -> None:
    pid = uuid4()
    r = rec(pid, action=AuditAction.BREAK_GLASS, access_mode="bris_de_glace",
            justification="patient inconscient", on_behalf_of="899700218896",
            on_behalf_of_name="Dr Paul MARTIN", on_behalf_of_role="delegate",
            detail="accès d'urgence « test »", at=datetime(2026, 11, 23, 8, 0, 0, 987654, tzinfo=UTC))
    with db.begin() as conn:
        stored = append(conn, r)
    (back,) = chain(db, pid)
    assert back == stored
    assert back.justification == "patient inconscient" and back.at == r.at


def test_append_is_part_of_the_callers_transaction(db: Engine) -> None:
    pid = uuid4()
    fill(db, pid, 1)
    with pytest.raises(RuntimeError), db.begin() as conn:
        append(conn, rec(pid, 1))
        raise RuntimeError("the traced action failed")
    assert [e.seq for e in chain(db, pid)] == [1]
    fill(db, pid, 1, start=1)
    assert [e.seq for e in chain(db, pid)] == [1, 2]


def test_concurrent_appends_to_one_record_form_one_chain(db: Engine) -> None:
    pid = uuid4()  # no head yet: the first appends race to create it
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(8):
                with db.begin() as conn:
                    append(conn, rec(pid, k * 100 + i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [e.seq for e in chain(db, pid)] == list(range(1, 49))
    with db.connect() as conn:
        assert verify(conn, pid).ok


def test_appends_for_different_records_do_not_wait_for_each_other(db: Engine) -> None:
    if not is_pg(db):
        pytest.skip("SQLite serializes all writers; row locks are a PostgreSQL matter")
    a, b, c = uuid4(), uuid4(), uuid4()
    fill(db, a, 1)
    fill(db, b, 1)
    holding, release = threading.Event(), threading.Event()

    def thread1() -> None:  # appends for A (and for a new record C), then keeps the transaction open
        with db.begin() as conn:
            append(conn, rec(a, 1))
            append(conn, rec(c, 0))
            holding.set()
            release.wait(30)

    t1 = threading.Thread(target=thread1)
    t1.start()
    try:
        assert holding.wait(30)
        started = time.monotonic()
        with db.begin() as conn:  # thread 2: another record, existing and new
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            append(conn, rec(b, 1))
            append(conn, rec(uuid4(), 0))
        assert time.monotonic() - started < 2, "B waited for A's transaction"
        assert [e.seq for e in chain(db, b)] == [1, 2]  # committed while A's transaction is open
        # ... whereas the same record does wait (per-record serialization of the chain)
        for same in (a, c):
            with pytest.raises(OperationalError, match="lock timeout"), db.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '300ms'"))
                append(conn, rec(same, 5))
    finally:
        release.set()
        t1.join(30)
    assert [e.seq for e in chain(db, a)] == [1, 2]
    with db.connect() as conn:
        assert verify(conn).ok


def test_a_lost_connection_during_an_append_fails_cleanly_and_is_not_reused(db: Engine) -> None:
    """The PostgreSQL append runs on the driver connection directly: a dropped session must
    still surface as SQLAlchemy's error and leave the pool without the dead connection."""
    if not is_pg(db):
        pytest.skip("the driver-level append is PostgreSQL's")
    pid = uuid4()
    fill(db, pid, 2)
    with db.connect() as conn:
        conn.begin()
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with db.connect() as killer:
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        with pytest.raises(DBAPIError) as caught:
            append(conn, rec(pid, 2))
        assert caught.value.connection_invalidated or conn.invalidated
    assert [e.seq for e in chain(db, pid)] == [1, 2]  # nothing half-written
    fill(db, pid, 1, start=2)  # the pool hands out a live connection
    assert [e.seq for e in chain(db, pid)] == [1, 2, 3]
    with db.connect() as conn:
        assert verify(conn, pid).ok


# ---- database protection ------------------------------------------------------------------------


def _refused(db: Engine, stmt: Any, match: str = "journal d'audit en ajout seul") -> None:
    with pytest.raises(DBAPIError, match=match), db.begin() as conn:
        conn.execute(stmt)


def test_triggers_refuse_update_and_delete_even_for_the_owner(db: Engine, cli: Cli) -> None:
    pid = uuid4()
    fill(db, pid, 2)
    assert cli("anchor").exit_code == 0
    e = audit_entry.c
    _refused(db, update(audit_entry).where(e.patient_id == pid, e.seq == 1).values(detail="falsifié"))
    _refused(db, delete(audit_entry).where(e.patient_id == pid, e.seq == 2))
    _refused(db, delete(audit_anchor))
    _refused(db, update(audit_anchor).values(merkle_root="0" * 64))
    _refused(db, delete(audit_anchor_head))
    _refused(db, delete(audit_head))
    if is_pg(db):
        _refused(db, text("TRUNCATE audit_entry"))
        _refused(db, text("TRUNCATE audit_anchor"))
    assert len(chain(db, pid)) == 2
    fill(db, pid, 1, start=2)  # appending still works
    assert cli("verify").exit_code == 0


def test_application_role_may_only_insert_and_select(db: Engine) -> None:
    if not is_pg(db):
        pytest.skip("roles and grants are PostgreSQL's")
    role = f"dmp_app_test_{os.getpid()}"
    with db.begin() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{db.url.database}" TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        tables = ", ".join(t.name for t in AUDIT_TABLES)
        conn.execute(text(f'GRANT ALL ON {tables} TO "{role}"'))
        restrict_role(conn, role)  # takes back what the migration role may have granted
    app_url = db.url.set(username=role, password=None).render_as_string(hide_password=False)
    app = make_engine(app_url, pool_size=1)
    pid = uuid4()
    try:
        with app.begin() as conn:  # the application appends normally
            append(conn, rec(pid, 0))
            append(conn, rec(pid, 1))
        e = audit_entry.c
        for stmt in (
            update(audit_entry).where(e.patient_id == pid, e.seq == 1).values(detail="falsifié"),
            delete(audit_entry).where(e.patient_id == pid),
            delete(audit_anchor),
            delete(audit_anchor_head),
            delete(audit_head),
            text("TRUNCATE audit_entry"),
        ):
            _refused(app, stmt, match="permission denied")
    finally:
        app.dispose()
        with db.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    assert [x.seq for x in chain(db, pid)] == [1, 2]


# ---- verification, anchors, export, history through the CLI ---------------------------------------


def test_verify_reports_an_intact_trail(db: Engine, cli: Cli) -> None:
    a, b = uuid4(), uuid4()
    fill(db, a, 4)
    fill(db, b, 2)
    fill(db, None, 2)
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "3 chaîne(s) de dossier, 8 entrée(s) relue(s)" in result.output
    assert "Résultat : journal intègre, aucune rupture détectée." in result.output
    result = cli("verify", "--patient", f"Patient/{a}")
    assert result.exit_code == 0 and "1 chaîne(s) de dossier, 4 entrée(s)" in result.output
    assert cli("verify", "--patient", "nimporte-quoi").exit_code == 1


def test_verification_reads_one_state_without_blocking_writers(db: Engine) -> None:
    a = uuid4()
    fill(db, a, 3)
    url = db.url.render_as_string(hide_password=False)
    with snapshot(url) as conn:
        assert count_entries(conn, a) == 3  # the snapshot starts here
        started = time.monotonic()
        fill(db, a, 2, start=3)  # another connection appends and commits meanwhile
        assert time.monotonic() - started < 5
        report = verify(conn)
        assert report.ok and report.entries == 3  # entries and heads from the same state
    with snapshot(url) as conn:
        assert verify(conn).entries == 5


def test_anchor_signs_the_moved_heads_and_verify_checks_it(db: Engine, cli: Cli, tmp_path: Path) -> None:
    a, b = uuid4(), uuid4()
    fill(db, a, 3)
    fill(db, b, 1)
    result = cli("anchor")
    assert result.exit_code == 0, result.output
    assert "Ancre n° 1 créée : 2 tête(s) de chaîne" in result.output
    key = tmp_path / "keys" / "audit-anchor.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "Ancre n° 2 créée : 0 tête(s) de chaîne" in cli("anchor").output
    fill(db, a, 2, start=3)
    assert "Ancre n° 3 créée : 1 tête(s) de chaîne" in cli("anchor").output
    with db.connect() as conn:
        anchored = {(r.anchor_id, r.patient_id, r.seq) for r in conn.execute(select(audit_anchor_head))}
    assert anchored == {(1, a, 3), (1, b, 1), (3, a, 5)}
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "3 ancre(s) contrôlée(s)" in result.output and "Dernière ancre : n° 3" in result.output
    assert cli("verify", "--since-anchor", "1").exit_code == 0
    assert cli("verify", "--patient", f"Patient/{a}", "--since-anchor", "3").exit_code == 0


def test_anchor_refuses_to_seal_an_inconsistent_head(db: Engine, cli: Cli) -> None:
    pid = uuid4()
    fill(db, pid, 2)
    with tampering(db) as conn:
        set_head(conn, pid, 2, "f" * 64)
    result = cli("anchor")
    assert result.exit_code == 1
    assert "tête(s) de chaîne incohérente(s)" in result.output
    assert "aucune ancre n'a été créée" in result.output


def test_export_writes_valid_audit_events(db: Engine, cli: Cli, tmp_path: Path) -> None:
    a, b = uuid4(), uuid4()
    fill(db, a, 3)  # 08:00, 08:01, 08:02 UTC
    fill(db, b, 2)
    out = tmp_path / "a.ndjson"
    result = cli("export", "--patient", f"Patient/{a}", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "3 AuditEvent exporté(s)" in result.output
    lines = out.read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    for ev in events:
        AuditEvent(ev, strict=True)
        assert {"reference": f"Patient/{a}"} in [x.get("what") for x in ev["entity"]]
    assert [ev["recorded"] for ev in events] == [f"2026-11-23T08:0{i}:00.000Z" for i in range(3)]

    # a period, in Paris time when no offset is given (09:01 Paris = 08:01 UTC), end excluded
    out2 = tmp_path / "period.ndjson"
    result = cli("export", "--since", "2026-11-23T09:01:00", "--until", "2026-11-23T08:02:00+00:00",
                 "--out", str(out2))
    assert result.exit_code == 0, result.output
    recorded = sorted(json.loads(line)["recorded"] for line in out2.read_bytes().splitlines())
    assert recorded == ["2026-11-23T08:01:00.000Z", "2026-11-23T08:01:00.000Z"]
    # 5 entries, plus the audit.read entry each export wrote on each record it read (a; a and b)
    assert "8 AuditEvent" in cli("export", "--out", str(tmp_path / "all.ndjson")).output


def test_history_in_plain_french(db: Engine, cli: Cli) -> None:
    pid = uuid4()
    with db.begin() as conn:
        append(conn, rec(pid, 0, target_ids=("DocumentReference/1", "DocumentReference/2",
                                               "DocumentReference/3")))
        append(conn, rec(pid, 1, action=AuditAction.BREAK_GLASS, access_mode="bris_de_glace",
                         justification="patient inconscient", target_ids=()))
    result = cli("history", f"Patient/{pid}")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "le 23/11/2026 à 09:01 — Dr Charles MULLER (Médecin, Cabinet du Parc) a ouvert un accès d'urgence "
        "au dossier — en bris de glace : « patient inconscient »",
        "le 23/11/2026 à 09:00 — Dr Charles MULLER (Médecin, Cabinet du Parc) a consulté 3 documents"
        " — accès normal",
    ]
