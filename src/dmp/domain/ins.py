"""INS (Identifiant National de Santé): the patient's NIR or NIA and its assigning authority.

Shape of the 15-character matricule (technical reference §4.1, CNAM ``nir-validation``)::

    S  AA MM DD CCC RRR KK
    1  2  4  6  8   11  14   (1-based positions)

S sex (1 male, 2 female; 3/4 and, for a NIA, 7/8 also occur), AA year of birth, MM month
(01-12, or a pseudo-month 20-42 / 50-99 when the month is unknown), DD department of birth
(``2A``/``2B`` for Corsica, ``99`` abroad), CCC commune (or country code when abroad),
RRR order number, KK key = 97 - (first 13 digits mod 97) with 2A→19 and 2B→18.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dmp.errors import DmpError

OID_NIR = "1.2.250.1.213.1.4.8"
OID_NIA = "1.2.250.1.213.1.4.9"
OID_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_NIR_DEMO = "1.2.250.1.213.1.4.11"
OID_INS_C = "1.2.250.1.213.1.4.2"  # legacy calculated INS, refused

SYSTEM_NIR = "urn:oid:" + OID_NIR
SYSTEM_NIA = "urn:oid:" + OID_NIA
SYSTEM_NIR_TEST = "urn:oid:" + OID_NIR_TEST
SYSTEM_NIR_DEMO = "urn:oid:" + OID_NIR_DEMO

TEST_OIDS = frozenset({OID_NIR_TEST, OID_NIR_DEMO})
PRODUCTION_OIDS = frozenset({OID_NIR, OID_NIA})

# Identifier type codes (fr-core-cs-v2-0203) and French names of the systems.
TYPE_CODES = {
    OID_NIR: "INS-NIR",
    OID_NIA: "INS-NIA",
    OID_NIR_TEST: "INS-NIR-TEST",
    OID_NIR_DEMO: "INS-NIR-DEMO",
}

NIR_SEX_DIGITS = frozenset("1234")
NIA_SEX_DIGITS = frozenset("123478")

_ALLOWED_CHARS = re.compile(r"[0-9AB]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Ins:
    """A validated INS. Build it with :func:`parse_ins`, never directly from user input."""

    value: str  # 15 characters, uppercase, 2A/2B kept
    oid: str

    def __str__(self) -> str:
        return self.value

    @property
    def system(self) -> str:
        return "urn:oid:" + self.oid

    @property
    def type_code(self) -> str:
        return TYPE_CODES.get(self.oid, "INS")

    @property
    def is_test(self) -> bool:
        """A fictitious test/demo patient (OID …4.10 or …4.11)."""
        return self.oid in TEST_OIDS

    @property
    def is_nia(self) -> bool:
        """A temporary number (numéro d'identification d'attente)."""
        return self.oid == OID_NIA

    @property
    def sex_digit(self) -> str:
        return self.value[0]

    @property
    def birth_year_2(self) -> str:
        return self.value[1:3]

    @property
    def birth_month(self) -> str:
        return self.value[3:5]

    @property
    def birth_month_known(self) -> bool:
        """False for a pseudo-month (above 12): the month of birth is unknown."""
        return 1 <= int(self.birth_month) <= 12

    @property
    def department(self) -> str:
        """Two-character department of birth (``2A``/``2B`` for Corsica, ``99`` abroad)."""
        return self.value[5:7]

    @property
    def commune(self) -> str:
        """Positions 8-10: commune of birth, or country code when born abroad."""
        return self.value[7:10]

    @property
    def birth_place_code(self) -> str:
        """Positions 6-10: INSEE code of the commune of birth (or 99 + country code)."""
        return self.value[5:10]

    @property
    def born_abroad(self) -> bool:
        return self.department == "99"

    @property
    def country_code(self) -> str | None:
        """INSEE country code (3 digits after 99) when born abroad."""
        return self.commune if self.born_abroad else None

    @property
    def order_number(self) -> str:
        return self.value[10:13]

    @property
    def key(self) -> str:
        return self.value[13:15]

    @property
    def formatted(self) -> str:
        """Human-readable grouping: ``2 79 03 51 215 189 89``."""
        v = self.value
        return " ".join((v[0], v[1:3], v[3:5], v[5:7], v[7:10], v[10:13], v[13:15]))


def _clean(value: str) -> str:
    return _SPACES.sub("", value).upper()


def compute_key(first13: str) -> str:
    """The 2-digit key of a 13-character NIR/NIA (spaces ignored, 2A→19 and 2B→18).

    Follows the CNAM reference implementation, which replaces 2A/2B wherever they occur.
    """
    body = _clean(first13)
    if len(body) != 13:
        raise DmpError(
            "INVALID_INS",
            f"le calcul de la clé porte sur 13 caractères, {len(body)} reçus",
        )
    digits = body.replace("2A", "19").replace("2B", "18")
    if not digits.isascii() or not digits.isdigit():
        raise DmpError(
            "INVALID_INS",
            "seuls des chiffres (et 2A ou 2B pour la Corse) sont admis dans le matricule",
        )
    return f"{97 - int(digits) % 97:02d}"


def _parse_system(system: str, *, allow_test: bool) -> str:
    raw = (system or "").strip()
    oid = raw.removeprefix("urn:oid:")
    if oid in PRODUCTION_OIDS:
        return oid
    if oid in TEST_OIDS:
        if allow_test:
            return oid
        raise DmpError(
            "INS_SYSTEM_NOT_ALLOWED",
            f"{raw} ({TYPE_CODES[oid]}) désigne un patient fictif de test, refusé sur cette instance",
        )
    if oid == OID_INS_C:
        raise DmpError(
            "INS_SYSTEM_NOT_ALLOWED",
            f"{raw} (INS-C, INS calculé) est obsolète ; utilisez le matricule INS "
            f"({SYSTEM_NIR} ou {SYSTEM_NIA})",
        )
    accepted = f"{SYSTEM_NIR} (INS-NIR), {SYSTEM_NIA} (INS-NIA)"
    if allow_test:
        accepted += f", {SYSTEM_NIR_TEST} (INS-NIR-TEST), {SYSTEM_NIR_DEMO} (INS-NIR-DEMO)"
    shown = f"« {raw} »" if raw else "absent"
    raise DmpError(
        "INS_SYSTEM_NOT_ALLOWED",
        f"système {shown} ; systèmes acceptés : {accepted}",
    )


def _check_shape(value: str) -> None:
    """Refusals that make the rest meaningless: characters, length, letter positions."""
    if not value:
        raise DmpError("INVALID_INS", "le matricule INS est vide")
    bad = sorted({ch for ch in value if not _ALLOWED_CHARS.fullmatch(ch)})
    if bad:
        shown = " ".join(f"« {ch} »" for ch in bad)
        raise DmpError(
            "INVALID_INS",
            f"caractère(s) non autorisé(s) {shown} : le matricule ne contient que des "
            "chiffres (et 2A ou 2B pour la Corse)",
        )
    if len(value) != 15:
        raise DmpError(
            "INVALID_INS",
            f"le matricule doit compter 15 caractères (13 + clé de 2 chiffres), {len(value)} reçus",
        )
    misplaced = [i for i, ch in enumerate(value) if ch in "AB" and not (i == 6 and value[5] == "2")]
    if misplaced:
        positions = ", ".join(str(i + 1) for i in misplaced)
        raise DmpError(
            "INVALID_INS",
            f"lettre en position {positions} : les lettres ne sont admises qu'en positions 6-7 "
            "(département de naissance 2A ou 2B, Corse)",
        )


def parse_ins(system: str, value: str, *, allow_test: bool) -> Ins:
    """Validate an INS (system + matricule) and return it normalised.

    ``system`` may be ``urn:oid:<OID>`` or the bare OID. Spaces in ``value`` are ignored and
    letters upper-cased. Refusals: DmpError ``INS_SYSTEM_NOT_ALLOWED`` for a system other
    than INS-NIR / INS-NIA (or the test OIDs when ``allow_test``), ``INVALID_INS`` otherwise,
    with every problem found in the detail.
    """
    oid = _parse_system(system, allow_test=allow_test)
    matricule = _clean(value or "")
    _check_shape(matricule)

    problems: list[str] = []
    sex = matricule[0]
    if oid == OID_NIA:
        if sex not in NIA_SEX_DIGITS:
            problems.append(
                f"premier chiffre (sexe) « {sex} » invalide pour un NIA (1, 2, 3, 4, 7 ou 8 attendu)"
            )
    elif sex not in NIR_SEX_DIGITS:
        hint = f", un numéro commençant par {sex} est un NIA (système {SYSTEM_NIA})" if sex in "78" else ""
        problems.append(f"premier chiffre (sexe) « {sex} » invalide pour un NIR (1, 2, 3 ou 4 attendu{hint})")
    # Months 01-12 are real; larger values are pseudo-months used when the month of
    # birth is unknown. Their exact ranges are not published, so only 00 is refused:
    # the check key is what catches typing errors.
    if matricule[3:5] == "00":
        problems.append("mois de naissance « 00 » invalide (01 à 12, ou pseudo-mois si inconnu)")
    expected = compute_key(matricule[:13])
    received = matricule[13:]
    if expected != received:
        problems.append(f"clé de contrôle {expected} attendue, {received} reçue")
    if problems:
        # The matricule itself is not echoed: error details may end up in logs.
        raise DmpError("INVALID_INS", " ; ".join(problems))
    return Ins(matricule, oid)


def is_valid_ins(system: str, value: str, *, allow_test: bool) -> bool:
    try:
        parse_ins(system, value, allow_test=allow_test)
    except DmpError:
        return False
    return True
