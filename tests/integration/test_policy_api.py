"""The access policy as a client sees it: refusals, consents, masking, emergencies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from helpers import CDA, bundle, doc
from sqlalchemy import select

from conftest import Api, Identity
from dmp.domain.actor import Actor, ActorKind
from dmp.fhir.consent import IDNPS, IDNST, KIND_SYSTEM
from dmp.services import notifications
from dmp.store import sealed_fields
from dmp.store.schema_policy import emergency_access


def code_of(resp: Any) -> str:
    return str(resp.json()["issue"][0]["details"]["coding"][0]["code"])


def patient_id(api: Api, ident: Identity) -> str:
    found = api.get("Patient", params={"identifier": f"{ident.system}|{ident.nir}"}).json()
    return str(found["entry"][0]["resource"]["id"])


def consent(
    pid: str, kind: str, subject: str | None = None, system: str = IDNPS, deny: bool = False
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": kind}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "policyRule": {
            "coding": [
                {"system": "https://dmp.example.org/fhir/CodeSystem/dmp-consent-policy", "code": "dmp-access"}
            ]
        },
        "provision": {"type": "deny" if deny else "permit"},
    }
    if subject:
        c["provision"]["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": system, "value": subject}},
            }
        ]
    return c


def as_patient(api: Api, pid: str) -> str:
    api.person_token(Actor(ActorKind.PATIENT, pid, "Marie DUPONT"))
    return f"person:{pid}"


def as_representative(api: Api, pid: str, rep_id: str = "rep-1") -> str:
    """Declare ``rep_id`` a legal representative of the record (the desk's job, issue 3)."""
    import uuid

    from sqlalchemy import insert

    from dmp.store.schema_policy import record_consent

    with api.runtime.engine.begin() as conn:
        conn.execute(
            insert(record_consent).values(
                patient_id=uuid.UUID(pid),
                id=uuid.uuid4(),
                kind="representative",
                subject_id=rep_id,
                permit=True,
                status="active",
                accepted=True,
                designated=True,
                created_at=api.runtime.now(),
                created_by="desk",
            )
        )
    api.person_token(Actor(ActorKind.REPRESENTATIVE, rep_id, "Parent"))
    return f"person:{rep_id}"


def search(api: Api, ident: Identity, who: str = "doctor", **params: str) -> Any:
    return api.get(
        "DocumentReference", who=who, params={"patient.identifier": f"{ident.system}|{ident.nir}", **params}
    )


def ids(resp: Any) -> list[str]:
    return [e["resource"]["id"] for e in resp.json().get("entry", []) if e["search"]["mode"] == "match"]


def publish(api: Api, ident: Identity, who: str = "doctor", **kw: Any) -> str:
    resp = api.post("", bundle(ident, (doc(ident, CDA, **kw), CDA)), who=who)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def test_unauthorised_professional_must_attest(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    resp = search(api, patient, who="doctor2")
    assert resp.status_code == 403 and code_of(resp) == "FORBIDDEN"
    assert "n'a pas autorisé" in resp.json()["issue"][0]["diagnostics"]
    # Reading by id or retrieving gives the same 404 as a missing document.
    assert api.get(f"DocumentReference/{doc_id}", who="doctor2").status_code == 404
    assert api.get(f"Binary/{doc_id}", who="doctor2").status_code == 404
    pid = patient_id(api, patient)
    attest = api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert attest.status_code == 201, attest.text
    assert ids(search(api, patient, who="doctor2")) == [doc_id]


def test_patient_blocks_a_professional(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    pid = patient_id(api, patient)
    me = as_patient(api, pid)
    doctor2 = api.cards["doctor2"].idnps
    assert api.post("Consent", consent(pid, "authorisation", doctor2), who="doctor2").status_code == 201
    assert ids(search(api, patient, who="doctor2")) == [doc_id]
    resp = api.post("Consent", consent(pid, "block", doctor2), who=me)
    assert resp.status_code == 201, resp.text
    blocked = search(api, patient, who="doctor2")
    assert blocked.status_code == 403 and "bloqué" in blocked.json()["issue"][0]["diagnostics"]
    again = api.post("Consent", consent(pid, "authorisation", doctor2), who="doctor2")
    assert again.status_code == 403
    # A professional cannot block a colleague; the patient can unblock.
    other = api.post("Consent", consent(pid, "block", api.cards["nurse"].idnps), who="doctor2")
    assert other.status_code == 403
    listed = api.get("Consent", who=me, params={"patient": f"Patient/{pid}"}).json()
    block_id = next(
        e["resource"]["id"]
        for e in listed["entry"]
        if e["resource"]["category"][0]["coding"][0]["code"] == "block"
    )
    assert api.client.delete(f"/fhir/Consent/{block_id}", headers=api.headers(me)).status_code == 204
    assert search(api, patient, who="doctor2").status_code == 403  # the block also ended the authorisation
    assert api.post("Consent", consent(pid, "authorisation", doctor2), who="doctor2").status_code == 201
    assert ids(search(api, patient, who="doctor2")) == [doc_id]


def test_masked_document_hidden_from_others_not_from_author_or_patient(api: Api, patient: Identity) -> None:
    plain = publish(api, patient)
    masked = publish(api, patient, flags=("MASQUE_PS",))
    pid = patient_id(api, patient)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    assert set(ids(search(api, patient))) == {plain, masked}  # the author
    other = search(api, patient, who="doctor2", _total="accurate")
    assert ids(other) == [plain] and other.json()["total"] == 1  # totals never reveal it
    assert api.get(f"DocumentReference/{masked}", who="doctor2").status_code == 404
    lists = api.get("List", who="doctor2", params={"patient": f"Patient/{pid}"}).json()
    listed_docs = {e["item"]["reference"] for entry in lists["entry"] for e in entry["resource"]["entry"]}
    assert listed_docs == {f"DocumentReference/{plain}"}  # submission sets do not leak it either
    assert set(ids(search(api, patient, who=as_patient(api, pid)))) == {plain, masked}


def test_masking_transparency_count_mode(api: Api, patient: Identity) -> None:
    from dataclasses import replace

    publish(api, patient, flags=("MASQUE_PS",))
    pid = patient_id(api, patient)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    hidden = search(api, patient, who="doctor2").json()
    assert "entry" not in hidden
    api.runtime.settings = replace(api.runtime.settings, masking_transparency="count")
    counted = search(api, patient, who="doctor2").json()
    outcome = [e for e in counted["entry"] if e["search"]["mode"] == "outcome"]
    assert "1 document(s) masqué(s)" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    api.runtime.settings = replace(api.runtime.settings, masking_transparency="category")
    by_class = search(api, patient, who="doctor2").json()
    assert "Compte rendu (1)" in by_class["entry"][0]["resource"]["issue"][0]["diagnostics"]


def test_medecin_traitant_needs_both_sides_then_sees_masked(api: Api, patient: Identity) -> None:
    masked = publish(api, patient, flags=("MASQUE_PS",))
    pid = patient_id(api, patient)
    me = as_patient(api, pid)
    doctor2 = api.cards["doctor2"].idnps
    proposed = api.post("Consent", consent(pid, "medecin-traitant", doctor2), who=me)
    assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
    assert search(api, patient, who="doctor2").status_code == 403
    accepted = api.post("Consent", consent(pid, "medecin-traitant", doctor2), who="doctor2")
    assert accepted.json()["status"] == "active"
    assert ids(search(api, patient, who="doctor2")) == [masked]


def test_matrix_hides_types_from_a_profession(api: Api, patient: Identity) -> None:
    report = publish(api, patient, type_code="11502-2")
    certificate = publish(api, patient, type_code="89601-9")
    pid = patient_id(api, patient)
    api.post("Consent", consent(pid, "authorisation", api.cards["pharmacist"].idnps), who="pharmacist")
    assert ids(search(api, patient, who="pharmacist")) == [report]
    assert api.get(f"Binary/{certificate}", who="pharmacist").status_code == 404
    # ...and what it may not write.
    resp = api.post("", bundle(patient, (doc(patient, CDA, type_code="18748-4"), CDA)), who="pharmacist")
    assert resp.status_code == 403 and "ne peut pas déposer" in resp.json()["issue"][0]["diagnostics"]


def test_occupational_physician_writes_but_never_reads(api: Api, patient: Identity) -> None:
    publish(api, patient, who="occupational")
    resp = search(api, patient, who="occupational")
    assert resp.status_code == 403 and "médecine du travail" in resp.json()["issue"][0]["diagnostics"]


def test_break_glass_notifies_the_patient_once(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    token = api.token("urgentist", purpose="ETREAT", justification="patient inconscient aux urgences")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}"
    first = api.client.get(url, headers=headers)
    assert first.status_code == 200 and ids(first) == [doc_id]
    assert api.client.get(f"/fhir/Binary/{doc_id}", headers=headers).status_code == 200
    pid = patient_id(api, patient)
    with api.runtime.engine.connect() as conn:  # SE-02: sealed, read through the seam
        notes = [text for _, _, text in notifications.list_for(conn, UUID(pid))]
        stored = conn.execute(select(emergency_access)).all()
        sessions = sealed_fields.open_rows(conn, stored, "emergency_access", ("justification",))
    assert all(sealed_fields.is_sealed_text(s.justification) for s in stored)
    assert len(notes) == 1 and "bris de glace" in notes[0] and "patient inconscient" in notes[0]
    assert [(s.mode, s.justification) for s in sessions] == [
        ("bris_de_glace", "patient inconscient aux urgences")
    ]
    # Without the emergency purpose the same professional is not authorised.
    assert search(api, patient, who="urgentist").status_code == 403
    # The patient refuses break-glass: refused from then on.
    me = as_patient(api, pid)
    assert api.post("Consent", consent(pid, "emergency-btg", deny=True), who=me).status_code == 201
    assert api.client.get(url, headers=headers).status_code == 403


def test_break_glass_needs_an_emergency_professional(api: Api, patient: Identity) -> None:
    token = api.token("doctor2", purpose="ETREAT", justification="urgence")
    resp = api.client.get(
        f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 403 and "urgence" in resp.json()["issue"][0]["diagnostics"]


def test_centre15_access_and_refusal(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    token = api.token("regulator", purpose="CENTRE15", justification="appel au 15")
    url = f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}"
    resp = api.client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and ids(resp) == [doc_id]
    pid = patient_id(api, patient)
    with api.runtime.engine.connect() as conn:
        [(_, _, note)] = notifications.list_for(conn, UUID(pid))
        assert "centre 15" in note
    api.post("Consent", consent(pid, "emergency-samu", deny=True), who=as_patient(api, pid))
    assert api.client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_care_team_presumption_and_objection(api: Api, patient: Identity) -> None:
    publish(api, patient)
    pid = patient_id(api, patient)
    structure = "S-nurse"
    assert search(api, patient, who="nurse").status_code == 403
    declared = api.post("Consent", consent(pid, "care-team", structure, system=IDNST), who="nurse")
    assert declared.status_code == 201, declared.text
    assert search(api, patient, who="nurse").status_code == 200
    api.post(
        "Consent", consent(pid, "care-team-objection", structure, system=IDNST), who=as_patient(api, pid)
    )
    assert search(api, patient, who="nurse").status_code == 403


def test_representative_and_invisible_flags(api: Api, patient: Identity) -> None:


    normal = publish(api, patient)
    secret = publish(api, patient, flags=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    announce = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, patient)
    as_representative(api, pid)
    assert set(ids(search(api, patient, who="person:rep-1"))) == {normal}
    assert set(ids(search(api, patient, who=as_patient(api, pid)))) == {normal, secret}
    assert announce not in ids(search(api, patient, who=as_patient(api, pid)))
    # The author lifts INVISIBLE_PATIENT after the announcement; the patient then sees it.
    current = api.get(f"DocumentReference/{announce}").json()
    labels = [s for s in current["securityLabel"] if s["coding"][0]["code"] != "INVISIBLE_PATIENT"]
    resp = api.patch(
        f"DocumentReference/{announce}", [{"op": "replace", "path": "/securityLabel", "value": labels}]
    )
    assert resp.status_code == 200, resp.text
    assert announce in ids(search(api, patient, who=as_patient(api, pid)))


def test_patient_masks_and_others_cannot(api: Api, patient: Identity) -> None:
    doc_id = publish(api, patient)
    pid = patient_id(api, patient)
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    add_mask = [
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
    refused = api.patch(f"DocumentReference/{doc_id}", add_mask, who="doctor2")
    assert refused.status_code == 403 and code_of(refused) == "FORBIDDEN"
    assert api.patch(f"DocumentReference/{doc_id}", add_mask, who=as_patient(api, pid)).status_code == 200
    assert ids(search(api, patient, who="doctor2")) == []
