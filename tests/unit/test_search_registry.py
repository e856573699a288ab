"""The search-parameter registry is the one truth: the CapabilityStatement lists it, the searches
accept exactly it and compile each of its parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dmp.errors import DmpError
from dmp.fhir import searchparams
from dmp.fhir.capability import capability_statement
from dmp.services.search import DOCUMENT_FILTERS, LIST_FILTERS


@pytest.mark.parametrize(
    ("rtype", "filters"), [("DocumentReference", DOCUMENT_FILTERS), ("List", LIST_FILTERS)]
)
def test_every_registered_parameter_has_a_filter_and_no_filter_is_unregistered(
    rtype: str, filters: dict[str, object]
) -> None:
    assert set(filters) == {p.name for p in searchparams.SEARCH_PARAMETERS[rtype]}


def test_the_capability_statement_lists_the_registry() -> None:
    cap = capability_statement("http://x/fhir", "http://x/oauth/token", datetime.now(UTC))
    declared = {
        r["type"]: {(p["name"], p["type"]) for p in r.get("searchParam", [])}
        for r in cap["rest"][0]["resource"]
    }
    for rtype, params in searchparams.SEARCH_PARAMETERS.items():
        assert declared[rtype] == {(p.name, p.type) for p in params}
    assert {t for t, ps in declared.items() if ps} == set(searchparams.SEARCH_PARAMETERS)


def test_aliases_resolve_and_unknown_names_are_refused_in_french() -> None:
    assert searchparams.canonical("DocumentReference", "class") == "category"
    assert searchparams.canonical("DocumentReference", "subject") == "patient"
    assert searchparams.canonical("List", "source-id") == "sourceId"
    with pytest.raises(DmpError) as refused:
        searchparams.check("Patient", [("name", "DUPONT")])
    assert refused.value.code == "INVALID_SEARCH"
    assert "non pris en charge pour Patient" in refused.value.message
    assert searchparams.check("Patient", [("_count", "5"), ("_id", "x")]) == [("_id", "x")]
