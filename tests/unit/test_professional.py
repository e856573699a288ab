"""RPPS / IDNPS identifiers, professions and author specialties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmp.domain.professional import (
    OID_IDNPS,
    OID_IDNST,
    PROFESSIONS,
    SYSTEM_IDNPS,
    SYSTEM_TRE_G15,
    idnps_from_rpps,
    is_valid_rpps,
    profession_label,
    rpps_from_idnps,
    validate_profession,
    validate_rpps,
)
from dmp.errors import DmpError
from dmp.terminology import valueset
from dmp.terminology.professions import author_specialty_code, parse_author_specialty, validate_specialty


def refused(code: str, fn: object, *args: str) -> DmpError:
    assert callable(fn)
    with pytest.raises(DmpError) as info:
        fn(*args)
    assert info.value.code == code
    return info.value


def test_oids() -> None:
    assert OID_IDNPS == "1.2.250.1.71.4.2.1"
    assert OID_IDNST == "1.2.250.1.71.4.2.2"
    assert SYSTEM_IDNPS == "urn:oid:1.2.250.1.71.4.2.1"


# RPPS of IDNPS found in the ANS CDA / PDSm examples that pass the Luhn check, and of the
# ANS test-card IDNPS 899700218896.
@pytest.mark.parametrize("rpps", ["01234567897", "01234560801", "07655473259", "99700218896"])
def test_valid_rpps(rpps: str) -> None:
    assert validate_rpps(rpps) == rpps
    assert is_valid_rpps(rpps)


def test_rpps_spaces_ignored() -> None:
    assert validate_rpps(" 012 345 678 97 ") == "01234567897"


def test_rpps_bad_luhn_key() -> None:
    # 801234567890 appears in a PDSm4DMP narrative example; its RPPS has a wrong key.
    err = refused("INVALID_VALUE", validate_rpps, "01234567890")
    assert "clé de Luhn 7 attendue, 0 reçue" in err.detail
    assert not is_valid_rpps("01234567890")


@pytest.mark.parametrize(("value", "count"), [("0123456789", 10), ("012345678970", 12)])
def test_rpps_bad_length(value: str, count: int) -> None:
    err = refused("INVALID_VALUE", validate_rpps, value)
    assert f"11 chiffres attendus, {count} reçus" in err.detail


@pytest.mark.parametrize("value", ["0123456789A", "", "０１２３４５６７８９７"])
def test_rpps_non_digits(value: str) -> None:
    err = refused("INVALID_VALUE", validate_rpps, value)
    assert "chiffres uniquement" in err.detail


@given(st.text(alphabet="0123456789", min_size=10, max_size=10), st.integers(1, 9))
def test_luhn_detects_any_single_digit_change(body: str, delta: int) -> None:
    valid = next(body + d for d in "0123456789" if is_valid_rpps(body + d))
    assert validate_rpps(valid) == valid
    wrong = valid[:10] + str((int(valid[10]) + delta) % 10)
    assert not is_valid_rpps(wrong)


def test_idnps_round_trip() -> None:
    assert idnps_from_rpps("01234567897") == "801234567897"
    assert rpps_from_idnps("801234567897") == "01234567897"
    assert rpps_from_idnps("899700218896") == "99700218896"


@pytest.mark.parametrize("idnps", ["001234567897", "01234567897", "8012345678970", ""])
def test_rpps_from_idnps_refuses_other_prefixes(idnps: str) -> None:
    err = refused("INVALID_VALUE", rpps_from_idnps, idnps)
    assert "8 suivi des 11 chiffres du RPPS" in err.detail


def test_idnps_from_bad_rpps() -> None:
    refused("INVALID_VALUE", idnps_from_rpps, "01234567890")


# --- professions ---------------------------------------------------------------------------


def test_profession_table_matches_j65() -> None:
    j65 = {c.code: c.display for c in valueset("J65") if c.system == SYSTEM_TRE_G15}
    assert dict(PROFESSIONS) == j65


@pytest.mark.parametrize(
    ("code", "label"),
    [("10", "Médecin"), ("21", "Pharmacien"), ("40", "Chirurgien-Dentiste"), ("50", "Sage-Femme"),
     ("60", "Infirmier"), ("70", "Masseur-Kinésithérapeute"), ("80", "Pédicure-Podologue"),
     ("91", "Orthophoniste"), ("92", "Orthoptiste")],
)
def test_profession_labels(code: str, label: str) -> None:
    assert profession_label(code) == label
    assert validate_profession(code) == code


@pytest.mark.parametrize("code", ["11", "99", "", "G15_10", "41"])
def test_unknown_profession(code: str) -> None:
    err = refused("UNKNOWN_CODE", validate_profession, code)
    assert "absente de la nomenclature TRE_G15-ProfessionSante" in err.detail
    assert profession_label(code) is None


def test_specialties() -> None:
    assert validate_specialty("SM26") == "SM26"
    assert validate_specialty("sm54", "10") == "SM54"
    assert validate_specialty("SCD01", "40") == "SCD01"


def test_unknown_specialty() -> None:
    err = refused("UNKNOWN_CODE", validate_specialty, "SM99")
    assert "savoir-faire « SM99 » absent du jeu de valeurs JDV_J01" in err.detail


def test_specialty_of_another_profession() -> None:
    err = refused("UNKNOWN_CODE", validate_specialty, "SM26", "21")
    assert "non prévu pour la profession 21 (Pharmacien)" in err.detail


def test_author_specialty_code() -> None:
    assert author_specialty_code("10", "SM26") == "G15_10/SM26"
    assert author_specialty_code("10") == "G15_10"
    assert author_specialty_code("40", "SCD01") == "G15_40/SCD01"
    assert valueset("J01").contains("1.2.250.1.213.1.1.4.5", "G15_10/SM26")


def test_author_specialty_code_refusals() -> None:
    refused("UNKNOWN_CODE", author_specialty_code, "99", "SM26")
    refused("UNKNOWN_CODE", author_specialty_code, "21", "SM26")
    err = refused("UNKNOWN_CODE", author_specialty_code, "10", "SCD01")
    assert "non prévu pour la profession 10 (Médecin)" in err.detail


def test_every_profession_has_an_author_specialty() -> None:
    for code in PROFESSIONS:
        assert author_specialty_code(code) == f"G15_{code}"


def test_parse_author_specialty() -> None:
    assert parse_author_specialty("G15_10/SM26") == ("10", "SM26")
    assert parse_author_specialty("G15_60") == ("60", None)
    err = refused("UNKNOWN_CODE", parse_author_specialty, "EXP_PATIENT")
    assert "G15_<profession>" in err.detail
