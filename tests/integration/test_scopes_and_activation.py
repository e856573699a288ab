"""Read-only tokens cannot write; record creation hands back the patient's activation code."""

from __future__ import annotations

from test_policy_api import consent, patient_id, publish

from conftest import Api, Identity, new_identity, patient_resource
from dmp.domain.actor import Actor, ActorKind


def test_read_only_patient_app_token_cannot_write(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    pid = patient_id(api, patient)
    api.person_token(Actor(ActorKind.PATIENT, pid, "Marie", scopes=frozenset({"patient/*.rs"})))
    who = f"person:{pid}"
    reads = api.get("DocumentReference", who=who, params={"patient": f"Patient/{pid}"})
    assert reads.status_code == 200 and doc_id in reads.text
    refused = api.post("Consent", consent(pid, "block", api.cards["doctor2"].idnps), who=who)
    assert refused.status_code == 403
    assert "lecture seule" in refused.json()["issue"][0]["diagnostics"]
    mask = [{"op": "replace", "path": "/status", "value": "current"}]
    assert api.patch(f"DocumentReference/{doc_id}", mask, who=who).status_code == 403
    # The same patient with a read-write grant may.
    api.person_token(Actor(ActorKind.PATIENT, pid, "Marie", scopes=frozenset({"patient/*.cruds"})))
    assert api.post("Consent", consent(pid, "block", api.cards["doctor2"].idnps), who=who).status_code == 201


def test_creation_returns_the_activation_code_and_sends_it(api: Api) -> None:
    from sqlalchemy import select

    from dmp.store import sealed_fields
    from dmp.store.schema_outbox import outbox_message

    ident = new_identity()
    body = patient_resource(ident)
    body["telecom"] = [{"system": "email", "value": "marie@example.org"}]
    resp = api.post("Patient", body)
    assert resp.status_code == 201
    code = resp.headers["DMP-Activation-Code"]
    assert len(code.replace("-", "")) >= 12 and resp.headers["Cache-Control"] == "no-store"
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(select(outbox_message)).all()
        opened = sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient",))  # SE-02: sealed
        sent = [(m.template, m.recipient) for m in opened]
    assert [(t, r) for t, r in sent] == [("account_activation", "marie@example.org")]
    bad = patient_resource(new_identity(family="AUTRE"))
    bad["telecom"] = [{"system": "email", "value": "pas-une-adresse"}]
    refused = api.post("Patient", bad)
    assert (
        refused.status_code == 422
        and refused.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_VALUE"
    )
