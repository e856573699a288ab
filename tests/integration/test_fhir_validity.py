"""Everything the server emits is valid FHIR R4 (4.0.1), and its CapabilityStatement tells the truth."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from access_helpers import as_patient, authorise, record_id
from helpers import CDA, bundle, doc, failing_blobs, one_doc_bundle
from outcomes import assert_outcome
from starlette.routing import Route
from starlette.testclient import TestClient
from test_mhd_flow import ans_example_bundle, open_record_for

from conftest import BASE, Api, Identity, patient_resource
from dmp.api import fhir_routes
from dmp.domain.actor import Actor, ActorKind
from dmp.fhir import FHIR_VERSION
from dmp.fhir.documentreference import FLAG_SYSTEM, IS_ARCHIVED_URL
from dmp.fhir.validate import model_class
from dmp.services import records

# FHIRPath "simple" subset allowed in OperationOutcome.issue.expression (R4): element names,
# repetition indexes and the child accessor.
SIMPLE_FHIRPATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z][A-Za-z0-9_]*(\[\d+\])?)*")


def no_empty_values(node: Any, where: str = "") -> None:
    """FHIR JSON has no null, no empty string, array or object (R4 §2.6.2 JSON representation)."""
    assert node is not None and node != "" and node != [] and node != {}, f"empty value at {where or '/'}"
    if isinstance(node, dict):
        for k, v in node.items():
            no_empty_values(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            no_empty_values(v, f"{where}/{i}")


def valid(resource: dict[str, Any], expected: str | None = None) -> dict[str, Any]:
    """Parse ``resource`` with the fhirclient R4 model of its type, strictly; return it."""
    rtype = resource["resourceType"]
    if expected:
        assert rtype == expected, resource
    model = model_class(rtype)(resource, strict=True)  # raises FHIRValidationError otherwise
    model.as_json()  # checks the mandatory elements are there
    no_empty_values(resource)
    return resource


def fhir_json(resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == "application/fhir+json"
    body: dict[str, Any] = resp.json()
    return body


def search_params(ident: Identity) -> dict[str, str]:
    return {"patient.identifier": f"{ident.system}|{ident.nir}"}


# ---- resources ----------------------------------------------------------------------------


def test_capability_statement_is_valid(api: Api) -> None:
    cs = valid(fhir_json(api.client.get("/fhir/metadata")), "CapabilityStatement")
    assert cs["fhirVersion"] == FHIR_VERSION == "4.0.1"
    assert cs["kind"] == "instance" and cs["status"] == "active"


def test_patient_resources_are_valid(api: Api, patient: Identity) -> None:
    found = valid(
        fhir_json(api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"})), "Bundle"
    )
    assert found["type"] == "searchset" and found["total"] == 1
    p = valid(found["entry"][0]["resource"], "Patient")
    valid(fhir_json(api.get(f"Patient/{p['id']}")), "Patient")


def test_created_and_closed_patient_are_valid(api: Api) -> None:
    from conftest import new_identity

    ident = new_identity(family="DE LA FONTAINE", given="Jean")
    p = patient_resource(ident)
    p["name"].append({"use": "usual", "family": "FONTAINE", "given": ["Jeannot"]})
    created = valid(fhir_json(api.post("Patient", p), 201), "Patient")
    assert [n["use"] for n in created["name"]] == ["official", "usual"]
    with api.runtime.engine.begin() as conn:
        records.close(
            conn,
            Actor(ActorKind.OPERATOR, "guichet:test", "Agent"),
            uuid.UUID(created["id"]),
            "Demande du patient",
            api.runtime.now(),
        )
    closed = valid(fhir_json(api.get(f"Patient/{created['id']}")), "Patient")
    assert closed["active"] is False
    closed_no_reason = new_identity()
    pid = fhir_json(api.post("Patient", patient_resource(closed_no_reason)), 201)["id"]
    with api.runtime.engine.begin() as conn:
        records.close(
            conn, Actor(ActorKind.OPERATOR, "guichet:test", "Agent"), uuid.UUID(pid), None, api.runtime.now()
        )
    valid(fhir_json(api.get(f"Patient/{pid}")), "Patient")
    # An empty search result is a valid searchset too.
    other = new_identity()
    empty = valid(
        fhir_json(api.get("Patient", params={"identifier": f"{other.system}|{other.nir}"})), "Bundle"
    )
    assert empty["total"] == 0 and "entry" not in empty


def test_publication_answers_and_documents_are_valid(api: Api, patient: Identity) -> None:
    d1 = doc(patient, title="Premier", flags=("MASQUE_PS",))
    d2 = doc(patient, CDA, title="Second", binary_url=None)  # inline attachment.data
    resp = valid(fhir_json(api.post("", bundle(patient, (d1, CDA), (d2, None)))), "Bundle")
    assert resp["type"] == "transaction-response"
    assert [e["response"]["status"] for e in resp["entry"]] == ["201 Created"] * 4
    doc_id = resp["entry"][1]["response"]["location"].split("/")[1]
    list_id = resp["entry"][0]["response"]["location"].split("/")[1]

    searchset = valid(
        fhir_json(
            api.get(
                "DocumentReference", params={**search_params(patient), "_total": "accurate", "_count": "1"}
            )
        )
    )
    assert searchset["type"] == "searchset" and len(searchset["entry"]) == 1
    nxt = next(link["url"] for link in searchset["link"] if link["relation"] == "next")
    valid(fhir_json(api.client.get(nxt, headers=api.headers())), "Bundle")
    read = valid(fhir_json(api.get(f"DocumentReference/{doc_id}")), "DocumentReference")
    assert FLAG_SYSTEM in json.dumps(read["securityLabel"])
    valid(fhir_json(api.get(f"List/{list_id}")), "List")
    lists = valid(fhir_json(api.get("List", params=search_params(patient))), "Bundle")
    assert [e["resource"]["id"] for e in lists["entry"]] == [list_id]
    binary = valid(fhir_json(api.get(f"Binary/{doc_id}")), "Binary")
    assert binary["contentType"] == "text/xml"
    empty = valid(
        fhir_json(api.get("DocumentReference", params={**search_params(patient), "type": "11502-2"}))
    )
    assert "entry" not in empty


def test_updated_and_replaced_documents_are_valid(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, title="v1")
    old = fhir_json(api.post("", b))["entry"][1]["response"]["location"].split("/")[1]
    path = f"DocumentReference/{old}"
    valid(
        fhir_json(
            api.patch(
                path,
                [
                    {
                        "op": "add",
                        "path": "/securityLabel/-",
                        "value": {"coding": [{"system": FLAG_SYSTEM, "code": "INVISIBLE_PATIENT"}]},
                    }
                ],
            )
        )
    )
    archived = valid(
        fhir_json(
            api.patch(
                path,
                [
                    {
                        "op": "add",
                        "path": "/extension",
                        "value": [{"url": IS_ARCHIVED_URL, "valueBoolean": True}],
                    }
                ],
            )
        )
    )
    assert archived["extension"][0]["url"] == IS_ARCHIVED_URL
    b, _ = one_doc_bundle(patient, title="v2", replaces=path)
    new = fhir_json(api.post("", b))["entry"][1]["response"]["location"].split("/")[1]
    superseded = valid(fhir_json(api.get(path)), "DocumentReference")
    assert superseded["status"] == "superseded"
    replacing = valid(fhir_json(api.get(f"DocumentReference/{new}")), "DocumentReference")
    assert replacing["relatesTo"][0]["target"]["reference"] == path
    valid(fhir_json(api.get("DocumentReference", params={**search_params(patient), "status": "superseded"})))
    b, _ = one_doc_bundle(patient, title="à supprimer")
    gone = fhir_json(api.post("", b))["entry"][1]["response"]["location"].split("/")[1]
    deleted = valid(
        fhir_json(
            api.patch(
                f"DocumentReference/{gone}",
                [{"op": "replace", "path": "/status", "value": "entered-in-error"}],
            )
        )
    )
    assert deleted["status"] == "entered-in-error"


def test_ans_example_publication_is_served_valid(api: Api) -> None:
    b, ins = ans_example_bundle(api)
    open_record_for(api, ins)
    resp = valid(fhir_json(api.post("", b)), "Bundle")
    doc_id = resp["entry"][1]["response"]["location"].split("/")[1]
    served = valid(fhir_json(api.get(f"DocumentReference/{doc_id}")), "DocumentReference")
    assert served["contained"]  # PractitionerRole, Practitioner, Organization... kept and still valid
    lists = fhir_json(api.get("List", params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.8|{ins}"}))
    valid(lists, "Bundle")
    valid(lists["entry"][0]["resource"], "List")


def test_consent_resources_are_valid(api: Api, patient: Identity) -> None:
    stored = valid(authorise(api, patient, "doctor2"), "Consent")
    assert stored["status"] == "active"
    pid = record_id(api, patient)
    listed = valid(
        fhir_json(api.get("Consent", params={"patient": f"Patient/{pid}"}, who=as_patient(api, patient))),
        "Bundle",
    )
    assert stored["id"] in {e["resource"]["id"] for e in listed["entry"]}
    for entry in listed["entry"]:
        valid(entry["resource"], "Consent")


# ---- OperationOutcomes --------------------------------------------------------------------


def test_operation_outcomes_are_valid(api: Api, patient: Identity) -> None:
    outcomes = []
    outcomes.append(
        api.client.post(
            "/fhir/", content=b"{", headers=api.headers(**{"Content-Type": "application/fhir+json"})
        )
    )  # MALFORMED_JSON
    outcomes.append(
        api.client.post("/fhir/", content=b"{}", headers=api.headers(**{"Content-Type": "text/plain"}))
    )  # UNSUPPORTED_MEDIA_TYPE
    b, d = one_doc_bundle(patient)
    d["type"]["coding"][0]["code"] = "00000-0"
    outcomes.append(api.post("", b))  # UNKNOWN_CODE, with an expression
    b, d = one_doc_bundle(patient)
    del d["masterIdentifier"]
    outcomes.append(api.post("", b))  # MISSING_ELEMENT
    outcomes.append(api.client.get("/fhir/DocumentReference"))  # AUTH_REQUIRED
    outcomes.append(api.get(f"DocumentReference/{uuid.uuid4()}"))  # NOT_FOUND
    outcomes.append(
        api.get(
            "DocumentReference",
            params={"patient.identifier": f"{patient.system}|{patient.nir}", "titre": "x"},
        )
    )  # INVALID_SEARCH
    outcomes.append(api.get("Encounter"))  # UNKNOWN_RESOURCE_TYPE
    b, _ = one_doc_bundle(patient)
    doc_id = fhir_json(api.post("", b))["entry"][1]["response"]["location"].split("/")[1]
    outcomes.append(
        api.patch(f"DocumentReference/{doc_id}", [{"op": "add", "path": "/description", "value": "x"}])
    )
    outcomes.append(api.get("DocumentReference", who="doctor2", params=search_params(patient)))  # FORBIDDEN
    client = TestClient(api.app, base_url=BASE, raise_server_exceptions=False)
    with failing_blobs(api, fail_at=1), client:
        outcomes.append(
            client.post(
                "/fhir/",
                content=json.dumps(one_doc_bundle(patient)[0]),
                headers=api.headers(**{"Content-Type": "application/fhir+json"}),
            )
        )

    codes = []
    for resp in outcomes:
        assert resp.status_code >= 400
        body = valid(resp.json(), "OperationOutcome")
        issue = body["issue"][0]
        assert issue["severity"] == ("fatal" if resp.status_code >= 500 else "error")
        codes.append(issue["details"]["coding"][0]["code"])
    assert codes == [
        "MALFORMED_JSON",
        "UNSUPPORTED_MEDIA_TYPE",
        "UNKNOWN_CODE",
        "MISSING_ELEMENT",
        "AUTH_REQUIRED",
        "NOT_FOUND",
        "INVALID_SEARCH",
        "UNKNOWN_RESOURCE_TYPE",
        "METHOD_NOT_ALLOWED",
        "FORBIDDEN",
        "INTERNAL_ERROR",
    ]


def test_closed_record_outcome_is_valid(api: Api, patient: Identity) -> None:
    pid = fhir_json(api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"}))["entry"][0][
        "resource"
    ]["id"]
    with api.runtime.engine.begin() as conn:
        records.close(
            conn, Actor(ActorKind.OPERATOR, "guichet:test", "Agent"), uuid.UUID(pid), None, api.runtime.now()
        )
    resp = api.get("DocumentReference", params=search_params(patient))
    assert_outcome(resp, 409, "RECORD_CLOSED")
    valid(resp.json(), "OperationOutcome")


@pytest.mark.parametrize("spoil", ["type", "format", "facility"])
def test_outcome_expressions_are_fhirpath(api: Api, patient: Identity, spoil: str) -> None:
    b, d = one_doc_bundle(patient)
    if spoil == "type":
        d["type"]["coding"][0]["code"] = "00000-0"
    elif spoil == "format":
        d["content"][0]["format"]["code"] = "urn:inconnu"
    else:
        d["context"]["facilityType"]["coding"][0]["code"] = "SA99"
    issue = assert_outcome(api.post("", b), 422, "UNKNOWN_CODE")
    for expression in issue["expression"]:
        assert SIMPLE_FHIRPATH.fullmatch(expression), expression


# ---- the CapabilityStatement tells the truth ----------------------------------------------


def _served() -> dict[str, set[tuple[str, str]]]:
    """(method, path) pairs the router serves, by resource type (catch-all routes excluded)."""
    served: dict[str, set[tuple[str, str]]] = {}
    for route in fhir_routes.routes:
        assert isinstance(route, Route)
        rtype = route.path.strip("/").split("/")[0]
        if rtype in ("", "metadata", "{rtype}", ".well-known"):  # SMART discovery is not a resource
            continue
        for method in route.methods or ():
            if method != "HEAD":
                served.setdefault(rtype, set()).add((method, route.path))
    return served


INTERACTIONS = {
    "read": ("GET", "/{type}/{id}"),
    "vread": ("GET", "/{type}/{id}/_history/{vid}"),
    "search-type": ("GET", "/{type}"),
    "patch": ("PATCH", "/{type}/{id}"),
    "create": ("POST", "/{type}"),
    "update": ("PUT", "/{type}/{id}"),
    "delete": ("DELETE", "/{type}/{id}"),
}


def test_capability_statement_lists_exactly_what_the_router_serves(api: Api) -> None:
    cs = fhir_json(api.client.get("/fhir/metadata"))
    (rest,) = cs["rest"]
    declared = {r["type"]: {i["code"] for i in r["interaction"]} for r in rest["resource"]}
    served = _served()
    assert set(declared) == set(served)
    assert {"DocumentReference", "List", "Binary", "Patient"} <= set(declared)
    for rtype, interactions in declared.items():
        expected = {
            (m, p.format(type=rtype, id="{id}", vid="{vid}"))
            for code, (m, p) in INTERACTIONS.items()
            if code in interactions
        }
        # Conditional PATCH (PATCH on the type with ?identifier=) comes with "patch", and the
        # form-encoded POST [type]/_search with "search-type" (FHIR R4 §3.1.1.3.1).
        extra = {("PATCH", f"/{rtype}")} if "patch" in interactions else set()
        if "search-type" in interactions:
            extra.add(("POST", f"/{rtype}/_search"))
        # A declared operation is served on the instance (GET [type]/[id]/$name, as IPS $summary).
        resource = next(r for r in rest["resource"] if r["type"] == rtype)
        extra |= {("GET", f"/{rtype}/{{id}}/${op['name']}") for op in resource.get("operation", [])}
        assert served[rtype] == expected | extra, rtype
    assert [i["code"] for i in rest["interaction"]] == ["transaction"]
    assert any(
        r.path == "/" and "POST" in (r.methods or ()) for r in fhir_routes.routes if isinstance(r, Route)
    )


def test_capability_statement_token_url_is_the_token_endpoint(api: Api) -> None:
    cs = fhir_json(api.client.get("/fhir/metadata"))
    security = cs["rest"][0]["security"]
    (oauth,) = [
        e
        for e in security["extension"]
        if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    ]
    (token_url,) = [e["valueUri"] for e in oauth["extension"] if e["url"] == "token"]
    assert token_url == f"{BASE}/oauth/token" == api.runtime.settings.token_audience
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert cs["implementation"]["url"] == f"{BASE}/fhir"
    # The advertised URL really issues tokens, for assertions addressed to it.
    from dmp.demo.client import token_form

    resp = api.client.post(token_url.removeprefix(BASE), data=token_form(api.cards["doctor"].dir, token_url))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "bearer"


def _sample(name: str, ptype: str, doc_id: str) -> str:
    if ptype == "date":
        return "ge2020-01-01"
    if ptype == "reference":
        return f"DocumentReference/{doc_id}"
    return {
        "isArchived": "false",
        "status": "current",
        "security-label": "N",
        "_id": doc_id,
        "code": "submissionset",
        "_content": "consultation",  # a word (a lone letter is not one)
    }.get(name, "x")


def test_declared_search_parameters_are_accepted(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient)
    doc_id = fhir_json(api.post("", b))["entry"][1]["response"]["location"].split("/")[1]
    pid = fhir_json(api.get("Patient", params={"identifier": f"{patient.system}|{patient.nir}"}))["entry"][0][
        "resource"
    ]["id"]
    cs = fhir_json(api.client.get("/fhir/metadata"))
    checked = 0
    for res in cs["rest"][0]["resource"]:
        for param in res.get("searchParam", []):
            name, ptype = param["name"], param["type"]
            if res["type"] == "Patient":
                params = {name: f"{patient.system}|{patient.nir}"}
            elif name == "patient":
                params = {"patient": f"Patient/{pid}"}
            elif name == "patient.identifier":
                params = search_params(patient)
            else:
                params = {**search_params(patient), name: _sample(name, ptype, doc_id)}
            resp = api.get(res["type"], params=params)
            assert resp.status_code == 200, (res["type"], name, resp.text)
            valid(resp.json(), "Bundle")
            checked += 1
    assert checked == sum(len(r.get("searchParam", [])) for r in cs["rest"][0]["resource"]) >= 18 + 8 + 1
