"""Record lifecycle: creation (TD1) over the API, closure and reactivation, history, desk CLI."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from access_helpers import authorise
from click.testing import CliRunner, Result
from helpers import CDA, one_doc_bundle
from outcomes import assert_outcome

from conftest import Api, Identity, new_identity, patient_resource
from dmp.cli import main as cli
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import Sex
from dmp.domain.ins import SYSTEM_NIR, SYSTEM_NIR_TEST, compute_key
from dmp.errors import DmpError
from dmp.fhir.common import instant
from dmp.fhir.patient import BIRTH_LIST_GIVEN_URL, CLOSURE_URL, CONSENT_CHANNEL_URL, CREATION_CONSENT_URL
from dmp.services import records

OPERATOR = Actor(kind=ActorKind.OPERATOR, id="guichet:test", name="Agent")


def create(api: Api, ident: Identity, **kw: Any) -> Any:
    return api.post("Patient", patient_resource(ident, **kw))


def created_id(api: Api, ident: Identity, **kw: Any) -> uuid.UUID:
    resp = create(api, ident, **kw)
    assert resp.status_code == 201, resp.text
    return uuid.UUID(resp.json()["id"])


def other_ins(ident: Identity) -> str:
    """Another valid NIR with the same sex, birth date and place (another order number)."""
    order = (int(ident.nir[10:13]) + 500) % 1000
    first13 = f"{ident.nir[:10]}{order:03d}"
    return first13 + compute_key(first13)


def search_params(ident: Identity) -> dict[str, str]:
    return {"patient.identifier": f"{ident.system}|{ident.nir}"}


# ---- creation -----------------------------------------------------------------------------


def test_creation(api: Api) -> None:
    ident = new_identity(family="BERNARD", given="Léa")
    resp = create(api, ident)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    pid = body["id"]
    assert resp.headers["location"] == f"http://testserver/fhir/Patient/{pid}/_history/1"
    assert resp.headers["etag"] == 'W/"1"'
    assert resp.headers["content-type"].startswith("application/fhir+json")
    assert body["resourceType"] == "Patient"
    assert body["active"] is True
    assert body["meta"]["versionId"] == "1"
    ins = body["identifier"][0]
    assert (ins["system"], ins["value"]) == (SYSTEM_NIR, ident.nir)
    assert ins["type"]["coding"][0]["code"] == "INS-NIR"
    official = body["name"][0]
    assert (official["use"], official["family"], official["given"]) == ("official", "BERNARD", [ident.given])
    assert official["extension"] == [{"url": BIRTH_LIST_GIVEN_URL, "valueString": ident.given}]
    assert body["gender"] == "female" and body["birthDate"] == ident.birth_date.isoformat()
    # The consent attestation is kept in the history, not echoed in the Patient.
    assert "contained" not in body
    assert all(e["url"] != CREATION_CONSENT_URL for e in body["extension"])
    # The Location can be read back.
    assert api.get(f"Patient/{pid}").json() == body


def test_second_creation_for_the_same_ins(api: Api) -> None:
    ident = new_identity()
    pid = created_id(api, ident)
    resp = create(api, ident)
    assert_outcome(resp, 409, "RECORD_EXISTS", "Un DMP existe déjà pour cet INS", f"Patient/{pid}")
    # Differing traits are listed too (another professional typed the name differently).
    typo = dataclasses.replace(ident, family="DUPOND")
    issue = assert_outcome(
        create(api, typo),
        409,
        "RECORD_EXISTS",
        f"Patient/{pid}",
        "de plus les traits diffèrent",
        "nom de naissance : « DUPONT » connu, « DUPOND » reçu",
    )
    assert issue["severity"] == "error"
    # Another professional gets the same answer.
    assert_outcome(
        api.post("Patient", patient_resource(ident), who="doctor2"), 409, "RECORD_EXISTS", f"Patient/{pid}"
    )


def test_creation_without_consent(api: Api) -> None:
    ident = new_identity()
    resp = create(api, ident, consent=False)
    assert_outcome(
        resp,
        422,
        "CONSENT_REQUIRED",
        "Le consentement du patient à la création de son DMP doit être attesté",
        f"extension {CREATION_CONSENT_URL} absente",
    )
    assert "entry" not in api.get("Patient", params={"identifier": f"{SYSTEM_NIR}|{ident.nir}"}).json()


def test_creation_with_an_inactive_or_dangling_consent(api: Api) -> None:
    ident = new_identity()
    p = patient_resource(ident)
    p["contained"][0]["status"] = "draft"
    assert_outcome(api.post("Patient", p), 422, "CONSENT_REQUIRED", "Consent.status doit valoir « active »")
    p = patient_resource(ident)
    next(e for e in p["extension"] if e["url"] == CREATION_CONSENT_URL)["valueReference"] = {
        "reference": "#ailleurs"
    }
    assert_outcome(api.post("Patient", p), 422, "CONSENT_REQUIRED", "doit désigner un Consent contenu")
    p = patient_resource(ident, channel="pigeon-voyageur")
    assert_outcome(
        api.post("Patient", p),
        422,
        "INVALID_VALUE",
        "canal de recueil du consentement inconnu : pigeon-voyageur",
    )
    assert created_id(api, ident)  # the same patient, properly attested


def test_sex_contradicting_the_nir(api: Api) -> None:
    ident = new_identity(sex=Sex.MALE)
    assert ident.nir.startswith("1")
    p = patient_resource(ident)
    p["gender"] = "female"
    assert_outcome(
        api.post("Patient", p),
        422,
        "IDENTITY_MISMATCH",
        "Les traits d'identité ne concordent pas",
        "sexe : l'INS indique",
        "(premier chiffre 1)",
    )


def test_birth_year_contradicting_the_nir(api: Api) -> None:
    ident = new_identity(birth_date=date(1980, 5, 17))
    p = patient_resource(ident)
    p["birthDate"] = "1981-05-17"
    assert_outcome(
        api.post("Patient", p),
        422,
        "IDENTITY_MISMATCH",
        "année de naissance : l'INS indique …80",
        "1981-05-17",
    )


def test_several_contradictions_are_all_listed(api: Api) -> None:
    ident = new_identity(sex=Sex.FEMALE, birth_date=date(1980, 5, 17), birth_place="75056")
    p = patient_resource(ident)
    p["gender"] = "male"
    p["birthDate"] = "1980-06-17"
    assert_outcome(
        api.post("Patient", p), 422, "IDENTITY_MISMATCH", "sexe", "mois de naissance : l'INS indique 05"
    )


def test_same_strict_traits_under_another_ins(api: Api) -> None:
    first = new_identity(family="MOREAU", given="Claire")
    pid = created_id(api, first)
    twin = dataclasses.replace(first, nir=other_ins(first))
    assert twin.nir != first.nir
    assert_outcome(
        create(api, twin),
        422,
        "IDENTITY_MISMATCH",
        "une identité aux mêmes traits stricts existe déjà sous un autre INS",
        f"Patient/{pid}",
    )
    # The comparison ignores case.
    shouting = dataclasses.replace(twin, family="moreau", given=first.given.lower())
    assert_outcome(create(api, shouting), 422, "IDENTITY_MISMATCH", f"Patient/{pid}")


def test_same_accented_traits_under_another_ins(api: Api) -> None:
    first = new_identity(family="Lefèvre", given="Hélène")
    pid = created_id(api, first)
    twin = dataclasses.replace(first, nir=other_ins(first))
    assert_outcome(create(api, twin), 422, "IDENTITY_MISMATCH", f"Patient/{pid}")


def test_same_normalised_traits_under_another_ins(api: Api) -> None:
    first = dataclasses.replace(new_identity(family="Lefèvre", sex=Sex.MALE), given="Jean-Noël")
    pid = created_id(api, first)
    twin = dataclasses.replace(first, nir=other_ins(first), family="LEFEVRE", given="JEAN NOEL")
    assert_outcome(create(api, twin), 422, "IDENTITY_MISMATCH", f"Patient/{pid}")


def test_creation_with_an_invalid_ins(api: Api) -> None:
    ident = new_identity()
    bad_key = f"{(int(ident.nir[13:]) + 1) % 97:02d}"
    p = patient_resource(dataclasses.replace(ident, nir=ident.nir[:13] + bad_key))
    assert_outcome(api.post("Patient", p), 422, "INVALID_INS", f"clé de contrôle {ident.nir[13:]} attendue")
    p = patient_resource(ident)
    p["identifier"][0]["system"] = SYSTEM_NIR_TEST
    assert_outcome(api.post("Patient", p), 422, "INS_SYSTEM_NOT_ALLOWED", "patient fictif de test")
    p = patient_resource(ident)
    del p["identifier"]
    assert_outcome(api.post("Patient", p), 422, "MISSING_ELEMENT", "Patient.identifier (INS : NIR ou NIA)")


def test_creation_with_a_wrong_body(api: Api) -> None:
    assert_outcome(
        api.post("Patient", {"resourceType": "Observation", "status": "final"}),
        400,
        "INVALID_RESOURCE",
        "ressource Patient attendue, Observation reçue",
    )
    assert_outcome(api.post("Patient", [1, 2]), 400, "INVALID_RESOURCE", "une ressource Patient est attendue")
    ident = new_identity()
    p = patient_resource(ident)
    p["birthDate"] = 1980
    assert_outcome(api.post("Patient", p), 400, "INVALID_RESOURCE", "Patient")


# ---- closure and reactivation -------------------------------------------------------------


def close(api: Api, pid: uuid.UUID, reason: str | None, at: datetime) -> None:
    with api.runtime.engine.begin() as conn:
        records.close(conn, OPERATOR, pid, reason, at)


def reactivate(api: Api, pid: uuid.UUID, at: datetime) -> None:
    with api.runtime.engine.begin() as conn:
        records.reactivate(conn, OPERATOR, pid, at)


def test_closure_and_reactivation(api: Api) -> None:
    ident = new_identity()
    pid = created_id(api, ident)
    b, _ = one_doc_bundle(ident)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    doc_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    list_id = resp.json()["entry"][0]["response"]["location"].split("/")[1]
    before = api.get("DocumentReference", params=search_params(ident)).json()

    closed_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    close(api, pid, "Demande du patient", closed_at)
    day = f"fermé le {closed_at:%d/%m/%Y}"

    def refused(resp: Any) -> None:
        assert_outcome(resp, 409, "RECORD_CLOSED", "Le DMP de ce patient est fermé", day)

    refused(api.get("DocumentReference", params=search_params(ident)))  # ITI-67
    refused(api.get("DocumentReference", params={"patient": f"Patient/{pid}"}))
    refused(api.post("", one_doc_bundle(ident)[0]))  # ITI-65
    refused(api.get(f"DocumentReference/{doc_id}"))  # read
    refused(api.client.get(f"/fhir/Binary/{doc_id}", headers={"Authorization": f"Bearer {api.token()}"}))
    refused(api.get(f"Binary/{doc_id}"))  # ITI-68 as FHIR Binary
    refused(api.get(f"List/{list_id}"))
    refused(api.get("List", params=search_params(ident)))  # ITI-66
    refused(
        api.patch(
            f"DocumentReference/{doc_id}", [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
        )
    )

    # The record's existence and state stay visible (TD0.2): active false, closure extension.
    patient = api.get(f"Patient/{pid}").json()
    assert patient["active"] is False
    assert patient["meta"]["versionId"] == "2"
    closure = next(e for e in patient["extension"] if e["url"] == CLOSURE_URL)
    assert closure["extension"] == [
        {"url": "dateFermeture", "valueDateTime": instant(closed_at)},
        {"url": "motifFermeture", "valueString": "Demande du patient"},
    ]
    found = api.get("Patient", params={"identifier": f"{SYSTEM_NIR}|{ident.nir}"}).json()
    assert found["total"] == 1 and found["entry"][0]["resource"] == patient
    # Nobody can open a second record for the INS meanwhile.
    assert_outcome(create(api, ident), 409, "RECORD_EXISTS", f"Patient/{pid}")

    reactivate(api, pid, closed_at + timedelta(seconds=1))
    patient = api.get(f"Patient/{pid}").json()
    assert patient["active"] is True
    assert patient["meta"]["versionId"] == "3"
    assert all(e["url"] != CLOSURE_URL for e in patient["extension"])
    # Everything is there again, unchanged.
    after = api.get("DocumentReference", params=search_params(ident)).json()
    assert [e["resource"] for e in after["entry"]] == [e["resource"] for e in before["entry"]]
    raw = api.client.get(f"/fhir/Binary/{doc_id}", headers={"Authorization": f"Bearer {api.token()}"})
    assert raw.status_code == 200 and raw.content == CDA
    assert api.get(f"List/{list_id}").status_code == 200
    assert api.post("", one_doc_bundle(ident)[0]).status_code == 200


def test_closing_a_closed_record_and_reopening_an_open_one(api: Api) -> None:
    ident = new_identity()
    pid = created_id(api, ident)
    now = datetime.now(UTC)
    with pytest.raises(DmpError) as refused:
        reactivate(api, pid, now)
    assert (refused.value.code, refused.value.status) == ("RECORD_NOT_CLOSED", 409)
    assert refused.value.message == "Le DMP de ce patient n'est pas fermé."

    close(api, pid, None, now)
    with pytest.raises(DmpError) as refused:
        close(api, pid, "encore", now + timedelta(seconds=1))
    assert (refused.value.code, refused.value.status) == ("RECORD_CLOSED", 409)
    assert f"fermé le {now:%d/%m/%Y}" in refused.value.message
    # The refused second closure changed nothing.
    patient = api.get(f"Patient/{pid}").json()
    closure = next(e for e in patient["extension"] if e["url"] == CLOSURE_URL)
    assert closure["extension"] == [{"url": "dateFermeture", "valueDateTime": instant(now)}]

    for action in (lambda: close(api, uuid.uuid4(), None, now), lambda: reactivate(api, uuid.uuid4(), now)):
        with pytest.raises(DmpError) as refused:
            action()
        assert (refused.value.code, refused.value.status) == ("RECORD_NOT_FOUND", 404)


def test_history(api: Api) -> None:
    ident = new_identity()
    pid = created_id(api, ident, channel="pharmacy")
    t0 = datetime.now(UTC) + timedelta(minutes=1)
    close(api, pid, "Demande du patient", t0)
    reactivate(api, pid, t0 + timedelta(minutes=1))
    with api.runtime.engine.connect() as conn:
        events = records.history(conn, pid)
    assert [e.kind for e in events] == ["created", "closed", "reactivated"]
    created, closed, reactivated = events
    assert (created.actor_id, created.actor_name, created.channel) == (
        "810001234565",
        "Charles MULLER",
        "pharmacy",
    )
    # The consent's own date (2026-11-23T09:30:00+01:00 in the request) and who attested it.
    assert "consentement recueilli le 2026-11-23T08:30:00+00:00" in created.detail
    assert "attesté par Charles MULLER" in created.detail
    assert (closed.actor_id, closed.actor_name, closed.detail, closed.at) == (
        "guichet:test",
        "Agent",
        "Demande du patient",
        t0,
    )
    assert (reactivated.actor_id, reactivated.kind, reactivated.detail) == (
        "guichet:test",
        "reactivated",
        None,
    )
    assert reactivated.at == t0 + timedelta(minutes=1)


def test_history_default_channel(api: Api) -> None:
    pid = created_id(api, new_identity())
    with api.runtime.engine.connect() as conn:
        (event,) = records.history(conn, pid)
    assert event.channel == "professional-software"


def test_consent_channel_extension_is_read(api: Api) -> None:
    ident = new_identity()
    p = patient_resource(ident, channel="patient-online")
    assert p["contained"][0]["extension"] == [{"url": CONSENT_CHANNEL_URL, "valueCode": "patient-online"}]
    pid = uuid.UUID(api.post("Patient", p).json()["id"])
    with api.runtime.engine.connect() as conn:
        assert [e.channel for e in records.history(conn, pid)] == ["patient-online"]


# ---- desk CLI -----------------------------------------------------------------------------


@pytest.fixture()
def dmp_cli(api: Api, tmp_path: Path) -> Any:
    env = {
        "DMP_VAR_DIR": str(tmp_path),
        "DMP_DATABASE_URL": api.runtime.engine.url.render_as_string(hide_password=False),
        # The key the API's runtime uses (conftest): records created at the desk are usable over the API.
        "DMP_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "DMP_BASE_URL": "http://testserver",
    }
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def test_cli_create_close_reactivate(api: Api, dmp_cli: Any) -> None:
    ident = dataclasses.replace(new_identity(sex=Sex.MALE), family="GARNIER", given="Jean Pierre")
    res = dmp_cli(
        "record",
        "create",
        "--ins",
        ident.nir,
        "--family",
        "GARNIER",
        "--given",
        "Jean Pierre",
        "--sex",
        "male",
        "--birth-date",
        ident.birth_date.isoformat(),
        "--birth-place",
        ident.birth_place,
        "--channel",
        "pharmacy",
        "--agent",
        "Agent Dupuis",
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("DMP créé : Patient/")
    assert res.stderr == ""
    pid = res.stdout.splitlines()[0].split("Patient/")[1].strip()

    found = api.get("Patient", params={"identifier": f"{SYSTEM_NIR}|{ident.nir}"}).json()
    assert found["total"] == 1
    patient = found["entry"][0]["resource"]
    assert patient["id"] == pid and patient["active"] is True
    assert patient["name"][0]["given"] == ["Jean"]
    assert patient["name"][0]["extension"][0]["valueString"] == "Jean Pierre"
    with api.runtime.engine.connect() as conn:
        (event,) = records.history(conn, uuid.UUID(pid))
    assert (event.kind, event.actor_id, event.channel) == ("created", "guichet:Agent Dupuis", "pharmacy")
    assert "attesté par Agent Dupuis" in event.detail
    # A professional can publish in the record opened at the desk (feeding needs no authorisation)...
    b, _ = one_doc_bundle(ident)
    assert api.post("", b).status_code == 200
    # ... but reads it only once authorised by the patient.
    assert_outcome(
        api.get("DocumentReference", params=search_params(ident)),
        403,
        "FORBIDDEN",
        "le patient n'a pas autorisé ce professionnel",
    )
    authorise(api, ident, "doctor")
    assert len(api.get("DocumentReference", params=search_params(ident)).json()["entry"]) == 1

    res = dmp_cli(
        "record", "close", f"Patient/{pid}", "--agent", "Agent Dupuis", "--reason", "Demande du patient"
    )
    assert (res.exit_code, res.stdout) == (0, "DMP fermé (les données sont conservées).\n")
    assert_outcome(api.get("DocumentReference", params=search_params(ident)), 409, "RECORD_CLOSED")

    res = dmp_cli("record", "close", pid, "--agent", "Agent Dupuis")
    assert res.exit_code == 1
    assert res.stderr.startswith("Erreur : Le DMP de ce patient est fermé")
    assert "DMP fermé" not in res.stdout

    res = dmp_cli("record", "reactivate", f"Patient/{pid}", "--agent", "Agent Dupuis")
    assert (res.exit_code, res.stdout) == (0, "DMP réactivé.\n")
    docs = api.get("DocumentReference", params=search_params(ident)).json()
    assert len(docs["entry"]) == 1

    res = dmp_cli("record", "reactivate", pid, "--agent", "Agent Dupuis")
    assert res.exit_code == 1
    assert res.stderr == "Erreur : Le DMP de ce patient n'est pas fermé.\n"

    # Same INS again at the desk.
    res = dmp_cli(
        "record",
        "create",
        "--ins",
        ident.nir,
        "--family",
        "GARNIER",
        "--given",
        "Jean Pierre",
        "--sex",
        "male",
        "--birth-date",
        ident.birth_date.isoformat(),
        "--birth-place",
        ident.birth_place,
        "--agent",
        "Agent Dupuis",
    )
    assert res.exit_code == 1
    assert f"Un DMP existe déjà pour cet INS : Patient/{pid}" in res.stderr


def test_cli_refuses_an_invalid_ins(api: Api, dmp_cli: Any) -> None:
    ident = new_identity()
    good = ident.nir[13:]
    bad = f"{(int(good) + 1) % 97:02d}"
    res = dmp_cli(
        "record",
        "create",
        "--ins",
        ident.nir[:13] + bad,
        "--family",
        ident.family,
        "--given",
        ident.given,
        "--sex",
        "female",
        "--birth-date",
        ident.birth_date.isoformat(),
        "--birth-place",
        ident.birth_place,
        "--agent",
        "Agent",
    )
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr == f"Erreur : INS invalide : clé de contrôle {good} attendue, {bad} reçue\n"
    assert "entry" not in api.get("Patient", params={"identifier": f"{SYSTEM_NIR}|{ident.nir}"}).json()


def test_cli_refuses_contradicting_traits_and_bad_ids(api: Api, dmp_cli: Any) -> None:
    ident = new_identity(sex=Sex.FEMALE)
    res = dmp_cli(
        "record",
        "create",
        "--ins",
        ident.nir,
        "--family",
        ident.family,
        "--given",
        ident.given,
        "--sex",
        "male",
        "--birth-date",
        ident.birth_date.isoformat(),
        "--birth-place",
        ident.birth_place,
        "--agent",
        "Agent",
    )
    assert res.exit_code == 1
    assert res.stderr.startswith("Erreur : Les traits d'identité ne concordent pas : sexe")

    res = dmp_cli("record", "close", "Patient/pas-un-uuid", "--agent", "Agent")
    assert (res.exit_code, res.stderr) == (1, "Erreur : identifiant Patient/<uuid> attendu\n")
    res = dmp_cli("record", "close", f"Patient/{uuid.uuid4()}", "--agent", "Agent")
    assert (res.exit_code, res.stderr) == (1, "Erreur : Aucun DMP accessible pour ce patient.\n")


def test_cli_bad_birth_date_message_is_french(api: Api, dmp_cli: Any) -> None:
    ident = new_identity()
    res = dmp_cli(
        "record",
        "create",
        "--ins",
        ident.nir,
        "--family",
        ident.family,
        "--given",
        ident.given,
        "--sex",
        "female",
        "--birth-date",
        "17/05/1980",
        "--birth-place",
        ident.birth_place,
        "--agent",
        "Agent",
    )
    assert res.exit_code == 1
    assert res.stderr.startswith("Erreur : ")
    assert "AAAA-MM-JJ" in res.stderr
    assert "Invalid isoformat" not in res.stderr
