"""Typed clinical facts read from a CDA body, each with its provenance in the document.

Pure data: no database, no web. Values keep the document's own decimal text (``Quantity.value``)
so nothing is lost to float rounding; ``Quantity.number`` gives the float for storage and FHIR.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

Kind = Literal[
    "allergy",
    "problem",
    "medication",
    "lab_result",
    "vital_sign",
    "immunization",
    "blood_group",
    "device",  # an implanted or used medical device (CI-SIS « Dispositifs médicaux »)
    "directive",  # « Directives anticipées »: their existence, date and document
    "trusted_person",  # « Personne de confiance » of the header
    "lab_report",  # the report of a lab document, grouping its lab results
]
KINDS: tuple[Kind, ...] = get_args(Kind)  # one list: the type and the run-time tuple cannot drift


def _json(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_json(x) for x in obj]
    if hasattr(obj, "__dataclass_fields__"):
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if value is None or value == ():
                continue
            out[f.name] = _json(value)
        return out
    return obj


@dataclass(frozen=True)
class Code:
    """A coded value: the CDA's codeSystem OID, its code and display, or only a text."""

    system: str | None = None  # OID as in the CDA (codeSystem)
    code: str | None = None
    display: str | None = None
    text: str | None = None  # originalText, resolved against the narrative when it is a reference

    @property
    def label(self) -> str | None:
        return self.display or self.text or self.code


@dataclass(frozen=True)
class Quantity:
    value: str  # decimal text as written in the document
    unit: str | None = None  # UCUM

    @property
    def number(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class Range:
    low: Quantity | None = None
    high: Quantity | None = None
    text: str | None = None


@dataclass(frozen=True)
class Author:
    name: str | None = None
    id: str | None = None  # root^extension
    time: str | None = None  # FHIR dateTime


@dataclass(frozen=True)
class Provenance:
    """Where a fact comes from, inside its document."""

    section_code: str | None
    section_title: str | None
    entry_index: int  # document-wide ordinal of the <entry>, from 0
    template_ids: tuple[str, ...]  # of the element the fact was read from
    ids: tuple[str, ...] = ()  # the element's own <id>s, root^extension
    author: Author | None = None  # when the entry (or its concern) names its own author


@dataclass(frozen=True)
class Fact:
    kind: Kind
    provenance: Provenance
    code: Code | None = None  # what: diagnosis, agent, analyte, drug, vaccine
    status: str | None = None  # active / resolved / inactive / completed / intended / stopped / not-done
    effective_start: str | None = None  # FHIR date or dateTime
    effective_end: str | None = None
    value: Quantity | None = None
    value_code: Code | None = None
    value_text: str | None = None
    reference_range: Range | None = None
    interpretation: Code | None = None
    specimen: Code | None = None
    category: Code | None = None  # allergy type, observation type, problem kind
    route: Code | None = None
    dose: Quantity | None = None
    dose_range: Range | None = None
    frequency: Quantity | None = None  # period of a PIVL_TS: value every unit
    lot: str | None = None
    dose_number: int | None = None
    mood: str | None = None  # EVN (done) / INT (prescribed, planned)
    udi: str | None = None  # a device's unique identifier (UDI-DI + UDI-PI) or catalogue reference
    name: str | None = None  # a person's name (trusted person)
    telecom: tuple[str, ...] = ()  # a person's contact points, as written (tel:…, mailto:…)
    documents: tuple[str, ...] = ()  # external documents referred to (advance directives), root^extension
    results: tuple[int, ...] = ()  # a lab report's results: ordinals of facts of the same extraction

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = _json(self)
        return out


@dataclass(frozen=True)
class Extraction:
    """What could be read from one document; ``error`` set when nothing could be."""

    document_id: str | None = None  # ClinicalDocument/id, root^extension
    level: int | None = None  # 1: nonXMLBody, 3: structuredBody
    facts: tuple[Fact, ...] = ()
    text: str | None = None  # level 1 text, or the narrative of a structured body
    media_type: str | None = None  # of a level-1 body
    skipped_entries: int = 0  # entries of templates this module does not read
    failed_entries: int = 0  # entries of a known kind that could not be read (the extraction is partial)
    notes: tuple[str, ...] = ()  # French, for the document's author and the operator
    error: str | None = None  # French
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None
