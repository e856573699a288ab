"""THE decision point: ``decide(actor, action, record, document, context) -> Decision``.

Pure, deny by default. Patient refusals (blocks, objections, emergency refusals) and
masks are vetoes; médecin traitant, break-glass and centre 15 are named exceptions
that mark the trail. Each rule is cited by the requirement id it implements
(``dmp-requirements-from-seeds.md``). ``services/policy_sql.py`` compiles the READ rules for a
whole record into SQL; a property test checks both agree on random cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.domain.document import DmpFlag
from dmp.policy.matrix import TypeRule, rights_of
from dmp.policy.model import (
    AccessMode,
    Action,
    ConsentFacts,
    Context,
    Decision,
    DocumentFacts,
    Obligation,
    RecordConsents,
    RecordFacts,
    deny,
    permit,
)

# Médecine du travail (TRE_R38 / J01 savoir-faire): may deposit, may not read (AC-17).
OCCUPATIONAL_SPECIALTIES = frozenset({"SM25", "C41", "CAPA11"})
# Médecine d'urgence and emergency nursing: may break the glass (AC-13).
EMERGENCY_SPECIALTIES = frozenset({"SM59", "DSM220", "DEC14", "SST26", "SI05"})
EMERGENCY_SETTINGS = frozenset({"SAMU_SMUR"})
REGULATION_SETTINGS = frozenset({"SAMU_SMUR"})  # centre 15 regulation (AC-14)
# Who reads a document deposited by occupational medicine (AC-17): the médecin traitant, the
# emergency modes, and the coordinating doctor of a medico-social structure (ESMS) that treats
# the patient: a médecin (TRE_G15 "10") whose card carries the practice setting ESSMS (TRE_A01)
# and who reaches the record through that structure's care team (AC-15). An ESMS employs one
# médecin coordonnateur; the attending GPs who visit its residents practise elsewhere.
OCCUPATIONAL_READER_MODES = frozenset(
    {AccessMode.MEDECIN_TRAITANT, AccessMode.BRIS_DE_GLACE, AccessMode.CENTRE_15}
)
MEDICO_SOCIAL_SETTINGS = frozenset({"ESSMS"})
ESMS_COORDINATOR = "AC-15.esms-coordinator"


@dataclass(frozen=True, slots=True)
class RecordAccess:
    """How ``actor`` may read a record once the record-level rules have passed."""

    decision: Decision
    view: str  # "professional" | "patient" | "representative"
    actor_id: str
    read_rule: TypeRule | None  # professionals: the matrix row
    masked_visible: bool  # MASQUE_PS documents visible (beyond the actor's own)

    def professional_rule(self) -> TypeRule:
        """The matrix row of a professional's access (a programming error for any other view)."""
        if self.read_rule is None:
            raise RuntimeError(f"no document-type rule for a {self.view!r} access")
        return self.read_rule


def is_occupational(actor: Actor) -> bool:
    return actor.profession == "10" and (actor.specialty or "") in OCCUPATIONAL_SPECIALTIES


def is_esms_coordinator(actor: Actor) -> bool:
    """The médecin coordonnateur of a medico-social structure, as the card names them."""
    return actor.profession == "10" and (actor.setting or "") in MEDICO_SOCIAL_SETTINGS


def _professional_mode(actor: Actor, record: RecordFacts) -> tuple[Decision, bool]:
    """Record-level decision for a professional reading, and whether masked documents show."""
    if actor.purpose is PurposeOfUse.CENTRE15:
        return _centre15_mode(actor, record.consents)
    if actor.purpose is PurposeOfUse.ETREAT:
        return _break_glass_mode(actor, record.consents)
    return _consented_mode(actor, record.consents)


def may_break_glass(actor: Actor) -> bool:
    """AC-13: is ``actor`` one of the emergency professionals who may break the glass (with a
    written justification, unless the patient refused it)? What a portal offers, before asking."""
    if actor.kind is not ActorKind.PROFESSIONAL:
        return False
    return (actor.specialty or "") in EMERGENCY_SPECIALTIES or (actor.setting or "") in EMERGENCY_SETTINGS


