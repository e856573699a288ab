"""Patient apps (OAuth PKCE) with write scopes (AC-21, PT-06): a token writes only what its scopes
name (403 otherwise), and what they name the policy still decides: an app never does more than
its patient. Through the real authorization flow; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from test_pkce_flow import _authorize_url, _consent, _patient_logged_in, _pkce, _register, _token
from test_policy_api import consent
from test_updates import add_flag

from dmp.fhir.portal_upload import Upload, document_reference, patient_author
from dmp.terminology import valueset

WRITES = "patient/*.rs patient/Consent.cd patient/DocumentReference.cu"


def _app_token(portal: Portal, b: Any, client_id: str, scope: str) -> dict[str, str]:
    verifier, challenge = _pkce()
    url = _authorize_url(client_id, challenge, scope=scope)
    page = txt(b.get(url))
    if "Consent" in scope:
        assert "bloquer un professionnel de santé" in page
    if "DocumentReference.cu" in scope:
        assert "ajouter vos propres documents" in page and "jamais faire plus que vous-même" in page
    if scope == "patient/*.rs":
        assert "Elle ne pourra ni ajouter, ni modifier, ni supprimer de document" in page
    code = _consent(b, url)["code"][0]
    got = _token(portal, client_id, code, verifier)
    assert got.status_code == 200, got.text
    assert got.json()["scope"] == " ".join(sorted(scope.split()))
    return {"Authorization": f"Bearer {got.json()['access_token']}", "Accept": "application/fhir+json"}


def _fhir(portal: Portal, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    kind = "application/json-patch+json" if method == "PATCH" else "application/fhir+json"
    return portal.api.client.request(
        method, f"/fhir/{path}", headers={**headers, "Content-Type": kind}, json=body
    )


def _own_document(ident_system: str, ins: str, type_code: str) -> dict[str, Any]:
    def one(vs: str, code: str) -> Any:
        return valueset(vs).lookup(code)[0]

    return document_reference(
        Upload(
            content=b"%PDF-1.4\n%%EOF\n", mime_type="application/pdf", type_concept=one("J66", type_code),
            class_concept=one("J57", "90"), facility=one("J61", "EXP_PATIENT"),
            practice=one("J04", "EXP_PATIENT"), title=f"Document {type_code} de l'application",
            act_time=datetime(2026, 11, 2, 12, tzinfo=UTC), author=patient_author(ident_system, ins, "Marie"),
            masked=False, invisible_to_patient=False,
        ),
        ident_system,
        ins,
    )


def _ins_of(portal: Portal, pid: Any) -> tuple[str, str]:
    got = portal.api.get(f"Patient/{pid}")
    ident = got.json()["identifier"]
    nir = next(i for i in ident if i["system"].startswith("urn:oid:1.2.250.1.213.1.4."))
    return str(nir["system"]), str(nir["value"])


def test_an_app_without_write_scope_is_refused_and_with_it_allowed(portal: Portal) -> None:
    client_id = _register(portal)
    b, pid, _, doc_id = _patient_logged_in(portal)
    system, ins = _ins_of(portal, pid)
    doctor2 = portal.api.cards["doctor2"].idnps
    read_only = _app_token(portal, b, client_id, "patient/*.rs")
    refusals = [
        _fhir(portal, "PATCH", f"DocumentReference/{doc_id}", read_only, add_flag("MASQUE_PS")),
        _fhir(portal, "POST", "Consent", read_only, consent(str(pid), "block", doctor2)),
        _fhir(portal, "POST", "DocumentReference", read_only, _own_document(system, ins, "DOCPAT03")),
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert "lecture seule" in refused.json()["issue"][0]["diagnostics"]

    writer = _app_token(portal, b, client_id, WRITES)
    masked = _fhir(portal, "PATCH", f"DocumentReference/{doc_id}", writer, add_flag("MASQUE_PS"))
    assert masked.status_code == 200, masked.text
    assert "MASQUE_PS" in masked.text
    block = _fhir(portal, "POST", "Consent", writer, consent(str(pid), "block", doctor2))
    assert block.status_code == 201, block.text
    assert _fhir(portal, "DELETE", f"Consent/{block.json()['id']}", writer).status_code == 204
    own = _fhir(portal, "POST", "DocumentReference", writer, _own_document(system, ins, "EXPPAT_3"))
    assert own.status_code == 201, own.text
    # Consent scope only: no document change.
    consents_only = _app_token(portal, b, client_id, "patient/*.rs patient/Consent.cd")
    unmask = [{"op": "remove", "path": "/securityLabel/1"}]
    refused = _fhir(portal, "PATCH", f"DocumentReference/{doc_id}", consents_only, unmask)
    assert refused.status_code == 403 and "DocumentReference" in refused.json()["issue"][0]["diagnostics"]


def test_an_app_with_write_scopes_is_still_refused_what_the_policy_refuses(portal: Portal) -> None:
    client_id = _register(portal)
    b, pid, _, _ = _patient_logged_in(portal)
    system, ins = _ins_of(portal, pid)
    writer = _app_token(portal, b, client_id, WRITES)
    # A professional's document type: the patient publishes only their own (FEED.patient-types).
    cr = _fhir(portal, "POST", "DocumentReference", writer, _own_document(system, ins, "11488-4"))
    assert cr.status_code == 403, cr.text
    assert "propres documents" in cr.json()["issue"][0]["diagnostics"]
    # Another patient's record: the same 404 as a missing document (no oracle).
    other_ident, _ = portal.record()
    other_doc = portal.publish(other_ident, title="Document d'un autre patient")
    stranger = _fhir(portal, "PATCH", f"DocumentReference/{other_doc}", writer, add_flag("MASQUE_PS"))
    assert stranger.status_code == 404, stranger.text
    # No scope ever lets a patient app create a record.
    assert _fhir(portal, "POST", "Patient", writer, {"resourceType": "Patient"}).status_code == 403
    # Scopes beyond the patient's writes are not granted at all.
    verifier, challenge = _pkce()
    asked = b.get(_authorize_url(client_id, challenge, scope="patient/Patient.c"))
    assert asked.status_code == 303 and "error=invalid_scope" in asked.headers["location"]
