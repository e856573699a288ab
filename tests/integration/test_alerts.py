"""Alerts through the outbox: emergency accesses, first access of a professional, new
documents (opt-in), and the médecin traitant when the record is opened (LC-16)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from test_policy_api import consent, patient_id, publish

from conftest import Api, Identity, new_identity, patient_resource
from dmp.accounts.service import create_patient_account, upsert_professional
from dmp.outbox import LoggingSmsTransport, deliver_due
from dmp.services import alerts
from dmp.store import sealed_fields
from dmp.store.schema_outbox import outbox_message


def messages(api: Api, pid: str) -> list[Any]:
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(outbox_message)
            .where(outbox_message.c.patient_id == uuid.UUID(pid))
            .order_by(outbox_message.c.created_at)
        )
        # SE-02: a record's messages are sealed under its key; read through the seam
        return list(sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient", "params")))


def with_account(api: Api, ident: Identity, **contact: str) -> str:
    pid = patient_id(api, ident)
    with api.runtime.engine.begin() as conn:
        create_patient_account(
            conn, uuid.UUID(pid), api.runtime.now(), settings=api.runtime.settings, **contact
        )
    return pid


def templates(api: Api, pid: str) -> list[str]:
    return [m.template for m in messages(api, pid) if m.template != "account_activation"]


def test_break_glass_and_centre15_alert_the_patient(api: Api, patient: Identity) -> None:
    pid = with_account(api, patient, email="marie.dupont@example.org")
    publish(api, patient)
    token = api.token("urgentist", purpose="ETREAT", justification="détresse respiratoire")
    url = f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}"
    api.client.get(url, headers={"Authorization": f"Bearer {token}"})
    api.client.get(url, headers={"Authorization": f"Bearer {token}"})  # same session: no second alert
    regulator = api.token("regulator", purpose="CENTRE15", justification="appel au 15")
    api.client.get(url, headers={"Authorization": f"Bearer {regulator}"})
    assert templates(api, pid) == ["break_glass_alert", "centre15_alert"]
    alert = next(m for m in messages(api, pid) if m.template == "break_glass_alert")
    assert alert.channel == "email" and alert.recipient == "marie.dupont@example.org"
    assert "détresse respiratoire" in alert.params


def test_first_access_by_a_new_professional_alerts_once(api: Api, patient: Identity) -> None:
    pid = with_account(api, patient, phone="06 12 34 56 78")
    publish(api, patient)
    alerts._seen = alerts._Seen()  # a fresh process: the positive cache starts empty
    search = {"patient.identifier": f"{patient.system}|{patient.nir}"}
    api.get("DocumentReference", params=search)  # the creating doctor: first access
    api.get("DocumentReference", params=search)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    api.get("DocumentReference", who="doctor2", params=search)
    api.get("DocumentReference", who="doctor2", params=search)
    assert templates(api, pid) == ["new_professional_access", "new_professional_access"]
    sms = [m for m in messages(api, pid) if m.template == "new_professional_access"]
    assert all(m.channel == "sms" for m in sms)
    # ... and they really leave: the SMS transport receives the French text.
    transport = LoggingSmsTransport()
    deliver_due(api.runtime.engine, {"sms": transport}, api.runtime.now())
    texts = [m.text for m in transport.sent]
    assert any("Charles DAVID" in t for t in texts)


def test_new_document_alerts_are_opt_in(api: Api, patient: Identity) -> None:
    pid = with_account(api, patient, email="marie.dupont@example.org")
    publish(api, patient)
    assert "new_document" not in templates(api, pid)
    with api.runtime.engine.begin() as conn:
        alerts.set_new_document_alerts(conn, uuid.UUID(pid), True)
    publish(api, patient)
    assert templates(api, pid).count("new_document") == 1


def test_no_contact_no_message_but_the_notification_centre(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    token = api.token("urgentist", purpose="ETREAT", justification="inconscient")
    api.client.get(
        f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert messages(api, pid) == []


def test_medecin_traitant_is_told_the_record_was_opened(api: Api) -> None:
    with api.runtime.engine.begin() as conn:
        upsert_professional_entry(conn, api)
    ident = new_identity()
    body = patient_resource(ident)
    body["generalPractitioner"] = [
        {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": api.cards["doctor2"].idnps}}
    ]
    resp = api.post("Patient", body)
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    sent = [m for m in messages(api, pid) if m.template == "medecin_traitant_record_opened"]
    assert [m.recipient for m in sent] == ["charles.david@example.org"]
    # Designated by the patient, not yet accepted by the doctor: proposed.
    listed = api.get("Consent", who="doctor2", params={"patient": f"Patient/{pid}"}).json()
    assert [e["resource"]["status"] for e in listed["entry"]] == ["proposed"]


def upsert_professional_entry(conn: Any, api: Api) -> None:
    from dmp.accounts.service import DirectoryEntry

    entry = DirectoryEntry(
        rpps="10002345675",
        name="Charles DAVID",
        profession="10",
        specialty="SM27",
        email="charles.david@example.org",
    )
    upsert_professional(conn, entry, api.runtime.now(), settings=api.runtime.settings)
