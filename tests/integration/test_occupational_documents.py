"""AC-17: what occupational medicine deposits is read by the médecin traitant, in emergency
modes, by the coordinating doctor of a medico-social structure that treats the patient and by
the patient; an otherwise authorised professional finds nothing, as if the
document did not exist."""

from __future__ import annotations

from sqlalchemy import select
from test_policy_api import IDNST, as_patient, consent, ids, patient_id, publish, search

from conftest import Api, Identity
from dmp.store.schema import document


def _deposit(api: Api, patient: Identity) -> str:
    occupational = api.cards["occupational"]
    return publish(
        api, patient, who="occupational", author_idnps=occupational.idnps, author_name="Thérèse TRAVAIL"
    )


def test_occupational_deposit_readers(api: Api, patient: Identity) -> None:
    ordinary = publish(api, patient)  # by the doctor, authorised when the record was opened
    occ = _deposit(api, patient)
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(select(document.c.id, document.c.occupational)).all()
    assert {str(r.id): r.occupational for r in rows} == {ordinary: False, occ: True}

    # An authorised GP who is not the médecin traitant: not in the search, 404 like a missing id.
    assert ids(search(api, patient)) == [ordinary]
    missing = api.get("DocumentReference/00000000-0000-4000-8000-000000000000")
    for path in (f"DocumentReference/{occ}", f"Binary/{occ}"):
        resp = api.get(path)
        assert resp.status_code == 404 == missing.status_code
        assert resp.json()["issue"][0]["details"] == missing.json()["issue"][0]["details"]

    # The médecin traitant (designated by the patient, accepted by the doctor) reads it.
    pid = patient_id(api, patient)
    me = as_patient(api, pid)
    doctor2 = api.cards["doctor2"].idnps
    api.post("Consent", consent(pid, "medecin-traitant", doctor2), who=me)
    assert api.post("Consent", consent(pid, "medecin-traitant", doctor2), who="doctor2").status_code == 201
    assert sorted(ids(search(api, patient, who="doctor2"))) == sorted([ordinary, occ])
    assert api.get(f"Binary/{occ}", who="doctor2").status_code == 200

    # The patient reads it (AC-17 does not restrict the holder).
    assert sorted(ids(search(api, patient, who=me))) == sorted([ordinary, occ])
    assert api.get(f"DocumentReference/{occ}", who=me).status_code == 200

    # The occupational physician still reads nothing, not even their own deposit.
    assert search(api, patient, who="occupational").status_code == 403


def test_occupational_deposit_read_in_break_glass(api: Api, patient: Identity) -> None:
    ordinary = publish(api, patient)
    occ = _deposit(api, patient)
    token = api.token("urgentist", purpose="ETREAT", justification="patient inconscient aux urgences")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/fhir/DocumentReference?patient.identifier={patient.system}|{patient.nir}"
    resp = api.client.get(url, headers=headers)
    assert resp.status_code == 200 and sorted(ids(resp)) == sorted([ordinary, occ])
    assert api.client.get(f"/fhir/Binary/{occ}", headers=headers).status_code == 200


def test_replacement_of_an_occupational_deposit_stays_occupational(api: Api, patient: Identity) -> None:
    occ = _deposit(api, patient)
    pid = patient_id(api, patient)
    doctor2 = api.cards["doctor2"].idnps
    api.post("Consent", consent(pid, "medecin-traitant", doctor2), who=as_patient(api, pid))
    api.post("Consent", consent(pid, "medecin-traitant", doctor2), who="doctor2")
    new = publish(
        api,
        patient,
        who="doctor2",
        author_idnps=doctor2,
        author_name="Charles DAVID",
        replaces=f"DocumentReference/{occ}",
    )
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(select(document.c.id, document.c.occupational)).all()
    assert {str(r.id): r.occupational for r in rows} == {occ: True, new: True}
    assert ids(search(api, patient)) == []  # the authorised GP still finds nothing
    assert ids(search(api, patient, who="doctor2")) == [new]


def test_occupational_deposit_read_by_the_esms_coordinating_doctor(api: Api, patient: Identity) -> None:
    """The médecin coordonnateur of the EHPAD that treats the patient (care team, AC-15) reads
    occupational medicine's deposits; once the patient objects to that structure, nothing."""
    ordinary = publish(api, patient)
    occ = _deposit(api, patient)
    pid = patient_id(api, patient)
    assert search(api, patient, who="esms").status_code == 403  # not yet in the care team
    declared = api.post("Consent", consent(pid, "care-team", "S-esms", system=IDNST), who="esms")
    assert declared.status_code == 201, declared.text
    assert sorted(ids(search(api, patient, who="esms"))) == sorted([ordinary, occ])
    assert api.get(f"Binary/{occ}", who="esms").status_code == 200
    api.post("Consent", consent(pid, "care-team-objection", "S-esms", system=IDNST), who=as_patient(api, pid))
    assert search(api, patient, who="esms").status_code == 403
