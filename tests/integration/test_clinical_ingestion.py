"""Ingestion at publication: facts stored sealed with the record's key; a failure never costs the document."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from helpers import one_doc_bundle
from sqlalchemy import select

from conftest import Api, Identity
from dmp.clinical.extract import MAX_DEPTH
from dmp.fhir.validate import validate
from dmp.services.publish import record_dek
from dmp.store import crypto
from dmp.store.schema import clinical_fact, clinical_ingestion

H = '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
PROBLEM = (
    H + "<id root='1.2.250.1.999.1' extension='P1'/><component><structuredBody><component><section>"
    "<code code='11450-4' codeSystem='2.16.840.1.113883.6.1'/><title>Pathologie en cours</title>"
    "<entry><act classCode='ACT' moodCode='EVN'><templateId root='1.3.6.1.4.1.19376.1.5.3.1.4.5.2'/>"
    "<statusCode code='active'/><entryRelationship typeCode='SUBJ'>"
    "<observation classCode='OBS' moodCode='EVN'>"
    "<templateId root='1.3.6.1.4.1.19376.1.5.3.1.4.5'/><id root='12DA3A06-18E7-40B7-9397-1FA5B1552472'/>"
    "<effectiveTime><low value='20190811'/></effectiveTime>"
    "<value xsi:type='CD' code='I10' codeSystem='2.16.840.1.113883.6.3'"
    " displayName='Hypertension essentielle'/>"
    "</observation></entryRelationship></act></entry>"
    "<entry><observation classCode='OBS' moodCode='EVN'><templateId root='1.3.6.1.4.1.19376.1.3.1.6'/>"
    "<code code='2345-7' codeSystem='2.16.840.1.113883.6.1' displayName='Glucose'/>"
    "<effectiveTime value='20261118073000+0100'/><value xsi:type='PQ' value='1.32' unit='g/L'/>"
    "</observation></entry>"
    "</section></component></structuredBody></component></ClinicalDocument>"
).encode()


def _publish(api: Api, ident: Identity, content: bytes) -> uuid.UUID:
    b, _ = one_doc_bundle(ident, content)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    return uuid.UUID(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _rows(api: Api, table: Any, doc_id: uuid.UUID) -> list[Any]:
    with api.runtime.engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.document_id == doc_id)))


def test_facts_are_stored_sealed_and_valid(api: Api, patient: Identity) -> None:
    doc_id = _publish(api, patient, PROBLEM)
    (outcome,) = _rows(api, clinical_ingestion, doc_id)
    assert (outcome.status, outcome.fact_count, outcome.detail) == ("ok", 2, None)
    facts = sorted(_rows(api, clinical_fact, doc_id), key=lambda r: r.ordinal)
    assert [(f.kind, f.code, f.status) for f in facts] == [
        ("problem", "I10", "active"),
        ("lab_result", "2345-7", None),
    ]
    assert (facts[1].value_number, facts[1].value_unit) == (1.32, "g/L")
    assert facts[1].effective_time.isoformat() == "2026-11-18T06:30:00+00:00"
    pid = facts[0].patient_id
    with api.runtime.engine.connect() as conn:
        dek = record_dek(conn, api.runtime, pid)
    for f in facts:
        assert b"I10" not in f.resource_sealed and b"Glucose" not in f.resource_sealed
        resource = json.loads(crypto.open_sealed(dek, pid, f.sha256_hex, f.resource_sealed))
        validate(resource, f.resource_type)
        assert resource["id"] == f.id == f"{doc_id}-{f.ordinal}"
        assert resource["meta"]["source"] == f"DocumentReference/{doc_id}"


def test_extraction_failure_keeps_the_document_and_is_recorded(api: Api, patient: Identity) -> None:
    depth = MAX_DEPTH + 5  # readable by the header checks, refused by the extraction's depth bound
    content = (
        H + "<id root='1.2.3'/>" + "<component>" * depth + "</component>" * depth + "</ClinicalDocument>"
    ).encode()
    doc_id = _publish(api, patient, content)
    (outcome,) = _rows(api, clinical_ingestion, doc_id)
    assert outcome.status == "error" and "imbriqué" in outcome.detail
    assert _rows(api, clinical_fact, doc_id) == []
    assert api.get(f"DocumentReference/{doc_id}").status_code == 200


# ---- issue 12 item 4: the failure is visible to the author and to the operator -------------

DEEP = MAX_DEPTH + 5
TOO_DEEP = (
    H + "<id root='1.2.3'/>" + "<component>" * DEEP + "</component>" * DEEP + "</ClinicalDocument>"
).encode()


def _fhir_document(*resources: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "document",
            "entry": [
                {"resource": {"resourceType": "Composition", "status": "final", "title": "Synthèse"}},
                *({"resource": r} for r in resources),
            ],
        }
    ).encode()


def _publish_response(api: Api, ident: Identity, content: bytes, **kw: Any) -> tuple[uuid.UUID, Any]:
    b, _ = one_doc_bundle(ident, content, **kw)
    resp = api.post("", b)
    assert resp.status_code == 200, resp.text
    entry = resp.json()["entry"][1]["response"]
    return uuid.UUID(entry["location"].split("/")[1]), entry


def test_the_author_is_told_in_the_iti65_response(api: Api, patient: Identity) -> None:
    doc_id, entry = _publish_response(api, patient, TOO_DEEP)
    (issue,) = entry["outcome"]["issue"]
    assert issue["severity"] == "warning"
    assert issue["diagnostics"].startswith("Document enregistré ; extraction des données cliniques en échec")
    assert "imbriqué" in issue["diagnostics"]
    validate(entry["outcome"], "OperationOutcome")
    _, fine = _publish_response(api, patient, PROBLEM)
    assert "outcome" not in fine  # nothing to say when every fact was read


def test_a_fhir_document_with_an_unreadable_entry_is_partial(api: Api, patient: Identity) -> None:
    lab = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"text": "Glycémie"},
        "valueQuantity": {"value": "beaucoup"},
    }
    asthma = {"resourceType": "Condition", "code": {"text": "Asthme"}}
    content = _fhir_document(lab, asthma)
    doc_id, entry = _publish_response(
        api,
        patient,
        content,
        mime_type="application/fhir+json",
        format_code="urn:asipSante:modelesHorsProfils:2011",
    )
    (outcome,) = _rows(api, clinical_ingestion, doc_id)
    assert (outcome.status, outcome.fact_count) == ("partial", 1)
    assert "entrée 2 (Observation) illisible" in outcome.detail
    assert "partielle" in entry["outcome"]["issue"][0]["diagnostics"]


def test_the_operator_status_counts_and_lists_failures(api: Api, patient: Identity, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from dmp.cli import main as cli

    _publish(api, patient, PROBLEM)
    failed = _publish(api, patient, TOO_DEEP)
    env = {
        "DMP_VAR_DIR": str(tmp_path),
        "DMP_DATABASE_URL": api.runtime.engine.url.render_as_string(hide_password=False),
        "DMP_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),  # the API runtime's key (conftest)
        "DMP_BASE_URL": "http://testserver",
    }
    res = CliRunner().invoke(cli, ["ingestion", "status", "--limit", "1000"], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    counts = {line.split(" : ")[0]: int(line.split(" : ")[1]) for line in lines[:4]}
    assert counts["Documents lus"] >= 1 and counts["En échec"] >= 1
    (line,) = [x for x in lines if str(failed) in x]
    assert "échec" in line and "imbriqué" in line
    assert "Hypertension" not in res.output and "2345-7" not in res.output  # no health content
