"""FHIR R4 AuditEvent projection of an entry, in the style of IHE Basic Audit Log Patterns.

* ``type``: ``rest`` (RESTful operation), DICOM 110110 Patient Record (record lifecycle and
  consents), 110114 User Authentication (patient login), 110113 Security Alert (break-glass),
  110106 Export (the record's archive or printable summary, CS-06);
* ``subtype``: the FHIR restful interaction and, for MHD, the IHE transaction (ITI-65/66/67/68);
* ``purposeOfEvent``: v3 PurposeOfUse (TREAT, ETREAT for break-glass and centre 15, PATRQT
  for the patient, HOPERAT for the operator) and the CI-SIS access mode;
* agents: the person (IDNPS for a professional, requestor, network address), the structure,
  the principal acted for (on behalf of), the client software;
* entities: the patient, the documents, and the decision (rule id, mode, justification,
  position and hash in the record's chain).
"""

from __future__ import annotations

from typing import Any

from dmp.audit.actions import (
    ACCESS_MODE_LABELS,
    DCM,
    IHE_EVENT_TYPE,
    ITI,
    RESTFUL_INTERACTION,
    AccessMode,
    Outcome,
    action_info,
)
from dmp.audit.entry import StoredEntry
from dmp.domain.actor import ActorKind
from dmp.domain.professional import PROFESSIONS, SYSTEM_IDNPS, SYSTEM_IDNST, SYSTEM_TRE_G15
from dmp.fhir import CANONICAL
from dmp.fhir.common import Json, instant

# The brief names the CI-SIS nomenclature TRE_R248 for access modes; its published canonical
# URL could not be checked offline, so the codes are served under this implementation's
# canonical until it is (one constant to change).
SYSTEM_ACCESS_MODE = f"{CANONICAL}/CodeSystem/dmp-access-mode"
SYSTEM_PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SYSTEM_NIR = "urn:oid:1.2.250.1.213.1.4.8"
SYSTEM_OPERATOR = f"{CANONICAL}/sid/operator-agent"
SYSTEM_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
SYSTEM_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SYSTEM_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
SYSTEM_SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
SYSTEM_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
SYSTEM_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

OUTCOME_CODES: dict[str, str] = {Outcome.SUCCESS: "0", Outcome.REFUSED: "4", Outcome.ERROR: "8"}
_PURPOSE_DISPLAY = {
    "TREAT": "treatment",
    "ETREAT": "Emergency Treatment",
    "PATRQT": "patient requested",
    "HOPERAT": "healthcare operations",
}
_ON_BEHALF_LABELS = {
    "representative": "représentant légal",
    "administrator": "administrateur du dossier",
    "delegate": "délégué",
}


def _coding(system: str, code: str, display: str | None = None) -> Json:
    c: Json = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _purpose(e: StoredEntry) -> str:
    if e.actor_kind in (ActorKind.PATIENT, ActorKind.REPRESENTATIVE):
        return "PATRQT"
    if e.actor_kind in (ActorKind.OPERATOR, ActorKind.SYSTEM):
        return "HOPERAT"
    if e.access_mode in (AccessMode.BRIS_DE_GLACE, AccessMode.CENTRE_15):
        return "ETREAT"
    return "TREAT"


def _who(e: StoredEntry) -> Json:
    who: Json = {"display": e.actor_name}
    if e.actor_kind == ActorKind.PROFESSIONAL:
        who["identifier"] = {"system": SYSTEM_IDNPS, "value": e.actor_id}
    elif e.actor_kind in (ActorKind.PATIENT, ActorKind.REPRESENTATIVE) and e.actor_id.isdigit():
        who["identifier"] = {"system": SYSTEM_NIR, "value": e.actor_id}
    elif e.actor_id:
        who["identifier"] = {"system": SYSTEM_OPERATOR, "value": e.actor_id}
    return who


def _agents(e: StoredEntry, purpose: list[Json]) -> list[Json]:
    if e.actor_kind == ActorKind.SYSTEM:
        agent_type = _coding(DCM, "110150", "Application")
    else:
        agent_type = _coding(SYSTEM_SECURITY_ROLE, "humanuser", "human user")
    user: Json = {
        "type": {"coding": [agent_type]},
        "who": _who(e),
        "name": e.actor_name,
        "requestor": True,
        "purposeOfUse": purpose,
    }
    if e.actor_profession:
        user["role"] = [{"coding": [_coding(SYSTEM_TRE_G15, e.actor_profession,
                                            PROFESSIONS.get(e.actor_profession))]}]
    if e.source_address:
        user["network"] = {"address": e.source_address, "type": "2"}  # 2 = IP address
    agents = [user]
    if e.actor_structure_id or e.actor_structure_name:
        org: Json = {"display": e.actor_structure_name or e.actor_structure_id}
        if e.actor_structure_id:
            org["identifier"] = {"system": SYSTEM_IDNST, "value": e.actor_structure_id}
        agents.append({
            "type": {"coding": [_coding(SYSTEM_ROLE_CLASS, "PROV", "healthcare provider")]},
            "who": org,
            "requestor": False,
        })
    if e.on_behalf_of or e.on_behalf_of_name:
        principal: Json = {"display": e.on_behalf_of_name or e.on_behalf_of}
        if e.on_behalf_of:
            principal["identifier"] = {"value": e.on_behalf_of}
        agent: Json = {
            "type": {"coding": [_coding(SYSTEM_PARTICIPATION, "RESP", "responsible party")]},
            "who": principal,
            "requestor": False,
        }
        if e.on_behalf_of_role:
            agent["role"] = [{"text": _ON_BEHALF_LABELS.get(e.on_behalf_of_role, e.on_behalf_of_role)}]
        agents.append(agent)
    if e.software:
        client: Json = {
            "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
            "who": {"display": e.software},
            "requestor": False,
        }
        if e.source_address:
            client["network"] = {"address": e.source_address, "type": "2"}
        agents.append(client)
    return agents


