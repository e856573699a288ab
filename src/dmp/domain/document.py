"""Document entries: the PDSm/XDS metadata of a shared document, as the record keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntFlag, StrEnum
from uuid import UUID


class Availability(StrEnum):
    """XDS availabilityStatus as the DMP uses it (JDV_J52)."""

    APPROVED = "approved"  # urn:oasis:names:tc:ebxml-regrep:StatusType:Approved
    DEPRECATED = "deprecated"  # replaced by a newer version
    ARCHIVED = "archived"  # urn:asip:ci-sis:2010:StatusType:Archived (still current)
    DELETED = "deleted"  # urn:asip:ci-sis:2010:StatusType:Deleted ("dépublié")

    @property
    def fhir_status(self) -> str:
        return _FHIR_STATUS[self]


_FHIR_STATUS = {
    Availability.APPROVED: "current",
    Availability.ARCHIVED: "current",
    Availability.DEPRECATED: "superseded",
    Availability.DELETED: "entered-in-error",
}

FHIR_STATUS_TO_AVAILABILITY: dict[str, tuple[Availability, ...]] = {
    "current": (Availability.APPROVED, Availability.ARCHIVED),
    "superseded": (Availability.DEPRECATED,),
    "entered-in-error": (Availability.DELETED,),
}


class Confidentiality(StrEnum):
    """HL7 confidentiality level (TRE_A08), the first confidentialityCode."""

    N = "N"
    R = "R"
    V = "V"


class DmpFlag(IntFlag):
    """DMP visibility flags of JDV_J58 (TRE_A07), held as a set next to the level."""

    NONE = 0
    MASQUE_PS = 1  # hidden from professionals (but the author & co.)
    INVISIBLE_PATIENT = 2  # hidden from the patient until the announcement consultation
    INVISIBLE_REPRESENTANTS_LEGAUX = 4  # hidden from a minor's legal representatives


def flags_from_codes(codes: list[str]) -> DmpFlag:
    result = DmpFlag.NONE
    for code in codes:
        result |= DmpFlag[code]
    return result


def flag_codes(flags: int) -> list[str]:
    return [f.name for f in DmpFlag if f and f.name and flags & f]


class AuthorKind(StrEnum):
    PROFESSIONAL = "professional"
    PATIENT = "patient"
    DEVICE = "device"
    ORGANIZATION = "organization"


@dataclass(frozen=True, slots=True)
class Author:
    kind: AuthorKind
    id: str | None  # IDNPS ("8"+RPPS), INS, or device id
    name: str | None = None
    role: str | None = None  # JDV_J47 function code, e.g. PCP (médecin traitant)
    specialty: str | None = None  # JDV_J01, e.g. G15_10/SM26
    org_id: str | None = None  # Struct_IdNat
    org_name: str | None = None


@dataclass(slots=True)
class DocumentEntry:
    """One document version's metadata (an XDS DocumentEntry / FHIR DocumentReference)."""

    unique_id: str
    class_code: str
    type_system: str
    type_code: str
    format_code: str
    facility_code: str
    practice_code: str
    confidentiality: Confidentiality
    flags: DmpFlag
    author: Author
    creation_time: datetime
    period_start: datetime
    period_end: datetime | None
    title: str
    mime_type: str
    language: str
    size: int
    sha1_b64: str
    event_codes: list[tuple[str, str]] = field(default_factory=list)
    replaces: UUID | None = None
    replaces_unique_id: str | None = None
