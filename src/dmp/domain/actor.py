"""Who is acting. ``auth`` turns credentials into an Actor; ``policy`` decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ActorKind(StrEnum):
    PROFESSIONAL = "professional"
    PATIENT = "patient"
    REPRESENTATIVE = "representative"
    OPERATOR = "operator"  # the operator's staff / desk (CLI), never reads health content
    SYSTEM = "system"


class PurposeOfUse(StrEnum):
    """HL7 v3 PurposeOfUse (2.16.840.1.113883.5.8) codes used by the DMP."""

    TREAT = "TREAT"  # normal care access
    ETREAT = "ETREAT"  # emergency treatment: break-glass ("bris de glace")
    CENTRE15 = "CENTRE15"  # regulation by a centre 15 (SAMU), CI-SIS mode "centre_15"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    # National id: IDNPS ("8" + RPPS) for a professional, INS for a patient.
    id: str
    name: str
    profession: str | None = None  # TRE_G15 code, e.g. "10" (médecin)
    specialty: str | None = None  # savoir-faire, e.g. "SM26"
    structure_id: str | None = None  # Struct_IdNat
    structure_name: str | None = None
    setting: str | None = None  # practice setting of the structure (TRE_A01), e.g. SAMU_SMUR
    purpose: PurposeOfUse = PurposeOfUse.TREAT
    justification: str | None = None
    software: str | None = None
    source_address: str | None = None  # the client's network address, for the trail
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def rpps(self) -> str | None:
        if self.kind is ActorKind.PROFESSIONAL and self.id.startswith("8"):
            return self.id[1:]
        return None
