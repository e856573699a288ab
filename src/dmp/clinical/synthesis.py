"""The synthesis-first record page's data (CS-07, CT-04, CT-05, CS-10), from visible facts.

Pure: the caller passes the FHIR resources of the facts the viewer may see (``services.facts``
filtered them in SQL) and this module groups them for display. Duplicates are merged here and only
here: the same allergy written in five letters is one line naming its five sources; the FHIR
searches keep returning each fact with its own provenance.

Merging keys: the code (system and code) when the fact is coded, else its text folded (case,
accents, spaces). Lab results are grouped by analyte (``dmp.clinical.units``: the g/L and mmol/L
codes of glucose are one analyte), shown in the analyte's unit, with a trend against the previous
value taken at an earlier time.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dmp.clinical import units
from dmp.fhir.common import concept_label as label

Json = dict[str, Any]
Trend = Literal["up", "down", "stable", "none"]
STABLE_WITHIN = 0.01  # a relative change under 1 % reads as stable (conversions round)
_NOT_CURRENT_ALLERGY = {"inactive", "resolved"}
_NOT_ACTIVE_PROBLEM = {"inactive", "resolved", "remission"}
_CURRENT_MEDICATION = {"active", "intended", "on-hold"}


@dataclass(frozen=True)
class Source:
    document_id: str
    date: str  # the fact's own date (FHIR date or dateTime), "" when it has none


@dataclass
class Line:
    """One line of a section: a fact, or the same fact found in several documents."""

    key: str
    label: str
    detail: str  # status, dosage, lot… of the most recent source
    date: str
    sources: list[Source] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """The last value of one analyte, with how it moved since the previous one."""

    key: str
    label: str
    value: float | None  # None: not numeric (then ``text``)
    unit: str
    text: str  # the value as shown
    date: str
    source: Source
    trend: Trend
    previous: str | None  # the previous value as shown, with its date
    note: str | None  # why the value is not in the analyte's unit, or not compared
    count: int  # values of this analyte in the record


@dataclass(frozen=True)
class Synthesis:
    allergies: list[Line]
    problems: list[Line]
    medications: list[Line]
    results: list[Result]
    immunizations: list[Line]


def fold(text: str) -> str:
    """Text as compared for merging: no case, no accents, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def concept_key(concept: Any) -> str:
    """The merging key of a CodeableConcept: its first coding, else its folded text."""
    if isinstance(concept, dict):
        for c in concept.get("coding", []):
            if c.get("code"):
                return f"{c.get('system', '')}|{c['code']}"
    return "text:" + fold(label(concept))


def document_of(res: Json) -> str:
    source = str((res.get("meta") or {}).get("source") or "")
    return source.removeprefix("DocumentReference/")


def _status(res: Json, key: str) -> str:
    coding = ((res.get(key) or {}).get("coding") or [{}])[0]
    return str(coding.get("code") or "")


def _date(res: Json, *keys: str) -> str:
    for k in keys:
        v = res.get(k)
        if isinstance(v, dict):
            v = v.get("start")
        if v:
            return str(v)
    return ""


def merge(items: Iterable[tuple[str, str, str, str, str]]) -> list[Line]:
    """(key, label, detail, date, document id) → one line per key, every source kept, the detail
    and label of the most recent source; lines in order of first appearance."""
    lines: dict[str, Line] = {}
    for key, text, detail, date, doc in items:
        line = lines.get(key)
        if line is None:
            lines[key] = Line(key, text, detail, date, [Source(doc, date)])
            continue
        if Source(doc, date) not in line.sources:
            line.sources.append(Source(doc, date))
        if date > line.date:
            line.label, line.detail, line.date = text, detail, date
    for line in lines.values():
        line.sources.sort(key=lambda s: s.date, reverse=True)
    return list(lines.values())


def _allergies(facts: Sequence[Json]) -> list[Line]:
    return merge(
        (concept_key(r.get("code")), label(r.get("code")) or "Allergie non précisée",
         "", _date(r, "onsetDateTime", "recordedDate"), document_of(r))
        for r in facts
        if r.get("resourceType") == "AllergyIntolerance"
        and _status(r, "clinicalStatus") not in _NOT_CURRENT_ALLERGY
    )


def _problems(facts: Sequence[Json]) -> list[Line]:
    return merge(
        (concept_key(r.get("code")), label(r.get("code")) or "Problème non précisé",
         "", _date(r, "onsetDateTime", "recordedDate"), document_of(r))
        for r in facts
        if r.get("resourceType") == "Condition" and _status(r, "clinicalStatus") not in _NOT_ACTIVE_PROBLEM
    )


def _dosage(res: Json) -> str:
    dosage = (res.get("dosage") or [{}])[0]
    return str(dosage.get("text") or "")


def _medication(r: Json) -> tuple[str, str, str, str, str]:
    drug = label(r.get("medicationCodeableConcept"))
    dosage = _dosage(r)
    detail = dosage if fold(dosage) != fold(drug) else ""  # a dosage text that only repeats the drug
    return (concept_key(r.get("medicationCodeableConcept")), drug, detail, _date(r, "effectivePeriod"),
            document_of(r))


def _medications(facts: Sequence[Json]) -> list[Line]:
    return merge(
        _medication(r)
        for r in facts
        if r.get("resourceType") == "MedicationStatement" and r.get("status") in _CURRENT_MEDICATION
    )


