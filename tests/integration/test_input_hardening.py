"""Bad input never answers 500: extreme dates, control characters, header injection, limits,
charsets and the validator's text (each refused with a French OperationOutcome, or handled)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import CDA, one_doc_bundle
from outcomes import assert_outcome
from test_policy_api import patient_id

from conftest import Api, Identity


def _post_raw(api: Api, path: str, body: bytes, content_type: str = "application/fhir+json") -> Any:
    headers = api.headers(**{"Content-Type": content_type})
    return api.client.post(f"/fhir/{path}", content=body, headers=headers)


# ---- dates at the edges of FHIR's 0001–9999 ---------------------------------------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59+01:00", "9999-12-31T23:59:59Z"])
def test_year_9999_in_a_publication_date_is_stored(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient, date=value)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    found = api.get("DocumentReference", params={"patient.identifier": f"{patient.system}|{patient.nir}"})
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 1


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_instant_beyond_utc_range_is_refused(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient, date=value)
    issue = assert_outcome(api.post("", b), 422, "INVALID_VALUE", value, "hors de la plage")
    assert issue["expression"][0].startswith("DocumentReference.")


def test_year_0001_in_utc_is_stored(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, date="0001-01-01T00:00:00Z")
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("value", ["9999-12-31", "9999", "0001-01-01", "0001"])
def test_extreme_list_date(api: Api, patient: Identity, value: str) -> None:
    b, _ = one_doc_bundle(patient)
    b["entry"][0]["resource"]["date"] = value
    resp = api.post("", b)
    if value.startswith("0001"):
        assert_outcome(resp, 422, "INVALID_VALUE", "List.date", "hors de la plage")
    else:
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("rtype", ["DocumentReference", "List"])
@pytest.mark.parametrize(
    "param",
    [
        "date=9999-12-31",
        "date=9999",
        "date=lt0001-01-01",
        "date=ge9999-12-31",
        "date=le9999-12-31",
        "date=gt9999-12-31T23:59:59Z",
        "date=ne0001-01-01",
        "date=0001-01-01T00:00:00%2B14:00",
    ],
)
def test_extreme_date_searches_are_clamped(api: Api, patient: Identity, rtype: str, param: str) -> None:
    b, _ = one_doc_bundle(patient)
    assert api.post("", b).status_code == 200
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    resp = api.get(f"{rtype}?{ref}&{param}")
    assert resp.status_code == 200, resp.text
    expected = 1 if param.split("=")[1][:2] in ("le", "ne") else 0
    assert resp.json()["total"] == expected, param


@pytest.mark.parametrize("param", ["period=ge9999-12-31", "period=lt0001-01-01", "creation=9999"])
def test_extreme_period_searches(api: Api, patient: Identity, param: str) -> None:
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    resp = api.get(f"DocumentReference?{ref}&{param}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == 0


def test_malformed_search_date_is_a_400(api: Api, patient: Identity) -> None:
    ref = f"patient.identifier={patient.system}|{patient.nir}"
    assert_outcome(api.get(f"DocumentReference?{ref}&date=2026-13-45"), 400, "INVALID_SEARCH", "date")
    assert_outcome(api.get(f"List?{ref}&date=10000-01-01"), 400, "INVALID_SEARCH", "date")


# ---- control characters: one check in the JSON reader, one in the parameter reader ------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x0b"])
def test_control_character_in_attachment_title(api: Api, patient: Identity, char: str) -> None:
    b, _ = one_doc_bundle(patient, title=f"CR{char}consultation")
    issue = assert_outcome(api.post("", b), 400, "CONTROL_CHARACTER", f"U+{ord(char):04X}", "attachment")
    assert issue["expression"] == ["Bundle.entry[1].resource.content[0].attachment.title"]


def test_nul_in_master_identifier(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, unique_id="1.2.250.1.999.\x00")
    assert_outcome(api.post("", b), 400, "CONTROL_CHARACTER", "U+0000", "masterIdentifier")


def test_nul_in_a_key_and_in_a_patient(api: Api) -> None:
    assert_outcome(api.post("Patient", {"resourceType": "Patient", "a\x00": 1}), 400, "CONTROL_CHARACTER")
    ops = [{"op": "replace", "path": "/description", "value": "x\x00"}]
    assert_outcome(api.patch("DocumentReference?identifier=x", ops), 400, "CONTROL_CHARACTER")


def test_tab_and_newlines_are_accepted(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, title="CR\tde\r\nconsultation")
    assert api.post("", b).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "DocumentReference?patient.identifier=%00",
        "DocumentReference?identifier=urn:oid:1.2%00",
        "DocumentReference?type=%01",
        "DocumentReference?x%00=1",
        "List?identifier=%00",
        "Patient?identifier=%00",
        "AuditEvent?patient=%00",
        "Consent?patient=%00",
    ],
)
def test_control_character_in_a_search_value(api: Api, patient: Identity, query: str) -> None:
    assert_outcome(api.get(query), 400, "CONTROL_CHARACTER", "paramètre")


def test_control_character_in_a_form_search_and_a_conditional_patch(api: Api, patient: Identity) -> None:
    resp = api.client.post(
        "/fhir/DocumentReference/_search",
        content=b"identifier=%00",
        headers=api.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert_outcome(resp, 400, "CONTROL_CHARACTER", "identifier")
    ops = [{"op": "replace", "path": "/description", "value": "x"}]
    assert_outcome(api.patch("DocumentReference?identifier=%00", ops), 400, "CONTROL_CHARACTER")


# ---- contentType: a media type, and never a broken header ---------------------------------


@pytest.mark.parametrize("mime", ["text/plain\r\nSet-Cookie: x=1", "text/plain\nX: y", "text", "tex t/plain"])
def test_content_type_must_be_a_media_type(api: Api, patient: Identity, mime: str) -> None:
    b, _ = one_doc_bundle(patient, mime_type=mime)
    issue = assert_outcome(api.post("", b), 422, "INVALID_VALUE", "attachment.contentType", "RFC 9110")
    assert issue["expression"] == ["DocumentReference.content.attachment.contentType"]


def test_content_type_with_parameters_is_accepted(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient, mime_type='text/xml; charset="utf-8"')
    assert api.post("", b).status_code == 200


def test_binary_of_a_stored_broken_content_type_falls_back(api: Api, patient: Identity) -> None:
    from sqlalchemy import update

    from dmp.store.schema import document

    b, _ = one_doc_bundle(patient)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    doc_id = resp.json()["entry"][1]["response"]["location"].split("/")[1]
    with api.runtime.engine.begin() as conn:  # as stored before contentType was checked
        conn.execute(update(document).values(mime_type="text/plain\r\nSet-Cookie: x=1"))
    raw = api.client.get(f"/fhir/Binary/{doc_id}", headers={**api.headers(), "Accept": "*/*"})
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/octet-stream"
    assert "set-cookie" not in raw.headers
    assert raw.content == CDA
    as_fhir = api.get(f"Binary/{doc_id}")
    assert as_fhir.status_code == 200
    assert as_fhir.json()["contentType"] == "text/plain\r\nSet-Cookie: x=1"


# ---- limits --------------------------------------------------------------------------------


def test_too_many_bundle_entries(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient)
    limit = api.runtime.settings.max_bundle_entries
    b["entry"] += [b["entry"][1]] * limit
    assert_outcome(api.post("", b), 413, "TOO_MANY_ENTRIES", f"{limit} au plus")


def test_submission_total_size(api: Api, patient: Identity) -> None:
    import dataclasses

    from helpers import bundle, doc

    api.runtime.settings = dataclasses.replace(
        api.runtime.settings, max_document_bytes=1000, max_submission_bytes=1500
    )
    content = CDA + b" " * (900 - len(CDA))
    docs = [(doc(patient, content), content), (doc(patient, content), content)]
    assert_outcome(api.post("", bundle(patient, *docs)), 413, "SUBMISSION_TOO_LARGE", "1,5 ko")
    assert api.post("", bundle(patient, docs[0])).status_code == 200


def test_too_many_search_parameters(api: Api, patient: Identity) -> None:
    limit = api.runtime.settings.max_search_parameters
    query = "&".join(["status=current"] * (limit + 1))
    assert_outcome(
        api.get(f"DocumentReference?{query}"), 422, "TOO_MANY_SEARCH_PARAMETERS", f"{limit} au plus"
    )
    form = "&".join(["status=current"] * limit)
    resp = api.client.post(
        "/fhir/DocumentReference/_search?status=current",
        content=form.encode(),
        headers=api.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert_outcome(resp, 422, "TOO_MANY_SEARCH_PARAMETERS")


# ---- charset -------------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", '"windows-1252"', "utf-16"])
def test_non_utf8_charset_is_refused(api: Api, patient: Identity, charset: str) -> None:
    b, _ = one_doc_bundle(patient)
    resp = _post_raw(api, "", json.dumps(b).encode(), f"application/fhir+json; charset={charset}")
    assert_outcome(resp, 415, "UNSUPPORTED_MEDIA_TYPE", "UTF-8", charset.strip('"').lower())


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
def test_utf8_charset_is_accepted(api: Api, patient: Identity, charset: str) -> None:
    b, _ = one_doc_bundle(patient)
    resp = _post_raw(api, "", json.dumps(b).encode(), f"application/fhir+json; charset={charset}")
    assert resp.status_code == 200, resp.text


# ---- the validator's English stays out of the French text ----------------------------------


def test_validator_text_is_french_and_names_the_element(api: Api, patient: Identity) -> None:
    b, _ = one_doc_bundle(patient)
    b["entry"][1]["resource"]["content"][0]["attachment"]["size"] = "grand"
    b["entry"][1]["resource"]["bogus"] = 1
    resp = api.post("", b)
    assert resp.status_code == 400, resp.text
    issues = resp.json()["issue"]
    texts = [i["diagnostics"] for i in issues]
    assert any("DocumentReference.content[0].attachment.size : type incorrect" in t for t in texts), texts
    assert any("DocumentReference.bogus : élément inconnu" in t for t in texts), texts
    for issue in issues:
        assert issue["details"]["coding"][0]["code"] == "INVALID_RESOURCE"
        for english in ("Wrong type", "Superfluous", "expecting", "does not match"):
            assert english not in issue["diagnostics"]
        assert issue["expression"][0].startswith("DocumentReference.")
    assert any("Wrong type" in i["expression"][1] for i in issues)


@pytest.mark.parametrize("body", [b"null", b"1", b'"x\\u0000"', b"[null, 1.5, true]"])
def test_json_scalars_reach_the_route(api: Api, body: bytes) -> None:
    resp = _post_raw(api, "Patient", body)
    assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome", resp.text


@pytest.mark.parametrize("value", ["ne2026-01-01", "sa2026-01-01", "eb2026-01-01", "ge2026-13-01", "lexyz"])
def test_audit_event_date_refuses_what_it_cannot_answer(api: Api, patient: Identity, value: str) -> None:
    """AuditEvent reads its date with the registry's one date reader: a prefix it does not
    implement is a 400 naming it, never a value silently read as another prefix."""
    pid = patient_id(api, patient)
    resp = api.get("AuditEvent", params={"patient": f"Patient/{pid}", "date": value})
    issue = assert_outcome(resp, 400, "INVALID_SEARCH")
    assert issue["expression"] == ["date"]
    if value[:2] in ("ne", "sa", "eb"):
        assert f"préfixe « {value[:2]} » non pris en charge" in issue["diagnostics"]
