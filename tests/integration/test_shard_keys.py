"""Shard-ready keys (ADR 0009): record-less trail entries spread over independent chains.

Uses the audit database of test_audit_trail.py (its own database, append-only triggers on).
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

from helpers import bundle
from sqlalchemy import Engine, delete, select, update
from test_audit_trail import (  # noqa: F401 - the fixtures are used by name
    T0,
    Cli,
    audit_engine_fixture,
    chain,
    cli_fixture,
    db_fixture,
    fill,
    tampering,
)

from conftest import Api, Identity
from dmp.audit import NIL_PATIENT, AuditAction, verify
from dmp.audit.entry import is_nil_chain, nil_chain
from dmp.audit.fhir import to_audit_event
from dmp.domain.actor import Actor, ActorKind
from dmp.services import trail
from dmp.store import locator
from dmp.store.schema import resource_locator
from dmp.store.schema_audit import audit_entry, audit_head
from dmp.store.shard import NIL_KEYS

ALICE = Actor(kind=ActorKind.PROFESSIONAL, id="810001234565", name="Alice MARTIN")
BOB = Actor(kind=ActorKind.PROFESSIONAL, id="810009876543", name="Bob DURAND")


def _record_less(db: Engine, actor: Actor, n: int = 1) -> None:
    with db.begin() as conn:
        for i in range(n):
            trail.record(conn, actor, AuditAction.ACCESS_REFUSED, patient_id=None, at=T0,
                         detail=f"INS inconnu {i}")


def test_record_less_entries_of_different_actors_go_to_different_chains(db: Engine, cli: Cli) -> None:
    a, b = nil_chain("professional", ALICE.id), nil_chain("professional", BOB.id)
    assert a != b and is_nil_chain(a) and is_nil_chain(b)
    _record_less(db, ALICE, 3)
    _record_less(db, BOB, 2)
    ea, eb = chain(db, a), chain(db, b)
    # each actor's entries form one chain of its own, in order, from the genesis
    assert [e.seq for e in ea] == [1, 2, 3] and {e.actor_id for e in ea} == {ALICE.id}
    assert [e.seq for e in eb] == [1, 2] and {e.actor_id for e in eb} == {BOB.id}
    assert [e.prev_hash for e in ea[1:]] == [e.hash for e in ea[:-1]]
    with db.connect() as conn:
        heads = {r.patient_id: r.seq for r in conn.execute(select(audit_head))}
        assert heads == {a: 3, b: 2}
        for pid, n in ((a, 3), (b, 2)):
            report = verify(conn, pid)
            assert report.ok and report.entries == n, report.lines()
        assert verify(conn).ok
    assert not any(e.has_record for e in ea + eb)
    event = to_audit_event(ea[0], "https://dmp.example/fhir")
    assert not any(ent.get("what", {}).get("reference", "").startswith("Patient/") for ent in event["entity"])
    result = cli("verify")
    assert result.exit_code == 0 and "aucune rupture" in result.output, result.output


def test_the_single_nil_chain_of_existing_data_still_verifies(db: Engine, cli: Cli) -> None:
    """Entries written before ADR 0009 (all record-less ones on NIL_PATIENT) keep verifying,
    anchored or not, next to the new spread chains and to records."""
    legacy = fill(db, None, 4)  # the old path: patient_id None → NIL_PATIENT
    assert {e.patient_id for e in legacy} == {NIL_PATIENT}
    assert cli("anchor").exit_code == 0
    pid = uuid4()
    fill(db, pid, 2)
    _record_less(db, BOB, 2)
    with db.connect() as conn:
        assert verify(conn, NIL_PATIENT).ok
        report = verify(conn)
        assert report.ok and report.entries == 8, report.lines()
    result = cli("verify")
    assert result.exit_code == 0 and "aucune rupture" in result.output, result.output


def test_a_break_on_a_spread_chain_is_named_and_only_there(db: Engine, cli: Cli) -> None:
    b = nil_chain("professional", BOB.id)
    assert b.int != 0
    fill(db, None, 2)
    _record_less(db, ALICE, 2)
    _record_less(db, BOB, 2)
    with tampering(db) as conn:
        conn.execute(update(audit_entry).where(audit_entry.c.patient_id == b, audit_entry.c.seq == 2)
                     .values(detail="réécrit"))
    result = cli("verify")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("Rupture")]
    assert lines == [f"Rupture — journal hors dossier n° {b.int}, position 2 : entrée modifiée : son contenu "
                     "ne correspond plus à son empreinte enregistrée."]


def test_record_less_entries_spread_over_many_chains(db: Engine) -> None:
    actors = [Actor(kind=ActorKind.PROFESSIONAL, id=f"8100{i:08d}", name=f"PS {i}") for i in range(200)]
    chains = {nil_chain("professional", a.id) for a in actors}
    assert len(chains) > NIL_KEYS // 2  # 200 actors over 64 chains: most chains used
    assert all(is_nil_chain(c) for c in chains) and not is_nil_chain(uuid4())
    assert nil_chain("patient", "1234") == nil_chain("patient", "1234")  # stable
    assert is_nil_chain(UUID(int=NIL_KEYS - 1)) and not is_nil_chain(UUID(int=NIL_KEYS))


# ---- (a) reads by id through the resource locator ---------------------------------------------


def _publish(api: Api, patient: Identity) -> tuple[UUID, UUID]:
    resp = api.post("", bundle(patient))
    assert resp.status_code == 200, resp.text
    paths = [e["response"]["location"].split("/fhir/")[-1] for e in resp.json()["entry"]]
    doc = next(p for p in paths if p.startswith("DocumentReference/")).split("/")[1]
    lst = next(p for p in paths if p.startswith("List/")).split("/")[1]
    return UUID(doc), UUID(lst)


def test_a_publication_registers_its_resources_and_reads_go_through_the_locator(
    api: Api, patient: Identity
) -> None:
    doc, lst = _publish(api, patient)
    engine = api.runtime.engine
    with engine.connect() as conn:
        rows = {r.id: (r.kind, r.patient_id) for r in conn.execute(select(resource_locator))
                if r.kind != locator.CONSENT}
        (pid,) = {p for _, p in rows.values()}
        assert rows == {doc: (locator.DOCUMENT, pid), lst: (locator.LIST, pid)}
        # the locator is what answers: pointed elsewhere, the read finds nothing there
        conn.execute(update(resource_locator).where(resource_locator.c.id == doc).values(patient_id=uuid4()))
        conn.commit()
    assert api.get(f"DocumentReference/{doc}").status_code == 404
    with engine.begin() as conn:
        conn.execute(update(resource_locator).where(resource_locator.c.id == doc).values(patient_id=pid))
    for path in (f"DocumentReference/{doc}", f"DocumentReference/{doc}/_history/1", f"Binary/{doc}",
                 f"List/{lst}"):
        assert api.get(path).status_code == 200, path


def test_a_resource_without_a_locator_row_is_still_read(api: Api, patient: Identity) -> None:
    """Rows written before the locator (or by a path that does not register yet) fall back to
    the table's own id index."""
    doc, lst = _publish(api, patient)
    with api.runtime.engine.begin() as conn:
        conn.execute(delete(resource_locator))
        assert locator.locate(conn, locator.DOCUMENT, doc) is not None
        assert locator.locate(conn, locator.LIST, uuid4()) is None
    assert api.get(f"DocumentReference/{doc}").status_code == 200
    assert api.get(f"List/{lst}").status_code == 200
    assert api.get(f"List/{uuid4()}").status_code == 404


