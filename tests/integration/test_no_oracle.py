"""No oracle (docs/access-policy.md, « Nothing tells a hidden thing exists »).

For every route that names a document, and every (actor, document hidden from that actor) pair,
the answer and the actor's own view of the trail after the request are indistinguishable from
the same request about an id that does not exist. The refusal is still traced: the patient and
the security role see it whole. For a record the caller may not open, reading its trail answers
what a record that does not exist answers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from test_policy_api import as_patient, as_representative, consent, patient_id, publish

from conftest import Api, Identity, new_identity, patient_resource
from dmp.audit import iter_entries


@dataclass(frozen=True)
class Hidden:
    who: str  # the actor, as the Api fixture names them
    doc_id: str  # a document hidden from them
    unique_id: str
    pid: str


def _unique_id(api: Api, doc_id: str) -> str:
    got = api.get(f"DocumentReference/{doc_id}").json()  # the author sees it
    return str(got["masterIdentifier"]["value"]).removeprefix("urn:oid:")


def _authorise(api: Api, pid: str, who: str) -> None:
    resp = api.post("Consent", consent(pid, "authorisation", api.cards[who].idnps), who=who)
    assert resp.status_code == 201, resp.text


def masked_from_a_colleague(api: Api, ident: Identity) -> Hidden:
    doc_id = publish(api, ident, flags=("MASQUE_PS",))
    pid = patient_id(api, ident)
    _authorise(api, pid, "doctor2")
    return Hidden("doctor2", doc_id, _unique_id(api, doc_id), pid)


def type_hidden_from_a_profession(api: Api, ident: Identity) -> Hidden:
    doc_id = publish(api, ident, type_code="89601-9")  # not for pharmacists (the matrix)
    pid = patient_id(api, ident)
    _authorise(api, pid, "pharmacist")
    return Hidden("pharmacist", doc_id, _unique_id(api, doc_id), pid)


def awaiting_announcement(api: Api, ident: Identity) -> Hidden:
    doc_id = publish(api, ident, flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, ident)
    return Hidden(as_patient(api, pid), doc_id, _unique_id(api, doc_id), pid)


def hidden_from_the_parents(api: Api, ident: Identity) -> Hidden:
    doc_id = publish(api, ident, flags=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    pid = patient_id(api, ident)
    as_representative(api, pid)
    return Hidden("person:rep-1", doc_id, _unique_id(api, doc_id), pid)


SCENARIOS: dict[str, Callable[[Api, Identity], Hidden]] = {
    "masked-from-a-colleague": masked_from_a_colleague,
    "type-hidden-from-a-profession": type_hidden_from_a_profession,
    "awaiting-announcement": awaiting_announcement,
    "hidden-from-the-parents": hidden_from_the_parents,
}

Call = Callable[[Api, str, str, str, str], Any]  # (api, who, document id, uniqueId, record id)
ENTERED_IN_ERROR = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]


def _patch(api: Api, path: str, who: str) -> Any:
    return api.client.patch(
        f"/fhir/{path}",
        content=json.dumps(ENTERED_IN_ERROR),
        headers=api.headers(who, **{"Content-Type": "application/json-patch+json"}),
    )


def _post_search(api: Api, who: str, form: dict[str, str]) -> Any:
    return api.client.post(
        "/fhir/DocumentReference/_search",
        data=form,
        headers={**api.headers(who), "Content-Type": "application/x-www-form-urlencoded"},
    )


ROUTES: dict[str, Call] = {
    "read": lambda api, who, d, u, p: api.get(f"DocumentReference/{d}", who=who),
    "vread": lambda api, who, d, u, p: api.get(f"DocumentReference/{d}/_history/1", who=who),
    "binary": lambda api, who, d, u, p: api.get(f"Binary/{d}", who=who),
    "binary-as-fhir": lambda api, who, d, u, p: api.client.get(
        f"/fhir/Binary/{d}", headers={**api.headers(who), "Accept": "application/fhir+json"}
    ),
    "patch": lambda api, who, d, u, p: _patch(api, f"DocumentReference/{d}", who),
    "conditional-patch": lambda api, who, d, u, p: _patch(
        api, f"DocumentReference?identifier=urn:ietf:rfc:3986|urn:oid:{u}", who
    ),
    "search-by-id": lambda api, who, d, u, p: api.get("DocumentReference", who=who, params={"_id": d}),
    "search-by-id-in-record": lambda api, who, d, u, p: api.get(
        "DocumentReference", who=who, params={"_id": d, "patient": f"Patient/{p}"}
    ),
    "search-by-identifier": lambda api, who, d, u, p: api.get(
        "DocumentReference", who=who, params={"identifier": f"urn:oid:{u}", "patient": f"Patient/{p}"}
    ),
    "post-search-by-id": lambda api, who, d, u, p: _post_search(api, who, {"_id": d}),
    # The submission set that carries only the hidden document, addressed by its own id.
    "list-read": lambda api, who, d, u, p: api.get(f"List/{_set_of(api, d)}", who=who),
    "list-search-by-id": lambda api, who, d, u, p: api.get("List", who=who, params={"_id": _set_of(api, d)}),
    "list-search-in-record": lambda api, who, d, u, p: api.get(
        "List", who=who, params={"_id": _set_of(api, d), "patient": f"Patient/{p}"}
    ),
}


def _set_of(api: Api, doc_id: str) -> str:
    """The submission set of ``doc_id``; for an id that names no document, one that names no set."""
    from sqlalchemy import select

    from dmp.store.schema import document

    with api.runtime.engine.connect() as conn:
        found = conn.execute(
            select(document.c.submission_set_id).where(document.c.id == uuid.UUID(doc_id))
        ).scalar()
    return str(found) if found else str(uuid.uuid5(uuid.NAMESPACE_URL, doc_id))


def _normalised(value: Any, *ids: str) -> Any:
    """The value with the ids under test, and what varies between any two calls, made equal."""
    text = json.dumps(value, sort_keys=True)
    for i in ids:
        text = text.replace(i, "<id>")
    text = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)?", "<instant>", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    return json.loads(text)


def _answer(resp: Any, *ids: str) -> tuple[int, str, Any]:
    body: Any = resp.json() if resp.headers.get("content-type", "").endswith("json") else resp.text
    return resp.status_code, resp.headers.get("content-type", ""), _normalised(body, *ids)


def _visible_trail(api: Api, who: str, pid: str) -> list[Any]:
    """What the actor reads of the record's trail (reading it is traced the same way each time)."""
    resp = api.get("AuditEvent", who=who, params={"patient": f"Patient/{pid}", "_count": "500"})
    assert resp.status_code == 200, resp.text
    return [e["resource"] for e in resp.json().get("entry", [])]


