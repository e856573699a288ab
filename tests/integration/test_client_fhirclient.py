"""SMART's fhirclient (client-py), unchanged, against a real ``dmp serve``.

Capability and SMART discovery, the Backend Services token obtained by the library itself with
a card's signed assertion, searches with its R4 models, paging through ``next`` links.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.list import List as FhirList
from fhirclient.models.patient import Patient

from conftest import LiveRecord
from dmp.demo.client import client_assertion


def _smart(live: Any, **settings: Any) -> client.FHIRClient:
    return client.FHIRClient(settings={"app_id": "dmp-tests", "api_base": f"{live.fhir}/", **settings})


def _authorised(live: Any) -> client.FHIRClient:
    """fhirclient's own Backend Services flow: capability → token URI → client_credentials."""
    token_uri = f"{live.base}/oauth/token"
    smart = _smart(live, jwt_token=client_assertion(Path(live.card), token_uri), scope="system/*.rs")
    smart.wants_patient = False
    smart.server.get_capability()
    smart.server.authorize()
    assert smart.ready
    return smart


def test_capability_and_smart_discovery(live: Any) -> None:
    smart = _smart(live, redirect_uri="http://127.0.0.1/retour")
    cap = smart.server.capabilityStatement
    assert cap.fhirVersion == "4.0.1"
    assert {r.type for r in cap.rest[0].resource} >= {"DocumentReference", "List", "Binary", "Patient"}
    # The authorize URL comes from the CapabilityStatement's oauth-uris; it used to raise TypeError.
    url = smart.authorize_url
    assert url is not None
    assert url.startswith(f"{live.base}/oauth/authorize?")
    config = smart.server.request_json(".well-known/smart-configuration")
    assert config["token_endpoint"] == f"{live.base}/oauth/token"
    assert config["authorization_endpoint"] == f"{live.base}/oauth/authorize"
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert config["code_challenge_methods_supported"] == ["S256"]


def test_search_with_models_and_paging(live: Any, live_record: LiveRecord) -> None:
    smart = _authorised(live)
    search = DocumentReference.where(struct={"patient.identifier": live_record.identifier, "_count": "2"})
    first: Bundle = next(search.perform_iter(smart.server))
    assert first.total == 5
    assert len(first.entry) == 2
    assert any(link.relation == "next" for link in first.link)
    pages = list(search.perform_iter(smart.server))  # follows `next` to the last page
    assert [len(p.entry or []) for p in pages] == [2, 2, 1]
    docs = list(search.perform_resources_iter(smart.server))
    assert all(isinstance(d, DocumentReference) for d in docs)
    expected = sorted(f"urn:oid:{u}" for u in live_record.unique_ids)
    assert sorted(d.masterIdentifier.value for d in docs) == expected


def test_read_with_models(live: Any, live_record: LiveRecord) -> None:
    smart = _authorised(live)
    patient = Patient.read(live_record.patient_id, smart.server)
    assert patient.identifier[0].value == live_record.ident.nir
    by_patient = FhirList.where(struct={"patient": f"Patient/{live_record.patient_id}"})
    lists = list(by_patient.perform_resources_iter(smart.server))
    assert lists
    assert all(isinstance(lst, FhirList) for lst in lists)
    first = lists[0].entry[0].item.reference
    doc = DocumentReference.read(first.split("/")[-1], smart.server)
    assert doc.subject.reference.endswith(live_record.patient_id)
