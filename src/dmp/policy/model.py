"""What the policy decides on: actions, record consents, document facts, decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    READ = "read"  # open the record, search it, read a document's metadata or bytes
    WRITE = "write"  # publish (ITI-65), including a replacement
    MASK = "mask"  # set/clear MASQUE_PS
    SET_PATIENT_VISIBILITY = "set-patient-visibility"  # set/clear INVISIBLE_PATIENT
    SET_REPRESENTATIVE_VISIBILITY = "set-representative-visibility"  # INVISIBLE_REPRESENTANTS_LEGAUX
    ARCHIVE = "archive"
    DELETE = "delete"
    MANAGE_CONSENTS = "manage-consents"  # authorisations, blocks, médecin traitant, emergency…
    ATTEST_AUTHORISATION = "attest-authorisation"  # "le patient m'a autorisé"
    DECLARE_CARE_TEAM = "declare-care-team"  # the patient is treated in my structure
    BLOCK_PROFESSIONAL = "block-professional"  # the patient, a representative or an administrator
    REVOKE_CONSENT = "revoke-consent"  # withdraw one consent row (``ConsentFacts``)
    READ_PATIENT = "read-patient"  # the Patient resource: the record's identity and status
    CLOSE_RECORD = "close-record"  # the holder closes the record online (LC-10)


class Effect(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class AccessMode(StrEnum):
    """CI-SIS TRE_R248 access modes, plus the named exceptions that mark the trail."""

    NORMAL = "normal"
    MEDECIN_TRAITANT = "medecin_traitant"
    BRIS_DE_GLACE = "bris_de_glace"
    CENTRE_15 = "centre_15"
    PATIENT = "patient"
    REPRESENTATIVE = "representant_legal"


class Obligation(StrEnum):
    NOTIFY_PATIENT = "notify-patient"  # emergency accesses
    TRACE_JUSTIFICATION = "trace-justification"


class Transparency(StrEnum):
    """How much a professional learns of documents masked from them (AC-08 / AC-09)."""

    HIDDEN = "hidden"  # "masquage du masquage": nothing
    COUNT = "count"  # how many documents are masked
    CATEGORY = "category"  # and their classes


@dataclass(frozen=True, slots=True)
class EmergencyConsents:
    """The patient's answers to the three DMP emergency consents (MES: ETREAT, BTG, MASKED)."""

    samu: bool = True  # ETREAT: centre 15 regulation may read the record (default: allowed)
    break_glass: bool = True  # BTG: other emergency professionals may break the glass
    masked: bool = False  # MASKED: emergency access may include masked documents (opt-in)


@dataclass(frozen=True, slots=True)
class RecordConsents:
    """Everything the patient (or the law) decided about who may access the record."""

    authorised: frozenset[str] = frozenset()  # IDNPS who attested "le patient m'a autorisé"
    blocked: frozenset[str] = frozenset()  # IDNPS blocked by the patient
    medecin_traitant: str | None = None  # designated by the patient AND accepted by the doctor
    administrators: frozenset[str] = frozenset()  # professionals who administer the record
    care_teams: frozenset[str] = frozenset()  # structures where the patient is treated
    care_team_objections: frozenset[str] = frozenset()  # structures the patient objected to
    representatives: frozenset[str] = frozenset()  # legal representatives' account ids
    emergency: EmergencyConsents = field(default_factory=EmergencyConsents)


@dataclass(frozen=True, slots=True)
class RecordFacts:
    patient_id: str
    open: bool
    consents: RecordConsents
    # LC-08: since when the holder, now of age, has been asked to confirm the record (None: not).
    majority_pending_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """The consent row a REVOKE_CONSENT names: its kind and whom it concerns."""

    kind: str  # dmp.domain.consent.ConsentKind value
    subject_id: str | None


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    type_code: str
    class_code: str
    flags: int
    availability: str  # approved | archived | deprecated | deleted
    author_id: str | None
    published_by: str | None
    submitted: datetime
    occupational: bool = False  # deposited by occupational medicine (AC-17)


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime
    transparency: Transparency = Transparency.HIDDEN
    majority_grace_days: int = 30  # LC-08: professionals keep access this long after majority
    history: bool = False  # the caller asks for replaced versions explicitly


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    rule_id: str
    mode: AccessMode | None = None
    obligations: frozenset[Obligation] = frozenset()
    reason: str = ""  # French, for the trail and the refusal message

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.PERMIT


def deny(rule_id: str, reason: str) -> Decision:
    return Decision(Effect.DENY, rule_id, reason=reason)


def permit(rule_id: str, mode: AccessMode, *obligations: Obligation) -> Decision:
    return Decision(Effect.PERMIT, rule_id, mode, frozenset(obligations))
