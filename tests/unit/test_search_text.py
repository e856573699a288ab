"""French normalisation for full-text search (dmp.clinical.text) and its snippets (dmp.services.fulltext)."""

from __future__ import annotations

import pytest

from dmp.clinical.text import fold, query_stems, stem, stems, term_frequencies
from dmp.services.fulltext import passage
from dmp.store import blind


def test_fold_lowercases_and_drops_accents() -> None:
    assert fold("Hémoglobine Œdème ÀÉÎÕÜ ç") == "hemoglobine oedeme aeiou c"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("allergie", "Allergies"),
        ("hémoglobine", "hemoglobine"),
        ("diabète", "diabétique"),
        ("Pyélonéphrite", "pyelonephrites"),
        ("comprimé", "COMPRIMÉS"),
        ("créatinine", "creatinines"),
        ("vaccin", "vaccins"),
    ],
)
def test_forms_of_one_word_share_a_stem(a: str, b: str) -> None:
    assert stem(a) is not None and stem(a) == stem(b)


def test_different_words_keep_different_stems() -> None:
    assert len({stem(w) for w in ("glucose", "glycémie", "cholestérol", "paracétamol")}) == 4


def test_stop_words_and_noise_are_dropped() -> None:
    assert stems("Le patient a une allergie à la pénicilline, et il est sous Plavix 75 mg") == [
        "patient", "allerg", "penicillin", "sous", "plavix", "75", "mg"
    ]
    assert stem("de") is None and stem("à") is None and stem("x") is None
    assert stem("a" * 41) is None  # not a word: a hash, base64 debris
    assert stem("7") == "7"


def test_words_split_on_punctuation_and_keep_digits() -> None:
    want = ["hba1c", "hemoglobin", "total", "creatinin", "ckd"]
    assert stems("HbA1c/hémoglobine_totale;créatinine-CKD") == want


def test_term_frequencies_and_query_stems() -> None:
    assert term_frequencies("Diabète ; diabétique ; glycémie")["diabet"] == 2
    assert query_stems("Allergies allergie PLAVIX le") == ["allerg", "plavix"]
    assert query_stems("le la les , ;") == []


def test_tokens_are_keyed_per_record() -> None:
    k1, k2 = blind.index_key(b"1" * 32), blind.index_key(b"2" * 32)
    assert blind.token(k1, "plavix") == blind.token(k1, "plavix")
    assert blind.token(k1, "plavix") != blind.token(k2, "plavix")
    assert len(blind.token(k1, "plavix")) == 16
    assert k1 != b"1" * 32  # derived, never the data key itself


def test_passage_marks_every_form_of_the_words() -> None:
    text = "Synthèse\n" + "x " * 80 + "Allergies : pénicilline.\nAllergie croisée possible. " + "y " * 200
    segments = passage(text, set(query_stems("allergie")))
    assert [s for s, marked in segments if marked] == ["Allergies", "Allergie"]
    assert segments[0] == ("… ", False) and segments[-1] == (" …", False)
    assert all("\n" not in s for s, _ in segments)
    assert passage(text, set(query_stems("plavix"))) == []