def test_migration_fills_the_locator_from_existing_resources(tmp_path: Path) -> None:
    from datetime import date

    from sqlalchemy import insert

    from dmp.store.db import alembic_config, make_engine, upgrade
    from dmp.store.schema import document, patient, submission_set

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        upgrade(engine, "0004")
        pid, doc, lst = uuid4(), uuid4(), uuid4()
        with engine.begin() as conn:
            conn.execute(insert(patient).values(
                id=pid, ins_oid="1.2.250.1.213.1.4.8", ins_value="255069999999934", birth_family_name="X",
                birth_given_names="Y", sex="female", birth_date=date(1955, 6, 1), birth_place_insee="75056",
                identity_status="VALI", traits_key="k", record_status="open", created_at=T0, updated_at=T0,
                version=1))
            conn.execute(insert(submission_set).values(
                patient_id=pid, id=lst, unique_id="1.2.3", source_id="1.2", submission_time=T0,
                archived=False, resource_json=b"{}"))
            conn.execute(insert(document).values(
                patient_id=pid, id=doc, unique_id="1.2.3.4", version_id=1, availability="approved",
                class_code="c", type_system="s", type_code="t", format_code="f", facility_code="f",
                practice_code="p", confidentiality="N", flags=0, creation_time=T0, period_start=T0,
                submission_time=T0, submission_set_id=lst, title="t", mime_type="text/xml", language="fr-FR",
                size=1, sha1_b64="x", sha256_hex="y", blob_key="b", published_by="p", last_updated=T0,
                resource_json=b"{}"))
        upgrade(engine)
        with engine.connect() as conn:
            rows = {r.id: (r.kind, r.patient_id) for r in conn.execute(select(resource_locator))}
        assert rows == {doc: (locator.DOCUMENT, pid), lst: (locator.LIST, pid)}
        from alembic import command

        command.downgrade(alembic_config(engine), "0004")  # and back: the downgrade drops it cleanly
        upgrade(engine)
    finally:
        engine.dispose()


def test_every_consent_is_registered(api: Api, patient: Identity) -> None:
    """Record creation (and any later consent) registers each consent, so that
    ``DELETE Consent/{id}`` finds its record without a scatter."""
    from dmp.store.schema_policy import record_consent

    with api.runtime.engine.connect() as conn:
        rc, rl = record_consent.c, resource_locator.c
        consents = {(r.id, r.patient_id) for r in conn.execute(select(rc.id, rc.patient_id))}
        located = {(r.id, r.patient_id)
                   for r in conn.execute(select(rl.id, rl.patient_id).where(rl.kind == "consent"))}
        assert consents and located == consents
        for cid, pid in consents:
            assert locator.locate(conn, locator.CONSENT, cid) == pid


def test_a_list_of_a_record_one_may_not_open_is_a_missing_list(api: Api, patient: Identity) -> None:
    """List/<id> by a professional the patient did not authorise: the same 404 as an unknown id
    (as DocumentReference/<id>), not a 403 that would confirm the list exists; the refusal is traced."""
    from dmp.store.schema_audit import audit_entry

    _, lst = _publish(api, patient)
    missing = api.get(f"List/{uuid4()}", who="nurse")
    hidden = api.get(f"List/{lst}", who="nurse")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert api.get(f"List/{lst}").status_code == 200  # the authorised author still reads it
    with api.runtime.engine.connect() as conn:
        nurse = audit_entry.c.actor_id == api.cards["nurse"].idnps
        traced = conn.execute(select(audit_entry.c.outcome, audit_entry.c.rule_id).where(nurse)).all()
    assert ("refused", "AC-01.not-authorised") in {(o, r) for o, r in traced}
