"""Every action on a record leaves exactly one trail entry, refusals included, and a read
whose trace cannot be written is not served (issue 5)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from helpers import CDA, bundle, doc
from sqlalchemy import select
from test_policy_api import as_patient, consent, patient_id, publish

from conftest import Api, Identity
from dmp.audit import AuditAction, StoredEntry, count_entries, opened, verify
from dmp.store import sealed_fields
from dmp.store.schema_audit import audit_entry


def entries(api: Api, pid: str) -> list[Any]:
    with api.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_entry)
                .where(audit_entry.c.patient_id == uuid.UUID(pid))
                .order_by(audit_entry.c.seq)
            )
        )


def new_entries(api: Api, pid: str, before: int) -> list[Any]:
    return entries(api, pid)[before:]


def one(api: Api, pid: str, before: int, action: AuditAction) -> Any:
    added = new_entries(api, pid, before)
    assert [e.action for e in added] == [action.value], [e.action for e in added]
    return added[0]


def test_each_action_writes_exactly_one_entry(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    created = [e.action for e in entries(api, pid)]
    assert created == [AuditAction.RECORD_CREATE.value, AuditAction.RECORD_CHECK.value]

    n = len(entries(api, pid))
    doc_id = publish(api, patient)
    e = one(api, pid, n, AuditAction.DOCUMENT_PUBLISH)
    assert e.actor_id == api.cards["doctor"].idnps and f"DocumentReference/{doc_id}" in e.target_ids
    assert e.outcome == "success" and e.rule_id == "FEED.professional" and e.access_mode == "normal"

    n = len(entries(api, pid))
    api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    e = one(api, pid, n, AuditAction.RECORD_SEARCH)
    assert e.rule_id == "AC-02.authorised" and doc_id in e.target_ids
    assert e.software == "dmp-client 0.1" and e.source_address == "testclient"

    n = len(entries(api, pid))
    api.get(f"DocumentReference/{doc_id}")
    one(api, pid, n, AuditAction.DOCUMENT_READ)
    n = len(entries(api, pid))
    api.get(f"Binary/{doc_id}")
    one(api, pid, n, AuditAction.DOCUMENT_RETRIEVE)
    n = len(entries(api, pid))
    api.get("List", params={"patient": f"Patient/{pid}"})
    one(api, pid, n, AuditAction.SUBMISSION_SEARCH)
    n = len(entries(api, pid))
    api.get(f"Patient/{pid}")
    one(api, pid, n, AuditAction.RECORD_READ)

    d2 = doc(patient, CDA, replaces=f"DocumentReference/{doc_id}")
    n = len(entries(api, pid))
    resp = api.post("", bundle(patient, (d2, CDA)))
    new_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    e = one(api, pid, n, AuditAction.DOCUMENT_REPLACE)
    assert {f"DocumentReference/{new_id}", f"DocumentReference/{doc_id}"} <= set(targets(e))

    mask = [
        {
            "op": "add",
            "path": "/securityLabel/-",
            "value": {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                        "code": "MASQUE_PS",
                    }
                ]
            },
        }
    ]
    n = len(entries(api, pid))
    assert api.patch(f"DocumentReference/{new_id}", mask).status_code == 200
    one(api, pid, n, AuditAction.DOCUMENT_MASK)
    n = len(entries(api, pid))
    assert (
        api.patch(
            f"DocumentReference/{new_id}", [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
        ).status_code
        == 200
    )
    one(api, pid, n, AuditAction.DOCUMENT_DELETE)

    me = as_patient(api, pid)
    n = len(entries(api, pid))
    assert api.post("Consent", consent(pid, "block", api.cards["doctor2"].idnps), who=me).status_code == 201
    e = one(api, pid, n, AuditAction.CONSENT_CHANGE)
    assert e.actor_kind == "patient" and e.access_mode == "patient"


def targets(e: Any) -> list[str]:
    import json

    return list(json.loads(e.target_ids))


def test_refused_access_is_traced(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    doc_id = publish(api, patient)
    n = len(entries(api, pid))
    resp = api.get(
        "DocumentReference", who="doctor2", params={"patient.identifier": f"{patient.system}|{patient.nir}"}
    )
    assert resp.status_code == 403
    e = one(api, pid, n, AuditAction.ACCESS_REFUSED)
    assert e.outcome == "refused" and e.rule_id == "AC-01.not-authorised"
    assert e.actor_id == api.cards["doctor2"].idnps and "record.search refusé" in e.detail
    n = len(entries(api, pid))
    assert api.get(f"Binary/{doc_id}", who="doctor2").status_code == 404
    e = one(api, pid, n, AuditAction.ACCESS_REFUSED)
    assert doc_id in e.target_ids and e.detail.startswith("document.retrieve refusé")


def test_break_glass_is_traced_with_its_justification(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    publish(api, patient)
    token = api.token("urgentist", purpose="ETREAT", justification="coma, aucun proche joignable")
    n = len(entries(api, pid))
    api.client.get(
        f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}",
        headers={"Authorization": f"Bearer {token}"},
    )
    added = new_entries(api, pid, n)
    assert [e.action for e in added] == [AuditAction.BREAK_GLASS.value, AuditAction.RECORD_SEARCH.value]
    assert all(e.access_mode == "bris_de_glace" for e in added)
    # SE-02: stored sealed under the record's trail key, read through the trail's reader
    assert sealed_fields.is_sealed_text(added[0].justification)
    with api.runtime.engine.connect() as conn:
        read = opened(conn, [StoredEntry.from_row(e) for e in added])
    assert read[0].justification == "coma, aucun proche joignable"


def test_a_read_that_cannot_be_traced_is_not_served(
    api: Api, patient: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc_id = publish(api, patient)

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("dmp.services.trail.append", broken)
    client = api.client
    client._transport.raise_server_exceptions = False  # type: ignore[attr-defined]  # see the 500, not the error
    resp = client.get(f"/fhir/Binary/{doc_id}", headers=api.headers())
    assert resp.status_code == 500
    assert CDA not in resp.content
    assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "INTERNAL_ERROR"
    resp = client.get(
        "/fhir/DocumentReference",
        headers=api.headers(),
        params={"patient.identifier": f"{patient.system}|{patient.nir}"},
    )
    assert resp.status_code == 500 and doc_id not in resp.text


_REFUSE_TRACE: dict[str, tuple[list[str], list[str], str]] = {
    "postgresql": (
        [
            "CREATE FUNCTION test_refuse_trace() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'journal plein'; END $$",
            "CREATE TRIGGER test_refuse_trace BEFORE INSERT ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_trace()",
        ],
        ["DROP TRIGGER test_refuse_trace ON audit_entry", "DROP FUNCTION test_refuse_trace()"],
        "INTERNAL_ERROR",
    ),
    "sqlite": (
        [
            "CREATE TRIGGER test_refuse_trace BEFORE INSERT ON audit_entry "
            "BEGIN SELECT RAISE(ABORT, 'journal plein'); END"
        ],
        ["DROP TRIGGER test_refuse_trace"],
        "TRANSACTION_FAILED",  # SQLite reports a trigger's ABORT as a constraint failure
    ),
}


def test_a_read_whose_trace_the_database_refuses_is_not_served(api: Api, patient: Identity) -> None:
    """The same as above, with the database itself refusing the entry (the real append path)."""
    doc_id = publish(api, patient)
    pid = uuid.UUID(str(patient_id(api, patient)))
    engine = api.runtime.engine
    with engine.connect() as conn:
        before = count_entries(conn, pid)
    install, remove, code = _REFUSE_TRACE[engine.dialect.name]
    with engine.begin() as conn:
        for statement in install:
            conn.exec_driver_sql(statement)
    client = api.client
    client._transport.raise_server_exceptions = False  # type: ignore[attr-defined]
    try:
        resp = client.get(f"/fhir/Binary/{doc_id}", headers=api.headers())
        assert resp.status_code == 500
        assert CDA not in resp.content
        assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == code
        resp = client.get(
            "/fhir/DocumentReference",
            headers=api.headers(),
            params={"patient.identifier": f"{patient.system}|{patient.nir}"},
        )
        assert resp.status_code == 500 and doc_id not in resp.text
    finally:
        with engine.begin() as conn:
            for statement in remove:
                conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert count_entries(conn, pid) == before  # nothing half-written
        assert verify(conn, pid).ok
    # and the same connections serve (and trace) again once the trail accepts entries
    resp = client.get(f"/fhir/Binary/{doc_id}", headers=api.headers())
    assert resp.status_code == 200 and base64.b64decode(resp.json()["data"]) == CDA
    with engine.connect() as conn:
        assert count_entries(conn, pid) == before + 1


def test_audit_events_for_the_patient_and_for_a_professional(api: Api, patient: Identity) -> None:
    from dmp.fhir.validate import validate

    pid = patient_id(api, patient)
    publish(api, patient)
    api.get(
        "DocumentReference", who="doctor2", params={"patient.identifier": f"{patient.system}|{patient.nir}"}
    )
    me = as_patient(api, pid)
    mine = api.get("AuditEvent", who=me, params={"patient": f"Patient/{pid}"}).json()
    actions = [e["resource"] for e in mine["entry"]]
    for resource in actions:
        validate(resource, "AuditEvent")
    who = {
        a["agent"][0]["who"]["identifier"]["value"] for a in actions if "identifier" in a["agent"][0]["who"]
    }
    assert {api.cards["doctor"].idnps, api.cards["doctor2"].idnps} <= who  # the refusal is there too
    # Not authorised on the record: the same 404 as for a record that does not exist.
    refused = api.get("AuditEvent", who="doctor2", params={"patient": f"Patient/{pid}"})
    unknown = api.get("AuditEvent", who="doctor2", params={"patient": f"Patient/{uuid.uuid4()}"})
    assert refused.status_code == unknown.status_code == 404
    assert refused.json() == unknown.json()
    attest = api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert attest.status_code == 201, attest.text
    theirs = api.get("AuditEvent", who="doctor2", params={"patient": f"Patient/{pid}"}).json()
    ids_seen = {a["resource"]["agent"][0]["who"]["identifier"]["value"] for a in theirs["entry"]}
    assert ids_seen == {api.cards["doctor2"].idnps}  # a professional sees their own actions only
    # Reading the trail is itself traced.
    assert entries(api, pid)[-1].action == AuditAction.AUDIT_READ.value


def test_reading_the_consents_is_traced(api: Api, patient: Identity) -> None:
    """GET /fhir/Consent reveals who is authorised or blocked: one consent.read entry (issue 9)."""
    pid = patient_id(api, patient)
    who = as_patient(api, pid)
    created = api.post("Consent", consent(pid, "authorisation", "810002345675"), who=who)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    before = len(entries(api, pid))
    resp = api.get("Consent", who=who, params={"patient": f"Patient/{pid}"})
    assert resp.status_code == 200, resp.text
    entry = one(api, pid, before, AuditAction.CONSENT_READ)
    assert entry.outcome == "success"
    assert f"Consent/{cid}" in json.loads(entry.target_ids)


def test_a_professional_withdrawing_their_own_attestation_is_traced_as_a_success(
    api: Api, patient: Identity
) -> None:
    """It was traced as an AC-02.patient-only refusal although the withdrawal succeeded (issue 9)."""
    pid = patient_id(api, patient)
    attest = api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert attest.status_code == 201, attest.text
    cid = attest.json()["id"]
    before = len(entries(api, pid))
    resp = api.client.delete(f"/fhir/Consent/{cid}", headers=api.headers("doctor2"))
    assert resp.status_code == 204, resp.text
    entry = one(api, pid, before, AuditAction.CONSENT_CHANGE)
    assert entry.outcome == "success"
    assert entry.rule_id == "AC-02.own-attestation-revoked"
    assert json.loads(entry.target_ids) == [f"Consent/{cid}"]