def may_regulate(actor: Actor) -> bool:
    """AC-14: is ``actor`` a centre 15 regulator (the structure's practice setting says so)?"""
    return actor.kind is ActorKind.PROFESSIONAL and (actor.setting or "") in REGULATION_SETTINGS


def _centre15_mode(actor: Actor, c: RecordConsents) -> tuple[Decision, bool]:
    """AC-14: centre 15 regulation, unless the patient refused the SAMU's emergency access."""
    if not may_regulate(actor):
        return deny(
            "AC-14.regulator-only", "mode centre 15 réservé à la régulation médicale (SAMU)"
        ), False
    if not c.emergency.samu:
        return deny("AC-14.refused-by-patient", "le patient a refusé l'accès du SAMU en urgence"), False
    return permit(
        "AC-14.centre15", AccessMode.CENTRE_15, Obligation.NOTIFY_PATIENT, Obligation.TRACE_JUSTIFICATION
    ), c.emergency.masked


def _break_glass_mode(actor: Actor, c: RecordConsents) -> tuple[Decision, bool]:
    """AC-13: an emergency professional's written break-glass, unless the patient refused it."""
    if not may_break_glass(actor):
        return deny(
            "AC-13.emergency-only", "le bris de glace est réservé aux professionnels de l'urgence"
        ), False
    if not actor.justification:
        return deny("AC-13.justification", "le bris de glace exige une justification écrite"), False
    if not c.emergency.break_glass:
        return deny("AC-13.refused-by-patient", "le patient a refusé l'accès en bris de glace"), False
    # A block yields to the legal emergency rule only when the patient did not refuse it.
    return permit(
        "AC-13.break-glass",
        AccessMode.BRIS_DE_GLACE,
        Obligation.NOTIFY_PATIENT,
        Obligation.TRACE_JUSTIFICATION,
    ), c.emergency.masked


def _consented_mode(actor: Actor, c: RecordConsents) -> tuple[Decision, bool]:
    """Ordinary care: a block vetoes; otherwise the patient's consents name who may read."""
    if actor.id in c.blocked:
        return deny("AC-23.blocked", "le patient a bloqué ce professionnel"), False
    if c.medecin_traitant == actor.id:
        return permit("AC-11.medecin-traitant", AccessMode.MEDECIN_TRAITANT), True
    if actor.id in c.administrators:
        return permit("AC-12.administrator", AccessMode.NORMAL), True
    if actor.id in c.authorised:
        return permit("AC-02.authorised", AccessMode.NORMAL), False
    if (
        actor.structure_id
        and actor.structure_id in c.care_teams
        and actor.structure_id not in c.care_team_objections
    ):
        return _care_team_member(actor), False
    return deny("AC-01.not-authorised", "le patient n'a pas autorisé ce professionnel"), False


def _care_team_member(actor: Actor) -> Decision:
    """AC-15: a professional of a structure that treats the patient (the ESMS coordinating
    doctor among them, who also reads occupational medicine's deposits, AC-17)."""
    if is_esms_coordinator(actor):
        return permit(ESMS_COORDINATOR, AccessMode.NORMAL)
    return permit("AC-15.care-team", AccessMode.NORMAL)


def _no_access(refusal: Decision, actor: Actor) -> RecordAccess:
    return RecordAccess(refusal, "none", actor.id, None, False)


MAJORITY_UNCONFIRMED = "LC-08.majority-unconfirmed"
# The refusals answered like a closed record (LC-10), whoever is refused.
CLOSED_RULES = frozenset({"LC-10.closed", MAJORITY_UNCONFIRMED})


def majority_unconfirmed(record: RecordFacts, ctx: Context) -> bool:
    """LC-08: the holder, of age, has not confirmed the record's continuation within the grace
    period; until they do, only they may open it (professionals meet a closed record)."""
    since = record.majority_pending_since
    return since is not None and ctx.now >= since + timedelta(days=ctx.majority_grace_days)


