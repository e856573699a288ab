"""ADR 0009 (b): uniqueIds and INS reserved in a short transaction of their own before the
per-patient one; released when that one fails, taken over once stale, swept."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from helpers import CDA, failing_blobs, one_doc_bundle
from outcomes import assert_outcome
from sqlalchemy import func, insert, select, update
from starlette.testclient import TestClient

from conftest import BASE, Api, Identity, new_identity, patient_resource
from dmp.cli import main
from dmp.errors import DmpError
from dmp.services import uniqueness
from dmp.services.unit_of_work import reserved_transaction
from dmp.settings import Settings
from dmp.store.schema import document_uid, ins_index, patient, resource_locator

TIMEOUT = timedelta(seconds=60)  # Settings.reservation_timeout's default


def _uid() -> str:
    """A new uniqueId, as stored (the bundles carry it without the ``urn:oid:`` prefix)."""
    return f"urn:oid:1.2.250.1.999.{uuid.uuid4().int % 10**15}"


def _bundle(ident: Identity, uid: str, **kw: Any) -> dict[str, Any]:
    b, _ = one_doc_bundle(ident, unique_id=uid.removeprefix("urn:oid:"), **kw)
    return b


def _patient_id(api: Api, ident: Identity) -> UUID:
    with api.runtime.engine.connect() as conn:
        pid: UUID = conn.execute(select(patient.c.id).where(patient.c.ins_value == ident.nir)).scalar_one()
    return pid


def _uid_rows(api: Api, uid: str) -> list[Any]:
    with api.runtime.engine.connect() as conn:
        return list(conn.execute(select(document_uid).where(document_uid.c.unique_id == uid)))


def _reserve_uid(api: Api, uid: str, pid: UUID, age: timedelta) -> UUID:
    """A reservation left by a publication that never wrote its document (a crash)."""
    doc_id = uuid.uuid4()
    with api.runtime.engine.begin() as conn:
        conn.execute(
            insert(document_uid).values(
                unique_id=uid, patient_id=pid, document_id=doc_id, reserved_at=datetime.now(UTC) - age
            )
        )
    return doc_id


def _reserve_ins(api: Api, ident: Identity, age: timedelta) -> None:
    """A reservation left by a record creation that never wrote its record (a crash)."""
    with api.runtime.engine.begin() as conn:
        conn.execute(
            insert(ins_index).values(
                ins_oid=ident.system.removeprefix("urn:oid:"),
                ins_value=ident.nir,
                patient_id=uuid.uuid4(),
                reserved_at=datetime.now(UTC) - age,
            )
        )


def test_a_publication_reserves_its_unique_ids(api: Api, patient: Identity) -> None:
    uid = _uid()
    resp = api.post("", _bundle(patient, uid))
    assert resp.status_code == 200, resp.text
    (row,) = _uid_rows(api, uid)
    assert row.patient_id == _patient_id(api, patient)
    assert row.reserved_at is not None
    doc_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    assert str(row.document_id) == doc_id


def test_concurrent_publications_of_one_unique_id_one_wins(api: Api, patient: Identity) -> None:
    uid = _uid()
    bodies = [json.dumps(_bundle(patient, uid, title=f"Course {n}")) for n in range(4)]
    headers = api.headers(**{"Content-Type": "application/fhir+json"})
    start = threading.Barrier(len(bodies))
    answers: list[Any] = [None] * len(bodies)

    def post(n: int) -> None:
        start.wait()
        answers[n] = api.client.post("/fhir/", content=bodies[n], headers=headers)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    for refused in (a for a in answers if a.status_code == 409):
        assert_outcome(refused, 409, "DUPLICATE_UNIQUE_ID")
    (row,) = _uid_rows(api, uid)  # one reservation, the winner's
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [str(row.document_id)]


def test_a_failed_publication_releases_its_reservation_and_a_retry_succeeds(
    api: Api, patient: Identity
) -> None:
    uid = _uid()
    b = _bundle(patient, uid)
    with api.runtime.engine.connect() as conn:
        locators = conn.execute(select(func.count()).select_from(resource_locator)).scalar_one()
    client = TestClient(api.app, base_url=BASE, raise_server_exceptions=False)
    with failing_blobs(api, fail_at=1), client:
        headers = api.headers(**{"Content-Type": "application/fhir+json"})
        assert client.post("/fhir/", content=json.dumps(b), headers=headers).status_code == 500
    assert _uid_rows(api, uid) == []  # released by the compensating transaction…
    with api.runtime.engine.connect() as conn:  # …with the locator rows of its ids
        assert conn.execute(select(func.count()).select_from(resource_locator)).scalar_one() == locators
    assert api.post("", b).status_code == 200  # the same request again, at once


def test_a_pending_reservation_refuses_the_unique_id(api: Api, patient: Identity) -> None:
    uid = _uid()
    _reserve_uid(api, uid, _patient_id(api, patient), age=TIMEOUT - timedelta(seconds=5))
    b = _bundle(patient, uid)
    assert_outcome(api.post("", b), 409, "DUPLICATE_UNIQUE_ID", uid)
    assert len(_uid_rows(api, uid)) == 1  # the refused publication released nothing of the other's


def test_a_stale_reservation_is_taken_over(api: Api, patient: Identity) -> None:
    uid = _uid()
    crashed = _reserve_uid(api, uid, _patient_id(api, patient), age=TIMEOUT + timedelta(seconds=5))
    b = _bundle(patient, uid)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    (row,) = _uid_rows(api, uid)
    assert row.document_id != crashed
    assert resp.json()["entry"][1]["response"]["location"].startswith(f"DocumentReference/{row.document_id}/")


def test_a_stale_reservation_of_a_written_document_is_not_taken_over(api: Api, patient: Identity) -> None:
    uid = _uid()
    b = _bundle(patient, uid)
    assert api.post("", b).status_code == 200
    with api.runtime.engine.begin() as conn:  # old, but its document exists: valid for ever
        conn.execute(
            update(document_uid)
            .where(document_uid.c.unique_id == uid)
            .values(reserved_at=datetime.now(UTC) - 10 * TIMEOUT)
        )
    again = _bundle(patient, uid, title="Autre")
    assert_outcome(api.post("", again), 409, "DUPLICATE_UNIQUE_ID", uid)


def test_the_sweep_deletes_only_stale_reservations(api: Api, patient: Identity) -> None:
    pid = _patient_id(api, patient)
    published = _uid()
    b, _ = one_doc_bundle(patient, unique_id=published)
    assert api.post("", b).status_code == 200
    with api.runtime.engine.begin() as conn:
        conn.execute(
            update(document_uid)
            .where(document_uid.c.unique_id == published)
            .values(reserved_at=datetime.now(UTC) - 10 * TIMEOUT)
        )
    stale, pending = _uid(), _uid()
    stale_doc = _reserve_uid(api, stale, pid, age=TIMEOUT + timedelta(seconds=5))
    with api.runtime.engine.begin() as conn:
        conn.execute(insert(resource_locator).values(id=stale_doc, kind="document", patient_id=pid))
    _reserve_uid(api, pending, pid, age=timedelta(seconds=1))
    stale_ins, pending_ins = new_identity(family="PERIME"), new_identity(family="ENCOURS")
    _reserve_ins(api, stale_ins, age=TIMEOUT + timedelta(seconds=5))
    _reserve_ins(api, pending_ins, age=timedelta(seconds=1))

    assert uniqueness.sweep(api.runtime.engine, api.runtime.settings, datetime.now(UTC)) == 2
    assert _uid_rows(api, stale) == []
    assert len(_uid_rows(api, pending)) == 1 and len(_uid_rows(api, published)) == 1
    with api.runtime.engine.connect() as conn:
        kept = set(conn.execute(select(ins_index.c.ins_value)).scalars())
        gone = select(resource_locator).where(resource_locator.c.id == stale_doc)
        assert conn.execute(gone).first() is None
    assert pending_ins.nir in kept and stale_ins.nir not in kept and patient.nir in kept
    assert uniqueness.sweep(api.runtime.engine, api.runtime.settings, datetime.now(UTC)) == 0


def test_cli_blobs_gc_sweeps_the_reservations(api: Api, patient: Identity) -> None:
    rt = api.runtime
    stale = _uid()
    _reserve_uid(api, stale, _patient_id(api, patient), age=TIMEOUT + timedelta(seconds=5))
    env = {
        "DMP_VAR_DIR": str(rt.settings.var_dir),
        "DMP_DATABASE_URL": rt.engine.url.render_as_string(hide_password=False),
    }
    result = CliRunner().invoke(main, ["blobs", "gc"], env=env)
    assert result.exit_code == 0, result.output
    assert "Réservations d'identifiants périmées supprimées : 1" in result.output
    assert _uid_rows(api, stale) == []


def test_a_record_creation_with_a_pending_ins_reservation(api: Api) -> None:
    ident = new_identity(family="PARALLELE")
    _reserve_ins(api, ident, age=timedelta(seconds=1))
    assert_outcome(
        api.post("Patient", patient_resource(ident)),
        409,
        "RECORD_EXISTS",
        "créé en parallèle par une autre transaction",
    )


def test_a_record_creation_takes_over_a_stale_ins_reservation(api: Api) -> None:
    ident = new_identity(family="REPRISE")
    _reserve_ins(api, ident, age=TIMEOUT + timedelta(seconds=5))
    resp = api.post("Patient", patient_resource(ident))
    assert resp.status_code == 201, resp.text
    with api.runtime.engine.connect() as conn:
        (row,) = conn.execute(select(ins_index).where(ins_index.c.ins_value == ident.nir)).all()
    assert resp.json()["id"] == str(row.patient_id)


def test_a_refused_record_creation_releases_its_ins(api: Api, patient: Identity) -> None:
    twin = _same_traits_other_ins(patient)
    assert_outcome(api.post("Patient", patient_resource(twin)), 422, "IDENTITY_MISMATCH", "sous un autre INS")
    with api.runtime.engine.connect() as conn:
        assert conn.execute(select(ins_index).where(ins_index.c.ins_value == twin.nir)).first() is None


def test_an_existing_record_answers_as_before(api: Api, patient: Identity) -> None:
    pid = _patient_id(api, patient)
    assert_outcome(api.post("Patient", patient_resource(patient)), 409, "RECORD_EXISTS", f"Patient/{pid}")


def _same_traits_other_ins(ident: Identity) -> Identity:
    """The same strict traits under another INS (another order number, hence another key)."""
    other = new_identity(sex=ident.sex, birth_date=ident.birth_date, birth_place=ident.birth_place)
    return dataclasses.replace(ident, nir=other.nir)


class _Held:
    def __init__(self) -> None:
        self.released = 0

    def release(self, conn: Any) -> None:
        self.released += 1


def test_reserved_transaction_releases_only_on_failure(api: Api) -> None:
    held = _Held()
    with reserved_transaction(api.runtime.engine, lambda conn: held) as (_conn, got):
        assert got is held
    assert held.released == 0
    with pytest.raises(DmpError), reserved_transaction(api.runtime.engine, lambda conn: held):
        raise DmpError("FORBIDDEN")
    assert held.released == 1
    ran: list[bool] = []
    with pytest.raises(DmpError) as refused, reserved_transaction(api.runtime.engine, lambda conn: _refuse()):
        ran.append(True)
    assert refused.value.code == "FORBIDDEN"
    assert ran == []  # a refused reservation phase: the use case does not run


def _refuse() -> _Held:
    raise DmpError("FORBIDDEN")


def test_a_publication_for_an_unknown_patient_reserves_nothing(api: Api) -> None:
    stranger = new_identity(family="INCONNU")
    uid = _uid()
    b = _bundle(stranger, uid, content=CDA)
    assert_outcome(api.post("", b), 404, "RECORD_NOT_FOUND")  # refused by the reservation phase
    assert _uid_rows(api, uid) == []


def test_the_timeout_is_a_setting(api: Api, patient: Identity) -> None:
    assert Settings.from_env({}).reservation_timeout == 60
    assert Settings.from_env({"DMP_RESERVATION_TIMEOUT": "5"}).reservation_timeout == 5
    uid = _uid()
    _reserve_uid(api, uid, _patient_id(api, patient), age=timedelta(seconds=10))
    settings = api.runtime.settings
    assert uniqueness.sweep(api.runtime.engine, settings, datetime.now(UTC)) == 0  # 10 s < 60 s
    shorter = dataclasses.replace(settings, reservation_timeout=5)
    assert uniqueness.sweep(api.runtime.engine, shorter, datetime.now(UTC)) == 1
    assert _uid_rows(api, uid) == []