def _immunizations(facts: Sequence[Json]) -> list[Line]:
    """One line per vaccine and date: the same injection reported twice is one line."""
    lines = merge(
        (concept_key(r.get("vaccineCode")) + "@" + _date(r, "occurrenceDateTime")[:10],
         label(r.get("vaccineCode")), f"lot {r['lotNumber']}" if r.get("lotNumber") else "",
         _date(r, "occurrenceDateTime"), document_of(r))
        for r in facts
        if r.get("resourceType") == "Immunization" and r.get("status") != "not-done"
    )
    return sorted(lines, key=lambda line: line.date, reverse=True)


_UNIT_FR = {"umol/L": "µmol/L", "ug/mL": "µg/mL", "nmol/L": "nmol/L"}  # UCUM's ``u`` is the micro sign


def number_fr(value: float) -> str:
    """A value as a French reader writes it: decimal comma, no trailing zeros."""
    text = f"{value:.6g}"
    return text.replace(".", ",") if "e" not in text else f"{value:g}".replace(".", ",")


@dataclass(frozen=True)
class Point:
    key: str
    label: str
    value: float | None
    unit: str
    text: str
    date: str
    source: Source
    note: str | None
    original: str  # the value as the source document wrote it
    converted: bool = False  # shown in another unit than its document's


def _written(q: Json) -> str:
    """The value as written: the ``iso21090-PQ-translation`` kept beside a normalised value."""
    for ext in q.get("extension") or []:
        if str(ext.get("url", "")).endswith("PQ-translation") and isinstance(ext.get("valueQuantity"), dict):
            q = ext["valueQuantity"]
            break
    value = q.get("value")
    shown = number_fr(float(value)) if isinstance(value, int | float) else ""
    unit = str(q.get("unit") or "")
    return f"{shown} {_UNIT_FR.get(unit, unit)}".strip()


def _point(res: Json) -> Point:
    code = (res.get("code") or {}).get("coding") or [{}]
    loinc = code[0].get("code") if code[0].get("system") == "http://loinc.org" else None
    analyte = units.analyte_of(loinc)
    key = f"analyte:{analyte.key}" if analyte else concept_key(res.get("code"))
    name = analyte.label if analyte else label(res.get("code")) or "Examen non précisé"
    date = _date(res, "effectiveDateTime", "effectivePeriod")
    source = Source(document_of(res), date)
    q = res.get("valueQuantity")
    if not isinstance(q, dict) or not isinstance(q.get("value"), int | float):
        text = label(res.get("valueCodeableConcept")) or str(res.get("valueString") or "")
        return Point(key, name, None, "", text, date, source, None, text)
    value, unit = float(q["value"]), str(q.get("code") or q.get("unit") or "")
    note, written = None, _written(q)
    if analyte is not None:
        shown = units.to_unit(value, str(q["value"]), unit or None, analyte.unit, analyte)
        value, unit, note = shown.value, shown.unit, shown.reason
    text = f"{number_fr(value)} {_UNIT_FR.get(unit, unit)}".strip()
    return Point(key, name, value, unit, text, date, source, note, written, text != written)


def date_fr(value: str) -> str:
    """A FHIR date as a French reader writes it (``2026-11-18`` → ``18/11/2026``)."""
    parts = value[:10].split("-")
    return "/".join(reversed(parts)) if all(p.isdigit() for p in parts) else value


def trend(last: float | None, previous: float | None) -> Trend:
    if last is None or previous is None:
        return "none"
    if abs(last - previous) <= STABLE_WITHIN * abs(previous):
        return "stable"
    return "up" if last > previous else "down"


def _samples(points: Iterable[Point]) -> list[Point]:
    """One value per sample, newest first: an analyte printed under two codes (g/L and mmol/L)
    from one document at one time is one sample, shown by the value written in the analyte's
    own unit when there is one."""
    best: dict[tuple[str, str], Point] = {}
    for p in points:
        seen = best.get((p.source.document_id, p.date))
        if seen is None or (seen.converted and not p.converted):
            best[(p.source.document_id, p.date)] = p
    return sorted(best.values(), key=lambda p: p.date, reverse=True)


def _result(found: list[Point]) -> Result:
    points = _samples(found)
    last = points[0]
    # The previous value is one taken earlier: the same sample coded twice (g/L and mmol/L) is not.
    earlier = next((p for p in points[1:] if p.date < last.date), None)
    comparable = earlier is not None and earlier.unit == last.unit and last.value is not None
    note = last.note
    if earlier is not None and not comparable and note is None:
        note = "valeur précédente dans une autre unité : évolution non calculée"
    return Result(
        last.key, last.label, last.value, last.unit, last.text, last.date, last.source,
        trend(last.value, earlier.value) if comparable and earlier is not None else "none",
        f"{earlier.text} le {date_fr(earlier.date)}" if earlier is not None else None,
        note, len(points),
    )


def results(facts: Sequence[Json]) -> list[Result]:
    """The last value of each analyte of the laboratory (and vital signs), newest first."""
    grouped: dict[str, list[Point]] = {}
    for r in facts:
        if r.get("resourceType") == "Observation":
            p = _point(r)
            grouped.setdefault(p.key, []).append(p)
    found = [_result(points) for points in grouped.values()]
    return sorted(found, key=lambda r: (r.date, r.label), reverse=True)


def history(facts: Sequence[Json], key: str) -> list[Point]:
    """Every value of one analyte (``Result.key``), oldest first, in the analyte's unit."""
    points = [p for p in (_point(r) for r in facts if r.get("resourceType") == "Observation") if p.key == key]
    return list(reversed(_samples(points)))


def synthesis(facts: Sequence[Json]) -> Synthesis:
    return Synthesis(
        _allergies(facts), _problems(facts), _medications(facts), results(facts), _immunizations(facts)
    )
