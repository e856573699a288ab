"""Patient (FR Core INS profile) <-> record identity, and the record-creation request.

Record creation (the real system's TD1 transaction) is ``POST /fhir/Patient`` with a
Patient carrying the INS, the strict traits and a contained ``Consent`` that
attests the patient's consent, pointed to by the extension ``dmp-creation-consent``.
The exact shape is documented in docs/api/record-creation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
from dmp.domain.ins import Ins, parse_ins
from dmp.errors import DmpError
from dmp.fhir import CANONICAL
from dmp.fhir.common import Json, codings, contained_by_ref, instant, parse_datetime, require

INS_SYSTEMS = {f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11)}
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
BIRTH_LIST_GIVEN_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-birth-list-given-name"
IDENTITY_RELIABILITY_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
CLOSURE_URL = "https://interop.esante.gouv.fr/ig/fhir/dmp/StructureDefinition/dmp-fermeture"
CREATION_CONSENT_URL = f"{CANONICAL}/StructureDefinition/dmp-creation-consent"
CONSENT_CHANNEL_URL = f"{CANONICAL}/StructureDefinition/dmp-consent-channel"
CONSENT_CHANNELS = {
    "professional-software": "Logiciel du professionnel de santé",
    "professional-portal": "Espace web professionnel",
    "pharmacy": "Pharmacie",
    "insurance-desk": "Accueil de l'organisme d'assurance maladie",
    "patient-online": "Le patient en ligne",
}


@dataclass(frozen=True, slots=True)
class CreationRequest:
    ins: Ins
    traits: StrictTraits
    identity_status: IdentityStatus
    usual_family_name: str | None
    usual_given_name: str | None
    consent_at: datetime
    consent_channel: str
    medecin_traitant: str | None = None  # IDNPS from Patient.generalPractitioner
    email: str | None = None  # Patient.telecom: where the patient's account codes and alerts go
    phone: str | None = None


def find_ins(identifiers: Any, *, allow_test: bool) -> Ins | None:
    if not isinstance(identifiers, list):
        return None
    for ident in identifiers:
        if isinstance(ident, dict) and ident.get("system") in INS_SYSTEMS:
            return parse_ins(str(ident["system"]), str(ident.get("value") or ""), allow_test=allow_test)
    return None


def _official_and_usual(names: Any) -> tuple[Json, Json | None]:
    if not isinstance(names, list) or not names:
        raise DmpError("MISSING_ELEMENT", "Patient.name (nom et prénoms de naissance)")
    official = next((n for n in names if n.get("use") == "official"), names[0])
    usual = next((n for n in names if n.get("use") == "usual"), None)
    return official, usual


def parse_traits(p: Json) -> StrictTraits:
    official, _ = _official_and_usual(p.get("name"))
    family = official.get("family")
    if not isinstance(family, str) or not family.strip():
        raise DmpError("MISSING_ELEMENT", "Patient.name.family (nom de naissance)")
    given_list = _birth_given_names(official)
    if not given_list:
        raise DmpError("MISSING_ELEMENT", "Patient.name.given (prénoms de naissance)")
    gender = require(p, "gender", "Patient.gender")
    try:
        sex = Sex(gender)
    except ValueError as exc:
        raise DmpError("INVALID_VALUE", f"Patient.gender « {gender} » (male, female ou unknown)") from exc
    try:
        birth_date = date.fromisoformat(str(require(p, "birthDate", "Patient.birthDate")))
    except ValueError as exc:
        raise DmpError("INVALID_VALUE", "Patient.birthDate doit être une date complète AAAA-MM-JJ") from exc
    insee = _birth_place_insee(p)
    if not insee:
        raise DmpError("MISSING_ELEMENT", "Patient.extension:birthPlace (code INSEE du lieu de naissance)")
    return StrictTraits(
        birth_family_name=family.strip(),
        birth_given_names=tuple(given_list),
        sex=sex,
        birth_date=birth_date,
        birth_place_insee=str(insee).upper(),
    )


def _birth_given_names(official: Json) -> list[str]:
    """The birth given names: the list-given-names extension, else every word of name.given."""
    given_list: list[str] = []
    for ext in official.get("extension") or []:
        if ext.get("url") == BIRTH_LIST_GIVEN_URL and isinstance(ext.get("valueString"), str):
            given_list = ext["valueString"].split()
    if not given_list:
        given_list = [g for g in official.get("given") or [] if isinstance(g, str)]
        given_list = [w for g in given_list for w in g.split()]
    return given_list


def _birth_place_insee(p: Json) -> Any:
    """The INSEE code of the birth place (birthPlace extension), if given."""
    insee = None
    for ext in p.get("extension") or []:
        if ext.get("url") == BIRTH_PLACE_URL:
            for sub in (ext.get("valueAddress") or {}).get("extension") or []:
                if sub.get("url") == INSEE_CODE_URL:
                    coding = sub.get("valueCoding") or {}
                    insee = coding.get("code") or sub.get("valueString")
    return insee


def parse_identity_status(p: Json) -> IdentityStatus:
    for ext in p.get("extension") or []:
        if ext.get("url") == IDENTITY_RELIABILITY_URL:
            for sub in ext.get("extension") or [ext]:
                code = (sub.get("valueCoding") or {}).get("code")
                if isinstance(code, str) and code in IdentityStatus.__members__:
                    return IdentityStatus(code)
    # The INS may only travel with a qualified identity: a creation carrying it is one.
    return IdentityStatus.QUAL


def parse_creation(p: Json, *, allow_test: bool) -> CreationRequest:
    if p.get("resourceType") != "Patient":
        raise DmpError("INVALID_RESOURCE", "une ressource Patient est attendue")
    ins = find_ins(p.get("identifier"), allow_test=allow_test)
    if ins is None:
        raise DmpError("MISSING_ELEMENT", "Patient.identifier (INS : NIR ou NIA)")
    traits = parse_traits(p)
    at, channel = _creation_consent(p)
    _, usual = _official_and_usual(p.get("name"))
    usual_given = None
    if usual and usual.get("given"):
        usual_given = str(usual["given"][0])
    medecin = _medecin_traitant(p)
    email, phone = _telecom(p)
    return CreationRequest(
        email=email,
        phone=phone,
        medecin_traitant=medecin,
        ins=ins,
        traits=traits,
        identity_status=parse_identity_status(p),
        usual_family_name=usual.get("family") if usual else None,
        usual_given_name=usual_given,
        consent_at=at,
        consent_channel=channel,
    )


def _creation_consent(p: Json) -> tuple[datetime, str]:
    """When and through which channel the patient consented to the record's creation (the
    contained, active Consent the creation-consent extension names)."""
    consent_ext = next((e for e in p.get("extension") or [] if e.get("url") == CREATION_CONSENT_URL), None)
    if consent_ext is None:
        raise DmpError("CONSENT_REQUIRED", f"extension {CREATION_CONSENT_URL} absente")
    consent = contained_by_ref(p, consent_ext.get("valueReference"))
    if consent is None or consent.get("resourceType") != "Consent":
        raise DmpError("CONSENT_REQUIRED", "la référence doit désigner un Consent contenu (#id)")
    if consent.get("status") != "active":
        raise DmpError("CONSENT_REQUIRED", "Consent.status doit valoir « active »")
    at = parse_datetime(require(consent, "dateTime", "Consent.dateTime"), "Consent.dateTime")
    channel = "professional-software"
    for ext in consent.get("extension") or []:
        if ext.get("url") == CONSENT_CHANNEL_URL:
            channel = str(ext.get("valueCode"))
    if channel not in CONSENT_CHANNELS:
        raise DmpError("INVALID_VALUE", f"canal de recueil du consentement inconnu : {channel}")
    return at, channel


def _medecin_traitant(p: Json) -> str | None:
    """The RPPS identifier of the last generalPractitioner given by one, if any."""
    medecin: str | None = None
    for gp in p.get("generalPractitioner") or []:
        ident = gp.get("identifier") if isinstance(gp, dict) else None
        if (
            isinstance(ident, dict)
            and ident.get("system") == "urn:oid:1.2.250.1.71.4.2.1"
            and ident.get("value")
        ):
            medecin = str(ident["value"])
    return medecin


def _telecom(p: Json) -> tuple[str | None, str | None]:
    """The patient's e-mail address and phone number (the last of each), if given."""
    email = phone = None
    for t in p.get("telecom") or []:
        if isinstance(t, dict) and t.get("system") == "email" and t.get("value"):
            email = str(t["value"])
        elif isinstance(t, dict) and t.get("system") in ("phone", "sms") and t.get("value"):
            phone = str(t["value"])
    return email, phone


