"""SE-02 « Chaque DMP est crypté par une clé propre »: a test document's title, its author's name,
the patient's birth and usual names and a break-glass justification are nowhere in clear in the
database, read as files (SQLite; PostgreSQL's data directory when it is readable) and as text
(every row of every table); the API and the portal still show them (docs/encryption.md)."""

from __future__ import annotations

import random
import re
import string
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap
from sqlalchemy import Engine, inspect, select, text, update
from test_policy_api import patient_id, publish

from conftest import Api, Identity, new_identity, patient_resource
from dmp.domain.actor import Actor, ActorKind
from dmp.services import documents
from dmp.services import keys as record_keys
from dmp.store import crypto, sealed_fields
from dmp.store.schema import document, patient, record_key
from dmp.store.schema_audit import audit_entry
from dmp.store.schema_outbox import outbox_message

# Unique to this run: the cluster's WAL is shared with every other database and run, so a value
# found there must have been written by this test.
RUN = "".join(random.choice(string.ascii_uppercase) for _ in range(8))
TITLE = f"Scintigraphie Quetzalcoatl {RUN}"
AUTHOR = f"Barnabe OKONKWO{RUN}"
BIRTH_NAME = f"ZORGLUB{RUN}"
USUAL_NAME = f"VANDERKLOOT{RUN}"
JUSTIFICATION = f"syncope pangolin {RUN.lower()}"
EMAIL = f"hortense.{RUN.lower()}@example.org"
# What the reseal test writes in clear on purpose (a row as written before SE-02): not SECRETS.
LEGACY_TITLE, LEGACY_AUTHOR, LEGACY_NAME = f"Ancien titre {RUN}", f"Ancien AUTEUR{RUN}", f"ANCIEN{RUN}"
SECRETS = (TITLE, AUTHOR, BIRTH_NAME, USUAL_NAME, JUSTIFICATION, EMAIL)