def _majority_refusal() -> Decision:
    return deny(
        MAJORITY_UNCONFIRMED,
        "dossier fermé aux professionnels : le titulaire devenu majeur n'a pas confirmé sa poursuite",
    )


def closes_record(decision: Decision) -> bool:
    """Whether a refusal is answered as a closed record (RECORD_CLOSED) rather than a 403."""
    return decision.rule_id in CLOSED_RULES


def record_access(actor: Actor, record: RecordFacts, ctx: Context | None = None) -> RecordAccess:
    """Record-level READ decision (opening the record, searching it).

    Without ``ctx`` (the trail, which outlives closure) the majority rule (LC-08) is not applied.
    """
    if not record.open:
        return _no_access(deny("LC-10.closed", "dossier fermé"), actor)
    if actor.kind is ActorKind.PATIENT:
        return _patient_access(actor, record)
    if actor.kind is ActorKind.REPRESENTATIVE:
        return _representative_access(actor, record)
    if actor.kind is not ActorKind.PROFESSIONAL:
        return _no_access(deny("AC-16.forbidden-actor", "acteur sans droit d'accès au DMP"), actor)
    access = _professional_access(actor, record)
    # Like a closed record: only a professional who may open it learns it is closed (ADR 0004).
    if access.decision.permitted and ctx is not None and majority_unconfirmed(record, ctx):
        return _no_access(_majority_refusal(), actor)
    return access


def _patient_access(actor: Actor, record: RecordFacts) -> RecordAccess:
    if actor.id != record.patient_id:
        return _no_access(deny("AC-20.other-patient", "dossier d'un autre patient"), actor)
    return RecordAccess(permit("AC-20.patient", AccessMode.PATIENT), "patient", actor.id, None, True)


def _representative_access(actor: Actor, record: RecordFacts) -> RecordAccess:
    if actor.id not in record.consents.representatives:
        return _no_access(deny("AC-19.not-representative", "pas représentant légal de ce patient"), actor)
    return RecordAccess(
        permit("AC-19.representative", AccessMode.REPRESENTATIVE), "representative", actor.id, None, True
    )


def _professional_access(actor: Actor, record: RecordFacts) -> RecordAccess:
    rights = rights_of(actor.profession)
    if rights is None:
        return _no_access(deny("AC-01.not-health-professional", "réservé aux professionnels de santé"), actor)
    if is_occupational(actor):
        return _no_access(
            deny("AC-17.occupational", "la médecine du travail peut déposer mais pas consulter"), actor
        )
    decision, masked = _professional_mode(actor, record)
    return RecordAccess(decision, "professional", actor.id, rights.read, masked)


AUDIT_SCOPE = "audit"  # the operator's security role


@dataclass(frozen=True)
class TrailAccess:
    """Who may read a record's trail, and how much of it."""

    decision: Decision
    own_actions_only: bool  # a professional reads the entries of their own actions
    # The reader's view of the record, whose hidden documents their trail never names: the
    # patient's or a representative's (whole trail), a professional's (own actions only).
    reader: RecordAccess | None


def learns_record_exists(actor: Actor) -> bool:
    """Who is told that a record they may not open exists, and why they may not open it.

    A professional is (the DMP's existence test, TD0.2: their software asks, by the INS read from
    the patient's card, whether a record exists and whether they are authorised, so as to attest
    the patient's consent). Anyone else gets, about a record they may not open, the answer about
    a record that does not exist (docs/access-policy.md, no oracle).
    """
    return actor.kind is ActorKind.PROFESSIONAL