def patient_resource(row: Any) -> Json:
    """The Patient as served; the INS is only shown for a qualified identity."""
    given = row.birth_given_names.split()
    official: Json = {
        "use": "official",
        "family": row.birth_family_name,
        "given": [given[0]],
        "extension": [{"url": BIRTH_LIST_GIVEN_URL, "valueString": " ".join(given)}],
    }
    names = [official]
    if row.usual_family_name or row.usual_given_name:
        usual: Json = {"use": "usual"}
        if row.usual_family_name:
            usual["family"] = row.usual_family_name
        if row.usual_given_name:
            usual["given"] = [row.usual_given_name]
        names.append(usual)
    status = IdentityStatus(row.identity_status)
    resource: Json = {
        "resourceType": "Patient",
        "id": str(row.id),
        "meta": {"versionId": str(row.version), "lastUpdated": instant(row.updated_at)},
        "extension": [
            {
                "url": IDENTITY_RELIABILITY_URL,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": IDENTITY_STATUS_SYSTEM, "code": status.value},
                    }
                ],
            },
            {
                "url": BIRTH_PLACE_URL,
                "valueAddress": {
                    "extension": [
                        {
                            "url": INSEE_CODE_URL,
                            "valueCoding": {
                                "system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM",
                                "code": row.birth_place_insee,
                            },
                        }
                    ]
                },
            },
        ],
        "active": row.record_status == "open",
        "name": names,
        "gender": row.sex,
        "birthDate": row.birth_date.isoformat(),
    }
    if status is IdentityStatus.QUAL:
        resource["identifier"] = [
            {
                "use": "official",
                "type": {
                    "coding": [
                        {
                            "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                            "code": "INS-NIR"
                            if row.ins_oid.endswith(".8")
                            else "INS-NIA"
                            if row.ins_oid.endswith(".9")
                            else "INS-NIR-TEST",
                        }
                    ]
                },
                "system": f"urn:oid:{row.ins_oid}",
                "value": row.ins_value,
            }
        ]
    if row.record_status == "closed":
        sub: list[Json] = [{"url": "dateFermeture", "valueDateTime": instant(row.closed_at)}]
        if row.closure_reason:
            sub.append({"url": "motifFermeture", "valueString": row.closure_reason})
        resource["extension"].append({"url": CLOSURE_URL, "extension": sub})
    return resource


def patient_ref(patient_id: UUID) -> str:
    return f"Patient/{patient_id}"


def consent_channel_codes() -> list[Json]:
    return [{"code": k, "display": v} for k, v in CONSENT_CHANNELS.items()]


__all__ = ["CreationRequest", "codings", "parse_creation", "patient_resource"]