def _record(api: Api) -> tuple[Identity, str, uuid.UUID]:
    ident = new_identity(family=BIRTH_NAME, given="Hortensia")
    body = patient_resource(ident)
    body["name"].append({"use": "usual", "family": USUAL_NAME, "given": ["Hortense"]})
    # A contact: the patient's account and the break-glass alert go through the outbox
    body["telecom"] = [{"system": "email", "value": EMAIL}]
    assert api.post("Patient", body).status_code == 201
    doc_id = publish(api, ident, title=TITLE, author_name=AUTHOR)
    token = api.token("urgentist", purpose="ETREAT", justification=JUSTIFICATION)
    resp = api.client.get(
        f"/fhir/DocumentReference?patient.identifier={ident.system}|{ident.nir}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.text
    pid = patient_id(api, ident)
    # The patient reads their record: the trail names them (actor_name), sealed too.
    api.person_token(Actor(ActorKind.PATIENT, pid, f"Hortensia {BIRTH_NAME}"))
    mine = api.get("DocumentReference", who=f"person:{pid}", params={"patient": f"Patient/{pid}"})
    assert mine.status_code == 200, mine.text
    return ident, pid, uuid.UUID(doc_id)


def _history(api: Api, pid: str | uuid.UUID) -> str:
    """The record's « historique des accès » as the portal shows it (the justification opened)."""
    from dmp.audit import history

    with api.runtime.engine.connect() as conn:
        return str(history(conn, uuid.UUID(str(pid))))


def _rows_as_text(engine: Engine) -> str:
    """Every row of every table, as the database renders it in text."""
    names = inspect(engine).get_table_names()
    out: list[str] = []
    with engine.connect() as conn:
        for name in names:
            if engine.dialect.name == "postgresql":
                rows = conn.execute(text(f'SELECT t::text FROM "{name}" t'))
            else:
                rows = conn.execute(text(f'SELECT * FROM "{name}"'))
            out.extend(str(tuple(r)) for r in rows)
    return "\n".join(out)


def _database_files(engine: Engine) -> list[Path]:
    """The files the database lives in: the SQLite file (and its journal), or this database's
    directory and the WAL of the PostgreSQL cluster when this process may read them."""
    if engine.dialect.name == "sqlite":
        base = Path(str(engine.url.database))
        return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-journal")) if p.exists()]
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        data_dir = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        query = "SELECT oid FROM pg_database WHERE datname = current_database()"
        oid = conn.execute(text(query)).scalar_one()
    roots = [data_dir / "base" / str(oid), data_dir / "pg_wal"]
    try:
        files = [p for root in roots for p in root.iterdir() if p.is_file()]
        files[0].read_bytes()[:1]
    except (OSError, IndexError):
        return []
    return files


def _clear_hits(blob: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in blob or s.lower().encode() in blob]


def test_no_health_or_identity_text_in_clear_in_the_database(api: Api) -> None:
    ident, pid, doc_id = _record(api)
    engine = api.runtime.engine
    dumped = _rows_as_text(engine)
    assert str(doc_id) in dumped  # the dump does see the rows
    assert [s for s in SECRETS if s in dumped or s.lower() in dumped] == []
    with engine.connect() as conn:  # the outbox did get the alert, sealed: it opens with the record's key
        query = select(outbox_message).where(outbox_message.c.template == "break_glass_alert")
        rows = conn.execute(query).all()
        [alert] = sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient", "params"))
    assert alert.recipient == EMAIL and JUSTIFICATION in alert.params
    files = _database_files(engine)
    if engine.dialect.name == "sqlite":
        assert files, "the SQLite file must be readable"
    for path in files:
        assert _clear_hits(path.read_bytes()) == [], path
    # Everything still reads: the API serves the title, author and names; the trail the justification.
    found = api.get(f"DocumentReference/{doc_id}").json()
    assert found["content"][0]["attachment"]["title"] == TITLE
    assert AUTHOR.split()[-1] in str(found)  # the author, as served (contained Practitioner)
    record = api.get(f"Patient/{pid}").json()
    assert BIRTH_NAME in str(record["name"]) and USUAL_NAME in str(record["name"])
    assert JUSTIFICATION in _history(api, pid)
    assert f"Hortensia {BIRTH_NAME}" in _history(api, pid)  # the patient, named in their history


def test_postgres_raw_files_checked_when_readable(api: Api) -> None:
    """Says which form of the check ran on PostgreSQL (files, or rows only)."""
    engine = api.runtime.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    _record(api)
    files = _database_files(engine)
    if not files:
        pytest.skip("data directory not readable by this process: rows checked as text only")
    hits = [(p.name, _clear_hits(p.read_bytes())) for p in files]
    assert [h for h in hits if h[1]] == []


def test_a_sealed_value_moved_to_another_row_does_not_open(api: Api) -> None:
    ident, pid, doc_id = _record(api)
    dek = _dek(api, uuid.UUID(pid))
    sealed = sealed_fields.seal_text(dek, uuid.UUID(pid), "document.title", doc_id, "x")
    with pytest.raises(InvalidTag):
        sealed_fields.open_text(dek, uuid.UUID(pid), "document.title", uuid.uuid4(), sealed)
    with pytest.raises(InvalidTag):
        sealed_fields.open_text(dek, uuid.UUID(pid), "document.author_name", doc_id, sealed)


def _dek(api: Api, pid: uuid.UUID) -> bytes:
    with api.runtime.engine.connect() as conn:
        return sealed_fields.record_dek(conn, pid, api.runtime.keyring)


def _stored(api: Api, pid: uuid.UUID) -> dict[str, Any]:
    with api.runtime.engine.connect() as conn:
        key = conn.execute(select(record_key).where(record_key.c.patient_id == pid)).one()
        doc = conn.execute(select(document).where(document.c.patient_id == pid)).one()
        pat = conn.execute(select(patient).where(patient.c.id == pid)).one()
    return {"key": key, "doc": doc, "patient": pat}


def test_rotating_a_record_key_reencrypts_everything_and_destroys_the_old_key(api: Api) -> None:
    ident, pid_s, doc_id = _record(api)
    pid = uuid.UUID(pid_s)
    rt = api.runtime
    before = _stored(api, pid)
    old_dek = _dek(api, pid)
    content = api.client.get(f"/fhir/Binary/{doc_id}", headers=api.headers()).content
    with rt.engine.begin() as conn:
        done = record_keys.rotate_record(conn, rt.keyring, rt.blobs, pid)
    for key in done.stale_blobs:
        rt.blobs.delete(key)
    after = _stored(api, pid)
    assert after["key"].wrapped_key != before["key"].wrapped_key
    assert _dek(api, pid) != old_dek
    assert done.blobs == 1 and done.fields >= 6 and done.stale_blobs == [before["doc"].blob_key]
    # Nothing of the record opens with the old key any more.
    for name in ("title", "author_name"):
        with pytest.raises(InvalidTag):
            sealed_fields.open_text(old_dek, pid, f"document.{name}", doc_id, getattr(after["doc"], name))
    with pytest.raises(InvalidTag):
        family = after["patient"].birth_family_name
        sealed_fields.open_text(old_dek, pid, "patient.birth_family_name", pid, family)
    with pytest.raises(InvalidTag):
        crypto.open_sealed(old_dek, pid, after["doc"].sha256_hex, rt.blobs.get(after["doc"].blob_key))
    # …and everything reads with the new one, through the API.
    rt.keyring.forget(pid)
    assert api.get(f"DocumentReference/{doc_id}").json()["content"][0]["attachment"]["title"] == TITLE
    assert api.client.get(f"/fhir/Binary/{doc_id}", headers=api.headers()).content == content
    assert BIRTH_NAME in str(api.get(f"Patient/{pid}").json()["name"])
    assert JUSTIFICATION in _history(api, pid)
    # The old key is gone: no wrapped form of it is left in the record_key table.
    with rt.engine.connect() as conn:
        wrapped = [bytes(r.wrapped_key) for r in conn.execute(select(record_key))]
    assert all(rt.keyring.unwrap_uncached(w) != old_dek for w in wrapped)


def test_rotating_the_master_key_rewraps_every_record_key(api: Api) -> None:
    ident, pid_s, doc_id = _record(api)
    pid = uuid.UUID(pid_s)
    rt = api.runtime
    new_ring = crypto.KeyRing(b"n" * 32)
    dek = _dek(api, pid)
    for pid_each in record_keys.record_ids(rt.engine):
        with rt.engine.begin() as conn:
            assert record_keys.rewrap_record(conn, rt.keyring, new_ring, pid_each)
    with rt.engine.begin() as conn:  # resumable: a second pass has nothing to do
        assert not record_keys.rewrap_record(conn, rt.keyring, new_ring, pid)
    row = _stored(api, pid)["key"]
    assert row.kek_id == new_ring.kek_id
    assert new_ring.unwrap_uncached(bytes(row.wrapped_key)) == dek
    with pytest.raises(InvalidUnwrap):  # the old master key no longer unwraps it
        rt.keyring.unwrap_uncached(bytes(row.wrapped_key))
    assert row.trail_key is not None and new_ring.unwrap_uncached(bytes(row.trail_key))
    # The server restarted on the new master key reads the record, finds it by its traits and
    # refuses a twin identity as before.
    api.runtime.keyring = new_ring
    sealed_fields.bind_keyring(rt.engine, new_ring)
    assert api.get(f"DocumentReference/{doc_id}").json()["content"][0]["attachment"]["title"] == TITLE
    twin = new_identity(family=BIRTH_NAME, given="Hortensia")
    body = patient_resource(twin)
    body["name"][0]["given"] = [ident.given]
    resp = api.post("Patient", body)
    assert resp.status_code in (409, 422) and "mêmes traits" in resp.text


def test_reseal_seals_rows_written_in_clear_and_keeps_them_readable(api: Api) -> None:
    ident, pid_s, doc_id = _record(api)
    pid = uuid.UUID(pid_s)
    rt = api.runtime
    with rt.engine.begin() as conn:  # a row as written before SE-02
        legacy = {"title": LEGACY_TITLE, "author_name": LEGACY_AUTHOR}
        conn.execute(update(document).where(document.c.id == doc_id).values(**legacy))
        conn.execute(update(patient).where(patient.c.id == pid).values(birth_family_name=LEGACY_NAME))
    assert api.get(f"DocumentReference/{doc_id}").status_code == 200  # a clear row still reads
    with rt.engine.begin() as conn:
        assert record_keys.reseal_record(conn, rt.keyring, pid) == 3
    with rt.engine.begin() as conn:
        assert record_keys.reseal_record(conn, rt.keyring, pid) == 0
    stored = _stored(api, pid)
    assert sealed_fields.is_sealed_text(stored["doc"].title)
    assert sealed_fields.is_sealed_text(stored["patient"].birth_family_name)
    assert re.fullmatch("[0-9a-f]{64}", stored["patient"].traits_key)
    assert api.get(f"DocumentReference/{doc_id}").json()["content"][0]["attachment"]["title"] == TITLE
    with rt.engine.connect() as conn:  # the resealed column opens to what it held in clear
        assert documents.title_of(conn, pid, doc_id) == LEGACY_TITLE


def test_trail_still_verifies_with_sealed_justifications(api: Api) -> None:
    _, pid_s, _ = _record(api)
    with api.runtime.engine.connect() as conn:
        query = select(audit_entry.c.justification).where(audit_entry.c.justification.is_not(None))
        stored = [r.justification for r in conn.execute(query)]
    assert stored and all(sealed_fields.is_sealed_text(j) for j in stored)
    from dmp.audit import verify

    with api.runtime.engine.connect() as conn:
        report = verify(conn, uuid.UUID(pid_s))
    assert report.ok, report.lines()


def test_cli_reseal_and_rotate_record(api: Api, tmp_path: Path) -> None:
    import base64

    from click.testing import CliRunner

    from dmp.cli import main

    _, pid_s, doc_id = _record(api)
    rt = api.runtime
    env = {
        "DMP_DATABASE_URL": rt.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(rt.settings.var_dir),
        "DMP_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
    }
    runner = CliRunner()
    resealed = runner.invoke(main, ["keys", "reseal"], env=env)
    assert resealed.exit_code == 0, resealed.output
    assert "0 dossier(s) avaient des champs en clair" in resealed.output
    rotated = runner.invoke(main, ["keys", "rotate-record", f"Patient/{pid_s}"], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "l'ancienne clé est détruite" in rotated.output
    unknown = runner.invoke(main, ["keys", "rotate-record", f"Patient/{uuid.uuid4()}"], env=env)
    assert unknown.exit_code == 1 and "dossier inconnu" in unknown.output
    rt.keyring.forget(uuid.UUID(pid_s))
    assert api.get(f"DocumentReference/{doc_id}").json()["content"][0]["attachment"]["title"] == TITLE
    # The trail tools open the sealed justification with the instance's master key.
    shown = runner.invoke(main, ["audit", "history", f"Patient/{pid_s}"], env=env)
    assert shown.exit_code == 0 and JUSTIFICATION in shown.output, shown.output
    out = tmp_path / "trail.ndjson"
    args = ["audit", "export", "--patient", f"Patient/{pid_s}", "--out", str(out)]
    exported = runner.invoke(main, args, env=env)
    assert exported.exit_code == 0 and JUSTIFICATION in out.read_text(), exported.output


def test_cli_rotate_master_replaces_the_key_file(api: Api) -> None:
    import base64

    from click.testing import CliRunner

    from dmp.cli import main

    _, pid_s, doc_id = _record(api)
    rt = api.runtime
    env = {  # file-based master key: var/keys/master.key (written by the runtime fixture)
        "DMP_DATABASE_URL": rt.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(rt.settings.var_dir),
    }
    key_file = rt.settings.keys_dir / "master.key"
    old = key_file.read_bytes()
    bad = rt.settings.var_dir / "bad.key"
    bad.write_bytes(base64.b64encode(b"short") + b"\n")
    refused = CliRunner().invoke(main, ["keys", "rotate-master", "--new-key-file", str(bad)], env=env)
    assert refused.exit_code == 1 and "32 octets" in refused.output
    assert key_file.read_bytes() == old
    done = CliRunner().invoke(main, ["keys", "rotate-master"], env=env)
    assert done.exit_code == 0, done.output
    assert "ré-enveloppé(s)" in done.output and "redémarrez" in done.output
    new = base64.b64decode(key_file.read_bytes().strip())
    assert key_file.read_bytes() != old and len(new) == 32
    assert not (rt.settings.keys_dir / "master.key.new").exists()
    # A server restarted on the new key reads the record.
    restarted = crypto.KeyRing(new)
    api.runtime.keyring = restarted
    sealed_fields.bind_keyring(rt.engine, restarted)
    assert api.get(f"DocumentReference/{doc_id}").json()["content"][0]["attachment"]["title"] == TITLE


def test_a_value_sealed_during_a_rotation_opens_with_the_new_key(api: Api) -> None:
    """A writer sealing under the record's key while ``rotate-record`` runs waits for it (the key
    lock), then seals under the new key: nothing is left under the destroyed one."""
    import threading
    import time

    from dmp.services import notifications

    _, pid_s, _ = _record(api)
    pid = uuid.UUID(pid_s)
    rt = api.runtime
    sealed_at: list[float] = []

    def writer() -> None:
        with rt.engine.begin() as conn:
            notifications.notify(conn, pid, "info", f"pendant la rotation {RUN}", rt.now())
        sealed_at.append(time.monotonic())

    with rt.engine.begin() as conn:
        done = record_keys.rotate_record(conn, rt.keyring, rt.blobs, pid)
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.8)
        assert sealed_at == []  # the writer waits for the rotation
        committed = time.monotonic()
    thread.join(timeout=30)
    for key in done.stale_blobs:
        rt.blobs.delete(key)
    assert sealed_at and sealed_at[0] >= committed
    rt.keyring.forget(pid)
    with rt.engine.connect() as conn:
        texts = [t for _, _, t in notifications.list_for(conn, pid)]
    assert f"pendant la rotation {RUN}" in texts