def trail_access(actor: Actor, record: RecordFacts) -> TrailAccess:
    """TR-01/TR-02: the patient and their legal representatives read the trail since the
    record's creation (entries about documents hidden from them excepted, ``trail_entry_visible``),
    also once the record is closed; TR-03: a professional reads their own actions, the proof of
    what they consulted, on a record they may open (AC-07: on any other, the answer is a record
    that does not exist), and never the entries naming a document hidden from them, not even their
    own refused attempts, which would tell the document exists; TR-06: the operator's security
    role reads everything. Nobody else."""
    if actor.kind is ActorKind.OPERATOR:
        if AUDIT_SCOPE in actor.scopes:
            return TrailAccess(permit("TR-06.security-role", AccessMode.NORMAL), False, None)
        return TrailAccess(
            deny("AC-16.forbidden-actor", "acteur sans droit d'accès au DMP"), False, None
        )
    if actor.kind in (ActorKind.PATIENT, ActorKind.REPRESENTATIVE):
        access = record_access(actor, replace(record, open=True))  # the trail outlives closure
        return TrailAccess(access.decision, False, access)
    if actor.kind is ActorKind.PROFESSIONAL:
        access = record_access(actor, record)
        if not access.decision.permitted:
            return TrailAccess(access.decision, True, access)
        mode = access.decision.mode or AccessMode.NORMAL
        return TrailAccess(permit("TR-03.own-actions", mode), True, access)
    return TrailAccess(deny("AC-16.forbidden-actor", "acteur sans droit d'accès au DMP"), False, None)


def awaiting_announcement(doc: DocumentFacts) -> bool:
    """AC-10: INVISIBLE_PATIENT, the patient must not learn of ``doc`` (not from the document
    list, the trail, nor a « nouveau document » alert) until its author or the médecin traitant
    lifts the flag after the consultation d'annonce (SET_PATIENT_VISIBILITY) — however old the
    document is: no delay reveals it (``DMP_INVISIBLE_PATIENT_MAX_DAYS`` only reminds the author,
    ``dmp documents announcement-reminders``)."""
    return bool(doc.flags & DmpFlag.INVISIBLE_PATIENT)


def _confidentiality(access: RecordAccess, doc: DocumentFacts) -> Decision | None:
    """The refusal a confidentiality flag opposes to the patient or a representative, if any."""
    if awaiting_announcement(doc):
        return deny("AC-10.invisible-patient", "document en attente de la consultation d'annonce")
    if access.view == "representative" and doc.flags & DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX:
        return deny("AC-19.invisible-representatives", "document non visible des représentants légaux")
    return None


def trail_entry_visible(access: RecordAccess, doc: DocumentFacts, ctx: Context) -> Decision:
    """May the reader of a record's whole trail (the patient, a representative) see the entries
    that name ``doc``? Not while a confidentiality flag hides the document from them: an entry
    « Dr X a ajouté un document » would reveal a diagnosis before the consultation d'annonce, or
    a minor's secret to their parents (the VIHF RestrictionAudience INVISIBLE_REPRESENTANTS_LEGAUX
    hides such actions from representatives in the traces). Unlike ``document_visible``, the
    document's status does not matter: the traces of a deleted document stay visible."""
    if not access.decision.permitted:
        return access.decision
    if access.view in ("patient", "representative"):
        return _confidentiality(access, doc) or access.decision
    return access.decision


def document_visible(access: RecordAccess, doc: DocumentFacts, ctx: Context) -> Decision:
    """Document-level READ decision inside a record the actor may open."""
    if not access.decision.permitted:
        return access.decision
    refusal = _status_refusal(doc, ctx)
    if refusal is not None:
        return refusal
    if access.view in ("patient", "representative"):
        return _confidentiality(access, doc) or access.decision
    return _professional_refusal(access, doc) or access.decision


def _status_refusal(doc: DocumentFacts, ctx: Context) -> Decision | None:
    """The refusal a document's status opposes to every reader, if any."""
    if doc.availability == "deleted":
        return deny("DOC.deleted", "document supprimé")
    if doc.availability == "deprecated" and not ctx.history:
        return deny("DOC.deprecated", "version remplacée (visible dans l'historique)")
    return None


def reads_occupational(access: RecordAccess) -> bool:
    """AC-17: may this professional access read documents deposited by occupational medicine?"""
    return access.decision.mode in OCCUPATIONAL_READER_MODES or access.decision.rule_id == ESMS_COORDINATOR


