"""Shipped CI-SIS value sets and coding validation."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from dmp.errors import DmpError
from dmp.terminology import (
    Concept,
    available_valuesets,
    code_system,
    system_oid,
    validate_coding,
    valueset,
)

LOINC = "http://loinc.org"
NOS = "https://mos.esante.gouv.fr/NOS"
TRE_A03 = f"{NOS}/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
TRE_A05 = f"{NOS}/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
TRE_A07 = f"{NOS}/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
TRE_A08 = f"{NOS}/TRE_A08-HL7Confidentiality/FHIR/TRE-A08-HL7Confidentiality"
HL7_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

SHIPPED = {"J01", "J04", "J07", "J38", "J47", "J52", "J57", "J58", "J59", "J60", "J61", "J65",
           "J66"}


def test_shipped_valuesets() -> None:
    assert set(available_valuesets()) == SHIPPED


@pytest.mark.parametrize("vs_id", sorted(SHIPPED))
def test_every_valueset_loads(vs_id: str) -> None:
    vs = valueset(vs_id)
    assert vs.id == vs_id
    assert vs.name.startswith(f"JDV_{vs_id}")
    assert vs.url.startswith(f"{NOS}/JDV_{vs_id}")
    assert vs.oid.startswith("1.2.250.1.213.1.1.")
    assert len(vs.version) == 14 and vs.version.isdigit()
    assert vs.title
    assert len(vs) > 0
    for concept in vs:
        assert concept.code and concept.system
        # every concept is found back through each spelling of its system
        assert vs.contains(concept.system, concept.code)
        assert vs.contains(concept.oid, concept.code)
        assert vs.contains(concept.system_urn, concept.code)
        assert code_system(concept.system) is not None


@pytest.mark.parametrize(
    ("vs_id", "system", "code", "display"),
    [
        ("J66", LOINC, "11488-4", "CR ou fiche de consultation ou de visite"),
        ("J66", LOINC, "60591-5", None),
        ("J66", TRE_A05, "EXPPAT_3", None),
        ("J57", TRE_A03, "10", "Compte rendu"),
        ("J58", TRE_A07, "MASQUE_PS", None),
        ("J58", TRE_A08, "N", "Normal"),
        ("J61", "urn:oid:1.2.250.1.71.4.2.4", "SA01", "Etablissement public de santé"),
        ("J04", "1.2.250.1.213.1.1.4.9", "AMBULATOIRE", "Ambulatoire"),
        ("J60", "urn:oid:1.2.250.1.213.1.1.4.2.282", "urn:asip:ci-sis:vsm:2012", None),
        ("J60", "urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:ihe:iti:xds-sd:pdf:2008", None),
        ("J59", "urn:oid:1.2.250.1.213.1.1.4.6", "EXP_PATIENT", None),
        ("J52", "urn:oid:1.2.250.1.213.1.1.4.341",
         "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved", "Version à jour"),
        ("J52", "urn:oid:1.2.250.1.213.1.1.4.342", "urn:asip:ci-sis:2010:StatusType:Deleted", None),
        ("J38", "urn:oid:1.2.250.1.213.1.1.4.248", "bris_de_glace", None),
        ("J65", "urn:oid:1.2.250.1.71.1.2.7", "10", "Médecin"),
        ("J47", "http://terminology.hl7.org/CodeSystem/v3-ParticipationFunction", "PCP",
         "Médecin traitant"),
        ("J01", "urn:oid:1.2.250.1.213.1.1.4.5", "G15_10/SM26", None),
        ("J01", "urn:oid:1.2.250.1.213.1.1.4.6", "EXP_PATIENT", None),
        ("J07", LOINC, "84067-8", None),
    ],
)
def test_known_codes(vs_id: str, system: str, code: str, display: str | None) -> None:
    vs = valueset(vs_id)
    assert vs.contains(system, code)
    if display is not None:
        assert vs.display(system, code) == display


def test_system_aliases() -> None:
    j66 = valueset("J66")
    for system in (LOINC, "urn:oid:2.16.840.1.113883.6.1", "2.16.840.1.113883.6.1",
                   " http://loinc.org "):
        assert j66.contains(system, "11488-4")
    j58 = valueset("J58")
    for system in (TRE_A08, HL7_CONFIDENTIALITY, "urn:oid:2.16.840.1.113883.5.25"):
        assert j58.contains(system, "N")
        assert j58.contains(system, "R")
        assert j58.contains(system, "V")
    assert system_oid(HL7_CONFIDENTIALITY) == "2.16.840.1.113883.5.25"
    assert system_oid("urn:oid:9.9.9") == "9.9.9"


def test_wrong_system_or_code() -> None:
    j66 = valueset("J66")
    assert not j66.contains(TRE_A05, "11488-4")
    assert not j66.contains(LOINC, "12345-6")
    assert not j66.contains("http://snomed.info/sct", "11488-4")
    assert j66.display(LOINC, "12345-6") is None
    assert not valueset("J57").contains(TRE_A03, "99")  # J06 only
    assert not valueset("J58").contains(TRE_A07, "MASQUE_PSOCIAL")  # TRE_A07, not J58


def test_j07_has_codes_j66_lacks() -> None:
    assert valueset("J07").contains(LOINC, "84067-8")
    assert not valueset("J66").contains(LOINC, "84067-8")


def test_lookup() -> None:
    j65 = valueset("J65")
    tens = j65.lookup("10")
    assert {c.display for c in tens} == {"Médecin", "Médecin en formation"}
    assert j65.lookup("nope") == []
    assert valueset("J66").lookup("11488-4") == [
        Concept(LOINC, "2.16.840.1.113883.6.1", "11488-4",
                "CR ou fiche de consultation ou de visite")
    ]


def test_partial_and_notes() -> None:
    assert valueset("J65").partial
    assert not valueset("J66").partial
    note = valueset("J04").note
    assert note is not None and "J62" in note


def test_valueset_cache_and_case() -> None:
    assert valueset("J66") is valueset("J66")
    assert valueset("j66") == valueset("J66")
    with pytest.raises(KeyError):
        valueset("J99")


# --- validate_coding -----------------------------------------------------------------------


def test_validate_coding_ok() -> None:
    concept = validate_coding("J66", "urn:oid:2.16.840.1.113883.6.1", "11488-4", "typeCode")
    assert concept.system == LOINC
    assert concept.display == "CR ou fiche de consultation ou de visite"


def test_validate_coding_unknown_code() -> None:
    with pytest.raises(DmpError) as info:
        validate_coding("J66", LOINC, "12345-6", "typeCode")
    assert info.value.code == "UNKNOWN_CODE"
    assert info.value.detail == (
        "typeCode 12345-6 (http://loinc.org) absent du jeu de valeurs JDV_J66-TypeCode-DMP"
    )
    assert info.value.message.startswith("Code inconnu : typeCode 12345-6")


def test_validate_coding_unknown_system() -> None:
    with pytest.raises(DmpError) as info:
        validate_coding("J57", "http://snomed.info/sct", "371531000", "classCode")
    assert info.value.code == "UNKNOWN_CODE"
    assert "absent du jeu de valeurs JDV_J57-ClassCode-DMP" in info.value.detail
    assert "système de codage inconnu" in info.value.detail
    assert TRE_A03 in info.value.detail


def test_validate_coding_code_under_another_system() -> None:
    with pytest.raises(DmpError) as info:
        validate_coding("J66", TRE_A05, "11488-4", "typeCode")
    assert f"ce code y figure avec le système {LOINC}" in info.value.detail


def test_validate_coding_known_system_not_in_valueset() -> None:
    with pytest.raises(DmpError) as info:
        validate_coding("J57", LOINC, "34133-9", "classCode")
    assert "systèmes attendus" in info.value.detail


def test_validate_coding_without_system() -> None:
    concept = validate_coding("J58", None, "MASQUE_PS", "securityLabel")
    assert concept.oid == "1.2.250.1.213.1.1.4.13"
    with pytest.raises(DmpError) as info:
        validate_coding("J65", None, "10", "subjectRole")
    assert info.value.code == "UNKNOWN_CODE"
    assert "ambigu" in info.value.detail
    with pytest.raises(DmpError) as info:
        validate_coding("J58", "", "X", "securityLabel")
    assert "securityLabel X absent du jeu de valeurs JDV_J58-ConfidentialityCode-DMP" in (
        info.value.detail
    )


def test_validate_coding_missing_code() -> None:
    with pytest.raises(DmpError) as info:
        validate_coding("J66", LOINC, " ", "typeCode")
    assert info.value.code == "MISSING_ELEMENT"
    assert "typeCode" in info.value.detail


# --- data files ----------------------------------------------------------------------------


def test_data_files_are_consistent() -> None:
    data = resources.files("dmp.terminology").joinpath("data")
    systems = json.loads(data.joinpath("systems.json").read_text(encoding="utf-8"))
    by_oid = {s["oid"]: s["url"] for s in systems}
    assert by_oid["2.16.840.1.113883.6.1"] == LOINC
    assert by_oid["1.2.250.1.213.1.1.4.1"] == TRE_A03
    for vs_id in SHIPPED:
        doc = json.loads(data.joinpath(f"{vs_id}.json").read_text(encoding="utf-8"))
        assert set(doc) >= {"id", "name", "url", "oid", "version", "title", "concepts"}
        for c in doc["concepts"]:
            assert set(c) == {"system", "oid", "code", "display"}
            assert by_oid[c["oid"]] == c["system"]
        keys = [(c["oid"], c["code"]) for c in doc["concepts"]]
        assert len(keys) == len(set(keys))


def test_expected_sizes() -> None:
    # counts documented in shared/terminology/SOURCES.md and the technical reference
    assert len(valueset("J66")) == 31 + 76 + 1
    assert len(valueset("J07")) == 35 + 87 + 1
    assert len(valueset("J01")) == 396
    assert len(valueset("J47")) == 10
    assert len(valueset("J58")) == 6
    assert len(valueset("J52")) == 4
