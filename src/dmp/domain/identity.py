"""Strict identity traits (RNIV) and identity status, and their coherence with the INS.

The strict traits are those the INS service (INSi) returns and that must accompany the
INS: birth family name, birth given names (list, the first one being the "premier
prénom"), sex, date of birth and INSEE code of the place of birth (technical
reference §4.1, FR Core INS patient profile).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from dmp.domain.ins import Ins
from dmp.errors import DmpError


class Sex(StrEnum):
    """Administrative gender, FHIR codes (``Patient.gender`` restricted by FR Core INS)."""

    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        return _SEX_LABELS[self]


_SEX_LABELS = {Sex.MALE: "masculin", Sex.FEMALE: "féminin", Sex.UNKNOWN: "inconnu"}


class IdentityStatus(StrEnum):
    """RNIV identity status (FR Core ``fr-core-cs-identity-status``)."""

    PROV = "PROV"  # provisional: not from INSi, not checked against an ID document
    VALI = "VALI"  # validated: checked against a high-trust ID document, not from INSi
    RECUP = "RECUP"  # retrieved from INSi, not yet checked against an ID document
    QUAL = "QUAL"  # qualified: retrieved from INSi and checked

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def exposes_ins(self) -> bool:
        """Only a qualified identity may carry or transmit the INS (RNIV)."""
        return self is IdentityStatus.QUAL


_STATUS_LABELS = {
    IdentityStatus.PROV: "Identité provisoire",
    IdentityStatus.VALI: "Identité validée",
    IdentityStatus.RECUP: "Identité récupérée",
    IdentityStatus.QUAL: "Identité qualifiée",
}

# Commune code (2A/2B for Corsica) or 99 + INSEE country code.
_INSEE_PLACE = re.compile(r"(?:\d{5}|2[AB]\d{3})")
# Separators that RNIV comparisons treat as equivalent: spaces, hyphens, apostrophes.
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—'’‘`´ʼ]+")
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"})


def normalize_trait(text: str) -> str:
    """Comparison form of a name: upper case, no accents or ligatures, and runs of spaces,
    hyphens and apostrophes collapsed into one space (``Jean-Noël`` == ``JEAN NOEL``)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", stripped.upper()).strip()


@dataclass(frozen=True, slots=True)
class StrictTraits:
    birth_family_name: str
    birth_given_names: tuple[str, ...]  # in civil-status order; [0] is the premier prénom
    sex: Sex
    birth_date: datetime.date
    birth_place_insee: str  # INSEE commune code (2A/2B kept) or 99 + country code

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.birth_family_name.strip():
            problems.append("nom de naissance absent")
        given = tuple(self.birth_given_names)
        object.__setattr__(self, "birth_given_names", given)
        if not given or any(not name.strip() for name in given):
            problems.append("prénom(s) de naissance absent(s)")
        try:
            object.__setattr__(self, "sex", Sex(self.sex))
        except ValueError:
            problems.append(f"sexe « {self.sex} » invalide (male, female ou unknown)")
        place = self.birth_place_insee.strip().upper()
        object.__setattr__(self, "birth_place_insee", place)
        if not _INSEE_PLACE.fullmatch(place):
            problems.append(
                f"code INSEE du lieu de naissance « {place} » invalide (5 caractères : code "
                "commune, 2A ou 2B pour la Corse, ou 99 suivi du code pays si né à l'étranger)"
            )
        if problems:
            raise DmpError("INVALID_VALUE", "traits stricts : " + " ; ".join(problems))

    @property
    def first_given_name(self) -> str:
        return self.birth_given_names[0]

    @property
    def born_abroad(self) -> bool:
        return self.birth_place_insee.startswith("99")

    @property
    def normalized_family_name(self) -> str:
        return normalize_trait(self.birth_family_name)

    @property
    def key(self) -> str:
        """All strict traits, normalised, as one string: equal keys = the same identity."""
        return "|".join((self.normalized_family_name, self.normalized_given_names, self.sex.value,
                         self.birth_date.isoformat(), self.birth_place_insee))

    @property
    def normalized_given_names(self) -> str:
        """The list of birth given names as one comparison string."""
        return normalize_trait(" ".join(self.birth_given_names))

    @property
    def normalized_first_given_name(self) -> str:
        return normalize_trait(self.first_given_name)