def _professional_refusal(access: RecordAccess, doc: DocumentFacts) -> Decision | None:
    """The refusal a professional meets on ``doc`` in a record they may open, if any: their
    own documents always show; others follow AC-17 (occupational medicine's deposits), the
    matrix and the MASQUE_PS flag."""
    if doc.availability == "archived":
        return deny("DOC.archived", "document archivé : visible du seul patient")
    if access.actor_id in (doc.author_id, doc.published_by):
        return None
    if doc.occupational and not reads_occupational(access):
        return deny(
            "AC-17.occupational-readers",
            "document de médecine du travail : réservé au médecin traitant, au médecin coordonnateur de "
            "l'établissement médico-social et aux accès en urgence",
        )
    if not access.professional_rule().allows(doc.type_code):
        return deny("MATRIX.read", "type de document non accessible à cette profession")
    if doc.flags & DmpFlag.MASQUE_PS and not access.masked_visible:
        return deny("AC-07.masked", "document masqué aux professionnels")
    return None


# The consents a professional made by attesting (or accepting) and may therefore withdraw.
OWN_ATTESTATION_KINDS = frozenset({"authorisation", "medecin-traitant", "administrator"})


def health_professional(actor: Actor) -> Decision:
    """TD0.2 (existence test by INS) and TD1 (record creation): any health professional, whose
    profession the matrix knows, and nobody else."""
    if actor.kind is ActorKind.PROFESSIONAL and rights_of(actor.profession) is not None:
        return permit("TD1.health-professional", AccessMode.NORMAL)
    return deny("AC-01.not-health-professional", "réservé aux professionnels de santé")


def read_patient(actor: Actor, record: RecordFacts) -> Decision:
    """Who reads the Patient resource, also once the record is closed (its status is part of it):
    the holder, their legal representatives, and any health professional (the existence test,
    ``learns_record_exists``); nobody else."""
    if actor.kind is ActorKind.PATIENT:
        if actor.id == record.patient_id:
            return permit("AC-20.patient", AccessMode.PATIENT)
        return deny("AC-20.other-patient", "un patient ne lit que son propre dossier")
    if actor.kind is ActorKind.REPRESENTATIVE:
        if actor.id in record.consents.representatives:
            return permit("AC-19.representative", AccessMode.REPRESENTATIVE)
        return deny("AC-19.not-representative", "représentant légal non déclaré pour ce dossier")
    professional = health_professional(actor)
    if professional.permitted:
        return permit("TD0.2.existence-test", AccessMode.NORMAL)
    return professional


@dataclass(frozen=True)
class ConsentsView:
    """What ``actor`` reads of a record's consents (GET /fhir/Consent): all of them (the holder,
    a representative, an administrator of the record), their own only (a professional who may
    read the Patient: their authorisation, their block), or nothing."""

    decision: Decision
    everything: bool


def consents_view(actor: Actor, record: RecordFacts, ctx: Context) -> ConsentsView:
    manages = decide(actor, Action.MANAGE_CONSENTS, record, None, ctx)
    if manages.permitted:
        return ConsentsView(manages, True)
    if actor.kind is ActorKind.PROFESSIONAL and actor.id in record.consents.administrators:
        return ConsentsView(permit("AC-12.administrator-reads", AccessMode.NORMAL), True)
    patient = read_patient(actor, record)
    if patient.permitted:
        return ConsentsView(permit("AC-02.own-consents", patient.mode or AccessMode.NORMAL), False)
    return ConsentsView(patient, False)


def decide(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    ctx: Context,
    consent: ConsentFacts | None = None,
) -> Decision:
    if action is Action.READ:
        access = record_access(actor, record, ctx)
        return access.decision if document is None else document_visible(access, document, ctx)
    if action is Action.READ_PATIENT:
        return read_patient(actor, record)
    return _change(actor, action, record, document, ctx, consent)


