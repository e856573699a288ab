"""FHIR ``Consent`` <-> the record's access choices (profile in docs/api/consents.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dmp.domain.consent import EMERGENCY_KINDS, ConsentKind, ConsentRow
from dmp.errors import DmpError
from dmp.fhir import CANONICAL
from dmp.fhir.common import Json, codings, instant

KIND_SYSTEM = f"{CANONICAL}/CodeSystem/dmp-consent-kind"
POLICY_SYSTEM = f"{CANONICAL}/CodeSystem/dmp-consent-policy"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
IDNST = "urn:oid:1.2.250.1.71.4.2.2"
REPRESENTATIVE_SYSTEM = f"{CANONICAL}/NamingSystem/dmp-account"
KIND_DISPLAY = {
    ConsentKind.AUTHORISATION: "Professionnel autorisé",
    ConsentKind.BLOCK: "Professionnel bloqué",
    ConsentKind.MEDECIN_TRAITANT: "Médecin traitant",
    ConsentKind.ADMINISTRATOR: "Administrateur du DMP",
    ConsentKind.CARE_TEAM: "Équipe de soins (établissement)",
    ConsentKind.CARE_TEAM_OBJECTION: "Opposition à l'équipe de soins",
    ConsentKind.EMERGENCY_SAMU: "Accès du SAMU (centre 15) en urgence",
    ConsentKind.EMERGENCY_BREAK_GLASS: "Accès en bris de glace",
    ConsentKind.EMERGENCY_MASKED: "Documents masqués visibles en urgence",
    ConsentKind.REPRESENTATIVE: "Représentant légal",
}
_STRUCTURE_KINDS = {ConsentKind.CARE_TEAM, ConsentKind.CARE_TEAM_OBJECTION}


def parse(resource: Json) -> tuple[str, ConsentKind, str | None, bool]:
    """(patient reference, kind, subject id, permit) of a submitted Consent."""
    kind = next(
        (
            c.get("code")
            for cat in resource.get("category") or []
            for c in codings(cat)
            if c.get("system") == KIND_SYSTEM
        ),
        None,
    )
    try:
        ck = ConsentKind(str(kind))
    except ValueError as exc:
        raise DmpError("UNKNOWN_CODE", f"Consent.category {kind} ({KIND_SYSTEM})") from exc
    patient = (resource.get("patient") or {}).get("reference")
    if not isinstance(patient, str):
        raise DmpError("MISSING_ELEMENT", "Consent.patient")
    provision = resource.get("provision") or {}
    permit = provision.get("type", "permit") != "deny"
    subject: str | None = None
    actors = provision.get("actor") or []
    if actors:
        ident = (actors[0].get("reference") or {}).get("identifier") or {}
        expected = IDNST if ck in _STRUCTURE_KINDS else IDNPS
        if ident.get("system") != expected:
            raise DmpError("INVALID_VALUE", f"Consent.provision.actor : identifiant {expected} attendu")
        subject = str(ident.get("value") or "") or None
    if ck in EMERGENCY_KINDS:
        subject = None
    elif not permit:
        raise DmpError(
            "INVALID_VALUE", "provision.type « deny » n'a de sens que pour les consentements d'urgence"
        )
    return patient, ck, subject, permit


def to_resource(row: ConsentRow) -> Json:
    status = {"proposed": "proposed", "active": "active"}.get(row.status, "inactive")
    res: Json = {
        "resourceType": "Consent",
        "id": str(row.id),
        "status": status,
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [
            {"coding": [{"system": KIND_SYSTEM, "code": row.kind.value, "display": KIND_DISPLAY[row.kind]}]}
        ],
        "patient": {"reference": f"Patient/{row.patient_id}"},
        "dateTime": instant(row.created_at),
        "policyRule": {"coding": [{"system": POLICY_SYSTEM, "code": "dmp-access"}]},
        "provision": {"type": "permit" if row.permit else "deny"},
    }
    if row.subject_id:
        system = (
            IDNST
            if row.kind in _STRUCTURE_KINDS
            else (REPRESENTATIVE_SYSTEM if row.kind is ConsentKind.REPRESENTATIVE else IDNPS)
        )
        res["provision"]["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": system, "value": row.subject_id}},
            }
        ]
    return res


def patient_id_of(reference: str) -> UUID:
    try:
        return UUID(reference.removeprefix("Patient/"))
    except ValueError as exc:
        raise DmpError("INVALID_VALUE", "Consent.patient doit être Patient/<id>") from exc


def searchset(rows: list[ConsentRow], base: str) -> Json:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(rows)}
    if rows:
        bundle["entry"] = [
            {"fullUrl": f"{base}/Consent/{r.id}", "resource": to_resource(r), "search": {"mode": "match"}}
            for r in rows
        ]
    return bundle
