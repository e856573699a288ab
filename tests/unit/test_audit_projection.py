"""Projections of an audit entry: FHIR R4 AuditEvent (BALP style) and the portal's French history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from fhirclient.models.auditevent import AuditEvent

from dmp.audit import GENESIS, AuditAction, AuditRecord, StoredEntry, history_line, to_audit_event
from dmp.audit.actions import ACTIONS, action_info

PID = UUID("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f")
AT = datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)  # 10:30 in Paris
BASE = "https://dmp.example.org/fhir"
DOCS = tuple(f"DocumentReference/{UUID(int=i)}" for i in range(1, 4))


def entry(**kw: Any) -> StoredEntry:
    base: dict[str, Any] = {
        "action": AuditAction.DOCUMENT_RETRIEVE,
        "patient_id": PID,
        "at": AT,
        "actor_kind": "professional",
        "actor_id": "810001234565",
        "actor_name": "Charles MULLER",
        "actor_profession": "10",
        "actor_specialty": "SM26",
        "actor_structure_id": "1750803447",
        "actor_structure_name": "Cabinet du Parc",
        "software": "LPS Démo 1.0",
        "rule_id": "R-LECTURE-PS",
        "target_ids": DOCS,
        "source_address": "192.0.2.10",
    }
    base.update(kw)
    return StoredEntry.build(AuditRecord(**base), 7, GENESIS)


def valid(event: dict[str, Any]) -> AuditEvent:
    return AuditEvent(event, strict=True)


def test_document_retrieval_event() -> None:
    e = entry()
    ev = to_audit_event(e, BASE)
    model = valid(ev)
    assert model.id == str(e.id)
    assert ev["type"]["code"] == "rest"
    assert {(c["system"], c["code"]) for c in ev["subtype"]} >= {
        ("http://hl7.org/fhir/restful-interaction", "read"),
        ("urn:ihe:event-type-code", "ITI-68"),
    }
    assert ev["action"] == "R" and ev["outcome"] == "0"
    assert ev["recorded"] == "2026-11-23T09:30:15.000Z"
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert ev["purposeOfEvent"][1]["coding"][0]["code"] == "normal"
    user = ev["agent"][0]
    assert user["requestor"] is True
    assert user["who"]["identifier"] == {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810001234565"}
    assert user["who"]["display"] == "Charles MULLER"
    assert user["network"] == {"address": "192.0.2.10", "type": "2"}
    assert user["role"][0]["coding"][0]["display"] == "Médecin"
    org = ev["agent"][1]
    assert org["who"]["identifier"] == {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1750803447"}
    assert ev["agent"][2]["who"]["display"] == "LPS Démo 1.0"
    assert ev["source"]["observer"]["display"].startswith("DMP")
    refs = [x["what"]["reference"] for x in ev["entity"] if "what" in x]
    assert refs == [f"Patient/{PID}", *DOCS]
    details = {d["type"]: d["valueString"] for d in ev["entity"][-1]["detail"]}
    assert details["rule"] == "R-LECTURE-PS"
    assert details["chain-position"] == "7" and details["chain-hash"] == e.hash


def test_break_glass_event_and_line() -> None:
    e = entry(action=AuditAction.BREAK_GLASS, access_mode="bris_de_glace",
              justification="patient inconscient", target_ids=())
    ev = to_audit_event(e, BASE)
    valid(ev)
    assert ev["type"]["code"] == "110113"
    assert any(c["code"] == "110127" for c in ev["subtype"])
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert ev["purposeOfEvent"][1]["coding"][0]["code"] == "bris_de_glace"
    details = {d["type"]: d["valueString"] for d in ev["entity"][-1]["detail"]}
    assert details["justification"] == "patient inconscient"
    line = history_line(e)
    assert line.text == (
        "Dr Charles MULLER (Médecin, Cabinet du Parc) a ouvert un accès d'urgence au dossier"
        " — en bris de glace : « patient inconscient »"
    )
    assert line.emergency


def test_history_line_for_a_normal_read() -> None:
    item = history_line(entry())
    assert item.text == "Dr Charles MULLER (Médecin, Cabinet du Parc) a consulté 3 documents — accès normal"
    assert item.when == "le 23/11/2026 à 10:30"
    assert (item.who, item.profession, item.structure) == ("Dr Charles MULLER", "Médecin", "Cabinet du Parc")
    assert item.mode == "accès normal" and not item.emergency
    one = history_line(entry(target_ids=DOCS[:1]))
    assert one.what == "a consulté un document"


def test_history_lines_for_other_actors_and_modes() -> None:
    nurse = history_line(entry(actor_name="Anne LEROY", actor_profession="60",
                               action=AuditAction.DOCUMENT_PUBLISH, target_ids=DOCS[:1],
                               access_mode="medecin_traitant"))
    assert nurse.text == ("Anne LEROY (Infirmier, Cabinet du Parc) a ajouté un document"
                          " — accès en tant que médecin traitant")
    centre15 = history_line(entry(action=AuditAction.CENTRE_15, access_mode="centre_15", target_ids=(),
                                  actor_structure_name="SAMU 75"))
    assert centre15.text == ("Dr Charles MULLER (Médecin, SAMU 75) a accédé au dossier depuis le centre de "
                             "régulation — accès par le centre de régulation (centre 15)")
    refused = history_line(entry(outcome="refused", detail="professionnel bloqué par le patient",
                                 target_ids=DOCS[:1]))
    assert refused.text == ("Dr Charles MULLER (Médecin, Cabinet du Parc) — tentative refusée : consultation "
                            "d'un document (professionnel bloqué par le patient) — accès normal")
    patient = history_line(entry(actor_kind="patient", actor_id="279035121518989", actor_name="Marie DUPONT",
                                 actor_profession=None, actor_structure_name=None, actor_structure_id=None,
                                 action=AuditAction.PATIENT_LOGIN, access_mode="patient", target_ids=()))
    assert patient.text == "Marie DUPONT (patient) s'est connecté(e) à l'espace DMP"
    rep = history_line(entry(actor_kind="representative", actor_id="REP-1", actor_name="Jean DUPONT",
                             actor_profession=None, actor_structure_name=None, actor_structure_id=None,
                             on_behalf_of="279035121518989", on_behalf_of_name="Léa DUPONT",
                             on_behalf_of_role="representative", action=AuditAction.CONSENT_CHANGE,
                             access_mode="representant_legal", target_ids=()))
    assert rep.text == ("Jean DUPONT (représentant légal), en tant que représentant légal de Léa DUPONT "
                        "a modifié les autorisations d'accès au dossier")
    desk = history_line(entry(actor_kind="operator", actor_id="guichet:Sophie", actor_name="Sophie",
                              actor_profession=None, actor_structure_name=None, actor_structure_id=None,
                              action=AuditAction.RECORD_CLOSE, target_ids=(), software=None))
    assert desk.text == "Sophie (guichet d'accueil) a fermé le dossier"


@pytest.mark.parametrize("action", list(AuditAction))
@pytest.mark.parametrize("outcome", ["success", "refused", "error"])
def test_every_action_gives_a_valid_audit_event(action: AuditAction, outcome: str) -> None:
    e = entry(action=action, outcome=outcome, detail="motif de test")
    ev = to_audit_event(e, BASE)
    valid(ev)
    assert ev["action"] == ACTIONS[action].fhir_action
    assert ev["outcome"] == {"success": "0", "refused": "4", "error": "8"}[outcome]
    assert ("outcomeDesc" in ev) == (outcome != "success")
    assert history_line(e).text


@pytest.mark.parametrize("kind", ["patient", "representative", "operator", "system"])
def test_non_professional_agents_and_nil_record(kind: str) -> None:
    e = entry(patient_id=None, actor_kind=kind, actor_id="279035121518989", actor_name="Marie DUPONT",
              actor_profession=None, actor_structure_id=None, actor_structure_name=None, software=None,
              source_address=None, action=AuditAction.PATIENT_LOGIN, outcome="refused", target_ids=(),
              on_behalf_of="ADMIN-1", on_behalf_of_role="administrator")
    ev = to_audit_event(e, BASE)
    valid(ev)
    assert not any(x.get("what", {}).get("reference", "").startswith("Patient/") for x in ev["entity"])
    assert ev["agent"][-1]["role"][0]["text"] == "administrateur du dossier"


def test_unknown_action_code_still_renders() -> None:
    info = action_info("document.future")
    assert "document.future" in info.label and info.fhir_action == "E"


def test_a_refusal_names_the_attempted_action_once() -> None:
    """An ``access.refused`` entry (services.trail.refused) reads « tentative refusée : <what was
    attempted> (<reason>) », not « accès refusé (document.retrieve refusé : …) »."""
    detail = "access.break_glass refusé : le patient a refusé l'accès en bris de glace"
    refused = history_line(entry(action=AuditAction.ACCESS_REFUSED, outcome="refused", detail=detail,
                                 target_ids=()))
    assert refused.what == ("tentative refusée : accès en urgence (bris de glace) "
                            "(le patient a refusé l'accès en bris de glace)")
    assert refused.text == f"Dr Charles MULLER (Médecin, Cabinet du Parc) — {refused.what} — accès normal"
    assert "refusé :" not in refused.text and "access." not in refused.text
    unknown = history_line(entry(action=AuditAction.ACCESS_REFUSED, outcome="refused",
                                 detail="x.y refusé : z"))
    assert unknown.what == "tentative refusée : accès au dossier (z)"
    bare = history_line(entry(action=AuditAction.ACCESS_REFUSED, outcome="refused", detail=None))
    assert bare.what == "tentative refusée : accès au dossier"