def _change(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    ctx: Context,
    consent: ConsentFacts | None,
) -> Decision:
    """Every action but the reads: an open record, an actor of the DMP, not blocked, then its rule."""
    if not record.open:
        return deny("LC-10.closed", "dossier fermé")
    parties = _Parties.of(actor, record, document, consent)
    if actor.kind not in (ActorKind.PROFESSIONAL, ActorKind.PATIENT, ActorKind.REPRESENTATIVE):
        return deny("AC-16.forbidden-actor", "acteur sans droit d'accès au DMP")
    if parties.is_pro and actor.id in record.consents.blocked:
        return deny("AC-23.blocked", "le patient a bloqué ce professionnel")
    if parties.is_pro and majority_unconfirmed(record, ctx):
        return _majority_refusal()
    rule = _ACTION_RULES.get(action)
    if rule is None:
        return deny("DEFAULT.deny", "action non autorisée")
    return rule(parties)


@dataclass(frozen=True, slots=True)
class _Parties:
    """Who acts, on which record, document and consent: the facts of a non-READ decision."""

    actor: Actor
    consents: RecordConsents
    document: DocumentFacts | None
    consent: ConsentFacts | None
    is_patient: bool  # the record's holder
    is_representative: bool  # one of the holder's legal representatives
    is_pro: bool  # a health professional (the profession has rights in the matrix)
    author: bool  # the document's author or publisher

    @classmethod
    def of(
        cls, actor: Actor, record: RecordFacts, document: DocumentFacts | None, consent: ConsentFacts | None
    ) -> _Parties:
        c = record.consents
        return cls(
            actor=actor,
            consents=c,
            document=document,
            consent=consent,
            is_patient=actor.kind is ActorKind.PATIENT and actor.id == record.patient_id,
            is_representative=actor.kind is ActorKind.REPRESENTATIVE and actor.id in c.representatives,
            is_pro=actor.kind is ActorKind.PROFESSIONAL and rights_of(actor.profession) is not None,
            author=document is not None and actor.id in (document.author_id, document.published_by),
        )

    @property
    def holder_mode(self) -> AccessMode:
        """The patient's own mode, or their representative's."""
        return AccessMode.PATIENT if self.is_patient else AccessMode.REPRESENTATIVE

    @property
    def patient_or_professional_mode(self) -> AccessMode:
        return AccessMode.PATIENT if self.is_patient else AccessMode.NORMAL


def _write(p: _Parties) -> Decision:
    if p.is_pro:
        return _professional_write(p)
    if p.is_patient or p.is_representative:
        from dmp.policy.matrix import matrix_groups

        if p.document is not None and p.document.type_code not in matrix_groups()["PATIENT_EXPRESSION"]:
            return deny("FEED.patient-types", "le patient ne dépose que ses propres documents")
        return permit("FEED.patient", p.holder_mode)
    return deny("AC-01.not-health-professional", "réservé aux professionnels de santé")


def _professional_write(p: _Parties) -> Decision:
    actor = p.actor
    rights = rights_of(actor.profession)
    if rights is None:  # is_pro says otherwise
        raise RuntimeError(f"no rights for profession {actor.profession!r}")
    if p.document is not None and not rights.write.allows(p.document.type_code):
        return deny("MATRIX.write", "type de document que cette profession ne peut pas déposer")
    mode = AccessMode.MEDECIN_TRAITANT if p.consents.medecin_traitant == actor.id else AccessMode.NORMAL
    # Feeding needs no consultation authorisation (TD0.2 NB2).
    return permit("AC-17.write" if is_occupational(actor) else "FEED.professional", mode)


def _mask(p: _Parties) -> Decision:
    if p.is_patient or p.author:
        return permit("AC-07.mask", p.patient_or_professional_mode)
    return deny("AC-07.mask-not-allowed", "seuls le patient et l'auteur masquent un document")


def _set_patient_visibility(p: _Parties) -> Decision:
    if p.is_pro and (p.author or p.consents.medecin_traitant == p.actor.id):
        return permit("AC-10.visibility", AccessMode.NORMAL)
    return deny(
        "AC-10.visibility-not-allowed", "seuls l'auteur et le médecin traitant décident de l'annonce"
    )


