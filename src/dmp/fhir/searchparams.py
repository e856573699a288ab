"""Every search parameter the server supports, declared once.

The CapabilityStatement lists exactly these (``capability_statement``); every search accepts
exactly these, their aliases and the result parameters (``check``: anything else is a 400
``INVALID_SEARCH`` before any lookup), and compiles each through the function its service
registers under the same name — ``tests/unit/test_search_registry.py`` checks that both sides
name the same parameters, so the statement cannot promise what a search refuses, nor hide what
it accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dmp.errors import DmpError
from dmp.fhir.common import parse_datetime_range

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # FHIR R4 SearchParamType: token, reference, date, string…
    documentation: str
    aliases: tuple[str, ...] = ()  # other names clients use for the same parameter


# Search result parameters (FHIR R4 §3.1.1.5), accepted wherever a search is; not search parameters.
RESULT_PARAMETERS = frozenset({"_count", "_offset", "_sort", "_format", "_total", "_totalMethod", "_summary"})

_PATIENT = SearchParam("patient", "reference", "Le dossier : Patient/<id>.", ("subject",))
_PATIENT_INS = SearchParam(
    "patient.identifier", "token", "Le dossier par son INS : urn:oid:1.2.250.1.213.1.4.8|<NIR>."
)
_ID = SearchParam("_id", "token", "Identifiant logique ; plusieurs séparés par des virgules.")

SEARCH_PARAMETERS: dict[str, tuple[SearchParam, ...]] = {
    "DocumentReference": (
        _PATIENT,
        _PATIENT_INS,
        SearchParam("status", "token", "current, superseded ou entered-in-error."),
        SearchParam("category", "token", "Classe du document (JDV J57, classCode).", ("class",)),
        SearchParam("type", "token", "Type du document (JDV J66, LOINC)."),
        SearchParam("format", "token", "Format du document (formatCode)."),
        SearchParam("setting", "token", "Cadre d'exercice (practiceSettingCode)."),
        SearchParam("facility", "token", "Type de structure (healthcareFacilityTypeCode)."),
        SearchParam("event", "token", "Acte ou événement (eventCode)."),
        SearchParam("security-label", "token", "Confidentialité (N, R, V) ou masquage (MASQUE_PS…)."),
        SearchParam("author.identifier", "token", "Auteur par son IDNPS.", ("author",)),
        SearchParam(
            "author.role",
            "token",
            "Profession de l'auteur (TRE_G15, ex. 10 = médecin).",
            ("author:PractitionerRole.role",),
        ),
        SearchParam(
            "author.specialty",
            "token",
            "Spécialité de l'auteur : savoir-faire TRE_R38 (ex. SM26) ou code TRE_A02 (G15_10/SM26).",
            ("author:PractitionerRole.specialty",),
        ),
        SearchParam("date", "date", "Date de création du document (préfixes eq, lt, ge…)."),
        SearchParam("creation", "date", "Date de création du document."),
        SearchParam("period", "date", "Période de l'acte."),
        SearchParam("identifier", "token", "uniqueId du document (ou urn:uuid de l'entrée)."),
        _ID,
        SearchParam("isArchived", "token", "true ou false : documents archivés par le patient."),
        SearchParam("relatesto", "reference", "Documents qui remplacent DocumentReference/<id>."),
        SearchParam(
            "_content",
            "string",
            "Mots du texte du document (titre, corps, PDF, faits), tous requis ; accents, majuscules et "
            "pluriels indifférents ; résultats classés par pertinence. Demande le patient.",
        ),
    ),
    "List": (
        _PATIENT,
        _PATIENT_INS,
        SearchParam("code", "token", "submissionset (les lots de soumission)."),
        SearchParam("status", "token", "current."),
        SearchParam("date", "date", "Date de soumission."),
        SearchParam("identifier", "token", "uniqueId du lot (ou urn:uuid de l'entrée)."),
        SearchParam("sourceId", "token", "Identifiant du système source.", ("source-id",)),
        SearchParam("designationType", "token", "Type de contenu du lot (contentTypeCode)."),
        _ID,
    ),
    "AuditEvent": (
        SearchParam("patient", "reference", "Le dossier dont on lit la trace : Patient/<id>."),
        _PATIENT_INS,
        SearchParam("date", "date", "Date de l'action (préfixes eq, lt, ge…)."),
    ),
    "Consent": (SearchParam("patient", "reference", "Le dossier : Patient/<id>."),),
    "Patient": (
        SearchParam("identifier", "token", "INS : urn:oid:1.2.250.1.213.1.4.8|<NIR> (professionnels)."),
        _ID,
    ),
}


# Clinical facts extracted from the documents (dmp.clinical, dmp.services.facts): one record at a
# time, by code and date; Observation also by category. (Facts also stored but not searched:
# RelatedPerson, the trusted person, and Consent of scope adr, the advance directives — Consent
# here is the record's own consents.)
FACT_TYPES = (
    "AllergyIntolerance",
    "Condition",
    "MedicationStatement",
    "Observation",
    "Immunization",
    "DiagnosticReport",
    "DeviceUseStatement",
)
_FACT_CODE = SearchParam(
    "code", "token", "Code du fait (LOINC, SNOMED CT, CIM-10, ATC…), avec ou sans système."
)
_FACT_DATE = SearchParam("date", "date", "Date du fait (prélèvement, administration, début…).")
_FACT_UPDATED = SearchParam(
    "_lastUpdated", "date", "Date d'enregistrement du fait (meta.lastUpdated : sa publication)."
)
for _type in FACT_TYPES:
    SEARCH_PARAMETERS[_type] = (_PATIENT, _PATIENT_INS, _FACT_CODE, _FACT_DATE, _FACT_UPDATED) + (
        (SearchParam("category", "token", "laboratory ou vital-signs."),) if _type == "Observation" else ()
    )


def _names(resource_type: str) -> dict[str, str]:
    """Every accepted name (aliases included) → the parameter's own name."""
    return {n: p.name for p in SEARCH_PARAMETERS[resource_type] for n in (p.name, *p.aliases)}


