"""Health professionals: RPPS / IDNPS identifiers, profession (TRE_G15) and savoir-faire.

- RPPS: 11 digits, the last one a Luhn check digit (ANS: "11 caractères numériques (le
  dernier étant la clé de Luhn) non significatifs"). ANS test cards follow it
  (IDNPS 899700218896 → RPPS 99700218896); a few fictitious numbers in published
  examples (e.g. 801234567890) do not, and are refused.
- IDNPS (PS_IdNat): prefix + national id, ``8`` + RPPS, under OID 1.2.250.1.71.4.2.1.
- Structures: IDNST (Struct_IdNat) under OID 1.2.250.1.71.4.2.2.
- XDS ``authorSpecialty`` (JDV_J01, TRE_A02-ProfessionSavFaire-CISIS): ``G15_<profession>``
  or ``G15_<profession>/<savoir-faire>``, e.g. ``G15_10/SM26`` (médecin, qualifié en
  médecine générale). Checking those codes needs the shipped value sets, so it lives in
  ``dmp.terminology.professions`` (the domain imports nothing of ours but ``dmp.errors``).
"""

from __future__ import annotations

from types import MappingProxyType

from stdnum import luhn

from dmp.errors import DmpError

OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"
SYSTEM_IDNPS = "urn:oid:" + OID_IDNPS
SYSTEM_IDNST = "urn:oid:" + OID_IDNST
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
IDNPS_PREFIX_RPPS = "8"

OID_TRE_G15 = "1.2.250.1.71.1.2.7"  # TRE_G15-ProfessionSante
OID_TRE_A02 = "1.2.250.1.213.1.1.4.5"  # TRE_A02-ProfessionSavFaire-CISIS (authorSpecialty)
SYSTEM_TRE_G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"

# TRE_G15-ProfessionSante codes of JDV_J65-SubjectRole-DMP (2024-09-27).
PROFESSIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "10": "Médecin",
        "21": "Pharmacien",
        "26": "Audioprothésiste",
        "28": "Opticien-Lunetier",
        "31": "Assistant dentaire",
        "32": "Physicien médical",
        "35": "Aide-soignant",
        "36": "Ambulancier",
        "37": "Auxiliaire de puériculture",
        "38": "Préparateur en pharmacie hospitalière",
        "39": "Préparateur en pharmacie (officine)",
        "40": "Chirurgien-Dentiste",
        "50": "Sage-Femme",
        "60": "Infirmier",
        "69": "Infirmier psychiatrique",
        "70": "Masseur-Kinésithérapeute",
        "80": "Pédicure-Podologue",
        "81": "Orthoprothésiste",
        "82": "Podo-Orthésiste",
        "83": "Orthopédiste-Orthésiste",
        "84": "Oculariste",
        "85": "Epithésiste",
        "86": "Technicien de laboratoire médical",
        "91": "Orthophoniste",
        "92": "Orthoptiste",
        "94": "Ergothérapeute",
        "95": "Diététicien",
        "96": "Psychomotricien",
        "98": "Manipulateur ERM",
    }
)

MEDECIN = "10"
PHARMACIEN = "21"
CHIRURGIEN_DENTISTE = "40"
SAGE_FEMME = "50"
INFIRMIER = "60"


def _digits(value: str) -> str:
    return "".join(value.split())


def is_valid_rpps(rpps: str) -> bool:
    value = _digits(rpps)
    return len(value) == 11 and value.isascii() and value.isdigit() and bool(luhn.is_valid(value))


def validate_rpps(rpps: str) -> str:
    """The RPPS without spaces, or DmpError INVALID_VALUE (11 digits, Luhn key)."""
    value = _digits(rpps)
    if not (value.isascii() and value.isdigit()):
        raise DmpError("INVALID_VALUE", f"numéro RPPS « {rpps} » : chiffres uniquement")
    if len(value) != 11:
        raise DmpError("INVALID_VALUE", f"numéro RPPS « {rpps} » : 11 chiffres attendus, {len(value)} reçus")
    if not luhn.is_valid(value):
        expected = luhn.calc_check_digit(value[:10])
        raise DmpError(
            "INVALID_VALUE",
            f"numéro RPPS « {rpps} » : clé de Luhn {expected} attendue, {value[10]} reçue",
        )
    return value


def idnps_from_rpps(rpps: str) -> str:
    """National PS identifier (IDNPS) of an RPPS: ``8`` + RPPS."""
    return IDNPS_PREFIX_RPPS + validate_rpps(rpps)


def rpps_from_idnps(idnps: str) -> str:
    """The RPPS inside an IDNPS ``8`` + RPPS, or DmpError INVALID_VALUE."""
    value = _digits(idnps)
    if len(value) != 12 or not value.startswith(IDNPS_PREFIX_RPPS):
        raise DmpError(
            "INVALID_VALUE",
            f"identifiant national de professionnel « {idnps} » : 8 suivi des 11 chiffres du RPPS attendu",
        )
    return validate_rpps(value[1:])


def profession_label(code: str) -> str | None:
    return PROFESSIONS.get(code.strip())


def validate_profession(code: str) -> str:
    """The TRE_G15 profession code, or DmpError UNKNOWN_CODE."""
    value = code.strip()
    if value not in PROFESSIONS:
        raise DmpError(
            "UNKNOWN_CODE",
            f"profession « {code} » absente de la nomenclature TRE_G15-ProfessionSante",
        )
    return value