def _world(api: Api, scenario: str) -> Hidden:
    """A record of its own, holding a document hidden from the scenario's actor."""
    ident = new_identity()
    assert api.post("Patient", patient_resource(ident)).status_code == 201
    return SCENARIOS[scenario](api, ident)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_hidden_document_is_indistinguishable_from_a_missing_one(
    api: Api, scenario: str, route: str
) -> None:
    """Two records set up alike; in one the actor asks for the hidden document, in the other for
    an id that does not exist. What the actor gets, and then reads of the trail, must be equal."""
    call = ROUTES[route]
    seen = {}
    for world in ("hidden", "missing"):
        h = _world(api, scenario)
        if world == "hidden":
            doc_id, unique_id = h.doc_id, h.unique_id
        else:
            doc_id, unique_id = str(uuid.uuid4()), f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
        _visible_trail(api, h.who, h.pid)
        answer = _answer(call(api, h.who, doc_id, unique_id, h.pid), doc_id, unique_id)
        trail = _visible_trail(api, h.who, h.pid)
        assert all(h.doc_id not in json.dumps(e) for e in trail)
        seen[world] = (answer, _normalised(trail), h)
    assert seen["hidden"][0] == seen["missing"][0]
    assert seen["hidden"][0][0] < 500
    assert seen["hidden"][1] == seen["missing"][1]
    # …while the record's whole trail (the security role's view) keeps what was attempted.
    h = seen["hidden"][2]
    with api.runtime.engine.connect() as conn:
        entries = list(iter_entries(conn, uuid.UUID(h.pid)))
    assert any(h.doc_id in json.dumps(e.target_ids) for e in entries)


def test_a_record_the_caller_may_not_open_has_the_trail_of_a_missing_record(
    api: Api, patient: Identity
) -> None:
    pid = patient_id(api, patient)
    publish(api, patient)
    api.get("DocumentReference", who="doctor2", params={"patient": f"Patient/{pid}"})  # refused, traced
    refused = api.get("AuditEvent", who="doctor2", params={"patient": f"Patient/{pid}"})
    missing = api.get("AuditEvent", who="doctor2", params={"patient": f"Patient/{uuid.uuid4()}"})
    assert _answer(refused) == _answer(missing)
    assert refused.status_code == 404
    by_ins = api.get(
        "AuditEvent", who="doctor2", params={"patient.identifier": f"{patient.system}|{patient.nir}"}
    )
    assert _answer(by_ins) == _answer(missing)


RECORD_ROUTES: dict[str, Callable[[Api, str, str], Any]] = {  # (api, who, record id)
    "documents": lambda api, who, p: api.get(
        "DocumentReference", who=who, params={"patient": f"Patient/{p}"}
    ),
    "submission-sets": lambda api, who, p: api.get("List", who=who, params={"patient": f"Patient/{p}"}),
    "patient-read": lambda api, who, p: api.get(f"Patient/{p}", who=who),
    "patient-search": lambda api, who, p: api.get("Patient", who=who, params={"_id": p}),
    "consents": lambda api, who, p: api.get("Consent", who=who, params={"patient": f"Patient/{p}"}),
    "trail": lambda api, who, p: api.get("AuditEvent", who=who, params={"patient": f"Patient/{p}"}),
}


def another_patient(api: Api, pid: str) -> str:
    ident = new_identity(family="AUTRE")
    assert api.post("Patient", patient_resource(ident)).status_code == 201
    return as_patient(api, patient_id(api, ident))


def a_representative_of_another_record(api: Api, pid: str) -> str:
    ident = new_identity(family="AUTRE")
    assert api.post("Patient", patient_resource(ident)).status_code == 201
    as_representative(api, patient_id(api, ident), "rep-autre")
    return "person:rep-autre"


RECORD_ACTORS: dict[str, Callable[[Api, str], str]] = {
    "another-patient": another_patient,
    "a-representative-of-another-record": a_representative_of_another_record,
}


@pytest.mark.parametrize("route", list(RECORD_ROUTES))
@pytest.mark.parametrize("actor", list(RECORD_ACTORS))
def test_a_record_one_may_not_open_is_a_record_that_does_not_exist(
    api: Api, patient: Identity, actor: str, route: str
) -> None:
    pid = patient_id(api, patient)
    publish(api, patient)
    who = RECORD_ACTORS[actor](api, pid)
    missing = str(uuid.uuid4())
    about_it = _answer(RECORD_ROUTES[route](api, who, pid), pid)
    about_none = _answer(RECORD_ROUTES[route](api, who, missing), missing)
    assert about_it == about_none
    assert about_it[0] < 500