def canonical(resource_type: str, key: str) -> str:
    """The registered name ``key`` stands for; a 400 for a name the server does not support."""
    name = _names(resource_type).get(key)
    if name is None:
        raise DmpError("INVALID_SEARCH", f"paramètre « {key[:80]} » non pris en charge pour {resource_type}")
    return name


def check(resource_type: str, params: Params) -> list[tuple[str, str]]:
    """The search parameters of ``params`` under their registered names (result parameters apart);
    refuses any name not registered for ``resource_type``."""
    return [(canonical(resource_type, k), v) for k, v in params if k not in RESULT_PARAMETERS]


def integer(raw: str, name: str, lo: int, hi: int) -> int:
    """A search result parameter's integer (``_count``, ``_offset``): out of [lo, hi] is a 400."""
    try:
        value = int(raw)
    except ValueError as exc:
        raise DmpError("INVALID_SEARCH", f"{name}={raw[:40]} n'est pas un entier") from exc
    if not lo <= value <= hi:
        raise DmpError("INVALID_SEARCH", f"{name} doit être compris entre {lo} et {hi}")
    return value


DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")


def date_range(raw: str, name: str, allowed: Sequence[str] = DATE_PREFIXES) -> tuple[str, datetime, datetime]:
    """A date search value read once for every resource: its prefix (``eq`` when none) and the
    [lo, hi) instants its precision covers. A bad date, or a prefix outside ``allowed``, is a 400."""
    prefix, value = (raw[:2], raw[2:]) if raw[:2] in DATE_PREFIXES else ("eq", raw)
    if prefix not in allowed:
        raise DmpError("INVALID_SEARCH", f"{name} : préfixe « {prefix} » non pris en charge", expression=name)
    try:
        lo, hi = parse_datetime_range(value, name, clamp=True)
    except DmpError as err:  # a search parameter: 400, not the body's 422
        raise DmpError("INVALID_SEARCH", err.detail, expression=name) from err
    return prefix, lo, hi
