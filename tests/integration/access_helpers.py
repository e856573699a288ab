"""Getting an actor into a record under the access policy: attestations and patient tokens."""

from __future__ import annotations

from typing import Any

from conftest import Api, Identity
from dmp.domain.actor import Actor, ActorKind

CONSENT_KIND_SYSTEM = "https://dmp.example.org/fhir/CodeSystem/dmp-consent-kind"
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"


def record_id(api: Api, ident: Identity) -> str:
    found = api.get("Patient", params={"identifier": f"{ident.system}|{ident.nir}"}).json()
    return str(found["entry"][0]["resource"]["id"])


def authorisation(pid: str, idnps: str) -> dict[str, Any]:
    """The professional's attestation « le patient m'a autorisé » (docs/api/consents.md)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": "authorisation"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "policyRule": {
            "coding": [
                {"system": "https://dmp.example.org/fhir/CodeSystem/dmp-consent-policy", "code": "dmp-access"}
            ]
        },
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "PRCP",
                            }
                        ]
                    },
                    "reference": {"identifier": {"system": IDNPS_SYSTEM, "value": idnps}},
                }
            ],
        },
    }


def authorise(api: Api, ident: Identity, who: str) -> dict[str, Any]:
    """``who`` attests that the patient authorised them; returns the stored Consent."""
    resp = api.post("Consent", authorisation(record_id(api, ident), api.cards[who].idnps), who=who)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def as_patient(api: Api, ident: Identity) -> str:
    """A patient token for ``ident`` (patients' login is not there yet); use the result as ``who``."""
    pid = record_id(api, ident)
    api.person_token(Actor(ActorKind.PATIENT, pid, f"{ident.given} {ident.family}"))
    return f"person:{pid}"
