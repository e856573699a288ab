"""Every rule of the access policy, in both directions (permit and deny).

Each case names the rule id it exercises; a rule that broke would flip its case.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.domain.document import DmpFlag
from dmp.policy import (
    AccessMode,
    Action,
    ConsentFacts,
    Context,
    DocumentFacts,
    EmergencyConsents,
    Obligation,
    RecordConsents,
    RecordFacts,
    closes_record,
    decide,
    may_break_glass,
    may_regulate,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CTX = Context(now=NOW)
PID = "6f1c2f0e-0000-4000-8000-000000000001"

DOCTOR = Actor(
    ActorKind.PROFESSIONAL, "810001234565", "Dr Muller", profession="10", specialty="SM26", structure_id="S1"
)
DOCTOR2 = Actor(
    ActorKind.PROFESSIONAL, "810002345675", "Dr David", profession="10", specialty="SM27", structure_id="S2"
)
PHARMACIST = Actor(ActorKind.PROFESSIONAL, "810003456786", "M. Didot", profession="21", structure_id="S3")
NURSE = Actor(ActorKind.PROFESSIONAL, "810004567896", "Mme Leroy", profession="60", structure_id="S4")
KINE = Actor(ActorKind.PROFESSIONAL, "810006789019", "M. Bernard", profession="70", structure_id="S5")
ESMS_DOCTOR = Actor(  # médecin coordonnateur of an EHPAD (practice setting ESSMS on the card)
    ActorKind.PROFESSIONAL, "810008901236", "Dr Ehpad", profession="10", structure_id="S6", setting="ESSMS"
)
ESMS_NURSE = Actor(
    ActorKind.PROFESSIONAL, "810009012347", "Mme Soin", profession="60", structure_id="S6", setting="ESSMS"
)
OCCUPATIONAL = Actor(ActorKind.PROFESSIONAL, "810007890121", "Dr Travail", profession="10", specialty="SM25")
URGENTIST = Actor(
    ActorKind.PROFESSIONAL,
    "810009999995",
    "Dr Urgence",
    profession="10",
    specialty="SM59",
    purpose=PurposeOfUse.ETREAT,
    justification="patient inconscient",
)
REGULATOR = Actor(
    ActorKind.PROFESSIONAL,
    "810005678908",
    "Dr Régulation",
    profession="10",
    specialty="SM26",
    setting="SAMU_SMUR",
    purpose=PurposeOfUse.CENTRE15,
)
PATIENT = Actor(ActorKind.PATIENT, PID, "Marie Dupont")
OTHER_PATIENT = Actor(ActorKind.PATIENT, "6f1c2f0e-0000-4000-8000-000000000002", "Autre")
REP = Actor(ActorKind.REPRESENTATIVE, "account-rep-1", "Parent")
OPERATOR = Actor(ActorKind.OPERATOR, "guichet:agent", "Agent CPAM")
SECRETARY = Actor(ActorKind.PROFESSIONAL, "899999999999", "Secrétaire", profession="99")


def record(**kw: object) -> RecordFacts:
    consents = RecordConsents(**kw)  # type: ignore[arg-type]
    return RecordFacts(PID, True, consents)


AUTHORISED = record(
    authorised=frozenset({DOCTOR.id, PHARMACIST.id, NURSE.id, KINE.id}), representatives=frozenset({REP.id})
)


def doc(
    type_code: str = "11488-4",
    flags: int = 0,
    availability: str = "approved",
    author: str | None = "810000000000",
    submitted: datetime = NOW - timedelta(days=1),
) -> DocumentFacts:
    return DocumentFacts(type_code, "10", flags, availability, author, author, submitted)


# Deposited by occupational medicine (AC-17): published by the occupational physician.
OCC_DOC = replace(doc(author=OCCUPATIONAL.id), occupational=True)


def read(
    actor: Actor, rec: RecordFacts, d: DocumentFacts | None = None, ctx: Context = CTX
) -> tuple[str, str]:
    decision = decide(actor, Action.READ, rec, d, ctx)
    return decision.effect.value, decision.rule_id


CASES = [
    # AC-01: only authorised health professionals
    ("AC-01 authorised doctor reads", DOCTOR, AUTHORISED, doc(), ("permit", "AC-02.authorised")),
    ("AC-01 unauthorised doctor refused", DOCTOR2, AUTHORISED, doc(), ("deny", "AC-01.not-authorised")),
    (
        "AC-01 non health profession refused",
        SECRETARY,
        AUTHORISED,
        doc(),
        ("deny", "AC-01.not-health-professional"),
    ),
    # AC-16 / AC-18: never insurers, employers, operator staff
    ("AC-16 operator refused", OPERATOR, AUTHORISED, doc(), ("deny", "AC-16.forbidden-actor")),
    # AC-15: care team presumed authorised unless the patient objects
    (
        "AC-15 care team permitted",
        DOCTOR2,
        record(care_teams=frozenset({"S2"})),
        doc(),
        ("permit", "AC-15.care-team"),
    ),
    (
        "AC-15 objection refuses",
        DOCTOR2,
        record(care_teams=frozenset({"S2"}), care_team_objections=frozenset({"S2"})),
        doc(),
        ("deny", "AC-01.not-authorised"),
    ),
    # AC-23: blocked means no access, authorisation or not
    (
        "AC-23 blocked refused",
        DOCTOR,
        record(authorised=frozenset({DOCTOR.id}), blocked=frozenset({DOCTOR.id})),
        doc(),
        ("deny", "AC-23.blocked"),
    ),
    (
        "AC-23 block beats médecin traitant",
        DOCTOR,
        record(medecin_traitant=DOCTOR.id, blocked=frozenset({DOCTOR.id})),
        doc(),
        ("deny", "AC-23.blocked"),
    ),
    # Matrix
    (
        "MATRIX pharmacist reads a biology report",
        PHARMACIST,
        AUTHORISED,
        doc("11502-2"),
        ("permit", "AC-02.authorised"),
    ),
    (
        "MATRIX pharmacist refused a medical certificate",
        PHARMACIST,
        AUTHORISED,
        doc("89601-9"),
        ("deny", "MATRIX.read"),
    ),
    (
        "MATRIX doctor refused the residence certificate",
        DOCTOR,
        AUTHORISED,
        doc("ATTEST-RESID"),
        ("deny", "MATRIX.read"),
    ),
    (
        "MATRIX nurse refused a psychiatric synthesis",
        NURSE,
        AUTHORISED,
        doc("68599-0"),
        ("deny", "MATRIX.read"),
    ),
    (
        "MATRIX physiotherapist reads a synthesis",
        KINE,
        AUTHORISED,
        doc("60591-5"),
        ("permit", "AC-02.authorised"),
    ),
    (
        "MATRIX physiotherapist refused an imaging report",
        KINE,
        AUTHORISED,
        doc("18748-4"),
        ("deny", "MATRIX.read"),
    ),
    (
        "MATRIX author reads own document beyond the matrix",
        KINE,
        AUTHORISED,
        doc("18748-4", author=KINE.id),
        ("permit", "AC-02.authorised"),
    ),
    # AC-07: masking from professionals
    (
        "AC-07 masked hidden from authorised doctor",
        DOCTOR,
        AUTHORISED,
        doc(flags=DmpFlag.MASQUE_PS),
        ("deny", "AC-07.masked"),
    ),
    (
        "AC-07 author still sees masked",
        DOCTOR,
        AUTHORISED,
        doc(flags=DmpFlag.MASQUE_PS, author=DOCTOR.id),
        ("permit", "AC-02.authorised"),
    ),
    (
        "AC-11 médecin traitant sees masked",
        DOCTOR2,
        record(medecin_traitant=DOCTOR2.id),
        doc(flags=DmpFlag.MASQUE_PS),
        ("permit", "AC-11.medecin-traitant"),
    ),
    (
        "AC-12 administrator sees masked",
        DOCTOR2,
        record(administrators=frozenset({DOCTOR2.id})),
        doc(flags=DmpFlag.MASQUE_PS),
        ("permit", "AC-12.administrator"),
    ),
    # AC-17: occupational medicine writes, never reads
    (
        "AC-17 occupational physician refused reading",
        OCCUPATIONAL,
        record(authorised=frozenset({OCCUPATIONAL.id})),
        doc(),
        ("deny", "AC-17.occupational"),
    ),
    (
        "AC-17 occupational physician does not read their own deposit either",
        OCCUPATIONAL,
        record(authorised=frozenset({OCCUPATIONAL.id}), medecin_traitant=OCCUPATIONAL.id),
        OCC_DOC,
        ("deny", "AC-17.occupational"),
    ),
    (
        "AC-17 authorised GP, not médecin traitant, refused an occupational deposit",
        DOCTOR,
        AUTHORISED,
        OCC_DOC,
        ("deny", "AC-17.occupational-readers"),
    ),
    (
        "AC-17 authorised GP reads the rest of the record",
        DOCTOR,
        AUTHORISED,
        doc(author=OCCUPATIONAL.id),
        ("permit", "AC-02.authorised"),
    ),
    (
        "AC-17 administrator refused an occupational deposit",
        DOCTOR2,
        record(administrators=frozenset({DOCTOR2.id})),
        OCC_DOC,
        ("deny", "AC-17.occupational-readers"),
    ),
    (
        "AC-17 care team refused an occupational deposit",
        DOCTOR2,
        record(care_teams=frozenset({"S2"})),
        OCC_DOC,
        ("deny", "AC-17.occupational-readers"),
    ),
    (
        "AC-17 ESMS coordinating doctor of the patient's care team reads an occupational deposit",
        ESMS_DOCTOR,
        record(care_teams=frozenset({"S6"})),
        OCC_DOC,
        ("permit", "AC-15.esms-coordinator"),
    ),
    (
        "AC-17 ESMS coordinating doctor outside the patient's care team is refused the record",
        ESMS_DOCTOR,
        record(care_teams=frozenset({"S2"})),
        OCC_DOC,
        ("deny", "AC-01.not-authorised"),
    ),
    (
        "AC-17 ESMS coordinating doctor whose structure the patient objected to is refused",
        ESMS_DOCTOR,
        record(care_teams=frozenset({"S6"}), care_team_objections=frozenset({"S6"})),
        OCC_DOC,
        ("deny", "AC-01.not-authorised"),
    ),
    (
        "AC-17 ESMS nurse of the care team (not a doctor) refused an occupational deposit",
        ESMS_NURSE,
        record(care_teams=frozenset({"S6"})),
        OCC_DOC,
        ("deny", "AC-17.occupational-readers"),
    ),
    (
        "AC-17 médecin traitant reads an occupational deposit",
        DOCTOR,
        record(medecin_traitant=DOCTOR.id),
        OCC_DOC,
        ("permit", "AC-11.medecin-traitant"),
    ),
    (
        "AC-17 break-glass urgentist reads an occupational deposit",
        URGENTIST,
        record(),
        OCC_DOC,
        ("permit", "AC-13.break-glass"),
    ),
    (
        "AC-17 centre 15 reads an occupational deposit",
        REGULATOR,
        record(),
        OCC_DOC,
        ("permit", "AC-14.centre15"),
    ),
    (
        "AC-17 the patient reads an occupational deposit",
        PATIENT,
        record(),
        OCC_DOC,
        ("permit", "AC-20.patient"),
    ),
    # AC-13: break-glass
    ("AC-13 break-glass permitted", URGENTIST, record(), doc(), ("permit", "AC-13.break-glass")),
    (
        "AC-13 break-glass refused by the patient",
        URGENTIST,
        record(emergency=EmergencyConsents(break_glass=False)),
        doc(),
        ("deny", "AC-13.refused-by-patient"),
    ),
    (
        "AC-13 break-glass needs an emergency professional",
        replace(DOCTOR2, purpose=PurposeOfUse.ETREAT, justification="x"),
        record(),
        doc(),
        ("deny", "AC-13.emergency-only"),
    ),
    (
        "AC-13 break-glass needs a justification",
        replace(URGENTIST, justification=None),
        record(),
        doc(),
        ("deny", "AC-13.justification"),
    ),
    (
        "AC-13 masked hidden in break-glass by default",
        URGENTIST,
        record(),
        doc(flags=DmpFlag.MASQUE_PS),
        ("deny", "AC-07.masked"),
    ),
    (
        "AC-13 masked shown in break-glass when the patient allowed it",
        URGENTIST,
        record(emergency=EmergencyConsents(masked=True)),
        doc(flags=DmpFlag.MASQUE_PS),
        ("permit", "AC-13.break-glass"),
    ),
    (
        "AC-13 legal emergency rule passes a block the patient did not extend to emergencies",
        URGENTIST,
        record(blocked=frozenset({URGENTIST.id})),
        doc(),
        ("permit", "AC-13.break-glass"),
    ),
    # AC-14: centre 15
    ("AC-14 centre 15 permitted", REGULATOR, record(), doc(), ("permit", "AC-14.centre15")),
    (
        "AC-14 centre 15 refused by the patient",
        REGULATOR,
        record(emergency=EmergencyConsents(samu=False)),
        doc(),
        ("deny", "AC-14.refused-by-patient"),
    ),
    (
        "AC-14 centre 15 only for regulation",
        replace(REGULATOR, setting=None),
        record(),
        doc(),
        ("deny", "AC-14.regulator-only"),
    ),
    # Documents' status
    (
        "DOC deleted invisible even to the author",
        DOCTOR,
        AUTHORISED,
        doc(availability="deleted", author=DOCTOR.id),
        ("deny", "DOC.deleted"),
    ),
    (
        "DOC deleted invisible to the patient",
        PATIENT,
        AUTHORISED,
        doc(availability="deleted"),
        ("deny", "DOC.deleted"),
    ),
    (
        "DOC archived only to the patient",
        DOCTOR,
        AUTHORISED,
        doc(availability="archived"),
        ("deny", "DOC.archived"),
    ),
    (
        "DOC archived visible to the patient",
        PATIENT,
        AUTHORISED,
        doc(availability="archived"),
        ("permit", "AC-20.patient"),
    ),
    (
        "DOC deprecated hidden outside history",
        DOCTOR,
        AUTHORISED,
        doc(availability="deprecated"),
        ("deny", "DOC.deprecated"),
    ),
    # Patient and representatives
    (
        "AC-20 patient reads own record",
        PATIENT,
        AUTHORISED,
        doc(flags=DmpFlag.MASQUE_PS),
        ("permit", "AC-20.patient"),
    ),
    (
        "AC-20 patient refused another record",
        OTHER_PATIENT,
        AUTHORISED,
        doc(),
        ("deny", "AC-20.other-patient"),
    ),
    (
        "AC-10 invisible to the patient until the announcement",
        PATIENT,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_PATIENT),
        ("deny", "AC-10.invisible-patient"),
    ),
    (
        "AC-10 still invisible 400 days later: no delay reveals it",
        PATIENT,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_PATIENT, submitted=NOW - timedelta(days=400)),
        ("deny", "AC-10.invisible-patient"),
    ),
    (
        "AC-10 representatives neither, however old",
        REP,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_PATIENT, submitted=NOW - timedelta(days=400)),
        ("deny", "AC-10.invisible-patient"),
    ),
    (
        "AC-10 visible once the flag is lifted (same old document)",
        PATIENT,
        AUTHORISED,
        doc(submitted=NOW - timedelta(days=400)),
        ("permit", "AC-20.patient"),
    ),
    (
        "AC-10 professionals still see INVISIBLE_PATIENT documents",
        DOCTOR,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_PATIENT),
        ("permit", "AC-02.authorised"),
    ),
    ("AC-19 representative reads", REP, AUTHORISED, doc(), ("permit", "AC-19.representative")),
    (
        "AC-19 representative refused a document invisible to them",
        REP,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX),
        ("deny", "AC-19.invisible-representatives"),
    ),
    (
        "AC-19 patient sees the document hidden from representatives",
        PATIENT,
        AUTHORISED,
        doc(flags=DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX),
        ("permit", "AC-20.patient"),
    ),
    (
        "AC-19 non representative refused",
        replace(REP, id="someone-else"),
        AUTHORISED,
        doc(),
        ("deny", "AC-19.not-representative"),
    ),
]


@pytest.mark.parametrize(("name", "actor", "rec", "document", "expected"), CASES, ids=[c[0] for c in CASES])
def test_read_rules(
    name: str, actor: Actor, rec: RecordFacts, document: DocumentFacts, expected: tuple[str, str]
) -> None:
    assert read(actor, rec, document) == expected


def test_deprecated_visible_in_history() -> None:
    assert read(DOCTOR, AUTHORISED, doc(availability="deprecated"), replace(CTX, history=True))[0] == "permit"


def test_closed_record_refuses_everyone() -> None:
    closed = RecordFacts(PID, False, AUTHORISED.consents)
    assert read(DOCTOR, closed, doc()) == ("deny", "LC-10.closed")
    assert read(PATIENT, closed, doc()) == ("deny", "LC-10.closed")
    assert decide(DOCTOR, Action.WRITE, closed, doc(), CTX).rule_id == "LC-10.closed"


def test_modes_and_obligations() -> None:
    mt = decide(DOCTOR2, Action.READ, record(medecin_traitant=DOCTOR2.id), None, CTX)
    assert mt.mode is AccessMode.MEDECIN_TRAITANT and not mt.obligations
    btg = decide(URGENTIST, Action.READ, record(), None, CTX)
    assert btg.mode is AccessMode.BRIS_DE_GLACE
    assert {Obligation.NOTIFY_PATIENT, Obligation.TRACE_JUSTIFICATION} <= btg.obligations
    c15 = decide(REGULATOR, Action.READ, record(), None, CTX)
    assert c15.mode is AccessMode.CENTRE_15 and Obligation.NOTIFY_PATIENT in c15.obligations
    assert decide(DOCTOR, Action.READ, AUTHORISED, None, CTX).mode is AccessMode.NORMAL


WRITE_CASES = [
    (
        "FEED doctor writes a consultation report",
        DOCTOR2,
        record(),
        doc("11488-4"),
        ("permit", "FEED.professional"),
    ),
    (
        "FEED needs no consultation authorisation (TD0.2 NB2)",
        NURSE,
        record(),
        doc("87273-9"),
        ("permit", "FEED.professional"),
    ),
    (
        "MATRIX nurse may not write an imaging report",
        NURSE,
        record(),
        doc("18748-4"),
        ("deny", "MATRIX.write"),
    ),
    (
        "MATRIX pharmacist writes a dispensation",
        PHARMACIST,
        record(),
        doc("60593-1"),
        ("permit", "FEED.professional"),
    ),
    (
        "MATRIX doctor may not write the insurance feed",
        DOCTOR,
        record(),
        doc("REMB"),
        ("deny", "MATRIX.write"),
    ),
    (
        "AC-17 occupational physician writes",
        OCCUPATIONAL,
        record(),
        doc("11488-4"),
        ("permit", "AC-17.write"),
    ),
    (
        "AC-23 blocked professional may not write",
        DOCTOR,
        record(blocked=frozenset({DOCTOR.id})),
        doc(),
        ("deny", "AC-23.blocked"),
    ),
    (
        "FEED patient writes a personal document",
        PATIENT,
        record(),
        doc("DOCPAT02"),
        ("permit", "FEED.patient"),
    ),
    (
        "FEED patient may not write a medical report",
        PATIENT,
        record(),
        doc("11488-4"),
        ("deny", "FEED.patient-types"),
    ),
    ("AC-16 operator may not write", OPERATOR, record(), doc(), ("deny", "AC-16.forbidden-actor")),
]


@pytest.mark.parametrize(
    ("name", "actor", "rec", "document", "expected"), WRITE_CASES, ids=[c[0] for c in WRITE_CASES]
)
def test_write_rules(
    name: str, actor: Actor, rec: RecordFacts, document: DocumentFacts, expected: tuple[str, str]
) -> None:
    decision = decide(actor, Action.WRITE, rec, document, CTX)
    assert (decision.effect.value, decision.rule_id) == expected


UPDATE_CASES = [
    ("AC-07 patient masks", PATIENT, Action.MASK, doc(), "permit"),
    ("AC-07 author masks", DOCTOR, Action.MASK, doc(author=DOCTOR.id), "permit"),
    ("AC-07 other professional may not mask", DOCTOR, Action.MASK, doc(), "deny"),
    ("AC-07 representative may not mask", REP, Action.MASK, doc(), "deny"),
    (
        "AC-10 author lifts INVISIBLE_PATIENT",
        DOCTOR,
        Action.SET_PATIENT_VISIBILITY,
        doc(author=DOCTOR.id),
        "permit",
    ),
    (
        "AC-10 médecin traitant lifts INVISIBLE_PATIENT",
        DOCTOR2,
        Action.SET_PATIENT_VISIBILITY,
        doc(),
        "permit",
    ),
    ("AC-10 patient may not lift INVISIBLE_PATIENT", PATIENT, Action.SET_PATIENT_VISIBILITY, doc(), "deny"),
    (
        "AC-19 patient hides from representatives",
        PATIENT,
        Action.SET_REPRESENTATIVE_VISIBILITY,
        doc(),
        "permit",
    ),
    ("AC-19 representative may not", REP, Action.SET_REPRESENTATIVE_VISIBILITY, doc(), "deny"),
    ("DOC author deletes", DOCTOR, Action.DELETE, doc(author=DOCTOR.id), "permit"),
    ("DOC non author may not delete", DOCTOR, Action.DELETE, doc(), "deny"),
    ("DOC patient archives", PATIENT, Action.ARCHIVE, doc(), "permit"),
    ("DOC other professional may not archive", DOCTOR, Action.ARCHIVE, doc(), "deny"),
    ("AC-02 patient manages consents", PATIENT, Action.MANAGE_CONSENTS, None, "permit"),
    ("AC-02 representative manages consents", REP, Action.MANAGE_CONSENTS, None, "permit"),
    ("AC-02 professional may not manage consents", DOCTOR, Action.MANAGE_CONSENTS, None, "deny"),
    ("AC-02 professional attests authorisation", DOCTOR2, Action.ATTEST_AUTHORISATION, None, "permit"),
    ("AC-17 occupational physician may not attest", OCCUPATIONAL, Action.ATTEST_AUTHORISATION, None, "deny"),
    ("AC-15 professional declares the care team", DOCTOR2, Action.DECLARE_CARE_TEAM, None, "permit"),
    ("AC-23 patient blocks", PATIENT, Action.BLOCK_PROFESSIONAL, None, "permit"),
    ("AC-12 administrator blocks", DOCTOR, Action.BLOCK_PROFESSIONAL, None, "permit"),
    ("AC-23 ordinary professional may not block", DOCTOR2, Action.BLOCK_PROFESSIONAL, None, "deny"),
    ("LC-10 the holder closes the record", PATIENT, Action.CLOSE_RECORD, None, "permit"),
    ("LC-10 a representative may not close it", REP, Action.CLOSE_RECORD, None, "deny"),
    ("LC-10 a professional may not close it", DOCTOR2, Action.CLOSE_RECORD, None, "deny"),
    ("LC-10 an administrator may not close it", DOCTOR, Action.CLOSE_RECORD, None, "deny"),
]


@pytest.mark.parametrize(
    ("name", "actor", "action", "document", "expected"), UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES]
)
def test_update_rules(
    name: str, actor: Actor, action: Action, document: DocumentFacts | None, expected: str
) -> None:
    rec = record(
        representatives=frozenset({REP.id}),
        medecin_traitant=DOCTOR2.id,
        administrators=frozenset({DOCTOR.id}),
    )
    assert decide(actor, action, rec, document, CTX).effect.value == expected


def test_blocked_professional_cannot_attest() -> None:
    rec = record(blocked=frozenset({DOCTOR2.id}))
    assert decide(DOCTOR2, Action.ATTEST_AUTHORISATION, rec, None, CTX).rule_id == "AC-23.blocked"


TRAIL_CASES = [
    # (reader, document, expected (effect, rule)) for the entries that name the document
    ("patient sees traces of a normal document", PATIENT, doc(), ("permit", "AC-20.patient")),
    (
        "patient sees traces of a deleted document",
        PATIENT,
        doc(availability="deleted"),
        ("permit", "AC-20.patient"),
    ),
    (
        "patient does not see traces of a document awaiting announcement",
        PATIENT,
        doc(flags=DmpFlag.INVISIBLE_PATIENT),
        ("deny", "AC-10.invisible-patient"),
    ),
    (
        "patient still does not see them 400 days later",
        PATIENT,
        doc(flags=DmpFlag.INVISIBLE_PATIENT, submitted=NOW - timedelta(days=400)),
        ("deny", "AC-10.invisible-patient"),
    ),
    (
        "patient sees them once the flag is lifted",
        PATIENT,
        doc(submitted=NOW - timedelta(days=400)),
        ("permit", "AC-20.patient"),
    ),
    (
        "patient sees traces of a document hidden from representatives",
        PATIENT,
        doc(flags=DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX),
        ("permit", "AC-20.patient"),
    ),
    (
        "representative does not see traces of the minor's secret",
        REP,
        doc(flags=DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX),
        ("deny", "AC-19.invisible-representatives"),
    ),
    ("representative sees traces of a normal document", REP, doc(), ("permit", "AC-19.representative")),
    (
        "a professional's own trail is not filtered by the flags",
        DOCTOR,
        doc(flags=DmpFlag.MASQUE_PS | DmpFlag.INVISIBLE_PATIENT),
        ("permit", "AC-02.authorised"),
    ),
]


@pytest.mark.parametrize(("label", "actor", "d", "expected"), TRAIL_CASES, ids=[c[0] for c in TRAIL_CASES])
def test_trail_entry_visibility(
    label: str, actor: Actor, d: DocumentFacts, expected: tuple[str, str]
) -> None:
    from dmp.policy import record_access, trail_entry_visible

    decision = trail_entry_visible(record_access(actor, AUTHORISED), d, CTX)
    assert (decision.effect.value, decision.rule_id) == expected


AUDITOR = Actor(ActorKind.OPERATOR, "secu:agent", "Agent sécurité", scopes=frozenset({"audit"}))
CLOSED = replace(AUTHORISED, open=False)
TRAIL_ACCESS_CASES = [
    # (reader, record, expected (effect, rule), own actions only)
    ("TR-01 the patient reads the whole trail", PATIENT, AUTHORISED, ("permit", "AC-20.patient"), False),
    ("TR-01 even once the record is closed", PATIENT, CLOSED, ("permit", "AC-20.patient"), False),
    ("TR-01 not another patient's", OTHER_PATIENT, AUTHORISED, ("deny", "AC-20.other-patient"), False),
    ("AC-19 a representative reads it", REP, AUTHORISED, ("permit", "AC-19.representative"), False),
    (
        "AC-19 not someone who is not a representative",
        REP,
        record(),
        ("deny", "AC-19.not-representative"),
        False,
    ),
    (
        "TR-03 a professional reads their own actions",
        DOCTOR,
        AUTHORISED,
        ("permit", "TR-03.own-actions"),
        True,
    ),
    (
        "TR-03 not on a record they may not open (a record that does not exist to them)",
        DOCTOR2,
        AUTHORISED,
        ("deny", "AC-01.not-authorised"),
        True,
    ),
    (
        "TR-03 not once the patient blocked them",
        DOCTOR,
        record(authorised=frozenset({DOCTOR.id}), blocked=frozenset({DOCTOR.id})),
        ("deny", "AC-23.blocked"),
        True,
    ),
    (
        "TR-06 the security role reads everything",
        AUDITOR,
        AUTHORISED,
        ("permit", "TR-06.security-role"),
        False,
    ),
    (
        "AC-16 a desk operator without the role does not",
        OPERATOR,
        AUTHORISED,
        ("deny", "AC-16.forbidden-actor"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("label", "actor", "rec", "expected", "own_only"),
    TRAIL_ACCESS_CASES,
    ids=[c[0] for c in TRAIL_ACCESS_CASES],
)
def test_who_reads_the_trail(
    label: str, actor: Actor, rec: RecordFacts, expected: tuple[str, str], own_only: bool
) -> None:
    from dmp.policy import trail_access

    got = trail_access(actor, rec)
    assert (got.decision.effect.value, got.decision.rule_id) == expected
    assert got.own_actions_only is own_only
    # Whose view of the record hides documents from their trail: the patient's, a representative's,
    # a professional's (their own actions never name a document hidden from them).
    readers = (ActorKind.PATIENT, ActorKind.REPRESENTATIVE, ActorKind.PROFESSIONAL)
    assert (got.reader is not None) == (actor.kind in readers)


REVOKE_CASES = [
    (
        "AC-02 patient revokes any consent",
        PATIENT,
        ConsentFacts("block", DOCTOR2.id),
        "AC-02.patient-revokes",
    ),
    ("AC-02 representative revokes", REP, ConsentFacts("authorisation", DOCTOR.id), "AC-02.patient-revokes"),
    (
        "AC-02 professional withdraws their own attestation",
        DOCTOR,
        ConsentFacts("authorisation", DOCTOR.id),
        "AC-02.own-attestation-revoked",
    ),
    (
        "AC-02 médecin traitant withdraws their acceptance",
        DOCTOR2,
        ConsentFacts("medecin-traitant", DOCTOR2.id),
        "AC-02.own-attestation-revoked",
    ),
    (
        "AC-02 professional may not revoke another's authorisation",
        DOCTOR,
        ConsentFacts("authorisation", DOCTOR2.id),
        "AC-02.revoke-not-allowed",
    ),
    (
        "AC-02 professional may not lift a block on themselves",
        DOCTOR2,
        ConsentFacts("block", DOCTOR2.id),
        "AC-02.revoke-not-allowed",
    ),
    (
        "AC-02 other patient may not revoke",
        OTHER_PATIENT,
        ConsentFacts("block", DOCTOR.id),
        "AC-02.revoke-not-allowed",
    ),
]


@pytest.mark.parametrize(("name", "actor", "consent", "rule"), REVOKE_CASES, ids=[c[0] for c in REVOKE_CASES])
def test_revoke_rules(name: str, actor: Actor, consent: ConsentFacts, rule: str) -> None:
    rec = record(representatives=frozenset({REP.id}), authorised=frozenset({DOCTOR.id}))
    decision = decide(actor, Action.REVOKE_CONSENT, rec, None, CTX, consent)
    assert decision.rule_id == rule
    assert decision.permitted is (rule != "AC-02.revoke-not-allowed")


# ---- READ_PATIENT, the existence test (TD0.2), GET Consent (policy.read_patient, consents_view) ----
NOT_HP = ("deny", "AC-01.not-health-professional")
ADMINISTERED = record(authorised=frozenset({DOCTOR.id}), administrators=frozenset({DOCTOR2.id}))
PATIENT_READ_CASES = [
    # (reader, record, expected (effect, rule)) — also on a closed record: its status is part of it
    ("AC-20 the holder reads their Patient", PATIENT, CLOSED, ("permit", "AC-20.patient")),
    ("AC-20 not another patient's", OTHER_PATIENT, AUTHORISED, ("deny", "AC-20.other-patient")),
    ("AC-19 a representative reads it", REP, AUTHORISED, ("permit", "AC-19.representative")),
    ("AC-19 not someone who is not one", REP, record(), ("deny", "AC-19.not-representative")),
    (
        "TD0.2 any health professional, authorised or not",
        DOCTOR2,
        AUTHORISED,
        ("permit", "TD0.2.existence-test"),
    ),
    (
        "TD0.2 not a profession the matrix does not know",
        SECRETARY,
        AUTHORISED,
        ("deny", "AC-01.not-health-professional"),
    ),
    ("AC-16 not a desk operator", OPERATOR, AUTHORISED, ("deny", "AC-01.not-health-professional")),
]


@pytest.mark.parametrize(
    ("label", "actor", "rec", "expected"), PATIENT_READ_CASES, ids=[c[0] for c in PATIENT_READ_CASES]
)
def test_who_reads_the_patient_resource(
    label: str, actor: Actor, rec: RecordFacts, expected: tuple[str, str]
) -> None:
    from dmp.policy import Action, decide, read_patient

    got = read_patient(actor, rec)
    assert (got.effect.value, got.rule_id) == expected
    assert decide(actor, Action.READ_PATIENT, rec, None, CTX) == got


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (DOCTOR, ("permit", "TD1.health-professional")),
        (NURSE, ("permit", "TD1.health-professional")),
        (SECRETARY, NOT_HP),
        (PATIENT, NOT_HP),
        (OPERATOR, NOT_HP),
    ],
)
def test_who_may_look_a_record_up_by_ins_or_create_one(actor: Actor, expected: tuple[str, str]) -> None:
    from dmp.policy import health_professional

    got = health_professional(actor)
    assert (got.effect.value, got.rule_id) == expected


CONSENT_READ_CASES = [
    # (reader, record, expected (effect, rule), every consent or only their own)
    ("AC-02 the holder reads every consent", PATIENT, AUTHORISED, ("permit", "AC-02.patient-manages"), True),
    ("AC-19 so does a representative", REP, AUTHORISED, ("permit", "AC-02.patient-manages"), True),
    (
        "AC-12 so does an administrator of the record",
        DOCTOR2,
        ADMINISTERED,
        ("permit", "AC-12.administrator-reads"),
        True,
    ),
    (
        "AC-02 a professional reads only their own",
        DOCTOR,
        AUTHORISED,
        ("permit", "AC-02.own-consents"),
        False,
    ),
    (
        "AC-20 another patient reads nothing",
        OTHER_PATIENT,
        AUTHORISED,
        ("deny", "AC-20.other-patient"),
        False,
    ),
    ("AC-16 a desk operator reads nothing", OPERATOR, AUTHORISED, NOT_HP, False),
]


@pytest.mark.parametrize(
    ("label", "actor", "rec", "expected", "everything"),
    CONSENT_READ_CASES,
    ids=[c[0] for c in CONSENT_READ_CASES],
)
def test_who_reads_which_consents(
    label: str, actor: Actor, rec: RecordFacts, expected: tuple[str, str], everything: bool
) -> None:
    from dmp.policy import consents_view

    got = consents_view(actor, rec, CTX)
    assert (got.decision.effect.value, got.decision.rule_id) == expected
    assert got.everything is everything


# ---- LC-08: the holder's majority, before they confirm the record -----------------------------

GRACE = Context(now=NOW, majority_grace_days=30)


@pytest.mark.parametrize(
    ("name", "pending_since", "actor", "expected"),
    [
        ("before 18 (nothing pending): professional", None, DOCTOR, ("permit", "AC-02.authorised")),
        ("during the grace: professional", NOW - timedelta(days=29), DOCTOR, ("permit", "AC-02.authorised")),
        (
            "after the grace, unconfirmed: professional",
            NOW - timedelta(days=30),
            DOCTOR,
            ("deny", "LC-08.majority-unconfirmed"),
        ),
        (
            "after the grace, unconfirmed: holder",
            NOW - timedelta(days=400),
            PATIENT,
            ("permit", "AC-20.patient"),
        ),
        ("confirmed (pending cleared): professional", None, DOCTOR, ("permit", "AC-02.authorised")),
    ],
)
def test_majority_rules(
    name: str, pending_since: datetime | None, actor: Actor, expected: tuple[str, str]
) -> None:
    facts = replace(AUTHORISED, majority_pending_since=pending_since)
    assert read(actor, facts, None, GRACE) == expected, name
    write = decide(actor, Action.WRITE, facts, doc(), GRACE)
    refused = expected[1] == "LC-08.majority-unconfirmed"
    assert (write.rule_id == "LC-08.majority-unconfirmed") is refused, name
    assert closes_record(write) is refused


def test_majority_refusal_is_only_for_who_may_open_the_record() -> None:
    """An unauthorised professional learns nothing more than before (like a closed record)."""
    facts = replace(record(), majority_pending_since=NOW - timedelta(days=60))
    assert read(DOCTOR, facts, None, GRACE) == ("deny", "AC-01.not-authorised")
    assert read(
        DOCTOR, replace(AUTHORISED, majority_pending_since=NOW), None, replace(GRACE, majority_grace_days=0)
    ) == (
        "deny",
        "LC-08.majority-unconfirmed",
    )


EMERGENCY_NURSE = Actor(ActorKind.PROFESSIONAL, "810001111110", "Mme Smur", profession="60", specialty="SI05")
SAMU_DOCTOR = replace(REGULATOR, purpose=PurposeOfUse.TREAT)


@pytest.mark.parametrize(
    ("name", "actor", "breaks_glass", "regulates"),
    [
        ("AC-13 médecine d'urgence (SM59)", replace(URGENTIST, purpose=PurposeOfUse.TREAT), True, False),
        ("AC-13 emergency nursing (SI05)", EMERGENCY_NURSE, True, False),
        ("AC-13/AC-14 SAMU_SMUR setting", SAMU_DOCTOR, True, True),
        ("AC-13 a GP is not emergency staff", DOCTOR, False, False),
        ("AC-13 a pharmacist is not", PHARMACIST, False, False),
        ("AC-14 an ESMS setting does not regulate", ESMS_DOCTOR, False, False),
        ("the patient never breaks the glass", PATIENT, False, False),
        ("nor the operator", OPERATOR, False, False),
        (
            "nor a professional-looking operator",
            replace(OPERATOR, specialty="SM59", setting="SAMU_SMUR"),
            False,
            False,
        ),
    ],
)
def test_who_is_offered_emergency_access(
    name: str, actor: Actor, breaks_glass: bool, regulates: bool
) -> None:
    """``may_break_glass``/``may_regulate`` (what the portal offers) agree with ``decide``."""
    assert may_break_glass(actor) is breaks_glass, name
    assert may_regulate(actor) is regulates, name
    if actor.kind is ActorKind.PROFESSIONAL:
        etreat = replace(actor, purpose=PurposeOfUse.ETREAT, justification="urgence vitale")
        c15 = replace(actor, purpose=PurposeOfUse.CENTRE15, justification="appel au 15")
        assert decide(etreat, Action.READ, record(), doc(), CTX).permitted is breaks_glass, name
        assert decide(c15, Action.READ, record(), doc(), CTX).permitted is regulates, name
