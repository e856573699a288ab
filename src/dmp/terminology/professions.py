"""Savoir-faire and XDS ``authorSpecialty`` codes of professionals, checked against JDV_J01.

The identifiers and the profession list are pure domain (``dmp.domain.professional``); what needs
the shipped value sets is here, one layer up.
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

from dmp.domain.professional import OID_TRE_A02, PROFESSIONS, validate_profession
from dmp.errors import DmpError
from dmp.terminology import valueset


@cache
def _specialties() -> MappingProxyType[str, frozenset[str]]:
    """savoir-faire code → professions it is combined with in JDV_J01."""
    out: dict[str, set[str]] = {}
    for concept in valueset("J01"):
        if concept.oid != OID_TRE_A02 or "/" not in concept.code:
            continue
        prof, specialty = concept.code.split("/", 1)
        out.setdefault(specialty, set()).add(prof.removeprefix("G15_"))
    return MappingProxyType({k: frozenset(v) for k, v in out.items()})


def validate_specialty(code: str, profession: str | None = None) -> str:
    """A savoir-faire code (``SM26``) known to JDV_J01, for ``profession`` when given."""
    value = code.strip().upper()
    professions = _specialties().get(value)
    if professions is None:
        raise DmpError(
            "UNKNOWN_CODE",
            f"savoir-faire « {code} » absent du jeu de valeurs JDV_J01-XdsAuthorSpecialty-CISIS",
        )
    if profession is not None and validate_profession(profession) not in professions:
        raise DmpError(
            "UNKNOWN_CODE",
            f"savoir-faire « {value} » non prévu pour la profession {profession} "
            f"({PROFESSIONS[profession.strip()]}) dans JDV_J01-XdsAuthorSpecialty-CISIS",
        )
    return value


def author_specialty_code(profession: str, specialty: str | None = None) -> str:
    """XDS authorSpecialty code (TRE_A02): ``G15_10`` or ``G15_10/SM26``, checked against J01."""
    prof = validate_profession(profession)
    if specialty is None or not specialty.strip():
        code = f"G15_{prof}"
    else:
        code = f"G15_{prof}/{validate_specialty(specialty, prof)}"
    if not valueset("J01").contains(OID_TRE_A02, code):
        raise DmpError(
            "UNKNOWN_CODE",
            f"authorSpecialty {code} absent du jeu de valeurs JDV_J01-XdsAuthorSpecialty-CISIS",
        )
    return code


def parse_author_specialty(code: str) -> tuple[str, str | None]:
    """(profession, savoir-faire or None) of a TRE_A02 code such as ``G15_10/SM26``."""
    value = code.strip()
    if not valueset("J01").contains(OID_TRE_A02, value) or not value.startswith("G15_"):
        raise DmpError(
            "UNKNOWN_CODE",
            f"authorSpecialty {code} absent du jeu de valeurs JDV_J01-XdsAuthorSpecialty-CISIS "
            "(forme G15_<profession>[/<savoir-faire>] attendue)",
        )
    prof, _, specialty = value.removeprefix("G15_").partition("/")
    return prof, specialty or None