def _target_entity(ref: str) -> Json:
    rtype = ref.split("/", 1)[0]
    role = {"DocumentReference": ("3", "Report"), "Binary": ("3", "Report"), "List": ("7", "List")}.get(
        rtype, ("4", "Domain Resource")
    )
    return {
        "what": {"reference": ref},
        "type": _coding(SYSTEM_ENTITY_TYPE, "2", "System Object"),
        "role": _coding(SYSTEM_OBJECT_ROLE, *role),
    }


def to_audit_event(row: Any, base_url: str, *, chain: bool = True) -> Json:
    """The FHIR R4 AuditEvent of an ``audit_entry`` row (or :class:`StoredEntry`).

    ``chain``: with the entry's position and hash in the record's chain. Only a reader of the
    whole trail gets them: in a partial view (a professional's own actions, the patient's view
    without the entries about hidden documents) a gap in the positions would tell that entries
    exist which the reader may not see (docs/access-policy.md, no oracle).
    """
    e = StoredEntry.from_row(row)
    info = action_info(e.action)
    base = base_url.rstrip("/")
    code = _purpose(e)
    purpose: list[Json] = [{"coding": [_coding(SYSTEM_PURPOSE, code, _PURPOSE_DISPLAY[code])]}]
    if e.actor_kind == ActorKind.PROFESSIONAL or e.access_mode != AccessMode.NORMAL:
        purpose.append({"coding": [_coding(SYSTEM_ACCESS_MODE, e.access_mode,
                                           ACCESS_MODE_LABELS.get(e.access_mode))]})
    subtype: list[Json] = []
    if info.interaction:
        subtype.append(_coding(RESTFUL_INTERACTION, info.interaction, info.interaction))
    if info.transaction:
        subtype.append(_coding(IHE_EVENT_TYPE, info.transaction, ITI[info.transaction]))
    if info.dicom_subtype:
        subtype.append(_coding(DCM, *info.dicom_subtype))
    subtype.append(_coding(f"{CANONICAL}/CodeSystem/dmp-audit-action", e.action, info.label))

    entities: list[Json] = []
    if e.has_record:
        entities.append({
            "what": {"reference": f"Patient/{e.patient_id}"},
            "type": _coding(SYSTEM_ENTITY_TYPE, "1", "Person"),
            "role": _coding(SYSTEM_OBJECT_ROLE, "1", "Patient"),
        })
    entities += [_target_entity(t) for t in e.targets]
    details: list[Json] = [{"type": "access-mode", "valueString": e.access_mode}]
    if chain:
        details += [
            {"type": "chain-position", "valueString": str(e.seq)},
            {"type": "chain-hash", "valueString": e.hash},
        ]
    if e.rule_id:
        details.insert(0, {"type": "rule", "valueString": e.rule_id})
    if e.justification:
        details.append({"type": "justification", "valueString": e.justification})
    if e.detail:
        details.append({"type": "detail", "valueString": e.detail})
    entities.append({
        "type": _coding(SYSTEM_ENTITY_TYPE, "4", "Other"),
        "role": _coding(SYSTEM_OBJECT_ROLE, "13", "Security Resource"),
        "description": "Décision d'accès et position de la trace dans le journal du dossier",
        "detail": details,
    })

    event: Json = {
        "resourceType": "AuditEvent",
        "id": str(e.id),
        "type": _coding(*info.type),
        "subtype": subtype,
        "action": info.fhir_action,
        "recorded": instant(e.at),
        "outcome": OUTCOME_CODES.get(e.outcome, "8"),
        "purposeOfEvent": purpose,
        "agent": _agents(e, purpose[:1]),
        "source": {
            "site": base,
            "observer": {"display": f"DMP — {base}"},
            "type": [_coding(SYSTEM_SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": entities,
    }
    if e.outcome != Outcome.SUCCESS and e.detail:
        event["outcomeDesc"] = e.detail
    return event
