"""The kinds of the patient's access choices and one stored choice, as the record keeps them.

Pure data shared by the consent service (``dmp.services.consents``) and the FHIR ``Consent``
mapping (``dmp.fhir.consent``), which must not depend on the services (ADR 0001).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class ConsentKind(StrEnum):
    AUTHORISATION = "authorisation"  # a professional may read the record
    BLOCK = "block"  # a professional may not access the record at all
    MEDECIN_TRAITANT = "medecin-traitant"
    ADMINISTRATOR = "administrator"
    CARE_TEAM = "care-team"  # the patient is treated in this structure
    CARE_TEAM_OBJECTION = "care-team-objection"
    EMERGENCY_SAMU = "emergency-samu"  # MES "ETREAT"
    EMERGENCY_BREAK_GLASS = "emergency-btg"  # MES "BTG"
    EMERGENCY_MASKED = "emergency-masked"  # MES "MASKED"
    REPRESENTATIVE = "representative"  # a legal representative of a minor


EMERGENCY_KINDS = {
    ConsentKind.EMERGENCY_SAMU,
    ConsentKind.EMERGENCY_BREAK_GLASS,
    ConsentKind.EMERGENCY_MASKED,
}
SUBJECT_KINDS = set(ConsentKind) - EMERGENCY_KINDS


@dataclass(frozen=True)
class ConsentRow:
    id: UUID
    patient_id: UUID
    kind: ConsentKind
    subject_id: str | None
    permit: bool
    status: str
    created_at: datetime
    created_by: str
