"""PDSm metadata updates (Flux 03): JSON Patch on DocumentReference status, securityLabel, isArchived."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from access_helpers import as_patient, authorise
from helpers import CDA, one_doc_bundle
from outcomes import assert_outcome

from conftest import Api, Identity
from dmp.fhir.common import instant
from dmp.fhir.documentreference import CONFIDENTIALITY_SYSTEM, FLAG_SYSTEM, IS_ARCHIVED_URL

ARCHIVED = {"url": IS_ARCHIVED_URL, "valueBoolean": True}
DELETE = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]


@dataclass
class Published:
    id: str
    unique_id: str  # masterIdentifier.value


def publish(api: Api, ident: Identity, **kw: Any) -> Published:
    b, d = one_doc_bundle(ident, **kw)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    return Published(
        resp.json()["entry"][1]["response"]["location"].split("/")[1], d["masterIdentifier"]["value"]
    )


@pytest.fixture()
def published(api: Api, patient: Identity) -> Published:
    return publish(api, patient)


def search(api: Api, ident: Identity, who: str = "doctor", **params: str) -> list[str]:
    resp = api.get(
        "DocumentReference", who=who, params={"patient.identifier": f"{ident.system}|{ident.nir}", **params}
    )
    assert resp.status_code == 200, resp.text
    return [e["resource"]["id"] for e in resp.json().get("entry", [])]


def flags(dr: dict[str, Any]) -> list[str]:
    return [c["code"] for label in dr["securityLabel"] for c in label["coding"] if c["system"] == FLAG_SYSTEM]


def level(dr: dict[str, Any]) -> list[str]:
    return [
        c["code"]
        for label in dr["securityLabel"]
        for c in label["coding"]
        if c["system"] == CONFIDENTIALITY_SYSTEM
    ]


def add_flag(code: str) -> list[dict[str, Any]]:
    return [
        {
            "op": "add",
            "path": "/securityLabel/-",
            "value": {"coding": [{"system": FLAG_SYSTEM, "code": code}]},
        }
    ]


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = resp.json()
    assert body["resourceType"] == "DocumentReference"
    return body


# ---- masking ------------------------------------------------------------------------------


def test_mask_then_unmask(api: Api, patient: Identity, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    assert search(api, patient, **{"security-label": "MASQUE_PS"}) == []

    masked = ok(api.patch(path, add_flag("MASQUE_PS")))
    assert flags(masked) == ["MASQUE_PS"]
    assert level(masked) == ["N"]
    label = next(lab for lab in masked["securityLabel"] if lab["coding"][0]["code"] == "MASQUE_PS")
    assert label["coding"][0]["display"] == "Masqué aux professionnels de santé"
    assert masked["status"] == "current"
    assert masked["meta"]["versionId"] == "2"
    assert api.get(path).json() == masked
    assert search(api, patient, **{"security-label": "MASQUE_PS"}) == [published.id]

    i = masked["securityLabel"].index(label)
    unmasked = ok(
        api.patch(
            path,
            [
                {"op": "test", "path": f"/securityLabel/{i}/coding/0/code", "value": "MASQUE_PS"},
                {"op": "remove", "path": f"/securityLabel/{i}"},
            ],
        )
    )
    assert flags(unmasked) == []
    assert unmasked["meta"]["versionId"] == "3"
    assert search(api, patient, **{"security-label": "MASQUE_PS"}) == []
    assert search(api, patient) == [published.id]


def test_flags_are_a_set_and_levels_change(api: Api, patient: Identity, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    body = ok(api.patch(path, add_flag("INVISIBLE_PATIENT") + add_flag("MASQUE_PS") + add_flag("MASQUE_PS")))
    assert sorted(flags(body)) == ["INVISIBLE_PATIENT", "MASQUE_PS"]
    body = ok(api.patch(path, [{"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": "R"}]))
    assert level(body) == ["R"]
    assert search(api, patient, **{"security-label": "R"}) == [published.id]
    assert search(api, patient, **{"security-label": "N"}) == []
    assert search(api, patient, **{"security-label": "INVISIBLE_PATIENT"}) == [published.id]


def test_unknown_or_contradictory_labels(api: Api, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    assert_outcome(
        api.patch(path, add_flag("SECRET_DEFENSE")),
        422,
        "UNKNOWN_CODE",
        "securityLabel SECRET_DEFENSE",
        "JDV_J58",
    )
    two_levels = [
        {
            "op": "add",
            "path": "/securityLabel/-",
            "value": {"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": "V"}]},
        }
    ]
    assert_outcome(
        api.patch(path, two_levels),
        422,
        "INVALID_VALUE",
        "un seul niveau de confidentialité N, R ou V est permis",
    )
    assert api.get(path).json()["meta"]["versionId"] == "1"


def test_who_may_change_labels(api: Api, patient: Identity, published: Published) -> None:
    authorise(api, patient, "doctor2")
    path = f"DocumentReference/{published.id}"
    assert_outcome(
        api.patch(path, add_flag("MASQUE_PS"), who="doctor2"),
        403,
        "FORBIDDEN",
        "seuls le patient et l'auteur masquent un document",
    )
    assert_outcome(
        api.patch(path, add_flag("INVISIBLE_PATIENT"), who="doctor2"),
        403,
        "FORBIDDEN",
        "seuls l'auteur et le médecin traitant décident de l'annonce",
    )
    assert api.get(path).json()["meta"]["versionId"] == "1"
    # The patient masks a document from the professionals; its author still sees it, doctor2 no more.
    masked = ok(api.patch(path, add_flag("MASQUE_PS"), who=as_patient(api, patient)))
    assert flags(masked) == ["MASQUE_PS"]
    assert api.get(path).json() == masked
    assert_outcome(api.get(path, who="doctor2"), 404, "NOT_FOUND")
    assert search(api, patient, who="doctor2") == []


# ---- archiving ----------------------------------------------------------------------------


def test_archive_then_unarchive(api: Api, patient: Identity, published: Published) -> None:
    """Archiving hands the document over to the patient (DOC.archived): still « current », but
    professionals no longer see it, in any search; the patient finds it with isArchived=true."""
    path = f"DocumentReference/{published.id}"
    other = publish(api, patient, title="Autre")
    assert "extension" not in api.get(path).json()
    archived = ok(api.patch(path, [{"op": "add", "path": "/extension", "value": [ARCHIVED]}]))
    assert archived["extension"] == [ARCHIVED]
    assert archived["status"] == "current"  # still current (TD3.3d)
    assert archived["meta"]["versionId"] == "2"

    assert search(api, patient) == [other.id]
    assert search(api, patient, isArchived="true") == []
    assert search(api, patient, isArchived="false") == [other.id]
    assert_outcome(api.get(path), 404, "NOT_FOUND")

    me = as_patient(api, patient)
    assert search(api, patient, who=me, isArchived="true") == [published.id]
    assert search(api, patient, who=me, isArchived="false") == [other.id]
    assert sorted(search(api, patient, who=me, status="current")) == sorted([published.id, other.id])
    assert api.get(path, who=me).json() == archived

    # The patient takes it out of the archive: professionals see it again.
    unarchived = ok(api.patch(path, [{"op": "remove", "path": "/extension"}], who=me))
    assert "extension" not in unarchived
    assert unarchived["meta"]["versionId"] == "3"
    assert search(api, patient, isArchived="true") == []
    assert sorted(search(api, patient, isArchived="false")) == sorted([published.id, other.id])
    assert api.get(path).json() == unarchived


def test_once_archived_only_the_patient_unarchives(api: Api, patient: Identity, published: Published) -> None:
    """Archiving hands the document to the patient (DOC.archived): its author no longer sees it,
    so cannot undo it; the patient can (docs/access-policy.md)."""
    path = f"DocumentReference/{published.id}"
    ok(api.patch(path, [{"op": "add", "path": "/extension", "value": [ARCHIVED]}]))
    assert_outcome(api.patch(path, [{"op": "remove", "path": "/extension"}]), 404, "NOT_FOUND")


def test_archive_is_for_the_patient_or_the_author(api: Api, patient: Identity, published: Published) -> None:
    authorise(api, patient, "doctor2")
    path = f"DocumentReference/{published.id}"
    assert_outcome(
        api.patch(path, [{"op": "add", "path": "/extension", "value": [ARCHIVED]}], who="doctor2"),
        403,
        "FORBIDDEN",
        "seuls le patient et l'auteur archivent un document",
    )
    assert api.get(path).json()["meta"]["versionId"] == "1"
    body = ok(
        api.patch(
            path, [{"op": "add", "path": "/extension", "value": [ARCHIVED]}], who=as_patient(api, patient)
        )
    )
    assert body["extension"] == [ARCHIVED]


def test_archive_flag_false_is_not_archived(api: Api, patient: Identity, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    body = ok(
        api.patch(
            path,
            [{"op": "add", "path": "/extension", "value": [{"url": IS_ARCHIVED_URL, "valueBoolean": False}]}],
        )
    )
    assert "extension" not in body
    assert search(api, patient, isArchived="true") == []


def test_isarchived_search_value_is_checked(api: Api, patient: Identity) -> None:
    resp = api.get(
        "DocumentReference",
        params={"patient.identifier": f"{patient.system}|{patient.nir}", "isArchived": "oui"},
    )
    assert_outcome(resp, 400, "INVALID_SEARCH", "isArchived vaut true ou false")


# ---- conditional update -------------------------------------------------------------------


def conditional(identifier: str) -> str:
    return "DocumentReference?" + urlencode({"identifier": identifier})


def test_conditional_patch_by_unique_id(api: Api, patient: Identity, published: Published) -> None:
    other = publish(api, patient, title="Autre")
    assert published.unique_id.startswith("urn:oid:")
    body = ok(api.patch(conditional(f"urn:ietf:rfc:3986|{published.unique_id}"), add_flag("MASQUE_PS")))
    assert body["id"] == published.id
    assert body["masterIdentifier"]["value"] == published.unique_id
    assert flags(body) == ["MASQUE_PS"]
    assert flags(api.get(f"DocumentReference/{other.id}").json()) == []
    # Without a system, and by the registry's own urn:uuid identifier.
    body = ok(
        api.patch(
            conditional(published.unique_id), [{"op": "add", "path": "/extension", "value": [ARCHIVED]}]
        )
    )
    assert body["meta"]["versionId"] == "3"
    body = ok(api.patch(conditional(f"urn:ietf:rfc:3986|urn:uuid:{other.id}"), add_flag("MASQUE_PS")))
    assert body["id"] == other.id


def test_conditional_patch_without_match_or_parameter(api: Api, published: Published) -> None:
    assert_outcome(
        api.patch(conditional("urn:ietf:rfc:3986|urn:oid:1.2.3.4.5"), add_flag("MASQUE_PS")),
        404,
        "NOT_FOUND",
        "Ressource introuvable.",
    )
    assert_outcome(
        api.patch("DocumentReference", add_flag("MASQUE_PS")),
        400,
        "INVALID_SEARCH",
        "PATCH conditionnel : paramètre identifier attendu",
    )


def test_conditional_patch_by_a_uuid_unique_id(api: Api, patient: Identity) -> None:
    uid = f"urn:uuid:{uuid.uuid4()}"
    doc = publish(api, patient, unique_id=uid)
    assert doc.unique_id == uid
    assert search(api, patient, identifier=f"urn:ietf:rfc:3986|{uid}") == [doc.id]
    body = ok(api.patch(conditional(f"urn:ietf:rfc:3986|{uid}"), add_flag("MASQUE_PS")))
    assert body["id"] == doc.id


# ---- what may not change ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops,element",
    [
        ([{"op": "add", "path": "/description", "value": "Nouveau"}], "description"),
        ([{"op": "replace", "path": "/type/coding/0/code", "value": "11502-2"}], "type"),
        ([{"op": "replace", "path": "/content/0/attachment/title", "value": "Autre titre"}], "content"),
        ([{"op": "replace", "path": "/subject/reference", "value": "Patient/x"}], "subject"),
        ([{"op": "replace", "path": "/date", "value": "2020-01-01T00:00:00+01:00"}], "date"),
        ([{"op": "remove", "path": "/author"}], "author"),
        (
            add_flag("MASQUE_PS")
            + [{"op": "replace", "path": "/masterIdentifier/value", "value": "urn:oid:1.2"}],
            "masterIdentifier",
        ),
    ],
    ids=["description", "type", "title", "subject", "date", "author", "masterIdentifier"],
)
def test_other_elements_are_not_patchable(api: Api, published: Published, ops: Any, element: str) -> None:
    path = f"DocumentReference/{published.id}"
    before = api.get(path).json()
    assert_outcome(
        api.patch(path, ops),
        405,
        "METHOD_NOT_ALLOWED",
        "Opération non autorisée",
        f"seuls status, securityLabel et isArchived sont modifiables ({element})",
    )
    assert api.get(path).json() == before


def test_other_extensions_are_not_patchable(api: Api, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    ops = [
        {"op": "add", "path": "/extension", "value": [{"url": "https://exemple.fr/ext", "valueString": "x"}]}
    ]
    assert_outcome(
        api.patch(path, ops), 405, "METHOD_NOT_ALLOWED", "seule l'extension isArchived est modifiable"
    )
    assert api.get(path).json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    "ops,fragment",
    [
        (
            [{"op": "replace", "path": "/status", "value": "superseded"}],
            "status « superseded » non modifiable",
        ),
        ([], "une liste d'opérations JSON Patch est attendue"),
        ({"op": "add"}, "une liste d'opérations JSON Patch est attendue"),
        ([{"op": "move", "from": "/status", "path": "/x"}], "opération « move » non prise en charge"),
        ([{"op": "remove", "path": "/nope/0"}], "chemin inexistant"),
        ([{"op": "replace", "path": "status", "value": "current"}], "chemin JSON Pointer invalide"),
        ([{"op": "test", "path": "/status", "value": "superseded"}], "test échoué sur /status"),
    ],
)
def test_invalid_patches(api: Api, published: Published, ops: Any, fragment: str) -> None:
    path = f"DocumentReference/{published.id}"
    assert_outcome(
        api.patch(path, ops), 422, "INVALID_PATCH", "Modification de métadonnées invalide", fragment
    )
    assert api.get(path).json()["meta"]["versionId"] == "1"


def test_optimistic_concurrency_with_a_test_operation(api: Api, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    guard = [{"op": "test", "path": "/meta/versionId", "value": "1"}]
    assert ok(api.patch(path, guard + add_flag("MASQUE_PS")))["meta"]["versionId"] == "2"
    # A second client working from version 1 is refused and changes nothing.
    assert_outcome(
        api.patch(path, guard + add_flag("INVISIBLE_PATIENT")),
        422,
        "INVALID_PATCH",
        "test échoué sur /meta/versionId",
    )
    assert flags(api.get(path).json()) == ["MASQUE_PS"]


# ---- deletion -----------------------------------------------------------------------------


def test_deletion_by_another_professional_is_forbidden(
    api: Api, patient: Identity, published: Published
) -> None:
    authorise(api, patient, "doctor2")  # doctor2 may read the record, and sees the document
    path = f"DocumentReference/{published.id}"
    before = api.get(path).json()
    assert api.get(path, who="doctor2").json() == before
    assert_outcome(
        api.patch(path, DELETE, who="doctor2"),
        403,
        "FORBIDDEN",
        "Action non autorisée",
        "seul l'auteur du document peut le supprimer",
    )
    assert api.get(path).json() == before
    assert search(api, patient) == [published.id]
    # Nor may the patient delete it (TD3.3c: the author only).
    assert_outcome(
        api.patch(path, DELETE, who=as_patient(api, patient)),
        403,
        "FORBIDDEN",
        "seul l'auteur du document peut le supprimer",
    )


def test_deletion_by_the_author(api: Api, patient: Identity, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    kept = publish(api, patient, title="Conservé")
    authorise(api, patient, "doctor2")
    me = as_patient(api, patient)
    deleted = ok(api.patch(path, DELETE))
    assert deleted["status"] == "entered-in-error"
    assert deleted["meta"]["versionId"] == "2"
    # Gone for everyone, author included, with the uniform 404.
    for who in ("doctor", "doctor2", me):
        assert_outcome(api.get(path, who=who), 404, "NOT_FOUND", "Ressource introuvable.")
        assert_outcome(api.get(f"Binary/{published.id}", who=who), 404, "NOT_FOUND")
        assert search(api, patient, who=who) == [kept.id]
        assert search(api, patient, who=who, status="entered-in-error") == []
    assert search(api, patient, identifier=published.unique_id) == []
    assert_outcome(api.patch(conditional(published.unique_id), add_flag("MASQUE_PS")), 404, "NOT_FOUND")
    # The uniqueId stays taken (XDS: a uniqueId is never reused).
    b, _ = one_doc_bundle(patient, CDA, unique_id=published.unique_id.removeprefix("urn:oid:"))
    assert_outcome(api.post("", b), 409, "DUPLICATE_UNIQUE_ID", published.unique_id)


# ---- versions -----------------------------------------------------------------------------


def test_version_increments_on_each_change(api: Api, patient: Identity, published: Published) -> None:
    path = f"DocumentReference/{published.id}"
    first = api.get(path).json()
    assert first["meta"]["versionId"] == "1"
    me = as_patient(api, patient)
    start = datetime.now(UTC).replace(microsecond=0)
    steps = [
        ("doctor", add_flag("MASQUE_PS")),
        ("doctor", [{"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": "R"}]),
        ("doctor", [{"op": "remove", "path": "/securityLabel/1"}]),
        ("doctor", [{"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": "R"}]),  # no change
        ("doctor", [{"op": "add", "path": "/extension", "value": [ARCHIVED]}]),
        (me, [{"op": "remove", "path": "/extension"}]),  # only the patient sees it while archived
        ("doctor", DELETE),
    ]
    for n, (who, ops) in enumerate(steps, start=2):
        at = start + timedelta(seconds=n)
        api.runtime.clock = lambda at=at: at
        body = ok(api.patch(path, ops, who=who))
        assert body["meta"]["versionId"] == str(n)
        assert body["meta"]["lastUpdated"] == instant(at)
        if ops is not DELETE:
            assert api.get(path, who=me).json() == body
        # Everything but status, labels, extension and meta is the published resource.
        same = {k: v for k, v in body.items() if k not in ("meta", "status", "securityLabel", "extension")}
        assert same == {
            k: v for k, v in first.items() if k not in ("meta", "status", "securityLabel", "extension")
        }