_NIR_SEX = {"1": Sex.MALE, "2": Sex.FEMALE}


def _same_place(nir_place: str, insee: str) -> bool:
    if nir_place == insee:
        return True
    # Born in Corsica before 1976: the NIR keeps department 20, the commune is now 2A/2B.
    departments = {nir_place[:2], insee[:2]}
    return departments in ({"20", "2A"}, {"20", "2B"}) and nir_place[2:] == insee[2:]


def ins_contradictions(ins: Ins, traits: StrictTraits) -> list[str]:
    """French description of each strict trait the NIR contradicts (empty if coherent).

    A NIA is a temporary number whose digits are not reliable: it is not checked.
    """
    if ins.is_nia:
        return []
    found: list[str] = []
    nir_sex = _NIR_SEX.get(ins.sex_digit)
    if nir_sex is not None and traits.sex is not Sex.UNKNOWN and traits.sex is not nir_sex:
        found.append(
            f"sexe : l'INS indique {nir_sex.label} (premier chiffre {ins.sex_digit}), "
            f"le sexe déclaré est {traits.sex.label}"
        )
    year = f"{traits.birth_date.year % 100:02d}"
    if ins.birth_year_2 != year:
        found.append(
            f"année de naissance : l'INS indique …{ins.birth_year_2}, "
            f"la date de naissance déclarée est {traits.birth_date.isoformat()}"
        )
    month = f"{traits.birth_date.month:02d}"
    if ins.birth_month_known and ins.birth_month != month:
        found.append(
            f"mois de naissance : l'INS indique {ins.birth_month}, "
            f"la date de naissance déclarée est {traits.birth_date.isoformat()}"
        )
    if ins.born_abroad:
        if not traits.born_abroad:
            found.append(
                f"lieu de naissance : l'INS indique une naissance à l'étranger "
                f"(pays {ins.country_code}), le code INSEE déclaré est {traits.birth_place_insee}"
            )
        elif traits.birth_place_insee[2:] != ins.country_code:
            found.append(
                f"pays de naissance : l'INS indique le code pays {ins.country_code}, "
                f"le code déclaré est {traits.birth_place_insee}"
            )
    elif not _same_place(ins.birth_place_code, traits.birth_place_insee):
        found.append(
            f"lieu de naissance : l'INS indique le code {ins.birth_place_code}, "
            f"le code INSEE déclaré est {traits.birth_place_insee}"
        )
    return found


def check_ins_against_traits(ins: Ins, traits: StrictTraits) -> None:
    """Refuse (IDENTITY_MISMATCH) an INS whose digits contradict the strict traits.

    Checked for a NIR (test OIDs included): sex digit 1/2, two-digit year, month when the
    NIR month is 01-12, place of birth (positions 6-10, or the country code when born
    abroad). Sex digits 3/4 and pseudo-months are not checked; a NIA is not checked.
    """
    found = ins_contradictions(ins, traits)
    if found:
        raise DmpError("IDENTITY_MISMATCH", " ; ".join(found))


def traits_conflict(a: StrictTraits, b: StrictTraits) -> list[str]:
    """French description of each strict trait that differs between a (known) and b (received),
    after normalisation. Empty when both designate the same identity."""
    found: list[str] = []
    if a.normalized_family_name != b.normalized_family_name:
        found.append(
            f"nom de naissance : « {a.normalized_family_name} » connu, « {b.normalized_family_name} » reçu"
        )
    if a.normalized_first_given_name != b.normalized_first_given_name:
        found.append(
            f"premier prénom de naissance : « {a.normalized_first_given_name} » connu, "
            f"« {b.normalized_first_given_name} » reçu"
        )
    elif a.normalized_given_names != b.normalized_given_names:
        found.append(
            f"liste des prénoms de naissance : « {a.normalized_given_names} » connue, "
            f"« {b.normalized_given_names} » reçue"
        )
    if a.sex is not b.sex:
        found.append(f"sexe : {a.sex.label} connu, {b.sex.label} reçu")
    if a.birth_date != b.birth_date:
        found.append(
            f"date de naissance : {a.birth_date.isoformat()} connue, {b.birth_date.isoformat()} reçue"
        )
    if a.birth_place_insee != b.birth_place_insee:
        found.append(
            f"lieu de naissance (code INSEE) : {a.birth_place_insee} connu, {b.birth_place_insee} reçu"
        )
    return found
