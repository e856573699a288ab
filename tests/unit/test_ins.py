"""INS (NIR / NIA) parsing and key computation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from dmp.domain.ins import (
    OID_NIA,
    OID_NIR,
    OID_NIR_DEMO,
    OID_NIR_TEST,
    SYSTEM_NIA,
    SYSTEM_NIR,
    SYSTEM_NIR_TEST,
    Ins,
    compute_key,
    is_valid_ins,
    parse_ins,
)
from dmp.errors import DmpError

# ANS test patients (technical reference §4.1).
PAT_TROIS = "279035121518989"  # PAT-TROIS Dominique, F, 1979-03-28, born in Dompremy (51215)
FORM_TROIS = "124018852493334"


def refused(code: str, system: str, value: str, *, allow_test: bool = False) -> DmpError:
    with pytest.raises(DmpError) as info:
        parse_ins(system, value, allow_test=allow_test)
    assert info.value.code == code
    return info.value


def with_key(first13: str) -> str:
    return first13 + compute_key(first13)


def test_oids_and_systems() -> None:
    assert OID_NIR == "1.2.250.1.213.1.4.8"
    assert OID_NIA == "1.2.250.1.213.1.4.9"
    assert OID_NIR_TEST == "1.2.250.1.213.1.4.10"
    assert OID_NIR_DEMO == "1.2.250.1.213.1.4.11"
    assert SYSTEM_NIR == "urn:oid:1.2.250.1.213.1.4.8"
    assert SYSTEM_NIA == "urn:oid:1.2.250.1.213.1.4.9"


@pytest.mark.parametrize(
    ("first13", "key"),
    [
        # CNAM nir-validation NirKeySpec vectors
        ("2550814168025", "38"),
        ("2940375120005", "91"),
        ("1531245007231", "60"),
        ("2840 52A 321 025", "52"),
        ("284052A321025", "52"),
        ("284052a321025", "52"),
        ("2B34567890123", "78"),
        # ANS test patients
        ("2790351215189", "89"),
        ("1240188524933", "34"),
        # PDSm4DMP fake INS
        ("1234567890123", "11"),
    ],
)
def test_compute_key_vectors(first13: str, key: str) -> None:
    assert compute_key(first13) == key


def test_compute_key_is_two_digits() -> None:
    # 97 - (n mod 97) is between 1 and 97: always printed on two digits
    first13 = next(f"1{n:012d}" for n in range(1000) if compute_key(f"1{n:012d}") < "10")
    assert len(compute_key(first13)) == 2
    assert compute_key(first13).startswith("0")


@pytest.mark.parametrize("bad", ["123456789012", "12345678901234", "12345678901X3", ""])
def test_compute_key_refuses_bad_input(bad: str) -> None:
    with pytest.raises(DmpError) as info:
        compute_key(bad)
    assert info.value.code == "INVALID_INS"


@pytest.mark.parametrize("value", [PAT_TROIS, FORM_TROIS])
def test_ans_test_patients_are_valid(value: str) -> None:
    ins = parse_ins(SYSTEM_NIR, value, allow_test=False)
    assert ins == Ins(value, OID_NIR)
    assert ins.system == SYSTEM_NIR
    assert not ins.is_test
    assert ins.type_code == "INS-NIR"


def test_pdsm_example_ins_has_a_wrong_key() -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, "123456789012345")
    assert "clé de contrôle 11 attendue, 45 reçue" in err.detail
    assert err.message.startswith("INS invalide : ")


def test_wrong_key_message_names_expected_and_received() -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, "279035121518912")
    assert err.detail == "clé de contrôle 89 attendue, 12 reçue"


def test_system_without_urn_prefix_and_spaces_in_value() -> None:
    ins = parse_ins("1.2.250.1.213.1.4.8", " 2 79 03 51 215 189 89 ", allow_test=False)
    assert ins.value == PAT_TROIS
    assert ins.oid == OID_NIR


def test_properties_of_a_nir() -> None:
    ins = parse_ins(SYSTEM_NIR, PAT_TROIS, allow_test=False)
    assert ins.sex_digit == "2"
    assert ins.birth_year_2 == "79"
    assert ins.birth_month == "03"
    assert ins.birth_month_known
    assert ins.department == "51"
    assert ins.commune == "215"
    assert ins.birth_place_code == "51215"
    assert not ins.born_abroad
    assert ins.country_code is None
    assert ins.order_number == "189"
    assert ins.key == "89"
    assert ins.formatted == "2 79 03 51 215 189 89"
    assert str(ins) == PAT_TROIS
    assert not ins.is_nia


# --- Corsica -------------------------------------------------------------------------------


def test_corsica_2a_cnam_vector() -> None:
    ins = parse_ins(SYSTEM_NIR, "2840 52A 321 025 52", allow_test=False)
    assert ins.value == "284052A32102552"
    assert ins.department == "2A"
    assert ins.birth_place_code == "2A321"
    # python-stdnum agrees
    assert stdnum_nir.is_valid(ins.value)


def test_corsica_2b_and_lowercase() -> None:
    value = with_key("1750" + "22B" + "033" + "123")
    ins = parse_ins(SYSTEM_NIR, value.lower(), allow_test=False)
    assert ins.value == value
    assert ins.department == "2B"


def test_corsica_key_uses_19_and_18() -> None:
    # 2A → 19, 2B → 18 before the mod-97 computation
    assert compute_key("284052A321025") == f"{97 - 2840519321025 % 97:02d}"
    assert compute_key("175022B033123") == f"{97 - 1750218033123 % 97:02d}"


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ("2B34567890123" + "78", "2"),  # the CNAM key-only vector is not a valid INS
        ("28405232A1025" + compute_key("28405232A1025"), "9"),
        ("28405A2321025" + "52", "6"),
        ("284052A3210255A", "15"),
        ("2840B2A321025" + "52", "5"),
    ],
)
def test_letters_outside_department_are_refused(value: str, position: str) -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, value)
    assert f"lettre en position {position} " in err.detail
    assert "positions 6-7" in err.detail
    assert "Corse" in err.detail


# --- shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "count"), [("27903512151898", 14), ("2790351215189890", 16),
                                             ("2790351215189", 13)])
def test_wrong_length(value: str, count: int) -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, value)
    assert "15 caractères" in err.detail
    assert f"{count} reçus" in err.detail


@pytest.mark.parametrize(("value", "char"), [("27903.121518989", "."), ("2790351215189C9", "C"),
                                            ("27903-121518989", "-")])
def test_bad_characters(value: str, char: str) -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, value)
    assert f"« {char} »" in err.detail
    assert "caractère(s) non autorisé(s)" in err.detail


def test_empty_value() -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, "   ")
    assert "vide" in err.detail


# --- sex digit -----------------------------------------------------------------------------


@pytest.mark.parametrize("sex", ["1", "2", "3", "4"])
def test_nir_sex_digits_accepted(sex: str) -> None:
    assert parse_ins(SYSTEM_NIR, with_key(sex + "790351215189"), allow_test=False)


@pytest.mark.parametrize("sex", ["0", "5", "6", "9"])
def test_nir_sex_digit_refused(sex: str) -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, with_key(sex + "790351215189"))
    assert f"premier chiffre (sexe) « {sex} » invalide pour un NIR" in err.detail


def test_nir_starting_with_7_points_to_nia() -> None:
    value = with_key("7790351215189")
    err = refused("INVALID_INS", SYSTEM_NIR, value)
    assert "est un NIA" in err.detail
    assert SYSTEM_NIA in err.detail
    ins = parse_ins(SYSTEM_NIA, value, allow_test=False)
    assert ins.is_nia
    assert ins.type_code == "INS-NIA"


@pytest.mark.parametrize("sex", ["1", "2", "7", "8"])
def test_nia_accepted(sex: str) -> None:
    ins = parse_ins("1.2.250.1.213.1.4.9", with_key(sex + "850199352042"), allow_test=False)
    assert ins.oid == OID_NIA


def test_nia_bad_sex_digit() -> None:
    err = refused("INVALID_INS", SYSTEM_NIA, with_key("9850199352042"))
    assert "invalide pour un NIA" in err.detail


# --- month ---------------------------------------------------------------------------------


@pytest.mark.parametrize("month", ["01", "12", "13", "20", "30", "42", "45", "50", "63", "99"])
def test_months_and_pseudo_months_accepted(month: str) -> None:
    ins = parse_ins(SYSTEM_NIR, with_key("279" + month + "51215189"), allow_test=False)
    assert ins.birth_month == month
    assert ins.birth_month_known == (month <= "12")


@pytest.mark.parametrize("month", ["00"])
def test_bad_month_refused(month: str) -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, with_key("279" + month + "51215189"))
    assert f"mois de naissance « {month} » invalide" in err.detail


def test_all_problems_are_listed() -> None:
    err = refused("INVALID_INS", SYSTEM_NIR, "5790051215189" + "00")
    assert "sexe" in err.detail
    assert "mois de naissance « 00 »" in err.detail
    assert "clé de contrôle" in err.detail
    assert err.detail.count(" ; ") == 2


# --- systems -------------------------------------------------------------------------------


@pytest.mark.parametrize("oid", [OID_NIR_TEST, OID_NIR_DEMO])
def test_test_oids_refused_by_default(oid: str) -> None:
    err = refused("INS_SYSTEM_NOT_ALLOWED", "urn:oid:" + oid, PAT_TROIS)
    assert "patient fictif de test" in err.detail
    assert "urn:oid:" + oid in err.detail


@pytest.mark.parametrize("oid", [OID_NIR_TEST, OID_NIR_DEMO])
def test_test_oids_accepted_on_test_instance(oid: str) -> None:
    ins = parse_ins(oid, PAT_TROIS, allow_test=True)
    assert ins.is_test
    assert ins.oid == oid
    assert ins.system == "urn:oid:" + oid


def test_test_oid_still_checks_the_key() -> None:
    err = refused("INVALID_INS", SYSTEM_NIR_TEST, "279035121518988", allow_test=True)
    assert "clé de contrôle 89 attendue, 88 reçue" in err.detail


@pytest.mark.parametrize(
    "system",
    ["urn:oid:1.2.3.4", "http://example.org/ins", "", "urn:oid:1.2.250.1.71.4.2.1"],
)
def test_other_systems_refused(system: str) -> None:
    err = refused("INS_SYSTEM_NOT_ALLOWED", system, PAT_TROIS, allow_test=True)
    assert "systèmes acceptés" in err.detail
    assert SYSTEM_NIR in err.detail


def test_ins_c_is_obsolete() -> None:
    err = refused("INS_SYSTEM_NOT_ALLOWED", "urn:oid:1.2.250.1.213.1.4.2", PAT_TROIS)
    assert "obsolète" in err.detail


def test_system_checked_before_value() -> None:
    refused("INS_SYSTEM_NOT_ALLOWED", "urn:oid:1.2.3", "garbage")


def test_is_valid_ins() -> None:
    assert is_valid_ins(SYSTEM_NIR, PAT_TROIS, allow_test=False)
    assert not is_valid_ins(SYSTEM_NIR, "123456789012345", allow_test=False)
    assert not is_valid_ins(SYSTEM_NIR_TEST, PAT_TROIS, allow_test=False)


# --- properties ----------------------------------------------------------------------------

bodies = st.builds(
    lambda sex, year, month, dept, commune, rank: f"{sex}{year:02d}{month}{dept}{commune:03d}"
    f"{rank:03d}",
    st.sampled_from("1234"),
    st.integers(0, 99),
    st.sampled_from([f"{m:02d}" for m in (*range(1, 13), *range(20, 43), *range(50, 100))]),
    st.one_of(st.integers(0, 99).map(lambda d: f"{d:02d}"), st.sampled_from(["2A", "2B"])),
    st.integers(0, 999),
    st.integers(0, 999),
)


@given(bodies)
def test_computed_key_is_accepted(first13: str) -> None:
    key = compute_key(first13)
    assert 1 <= int(key) <= 97
    ins = parse_ins(SYSTEM_NIR, first13 + key, allow_test=False)
    assert ins.value == first13 + key
    # independent implementation
    assert stdnum_nir.calc_check_digits(first13) == key


@given(bodies, st.integers(0, 99))
def test_any_other_key_is_refused(first13: str, other: int) -> None:
    key = compute_key(first13)
    received = f"{other:02d}"
    if received == key:
        return
    with pytest.raises(DmpError) as info:
        parse_ins(SYSTEM_NIR, first13 + received, allow_test=False)
    assert info.value.code == "INVALID_INS"
    assert f"clé de contrôle {key} attendue, {received} reçue" in info.value.detail


@given(bodies, st.integers(0, 12), st.integers(0, 9))
def test_single_digit_typo_is_detected(first13: str, position: int, delta: int) -> None:
    """The mod-97 key catches every single-digit substitution."""
    value = first13 + compute_key(first13)
    if not value[position].isdigit() or delta == 0 or position in (5, 6):
        return
    typo = value[:position] + str((int(value[position]) + delta) % 10) + value[position + 1:]
    assert not is_valid_ins(SYSTEM_NIR, typo, allow_test=False)
