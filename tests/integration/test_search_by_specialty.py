"""CS-03: « des recherches par auteur, par profession ou spécialité médicale, ou par date »."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import CDA, bundle, doc
from test_policy_api import ids

from conftest import Api, Identity

PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"


def _by(ident: Identity, profession: str, specialty: str | None) -> dict[str, Any]:
    """A document whose author is a PractitionerRole (PDSm): profession, specialty."""
    d = doc(ident, CDA)
    practitioner = d["contained"][0]
    practitioner["id"] = "praticien"
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": "author",
        "practitioner": {"reference": "#praticien"},
        "code": [{"coding": [{"system": PROFESSION, "code": profession}]}],
    }
    if specialty:
        role["specialty"] = [{"coding": [{"system": SPECIALTY, "code": specialty}]}]
    d["contained"] = [role, practitioner]
    return d


@pytest.fixture()
def published(api: Api, patient: Identity) -> dict[str, str]:
    made = {}
    for label, profession, specialty in (
        ("cardiologue", "10", "SM04"),
        ("generaliste", "10", "G15_10/SM54"),
        ("infirmier", "60", None),
    ):
        resp = api.post("", bundle(patient, (_by(patient, profession, specialty), CDA)))
        assert resp.status_code == 200, resp.text
        made[label] = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    return made


def _search(api: Api, patient: Identity, **params: str) -> list[str]:
    record = {"patient.identifier": f"{patient.system}|{patient.nir}"}
    resp = api.get("DocumentReference", params={**record, **params})
    assert resp.status_code == 200, resp.text
    return ids(resp)


def test_by_profession(api: Api, patient: Identity, published: dict[str, str]) -> None:
    doctors = {published["cardiologue"], published["generaliste"]}
    assert set(_search(api, patient, **{"author.role": "10"})) == doctors
    nurse = _search(api, patient, **{"author:PractitionerRole.role": f"{PROFESSION}|60"})
    assert nurse == [published["infirmier"]]


def test_by_specialty_in_either_form(api: Api, patient: Identity, published: dict[str, str]) -> None:
    assert _search(api, patient, **{"author.specialty": "SM04"}) == [published["cardiologue"]]
    assert _search(api, patient, **{"author.specialty": "SM54"}) == [published["generaliste"]]
    assert _search(api, patient, **{"author.specialty": "G15_10/SM54"}) == [published["generaliste"]]
    assert _search(api, patient, **{"author.specialty": "SM_%"}) == []  # no pattern injection