def _set_representative_visibility(p: _Parties) -> Decision:
    if p.is_patient or (p.is_pro and p.author):
        return permit("AC-19.visibility", p.patient_or_professional_mode)
    return deny(
        "AC-19.visibility-not-allowed", "seuls le patient et l'auteur décident de cette visibilité"
    )


def _archive(p: _Parties) -> Decision:
    if p.is_patient or p.author:
        return permit("DOC.archive", p.patient_or_professional_mode)
    return deny("DOC.archive-not-allowed", "seuls le patient et l'auteur archivent un document")


def _delete(p: _Parties) -> Decision:
    if p.author:
        return permit("DOC.delete-author", p.patient_or_professional_mode)
    return deny("DOC.delete-not-author", "seul l'auteur du document peut le supprimer")


def _manage_consents(p: _Parties) -> Decision:
    if p.is_patient or p.is_representative:
        return permit("AC-02.patient-manages", p.holder_mode)
    return deny(
        "AC-02.patient-only", "seul le patient (ou son représentant légal) gère ses autorisations"
    )


def _block_professional(p: _Parties) -> Decision:
    if p.is_patient or p.is_representative:
        return permit("AC-23.block", p.holder_mode)
    if p.is_pro and p.actor.id in p.consents.administrators:
        return permit("AC-12.administrator-blocks", AccessMode.NORMAL)
    return deny(
        "AC-23.block-not-allowed", "seuls le patient et ses administrateurs bloquent un professionnel"
    )


def _revoke_consent(p: _Parties) -> Decision:
    if p.is_patient or p.is_representative:
        return permit("AC-02.patient-revokes", p.holder_mode)
    consent = p.consent
    if p.is_pro and consent is not None and consent.subject_id == p.actor.id and (
        consent.kind in OWN_ATTESTATION_KINDS
    ):
        return permit("AC-02.own-attestation-revoked", AccessMode.NORMAL)
    return deny(
        "AC-02.revoke-not-allowed",
        "seuls le patient, son représentant légal et le professionnel qui l'a attesté le retirent",
    )


def _attest_authorisation(p: _Parties) -> Decision:
    if p.is_pro and not is_occupational(p.actor):
        return permit("AC-02.attested", AccessMode.NORMAL)
    return deny("AC-02.attest-not-allowed", "attestation réservée aux professionnels de santé")


def _declare_care_team(p: _Parties) -> Decision:
    if p.is_pro and p.actor.structure_id and not is_occupational(p.actor):
        return permit("AC-15.declared", AccessMode.NORMAL)
    return deny(
        "AC-15.declare-not-allowed", "déclaration réservée aux professionnels d'une structure de soins"
    )


def _close_record(p: _Parties) -> Decision:
    # LC-10/LC-12: « le titulaire décide de sa création et de sa fermeture ».
    if p.is_patient:
        return permit("LC-10.holder-closes", AccessMode.PATIENT)
    return deny("LC-10.close-not-allowed", "seul le titulaire du dossier peut le fermer")


# The rule of each action other than READ; an action missing here is refused (DEFAULT.deny).
_ACTION_RULES: dict[Action, Callable[[_Parties], Decision]] = {
    Action.WRITE: _write,
    Action.MASK: _mask,
    Action.SET_PATIENT_VISIBILITY: _set_patient_visibility,
    Action.SET_REPRESENTATIVE_VISIBILITY: _set_representative_visibility,
    Action.ARCHIVE: _archive,
    Action.DELETE: _delete,
    Action.MANAGE_CONSENTS: _manage_consents,
    Action.BLOCK_PROFESSIONAL: _block_professional,
    Action.REVOKE_CONSENT: _revoke_consent,
    Action.ATTEST_AUTHORISATION: _attest_authorisation,
    Action.DECLARE_CARE_TEAM: _declare_care_team,
    Action.CLOSE_RECORD: _close_record,
}
