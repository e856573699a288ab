"""Every refusal of the service, over HTTP: status, stable code and French message."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from helpers import CDA, bundle, doc, failing_blobs, one_doc_bundle, sha1_b64
from outcomes import assert_oauth_error, assert_outcome
from sqlalchemy import func, insert, select
from starlette.testclient import TestClient

from conftest import BASE, Api, Identity, new_identity
from dmp.auth.pki import init_ca, issue_card
from dmp.demo.client import token_form
from dmp.domain.ins import SYSTEM_NIR, SYSTEM_NIR_TEST, compute_key
from dmp.fhir.documentreference import FLAG_SYSTEM
from dmp.store.schema import document, document_uid, revoked_certificate, submission_set

TOKEN_URL = f"{BASE}/oauth/token"


def fhir_headers(api: Api, content_type: str) -> dict[str, str]:
    return api.headers(**{"Content-Type": content_type})


def location_id(resp: Any, index: int) -> str:
    return str(resp.json()["entry"][index]["response"]["location"].split("/")[1])


def publish(api: Api, ident: Identity, content: bytes = CDA, **kw: Any) -> tuple[str, dict[str, Any]]:
    """Publish one document; return its id and its submitted DocumentReference."""
    b, d = one_doc_bundle(ident, content, **kw)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    return location_id(resp, 1), d


def patient_id(api: Api, ident: Identity) -> uuid.UUID:
    found = api.get("Patient", params={"identifier": f"{ident.system}|{ident.nir}"}).json()
    return uuid.UUID(found["entry"][0]["resource"]["id"])


# ---- request format ---------------------------------------------------------------------


def test_malformed_json_body(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir/",
        content=b'{"resourceType": "Bundle", "type": ',
        headers=fhir_headers(api, "application/fhir+json"),
    )
    assert_outcome(resp, 400, "MALFORMED_JSON", "Le corps de la requête n'est pas un JSON valide")


def test_malformed_json_patch_body(api: Api, patient: Identity) -> None:
    doc_id, _ = publish(api, patient)
    resp = api.client.patch(
        f"/fhir/DocumentReference/{doc_id}",
        content=b"[{op: add}]",
        headers=fhir_headers(api, "application/json-patch+json"),
    )
    assert_outcome(resp, 400, "MALFORMED_JSON", "n'est pas un JSON valide")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/fhir+xml"])
def test_wrong_content_type_on_transaction(api: Api, patient: Identity, content_type: str) -> None:
    resp = api.client.post(
        "/fhir/", content=json.dumps(bundle(patient)), headers=fhir_headers(api, content_type)
    )
    assert_outcome(
        resp,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        f"Type de contenu non accepté : {content_type}",
        "attendu : application/fhir+json ou application/json",
    )
    # Nothing was published.
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert "entry" not in found.json()


def test_missing_content_type_on_transaction(api: Api, patient: Identity) -> None:
    headers = {k: v for k, v in api.headers().items() if k.lower() != "content-type"}
    resp = api.client.post("/fhir/", content=json.dumps(bundle(patient)).encode(), headers=headers)
    assert_outcome(resp, 415, "UNSUPPORTED_MEDIA_TYPE", "Type de contenu non accepté : absent")


def test_content_type_parameters_are_ignored(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir/",
        content=json.dumps(bundle(patient)),
        headers=fhir_headers(api, "application/fhir+json; charset=utf-8"),
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("content_type", ["application/json", "application/fhir+json", "text/plain"])
def test_patch_requires_json_patch_media_type(api: Api, patient: Identity, content_type: str) -> None:
    doc_id, _ = publish(api, patient)
    ops = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    resp = api.client.patch(
        f"/fhir/DocumentReference/{doc_id}", content=json.dumps(ops), headers=fhir_headers(api, content_type)
    )
    assert_outcome(resp, 415, "UNSUPPORTED_MEDIA_TYPE", f"Type de contenu non accepté : {content_type}")
    assert api.get(f"DocumentReference/{doc_id}").json()["status"] == "current"


def test_patch_media_type_refusal_names_json_patch(api: Api, patient: Identity) -> None:
    doc_id, _ = publish(api, patient)
    resp = api.client.patch(
        f"/fhir/DocumentReference/{doc_id}",
        content=json.dumps([]),
        headers=fhir_headers(api, "application/fhir+json"),
    )
    assert_outcome(
        resp, 415, "UNSUPPORTED_MEDIA_TYPE", "application/fhir+json (attendu : application/json-patch+json)"
    )


@pytest.mark.parametrize("path", ["Encounter", "Specimen/123", "Composition", "Encounter/x"])
def test_unknown_resource_type(api: Api, path: str) -> None:
    resp = api.get(path)
    assert_outcome(
        resp, 404, "UNKNOWN_RESOURCE_TYPE", f"Type de ressource non pris en charge : {path.split('/')[0]}"
    )


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "DocumentReference/{id}"),
        ("PUT", "DocumentReference/{id}"),
        ("POST", "List"),  # POST DocumentReference is ITI-105 (test_iti105.py)
        ("PUT", "Patient/{pid}"),
        ("DELETE", "Binary/{id}"),
    ],
)
def test_unsupported_interaction_on_supported_type(
    api: Api, patient: Identity, method: str, path: str
) -> None:
    doc_id, _ = publish(api, patient)
    url = "/fhir/" + path.format(id=doc_id, pid=patient_id(api, patient))
    resp = api.client.request(method, url, content=b"{}", headers=fhir_headers(api, "application/fhir+json"))
    assert_outcome(resp, 405, "METHOD_NOT_ALLOWED", "Opération non autorisée")
    assert api.get(f"DocumentReference/{doc_id}").json()["status"] == "current"


def test_transaction_at_base_url_without_trailing_slash(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir",
        content=json.dumps(bundle(patient)),
        headers=fhir_headers(api, "application/fhir+json"),
        follow_redirects=False,
    )
    assert resp.status_code == 200, (resp.status_code, resp.headers.get("location"))
    assert resp.json()["type"] == "transaction-response"


def test_bundle_with_an_observation_entry(api: Api, patient: Identity) -> None:
    b = bundle(patient)
    b["entry"].append(
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "request": {"method": "POST", "url": "Observation"},
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            },
        }
    )
    resp = api.post("", b)
    assert_outcome(resp, 404, "UNKNOWN_RESOURCE_TYPE", "Observation dans un Bundle ITI-65")


def test_bundle_entry_other_than_post(api: Api, patient: Identity) -> None:
    b = bundle(patient)
    b["entry"][1]["request"]["method"] = "PUT"
    resp = api.post("", b)
    assert_outcome(resp, 400, "INVALID_RESOURCE", "seule la méthode POST est acceptée (PUT)")


def test_bundle_of_wrong_type(api: Api, patient: Identity) -> None:
    b = bundle(patient)
    b["type"] = "batch"
    assert_outcome(
        api.post("", b), 400, "INVALID_RESOURCE", "Bundle.type « batch » : « transaction » attendu"
    )


# ---- the patient's INS ------------------------------------------------------------------


def test_invalid_ins_key_in_bundle_subject(api: Api, patient: Identity) -> None:
    good_key = compute_key(patient.nir[:13])
    bad_key = f"{(int(good_key) + 1) % 97:02d}"
    wrong = dataclasses.replace(patient, nir=patient.nir[:13] + bad_key)
    resp = api.post("", bundle(wrong))
    assert_outcome(
        resp, 422, "INVALID_INS", "INS invalide", f"clé de contrôle {good_key} attendue, {bad_key} reçue"
    )


def test_invalid_ins_shape_in_bundle_subject(api: Api, patient: Identity) -> None:
    wrong = dataclasses.replace(patient, nir=patient.nir[:14])
    resp = api.post("", bundle(wrong))
    assert_outcome(resp, 422, "INVALID_INS", "le matricule doit compter 15 caractères", "14 reçus")


def test_test_oid_refused_on_a_production_instance(api: Api, patient: Identity) -> None:
    assert api.runtime.settings.test_instance is False
    b = json.loads(json.dumps(bundle(patient)).replace(SYSTEM_NIR, SYSTEM_NIR_TEST))
    resp = api.post("", b)
    assert_outcome(
        resp,
        422,
        "INS_SYSTEM_NOT_ALLOWED",
        "Système d'identifiant patient non accepté",
        SYSTEM_NIR_TEST,
        "patient fictif de test, refusé sur cette instance",
    )
    # Same answer to a search naming a test INS.
    resp = api.get("DocumentReference", params={"patient.identifier": f"{SYSTEM_NIR_TEST}|{patient.nir}"})
    assert_outcome(resp, 422, "INS_SYSTEM_NOT_ALLOWED", "patient fictif de test")


def test_test_oid_accepted_on_a_test_instance(api: Api, patient: Identity) -> None:
    api.runtime.settings = dataclasses.replace(api.runtime.settings, test_instance=True)
    b = json.loads(json.dumps(bundle(patient)).replace(SYSTEM_NIR, SYSTEM_NIR_TEST))
    # Past the system check: there simply is no record under the test OID.
    assert_outcome(api.post("", b), 404, "RECORD_NOT_FOUND", "Aucun DMP accessible pour ce patient")


def test_subject_with_a_system_that_is_no_ins(api: Api, patient: Identity) -> None:
    b = json.loads(json.dumps(bundle(patient)).replace(SYSTEM_NIR, "urn:oid:1.2.3.4"))
    assert_outcome(
        api.post("", b),
        422,
        "INS_SYSTEM_NOT_ALLOWED",
        "système « urn:oid:1.2.3.4 » ; systèmes acceptés : urn:oid:1.2.250.1.213.1.4.8",
    )


def test_publication_for_a_patient_without_record(api: Api) -> None:
    stranger = new_identity()
    assert_outcome(
        api.post("", bundle(stranger)), 404, "RECORD_NOT_FOUND", "Aucun DMP accessible pour ce patient"
    )


# ---- codes outside the DMP value sets -----------------------------------------------------


def _bad_type(d: dict[str, Any]) -> None:
    d["type"] = {"coding": [{"system": "http://loinc.org", "code": "00000-0"}]}


def _bad_class(d: dict[str, Any]) -> None:
    d["category"][0]["coding"][0]["code"] = "99"


def _bad_format(d: dict[str, Any]) -> None:
    d["content"][0]["format"]["code"] = "urn:exemple:format-inconnu"


def _bad_facility(d: dict[str, Any]) -> None:
    d["context"]["facilityType"]["coding"][0]["code"] = "SA99"


def _bad_setting(d: dict[str, Any]) -> None:
    d["context"]["practiceSetting"]["coding"][0]["code"] = "CADRE_INCONNU"


def _bad_label(d: dict[str, Any]) -> None:
    d["securityLabel"].append({"coding": [{"system": FLAG_SYSTEM, "code": "SECRET_DEFENSE"}]})


@pytest.mark.parametrize(
    "spoil,element,value,vs",
    [
        (_bad_type, "DocumentReference.type (typeCode)", "00000-0", "JDV_J66"),
        (_bad_class, "DocumentReference.category (classCode)", "99", "JDV_J57"),
        (
            _bad_format,
            "DocumentReference.content.format (formatCode)",
            "urn:exemple:format-inconnu",
            "JDV_J60",
        ),
        (_bad_facility, "DocumentReference.context.facilityType", "SA99", "JDV_J61"),
        (_bad_setting, "DocumentReference.context.practiceSetting", "CADRE_INCONNU", "JDV_J04"),
        (_bad_label, "securityLabel", "SECRET_DEFENSE", "JDV_J58"),
    ],
    ids=["typeCode-J66", "classCode-J57", "formatCode-J60", "facility-J61", "setting-J04", "label-J58"],
)
def test_unknown_code(api: Api, patient: Identity, spoil: Any, element: str, value: str, vs: str) -> None:
    b, d = one_doc_bundle(patient)
    spoil(d)
    resp = api.post("", b)
    issue = assert_outcome(
        resp, 422, "UNKNOWN_CODE", "Code inconnu", element, value, f"absent du jeu de valeurs {vs}"
    )
    assert issue["code"] == "code-invalid"
    assert issue["expression"]


# ---- content checks ---------------------------------------------------------------------


def test_hash_mismatch(api: Api, patient: Identity) -> None:
    b, d = one_doc_bundle(patient)
    wrong = sha1_b64(CDA + b" ")
    d["content"][0]["attachment"]["hash"] = wrong
    assert_outcome(
        api.post("", b),
        422,
        "HASH_MISMATCH",
        "L'empreinte du document ne correspond pas",
        f"empreinte déclarée {wrong}",
    )


def test_hash_not_base64(api: Api, patient: Identity) -> None:
    b, d = one_doc_bundle(patient)
    d["content"][0]["attachment"]["hash"] = "pas du base64 !"
    assert_outcome(api.post("", b), 422, "HASH_MISMATCH", "attachment.hash n'est pas du base64")


def test_size_mismatch(api: Api, patient: Identity) -> None:
    b, d = one_doc_bundle(patient)
    d["content"][0]["attachment"]["size"] = len(CDA) + 1
    assert_outcome(
        api.post("", b),
        422,
        "SIZE_MISMATCH",
        "La taille déclarée du document",
        f"{len(CDA) + 1} octets déclarés, {len(CDA)} reçus",
    )


def test_duplicate_unique_id_in_a_second_bundle(api: Api, patient: Identity) -> None:
    uid = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
    first, _ = publish(api, patient, unique_id=uid)
    b, _ = one_doc_bundle(patient, unique_id=uid, title="Doublon")
    assert_outcome(
        api.post("", b),
        409,
        "DUPLICATE_UNIQUE_ID",
        "Un document portant cet identifiant unique",
        f"urn:oid:{uid}",
    )
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [first]


def test_duplicate_unique_id_in_another_patients_record(api: Api, patient: Identity) -> None:
    from conftest import patient_resource

    other = new_identity(family="MARTIN")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    uid = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
    publish(api, patient, unique_id=uid)
    b, _ = one_doc_bundle(other, unique_id=uid)
    assert_outcome(api.post("", b), 409, "DUPLICATE_UNIQUE_ID", f"urn:oid:{uid}")


def test_duplicate_unique_id_twice_in_one_bundle(api: Api, patient: Identity) -> None:
    uid = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
    d1 = doc(patient, unique_id=uid, title="Un")
    d2 = doc(patient, unique_id=uid, title="Deux")
    resp = api.post("", bundle(patient, (d1, CDA), (d2, CDA)))
    assert_outcome(resp, 409, "DUPLICATE_UNIQUE_ID", f"urn:oid:{uid} (deux fois dans le lot)")
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert "entry" not in found.json()


def test_replacement_of_an_unknown_document(api: Api, patient: Identity) -> None:
    target = f"DocumentReference/{uuid.uuid4()}"
    b, _ = one_doc_bundle(patient, replaces=target)
    assert_outcome(
        api.post("", b), 422, "REPLACED_UNKNOWN", "Le document à remplacer est introuvable", target
    )


def test_replacement_of_another_patients_document(api: Api, patient: Identity) -> None:
    from conftest import patient_resource

    other = new_identity(family="MARTIN")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    theirs, _ = publish(api, other)
    b, _ = one_doc_bundle(patient, replaces=f"DocumentReference/{theirs}")
    assert_outcome(api.post("", b), 422, "REPLACED_UNKNOWN", f"DocumentReference/{theirs}")
    assert api.get(f"DocumentReference/{theirs}").json()["status"] == "current"


def test_replacement_of_an_already_replaced_document(api: Api, patient: Identity) -> None:
    old, _ = publish(api, patient, title="v1")
    v2, _ = publish(api, patient, title="v2", replaces=f"DocumentReference/{old}")
    b, _ = one_doc_bundle(patient, title="v2 bis", replaces=f"DocumentReference/{old}")
    assert_outcome(
        api.post("", b),
        409,
        "ALREADY_REPLACED",
        "Le document à remplacer a déjà été remplacé",
        f"DocumentReference/{old}",
        f"remplacé par DocumentReference/{v2}",
    )
    current = api.get(
        "DocumentReference",
        params={"patient.identifier": f"{patient.system}|{patient.nir}", "status": "current"},
    ).json()
    assert [e["resource"]["id"] for e in current["entry"]] == [v2]


# ---- sizes --------------------------------------------------------------------------------


@pytest.fixture()
def small_limit(api: Api) -> int:
    api.runtime.settings = dataclasses.replace(api.runtime.settings, max_document_bytes=1000)
    return 1000


def test_document_at_the_limit_is_accepted(api: Api, patient: Identity, small_limit: int) -> None:
    content = b"x" * small_limit
    b, _ = one_doc_bundle(patient, content, mime_type="text/plain")
    assert api.post("", b).status_code == 200


@pytest.mark.parametrize("extra", [1, 1000])
def test_document_too_large(api: Api, patient: Identity, small_limit: int, extra: int) -> None:
    content = b"x" * (small_limit + extra)
    b, _ = one_doc_bundle(patient, content, mime_type="text/plain")
    assert_outcome(api.post("", b), 413, "DOCUMENT_TOO_LARGE", "Le document dépasse la taille maximale")


def test_document_too_large_as_attachment_data(api: Api, patient: Identity, small_limit: int) -> None:
    content = b"x" * (small_limit * 2)
    b, d = one_doc_bundle(patient, content, mime_type="text/plain", binary_url=None)
    assert "data" in d["content"][0]["attachment"] and len(b["entry"]) == 2
    assert_outcome(api.post("", b), 413, "DOCUMENT_TOO_LARGE", "Le document dépasse la taille maximale")


def test_document_too_large_message_states_the_real_limit(
    api: Api, patient: Identity, small_limit: int
) -> None:
    b, _ = one_doc_bundle(patient, b"x" * 5000, mime_type="text/plain")
    issue = assert_outcome(api.post("", b), 413, "DOCUMENT_TOO_LARGE")
    assert "(0 Mo" not in issue["diagnostics"]


def test_request_body_too_large(api: Api, patient: Identity, small_limit: int) -> None:
    limit = api.runtime.settings.max_request_bytes
    body = b'{"resourceType": "Bundle", "pad": "' + b" " * limit + b'"}'
    resp = api.client.post("/fhir/", content=body, headers=fhir_headers(api, "application/fhir+json"))
    assert_outcome(resp, 413, "REQUEST_TOO_LARGE", "La requête dépasse la taille maximale autorisée")


def test_request_body_too_large_without_content_length(api: Api, patient: Identity, small_limit: int) -> None:
    limit = api.runtime.settings.max_request_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Bundle", "pad": "'
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536
        yield b'"}'

    resp = api.client.post("/fhir/", content=chunks(), headers=fhir_headers(api, "application/fhir+json"))
    assert_outcome(resp, 413, "REQUEST_TOO_LARGE", "La requête dépasse la taille maximale autorisée")


# ---- access tokens ------------------------------------------------------------------------


def test_no_authorization_header(api: Api, patient: Identity) -> None:
    resp = api.client.get(
        "/fhir/DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"}
    )
    assert_outcome(
        resp, 401, "AUTH_REQUIRED", "Authentification requise", "en-tête Authorization: Bearer <jeton> absent"
    )
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_not_a_bearer_scheme(api: Api, patient: Identity) -> None:
    resp = api.client.get(f"/fhir/Patient/{uuid.uuid4()}", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_outcome(resp, 401, "AUTH_REQUIRED", "Authorization: Bearer")
    assert "www-authenticate" in resp.headers


def test_no_authorization_on_publication(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir/", content=json.dumps(bundle(patient)), headers={"Content-Type": "application/fhir+json"}
    )
    assert_outcome(resp, 401, "AUTH_REQUIRED")
    assert "www-authenticate" in resp.headers


def _get_with(api: Api, token: str, ident: Identity) -> Any:
    return api.client.get(
        "/fhir/DocumentReference",
        headers={"Authorization": f"Bearer {token}"},
        params={"patient.identifier": f"{ident.system}|{ident.nir}"},
    )


def test_garbage_token(api: Api, patient: Identity) -> None:
    resp = _get_with(api, "ceci-n-est-pas-un-jeton", patient)
    assert_outcome(resp, 401, "TOKEN_INVALID", "Jeton d'accès invalide", "format JWT illisible")
    assert "www-authenticate" in resp.headers


def test_tampered_token_signature(api: Api, patient: Identity) -> None:
    token = api.token()
    head, payload, sig = token.split(".")
    i = len(sig) // 2
    flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    resp = _get_with(api, f"{head}.{payload}.{flipped}", patient)
    assert_outcome(resp, 401, "TOKEN_INVALID", "signature invalide")
    assert _get_with(api, token, patient).status_code == 200


def test_tampered_token_claims(api: Api, patient: Identity) -> None:
    head, payload, sig = api.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "899999999999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_outcome(
        _get_with(api, f"{head}.{forged}.{sig}", patient), 401, "TOKEN_INVALID", "signature invalide"
    )


def test_token_of_another_server(api: Api, patient: Identity, tmp_path: Path) -> None:
    from dmp.auth.tokens import TokenSigner
    from dmp.domain.actor import Actor, ActorKind

    other = TokenSigner.generate_file(tmp_path / "other.pem")
    token, _ = other.issue(
        Actor(ActorKind.PROFESSIONAL, "810001234565", "Charles MULLER"), now=datetime.now(UTC), issuer=BASE
    )
    assert_outcome(_get_with(api, token, patient), 401, "TOKEN_INVALID", "clé de signature inconnue")


def test_expired_token(api: Api, patient: Identity) -> None:
    used = api.token()  # verified once below: it sits in the verification cache
    assert _get_with(api, used, patient).status_code == 200
    fresh = api.token("doctor2")  # never presented before the clock moves
    later = datetime.now(UTC) + timedelta(hours=1)
    api.runtime.clock = lambda: later
    for token in (used, fresh):
        resp = _get_with(api, token, patient)
        assert_outcome(resp, 401, "TOKEN_EXPIRED", "Jeton d'accès expiré. Demandez un nouveau jeton.")
        assert "www-authenticate" in resp.headers


# ---- token endpoint -----------------------------------------------------------------------


def _token(api: Api, form: dict[str, str]) -> Any:
    return api.client.post("/oauth/token", data=form)


def test_token_for_a_revoked_card(api: Api) -> None:
    card = api.cards["revoked"]
    cert = x509.load_pem_x509_certificate((card.dir / "card.crt").read_bytes())
    with api.runtime.engine.begin() as conn:
        conn.execute(
            insert(revoked_certificate).values(
                serial=str(cert.serial_number), revoked_at=datetime.now(UTC), reason="perte de la carte"
            )
        )
    resp = _token(api, token_form(card.dir, TOKEN_URL))
    assert_oauth_error(
        resp,
        401,
        "invalid_client",
        "CERTIFICATE_REVOKED",
        "Certificat de carte révoqué",
        f"{cert.serial_number:X}",
        card.idnps,
    )
    # Other cards still work.
    assert _token(api, token_form(api.cards["doctor"].dir, TOKEN_URL)).status_code == 200


def test_token_for_a_card_of_another_ca(api: Api, tmp_path: Path) -> None:
    # Same CA name as the instance's, different key: only the signature tells them apart.
    init_ca(tmp_path / "other-ca")
    issue_card(
        tmp_path / "other-ca",
        rpps="10001234565",
        profession="10",
        specialty="SM26",
        name="Charles MULLER",
        structure_id=None,
        structure_name=None,
        out=tmp_path / "forged",
    )
    resp = _token(api, token_form(tmp_path / "forged", TOKEN_URL))
    assert_oauth_error(
        resp,
        401,
        "invalid_client",
        "CERTIFICATE_INVALID",
        "Certificat de carte refusé",
        "autorité de certification du DMP",
    )


def test_token_for_a_card_of_a_differently_named_ca(api: Api, tmp_path: Path) -> None:
    init_ca(tmp_path / "other-ca", common_name="Autre IGC")
    issue_card(
        tmp_path / "other-ca",
        rpps="10001234565",
        profession="10",
        specialty=None,
        name="Charles MULLER",
        structure_id=None,
        structure_name=None,
        out=tmp_path / "forged",
    )
    resp = _token(api, token_form(tmp_path / "forged", TOKEN_URL))
    assert_oauth_error(
        resp,
        401,
        "invalid_client",
        "CERTIFICATE_INVALID",
        "non émis par l'autorité de certification du DMP",
        "Autre IGC",
    )


def test_replayed_assertion(api: Api) -> None:
    form = token_form(api.cards["doctor"].dir, TOKEN_URL)
    assert _token(api, form).status_code == 200
    resp = _token(api, form)
    assert_oauth_error(
        resp, 401, "invalid_client", "ASSERTION_REPLAYED", "Assertion déjà utilisée", "jti rejoué"
    )


def test_assertion_for_another_audience(api: Api) -> None:
    resp = _token(api, token_form(api.cards["doctor"].dir, "https://autre-service.example/oauth/token"))
    assert_oauth_error(
        resp,
        401,
        "invalid_client",
        "ASSERTION_INVALID",
        "Assertion d'authentification refusée",
        f"audience attendue {TOKEN_URL}",
    )


def test_wrong_grant_type(api: Api) -> None:
    form = token_form(api.cards["doctor"].dir, TOKEN_URL)
    form["grant_type"] = "password"
    resp = _token(api, form)
    assert_oauth_error(
        resp, 400, "unsupported_grant_type", "UNSUPPORTED_GRANT", "grant_type=client_credentials attendu"
    )


def test_wrong_assertion_type(api: Api) -> None:
    form = token_form(api.cards["doctor"].dir, TOKEN_URL)
    form["client_assertion_type"] = "urn:exemple"
    assert_oauth_error(
        _token(api, form),
        400,
        "invalid_request",
        "UNSUPPORTED_GRANT",
        "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )


def test_token_request_not_form_encoded(api: Api) -> None:
    form = token_form(api.cards["doctor"].dir, TOKEN_URL)
    resp = api.client.post("/oauth/token", json=form)
    assert_oauth_error(resp, 400, "invalid_request", "UNSUPPORTED_GRANT", "application/x-www-form-urlencoded")


def test_repeated_failures_are_rate_limited(api: Api) -> None:
    doctor = api.cards["doctor"].dir
    for _ in range(20):
        resp = _token(api, token_form(doctor, "https://autre-service.example/oauth/token"))
        assert_oauth_error(resp, 401, "invalid_client", "ASSERTION_INVALID")
    # The 21st attempt is refused before any check, even with a valid assertion.
    resp = _token(api, token_form(doctor, TOKEN_URL))
    assert resp.status_code == 429, resp.text
    assert resp.headers["retry-after"] == "60"
    body = resp.json()
    assert body["dmp_error_code"] == "RATE_LIMITED"
    assert "Trop de tentatives. Réessayez dans 60 secondes." in body["error_description"]
    assert "access_token" not in body


# ---- uniform 404 --------------------------------------------------------------------------


def test_unknown_and_deleted_documents_get_the_same_404(api: Api, patient: Identity) -> None:
    unknown = api.get(f"DocumentReference/{uuid.uuid4()}")
    assert_outcome(unknown, 404, "NOT_FOUND", "Ressource introuvable.")
    assert_outcome(api.get("DocumentReference/pas-un-uuid"), 404, "NOT_FOUND")

    doc_id, _ = publish(api, patient)
    resp = api.patch(
        f"DocumentReference/{doc_id}", [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    )
    assert resp.status_code == 200, resp.text
    deleted = api.get(f"DocumentReference/{doc_id}")
    assert deleted.status_code == 404
    assert deleted.json() == unknown.json()
    # ITI-68 and a metadata update answer the same.
    assert api.get(f"Binary/{doc_id}").json() == unknown.json()
    assert api.get(f"Binary/{uuid.uuid4()}").json() == unknown.json()
    again = api.patch(
        f"DocumentReference/{doc_id}", [{"op": "replace", "path": "/status", "value": "current"}]
    )
    assert again.status_code == 404 and again.json() == unknown.json()


def test_hidden_document_of_a_closed_record_gets_the_same_404(api: Api, patient: Identity) -> None:
    from dmp.domain.actor import Actor, ActorKind
    from dmp.services import records

    doc_id, _ = publish(api, patient)  # doctor2 has no authorisation on this record
    unknown = api.get(f"DocumentReference/{uuid.uuid4()}", who="doctor2")
    assert api.get(f"DocumentReference/{doc_id}", who="doctor2").json() == unknown.json()
    pid = patient_id(api, patient)  # before the transaction: SQLite allows one writer at a time
    with api.runtime.engine.begin() as conn:
        records.close(conn, Actor(ActorKind.OPERATOR, "guichet:test", "Agent"), pid, None, api.runtime.now())
    for path in (f"DocumentReference/{doc_id}", f"Binary/{doc_id}"):
        resp = api.get(path, who="doctor2")
        assert (resp.status_code, resp.json()) == (404, unknown.json())


def test_unknown_list_and_patient_get_404(api: Api, patient: Identity) -> None:
    assert_outcome(api.get(f"List/{uuid.uuid4()}"), 404, "NOT_FOUND", "Ressource introuvable.")
    assert_outcome(api.get(f"Patient/{uuid.uuid4()}"), 404, "NOT_FOUND", "Ressource introuvable.")


# ---- all or nothing -----------------------------------------------------------------------


def _counts(api: Api, pid: uuid.UUID) -> dict[str, int]:
    with api.runtime.engine.connect() as conn:
        return {
            t.name: conn.execute(
                select(func.count()).select_from(t).where(t.c.patient_id == pid)
            ).scalar_one()
            for t in (document, document_uid, submission_set)
        }


def test_failure_after_the_first_document_leaves_nothing(api: Api, patient: Identity) -> None:
    pid = patient_id(api, patient)
    d1, d2 = doc(patient, title="Premier"), doc(patient, title="Second")
    b = bundle(patient, (d1, CDA), (d2, CDA))
    client = TestClient(api.app, base_url=BASE, raise_server_exceptions=False)
    with failing_blobs(api, fail_at=2), client:  # the second document's write fails
        headers = fhir_headers(api, "application/fhir+json")
        resp = client.post("/fhir/", content=json.dumps(b), headers=headers)
    issue = assert_outcome(resp, 500, "INTERNAL_ERROR", "aucune donnée n'a été enregistrée")
    assert issue["severity"] == "fatal"
    assert _counts(api, pid) == {"document": 0, "document_uid": 0, "submission_set": 0}

    # The uniqueIds were not consumed: the very same bundle now goes through.
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    assert _counts(api, pid) == {"document": 2, "document_uid": 2, "submission_set": 1}
