"""Strict traits, identity status, and coherence of the INS with the traits."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from dmp.domain.identity import (
    IdentityStatus,
    Sex,
    StrictTraits,
    check_ins_against_traits,
    ins_contradictions,
    normalize_trait,
    traits_conflict,
)
from dmp.domain.ins import OID_NIA, OID_NIR, OID_NIR_TEST, Ins, compute_key, parse_ins
from dmp.errors import DmpError

PAT_TROIS = StrictTraits(
    birth_family_name="PAT-TROIS",
    birth_given_names=("Dominique",),
    sex=Sex.FEMALE,
    birth_date=datetime.date(1979, 3, 28),
    birth_place_insee="51215",
)


def nir(first13: str, oid: str = OID_NIR) -> Ins:
    return parse_ins(oid, first13 + compute_key(first13), allow_test=True)


def mismatch(ins: Ins, traits: StrictTraits) -> DmpError:
    with pytest.raises(DmpError) as info:
        check_ins_against_traits(ins, traits)
    assert info.value.code == "IDENTITY_MISMATCH"
    assert info.value.message.startswith("Les traits d'identité ne concordent pas")
    return info.value


# --- enums ---------------------------------------------------------------------------------


def test_sex_uses_fhir_codes() -> None:
    assert [s.value for s in Sex] == ["male", "female", "unknown"]
    assert Sex("female") is Sex.FEMALE
    assert Sex.MALE.label == "masculin"
    assert Sex.FEMALE.label == "féminin"


def test_identity_status() -> None:
    assert [s.value for s in IdentityStatus] == ["PROV", "VALI", "RECUP", "QUAL"]
    assert IdentityStatus.QUAL.label == "Identité qualifiée"
    assert IdentityStatus.PROV.label == "Identité provisoire"
    assert IdentityStatus.VALI.label == "Identité validée"
    assert IdentityStatus.RECUP.label == "Identité récupérée"
    assert [s for s in IdentityStatus if s.exposes_ins] == [IdentityStatus.QUAL]


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Jean-Noël", "JEAN NOEL"),
        ("  jean   noel ", "JEAN NOEL"),
        ("D'Artagnan", "D ARTAGNAN"),
        ("D’ARTAGNAN", "D ARTAGNAN"),
        ("Cœur--de  Lion", "COEUR DE LION"),
        ("Lætitia", "LAETITIA"),
        ("Hélène Çà", "HELENE CA"),
        ("Straße", "STRASSE"),
    ],
)
def test_normalize_trait(raw: str, normalized: str) -> None:
    assert normalize_trait(raw) == normalized


# --- StrictTraits --------------------------------------------------------------------------


def test_strict_traits_properties() -> None:
    t = StrictTraits("de la Tour", ("Marie-Ève", "Léa"), Sex.FEMALE, datetime.date(1990, 1, 2),
                     "2a004")
    assert t.birth_place_insee == "2A004"
    assert t.first_given_name == "Marie-Ève"
    assert t.normalized_first_given_name == "MARIE EVE"
    assert t.normalized_given_names == "MARIE EVE LEA"
    assert t.normalized_family_name == "DE LA TOUR"
    assert not t.born_abroad


def test_given_names_list_becomes_a_tuple() -> None:
    t = StrictTraits("X", ["A", "B"], Sex.MALE, datetime.date(2000, 1, 1), "99352")  # type: ignore[arg-type]
    assert t.birth_given_names == ("A", "B")
    assert t.born_abroad
    assert hash(t)


@pytest.mark.parametrize("place", ["7505", "750561", "2C004", "ABCDE", "", "2A0X4"])
def test_bad_birth_place_refused(place: str) -> None:
    with pytest.raises(DmpError) as info:
        replace(PAT_TROIS, birth_place_insee=place)
    assert info.value.code == "INVALID_VALUE"
    assert "code INSEE du lieu de naissance" in info.value.detail


def test_missing_names_refused() -> None:
    with pytest.raises(DmpError) as info:
        StrictTraits(" ", (), Sex.MALE, datetime.date(2000, 1, 1), "75056")
    assert info.value.code == "INVALID_VALUE"
    assert "nom de naissance absent" in info.value.detail
    assert "prénom(s) de naissance absent(s)" in info.value.detail


def test_bad_sex_refused() -> None:
    with pytest.raises(DmpError) as info:
        StrictTraits("X", ("Y",), "F", datetime.date(2000, 1, 1), "75056")  # type: ignore[arg-type]
    assert info.value.code == "INVALID_VALUE"
    assert "sexe « F » invalide" in info.value.detail


def test_sex_given_as_string_is_converted() -> None:
    t = StrictTraits("X", ("Y",), "male", datetime.date(2000, 1, 1), "75056")  # type: ignore[arg-type]
    assert t.sex is Sex.MALE


# --- check_ins_against_traits --------------------------------------------------------------


def test_ans_test_patient_is_coherent_under_nir_and_test_oid() -> None:
    check_ins_against_traits(parse_ins(OID_NIR, "279035121518989", allow_test=False), PAT_TROIS)
    check_ins_against_traits(
        parse_ins(OID_NIR_TEST, "279035121518989", allow_test=True), PAT_TROIS
    )


def test_sex_mismatch() -> None:
    err = mismatch(nir("1790351215189"), PAT_TROIS)
    assert "sexe : l'INS indique masculin (premier chiffre 1)" in err.detail
    assert "le sexe déclaré est féminin" in err.detail


def test_sex_not_checked_when_unknown_or_digit_3_4() -> None:
    check_ins_against_traits(nir("1790351215189"), replace(PAT_TROIS, sex=Sex.UNKNOWN))
    check_ins_against_traits(nir("3790351215189"), PAT_TROIS)
    check_ins_against_traits(nir("4790351215189"), replace(PAT_TROIS, sex=Sex.MALE))


def test_test_oid_is_checked_too() -> None:
    err = mismatch(nir("1790351215189", OID_NIR_TEST), PAT_TROIS)
    assert "sexe" in err.detail


def test_year_mismatch() -> None:
    err = mismatch(nir("2800351215189"), PAT_TROIS)
    assert "année de naissance : l'INS indique …80" in err.detail
    assert "1979-03-28" in err.detail


def test_year_uses_last_two_digits() -> None:
    traits = replace(PAT_TROIS, birth_date=datetime.date(2005, 3, 1))
    check_ins_against_traits(nir("2050351215189"), traits)


def test_month_mismatch() -> None:
    err = mismatch(nir("2790451215189"), PAT_TROIS)
    assert "mois de naissance : l'INS indique 04" in err.detail


@pytest.mark.parametrize("pseudo_month", ["20", "42", "50", "99"])
def test_pseudo_month_not_checked(pseudo_month: str) -> None:
    check_ins_against_traits(nir("279" + pseudo_month + "51215189"), PAT_TROIS)


def test_place_mismatch() -> None:
    err = mismatch(nir("2790351216189"), PAT_TROIS)
    assert "lieu de naissance : l'INS indique le code 51216" in err.detail
    assert "le code INSEE déclaré est 51215" in err.detail


def test_every_contradiction_is_listed() -> None:
    err = mismatch(nir("1800475056189"), PAT_TROIS)
    for part in ("sexe", "année de naissance", "mois de naissance", "lieu de naissance"):
        assert part in err.detail
    assert err.detail.count(" ; ") == 3
    assert len(ins_contradictions(nir("1800475056189"), PAT_TROIS)) == 4


def test_corsica() -> None:
    traits = replace(PAT_TROIS, birth_date=datetime.date(1984, 5, 1), birth_place_insee="2A321")
    check_ins_against_traits(nir("284052A321025"), traits)
    err = mismatch(nir("284052B321025"), traits)
    assert "2B321" in err.detail


def test_corsica_born_before_1976_keeps_department_20() -> None:
    traits = replace(PAT_TROIS, birth_date=datetime.date(1960, 5, 1), birth_place_insee="2A004")
    check_ins_against_traits(nir("2600520004025"), traits)
    mismatch(nir("2600520005025"), traits)


def test_overseas_department() -> None:
    traits = replace(PAT_TROIS, birth_place_insee="97105")
    check_ins_against_traits(nir("2790397105189"), traits)


def test_born_abroad() -> None:
    traits = replace(PAT_TROIS, birth_place_insee="99352")  # Algeria
    check_ins_against_traits(nir("2790399352189"), traits)
    err = mismatch(nir("2790399100189"), traits)
    assert "pays de naissance : l'INS indique le code pays 100" in err.detail
    err = mismatch(nir("2790399352189"), PAT_TROIS)
    assert "naissance à l'étranger (pays 352)" in err.detail
    err = mismatch(nir("2790351215189"), traits)
    assert "le code INSEE déclaré est 99352" in err.detail


def test_nia_is_not_checked() -> None:
    nia = nir("8800199352189", OID_NIA)
    check_ins_against_traits(nia, PAT_TROIS)
    assert ins_contradictions(nia, PAT_TROIS) == []


# --- traits_conflict -----------------------------------------------------------------------


def test_same_traits_after_normalisation() -> None:
    other = StrictTraits("pat trois", ("dominique",), Sex.FEMALE, datetime.date(1979, 3, 28),
                         "51215")
    assert traits_conflict(PAT_TROIS, other) == []
    assert traits_conflict(PAT_TROIS, PAT_TROIS) == []


def test_each_differing_trait_is_described() -> None:
    other = StrictTraits("DURAND", ("Claude",), Sex.MALE, datetime.date(1979, 3, 29), "51216")
    conflicts = traits_conflict(PAT_TROIS, other)
    assert conflicts == [
        "nom de naissance : « PAT TROIS » connu, « DURAND » reçu",
        "premier prénom de naissance : « DOMINIQUE » connu, « CLAUDE » reçu",
        "sexe : féminin connu, masculin reçu",
        "date de naissance : 1979-03-28 connue, 1979-03-29 reçue",
        "lieu de naissance (code INSEE) : 51215 connu, 51216 reçu",
    ]


def test_given_names_list_difference() -> None:
    other = replace(PAT_TROIS, birth_given_names=("Dominique", "Marie"))
    assert traits_conflict(PAT_TROIS, other) == [
        "liste des prénoms de naissance : « DOMINIQUE » connue, « DOMINIQUE MARIE » reçue"
    ]


def test_given_names_split_differently_are_the_same_list() -> None:
    a = replace(PAT_TROIS, birth_given_names=("Jean Pierre", "Paul"))
    b = replace(PAT_TROIS, birth_given_names=("Jean", "Pierre", "Paul"))
    assert traits_conflict(a, b) == [
        "premier prénom de naissance : « JEAN PIERRE » connu, « JEAN » reçu"
    ]
    c = replace(PAT_TROIS, birth_given_names=("Jean-Pierre", "Paul"))
    assert traits_conflict(a, c) == []
