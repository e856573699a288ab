"""Read clinical facts from a FHIR document: a Bundle of type ``document`` (JSON).

A published document may be a FHIR document (IPS, a FHIR CR) rather than a CDA; its entries are
already FHIR resources. They are read into the same ``Fact`` model as CDA entries, so that they
are stored, rendered (``dmp.clinical.fhir``) and searched like any other fact: codes, dates,
values, status. Provenance: the Composition section that references the entry (its LOINC code
and title), the entry's index in the Bundle, the resource's ``meta.profile`` as its templates and
its ``identifier``s as its ids.

Bounded like the CDA reader (size, entry count, nesting); never raises for bad input: an
unreadable document gives an ``Extraction`` with ``error`` set, an entry of a known type that
cannot be read is counted in ``failed_entries`` (the extraction is then partial) and named in a
French note, other entries are ``skipped_entries``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from functools import partial
from html import unescape
from typing import Any

from dmp.clinical.fhir import SYSTEMS
from dmp.clinical.model import Author, Code, Extraction, Fact, Kind, Provenance, Quantity, Range

Json = dict[str, Any]

MAX_BYTES = 32 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_NOTES = 5
LOINC = "2.16.840.1.113883.6.1"
BLOOD_GROUP_CODES = frozenset({"882-1", "883-9", "10331-7", "34474-7", "34475-4"})
LAB_REPORT_TYPES = frozenset({"11502-2", "96173-0"})
_OID_OF = {uri: oid for oid, uri in SYSTEMS.items()}
# AllergyIntolerance (category, type) → the SNOMED CT code a CDA carries (dmp.clinical.fhir reverses it).
_ALLERGY_CODE = {
    ("medication", "allergy"): "416098002",
    ("medication", "intolerance"): "59037007",
    ("food", "allergy"): "414285001",
    ("food", "intolerance"): "235719002",
    ("environment", "allergy"): "419199007",
}
SNOMED = "2.16.840.1.113883.6.96"
# FHIR Observation.status → the CDA statusCode a Fact keeps (dmp.clinical.fhir maps it back).
_OBS_STATUS = {
    "final": "completed",
    "amended": "completed",
    "corrected": "completed",
    "preliminary": "active",
    "registered": "active",
    "cancelled": "aborted",
}


class _Unreadable(Exception):
    """An entry of a known type whose shape this reader cannot follow."""


def _oid(system: object) -> str | None:
    """A FHIR system URI as the Fact model keeps it: the OID when one is known, else the URI."""
    if not isinstance(system, str) or not system:
        return None
    if system.startswith("urn:oid:"):
        return system[8:]
    return _OID_OF.get(system, system)


def _str(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _obj(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _code(cc: object) -> Code | None:
    """A CodeableConcept (or a Coding) as a Code: its first coding with a code, and its text."""
    cc = _obj(cc)
    codings = [c for c in _list(cc.get("coding")) if isinstance(c, dict) and _str(c.get("code"))]
    if not codings and _str(cc.get("code")):  # a bare Coding
        codings = [cc]
    text = _str(cc.get("text"))
    if not codings:
        return Code(text=text) if text else None
    c = codings[0]
    return Code(
        system=_oid(c.get("system")), code=_str(c.get("code")), display=_str(c.get("display")), text=text
    )


def _number(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return str(value)


def _quantity(q: object) -> Quantity | None:
    q = _obj(q)
    value = _number(q.get("value"))
    if value is None:
        return None
    return Quantity(value=value, unit=_str(q.get("code")) or _str(q.get("unit")))


def _range(r: object) -> Range | None:
    r = _obj(r)
    low, high, text = _quantity(r.get("low")), _quantity(r.get("high")), _str(r.get("text"))
    return Range(low=low, high=high, text=text) if (low or high or text) else None


def _period(res: Json, prefix: str) -> tuple[str | None, str | None]:
    """``<prefix>DateTime`` or ``<prefix>Period`` (start, end)."""
    when = _str(res.get(f"{prefix}DateTime"))
    if when:
        return when, None
    period = _obj(res.get(f"{prefix}Period"))
    return _str(period.get("start")), _str(period.get("end"))


def _ids(res: Json) -> tuple[str, ...]:
    out = []
    for ident in _list(res.get("identifier")):
        system, value = _str(_obj(ident).get("system")), _str(_obj(ident).get("value"))
        if value and system and system != "urn:ietf:rfc:3986":
            out.append(f"{_oid(system)}^{value}")
        elif value:
            out.append(value.removeprefix("urn:oid:").removeprefix("urn:uuid:"))
    return tuple(out)


def _status(res: Json, element: str) -> str | None:
    code = _code(res.get(element))
    return code.code if code else None


def _who(ref: object) -> Author | None:
    name = _str(_obj(ref).get("display"))
    return Author(name=name) if name else None


class _Reader:
    def __init__(self, bundle: Json) -> None:
        self.entries = [_obj(e) for e in _list(bundle.get("entry"))]
        # An entry is referenced by its fullUrl or, inside a document, by <type>/<id>.
        self.by_url: dict[str, Json] = {}
        for e in self.entries:
            res = _obj(e.get("resource"))
            if isinstance(e.get("fullUrl"), str):
                self.by_url[e["fullUrl"]] = res
            if isinstance(res.get("resourceType"), str) and isinstance(res.get("id"), str):
                self.by_url.setdefault(f"{res['resourceType']}/{res['id']}", res)
        self.composition = next(
            (
                _obj(e.get("resource"))
                for e in self.entries
                if _obj(e.get("resource")).get("resourceType") == "Composition"
            ),
            {},
        )
        self.sections: dict[str, tuple[str | None, str | None]] = {}
        self._index_sections(_list(self.composition.get("section")))
        self.facts: list[Fact] = []
        self.skipped = 0
        self.failed: list[str] = []

    def _index_sections(self, sections: list[Any], depth: int = 0) -> None:
        for sec in sections:
            sec = _obj(sec)
            code = _code(sec.get("code"))
            where = (code.code if code else None, _str(sec.get("title")))
            for ref in _list(sec.get("entry")):
                target = _str(_obj(ref).get("reference"))
                if target:
                    self.sections.setdefault(target, where)
            if depth < 8:
                self._index_sections(_list(sec.get("section")), depth + 1)

    def provenance(self, index: int, url: str | None, res: Json, author: Author | None) -> Provenance:
        rtype, rid = res.get("resourceType"), res.get("id")
        where = self.sections.get(url or "") or self.sections.get(f"{rtype}/{rid}") or (None, None)
        profiles = tuple(p for p in _list(_obj(res.get("meta")).get("profile")) if isinstance(p, str))
        return Provenance(where[0], where[1], index, profiles, _ids(res), author)

    def run(self) -> None:
        for index, entry in enumerate(self.entries):
            res = _obj(entry.get("resource"))
            rtype = str(res.get("resourceType") or "")
            reader = _READERS.get(rtype)
            if reader is None:
                if rtype not in _FRAME:
                    self.skipped += 1
                continue
            try:
                fact = reader(self, res, partial(self.provenance, index, _str(entry.get("fullUrl")), res))
            except _Unreadable as exc:
                self.failed.append(f"entrée {index + 1} ({rtype}) illisible : {exc}"[:200])
                continue
            except (ValueError, TypeError, AttributeError) as exc:  # its message may quote the content
                self.failed.append(f"entrée {index + 1} ({rtype}) illisible : {type(exc).__name__}")
                continue
            if fact is None:
                self.skipped += rtype not in _FRAME  # a frame resource that states no fact
            else:
                self.facts.append(fact)

    def medication_code(self, res: Json) -> Code | None:
        """``medicationCodeableConcept``, or the code of the Medication ``medicationReference`` names."""
        if "medicationCodeableConcept" in res:
            return _code(res["medicationCodeableConcept"])
        ref = _obj(res.get("medicationReference"))
        target = _str(ref.get("reference")) or ""
        med = self.by_url.get(target) or next(
            (_obj(c) for c in _list(res.get("contained")) if f"#{_obj(c).get('id')}" == target), {}
        )
        return _code(med.get("code")) or (Code(text=_str(ref.get("display"))) if ref.get("display") else None)

    def lab_report(self) -> None:
        """The DiagnosticReport of a lab document (Composition.type a lab report type)."""
        doc_type = _code(self.composition.get("type"))
        if doc_type is None or doc_type.code not in LAB_REPORT_TYPES:
            return
        results = tuple(i for i, f in enumerate(self.facts) if f.kind in {"lab_result", "blood_group"})
        if not results:
            return
        dates = sorted(d for i in results if (d := self.facts[i].effective_start))
        authors = _list(self.composition.get("author"))
        author = Author(
            name=_str(_obj(authors[0]).get("display")) if authors else None,
            time=_str(self.composition.get("date")),
        )
        prov = Provenance(None, "En-tête du document", -1, (), _ids(self.composition), author)
        self.facts.append(
            Fact(
                kind="lab_report",
                provenance=prov,
                code=doc_type,
                status="completed",
                effective_start=dates[0] if dates else None,
                results=results,
            )
        )


ProvenanceOf = Callable[[Author | None], Provenance]


def _allergy(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    categories = [c for c in _list(res.get("category")) if isinstance(c, str)]
    kind = _str(res.get("type")) or "allergy"
    snomed = _ALLERGY_CODE.get((categories[0], kind)) if categories else None
    start, _end = _period(res, "onset")
    return Fact(
        kind="allergy",
        provenance=prov(_who(res.get("recorder"))),
        code=_code(res.get("code")),
        category=Code(system=SNOMED, code=snomed) if snomed else None,
        status=_status(res, "clinicalStatus"),
        effective_start=start,
    )


def _condition(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    start, _ = _period(res, "onset")
    end, _ = _period(res, "abatement")
    return Fact(
        kind="problem",
        provenance=prov(_who(res.get("recorder"))),
        code=_code(res.get("code")),
        status=_status(res, "clinicalStatus"),
        effective_start=start,
        effective_end=end,
    )


def _dosage(dosage: Json) -> dict[str, Any]:
    """A Dosage as the Fact fields a CDA posology fills."""
    rate = _obj(next(iter(_list(dosage.get("doseAndRate"))), {}))
    repeat = _obj(_obj(dosage.get("timing")).get("repeat"))
    period, unit = _number(repeat.get("period")), _str(repeat.get("periodUnit"))
    frequency = (
        Quantity(value=period, unit=unit) if period and unit and repeat.get("frequency", 1) == 1 else None
    )
    return dict(
        route=_code(dosage.get("route")),
        dose=_quantity(rate.get("doseQuantity")),
        dose_range=_range(rate.get("doseRange")),
        frequency=frequency,
        value_text=_str(dosage.get("text")),
    )


def _medication_statement(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    start, end = _period(res, "effective")
    dosage = _obj(next(iter(_list(res.get("dosage"))), {}))
    status = _str(res.get("status"))
    return Fact(
        kind="medication",
        provenance=prov(_who(res.get("informationSource"))),
        code=r.medication_code(res),
        status=status if status in {"active", "completed", "stopped", "intended", "on-hold"} else "active",
        effective_start=start,
        effective_end=end,
        mood="EVN",
        **_dosage(dosage),
    )


def _medication_request(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    """A prescription, kept as a statement of intent (as a CDA prescription's INT mood)."""
    dosage = _obj(next(iter(_list(res.get("dosageInstruction"))), {}))
    bounds = _obj(_obj(_obj(dosage.get("timing")).get("repeat")).get("boundsPeriod"))
    validity = _obj(_obj(res.get("dispenseRequest")).get("validityPeriod"))
    start = _str(bounds.get("start")) or _str(validity.get("start")) or _str(res.get("authoredOn"))
    end = _str(bounds.get("end")) or _str(validity.get("end"))
    return Fact(
        kind="medication",
        provenance=prov(_who(res.get("requester"))),
        code=r.medication_code(res),
        status="intended",
        effective_start=start,
        effective_end=end,
        mood="INT",
        **_dosage(dosage),
    )


def _observation_kind(res: Json) -> Kind | None:
    cats = {c.code for cc in _list(res.get("category")) if (c := _code(cc)) is not None}
    code = _code(res.get("code"))
    if code and code.system == LOINC and code.code in BLOOD_GROUP_CODES:
        return "blood_group"
    if "vital-signs" in cats:
        return "vital_sign"
    if "laboratory" in cats:
        return "lab_result"
    return None


def _value(res: Json) -> tuple[Quantity | None, Code | None, str | None]:
    if "valueQuantity" in res:
        q = _quantity(res["valueQuantity"])
        if q is None:
            raise _Unreadable("valueQuantity sans valeur numérique")
        return q, None, None
    if "valueCodeableConcept" in res:
        return None, _code(res["valueCodeableConcept"]), None
    if "valueBoolean" in res:
        return None, None, "true" if res["valueBoolean"] is True else "false"
    for key in ("valueString", "valueDateTime", "valueTime"):
        if key in res:
            return None, None, _str(res[key])
    if "valueInteger" in res:
        return Quantity(value=str(res["valueInteger"])), None, None
    return None, None, None


def _observation(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact | None:
    kind = _observation_kind(res)
    if kind is None:
        return None  # social history, survey…: not a kind of fact read here
    quantity, value_code, value_text = _value(res)
    if quantity is None and value_code is None and value_text is None and res.get("hasMember"):
        return None  # a panel: its members are facts of their own
    start, end = _period(res, "effective")
    performers = _list(res.get("performer"))
    status = _str(res.get("status"))
    return Fact(
        kind=kind,
        provenance=prov(_who(performers[0]) if performers else None),
        code=_code(res.get("code")),
        status=_OBS_STATUS.get(status or "", status),
        effective_start=start,
        effective_end=end,
        value=quantity,
        value_code=value_code,
        value_text=value_text,
        reference_range=_range(next(iter(_list(res.get("referenceRange"))), None)),
        interpretation=_code(next(iter(_list(res.get("interpretation"))), None)),
    )


def _immunization(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    applied = _obj(next(iter(_list(res.get("protocolApplied"))), {}))
    dose_number = applied.get("doseNumberPositiveInt")
    performers = _list(res.get("performer"))
    return Fact(
        kind="immunization",
        provenance=prov(_who(_obj(performers[0]).get("actor")) if performers else None),
        code=_code(res.get("vaccineCode")),
        status="not-done" if res.get("status") == "not-done" else "completed",
        effective_start=_str(res.get("occurrenceDateTime")),
        route=_code(res.get("route")),
        lot=_str(res.get("lotNumber")),
        dose_number=dose_number
        if isinstance(dose_number, int) and not isinstance(dose_number, bool)
        else None,
    )


def _device_use(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact:
    target = _str(_obj(res.get("device")).get("reference")) or ""
    device = r.by_url.get(target) or next(
        (_obj(c) for c in _list(res.get("contained")) if f"#{_obj(c).get('id')}" == target), {}
    )
    udi = _obj(next(iter(_list(device.get("udiCarrier"))), {}))
    start, end = _period(res, "timing")
    status = _str(res.get("status"))
    return Fact(
        kind="device",
        provenance=prov(None),
        code=_code(device.get("type"))
        or (
            Code(text=_str(_obj(res.get("device")).get("display")))
            if _obj(res.get("device")).get("display")
            else None
        ),
        status=status if status in {"active", "completed", "stopped", "intended", "on-hold"} else "active",
        effective_start=start,
        effective_end=end,
        udi=_str(udi.get("carrierHRF")) or _str(udi.get("deviceIdentifier")),
    )


ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
TRUSTED_PERSON_TEXT = "personne de confiance"


def _trusted_person(r: _Reader, res: Json, prov: ProvenanceOf) -> Fact | None:
    """A RelatedPerson whose relationship says « Personne de confiance » (v3-RoleClass NOK with
    that text, as ``dmp.clinical.fhir`` writes it); any other RelatedPerson is the frame."""
    rels = [_obj(c) for c in _list(res.get("relationship"))]
    if not any((_str(c.get("text")) or "").strip().lower() == TRUSTED_PERSON_TEXT for c in rels):
        return None
    names = [_obj(n) for n in _list(res.get("name"))]
    name = next((_str(n.get("text")) for n in names if _str(n.get("text"))), None)
    if name is None and names:
        given = [g for g in _list(names[0].get("given")) if isinstance(g, str)]
        name = " ".join([*given, _str(names[0].get("family")) or ""]).strip() or None
    scheme = {"phone": "tel", "email": "mailto", "fax": "fax"}
    telecom = tuple(
        f"{scheme.get(_str(t.get('system')) or '', 'tel')}:{_str(t.get('value'))}"
        for t in (_obj(x) for x in _list(res.get("telecom")))
        if _str(t.get("value"))
    )
    code = next((_code(c) for c in rels if c.get("coding") and _code(c) and not _is_nok(c)), None)
    return Fact(kind="trusted_person", provenance=prov(None), code=code, status="active", name=name,
                telecom=telecom)


def _is_nok(cc: Json) -> bool:
    codings = [_obj(c) for c in _list(cc.get("coding"))]
    return any(c.get("system") == ROLE_CLASS and c.get("code") == "NOK" for c in codings)


Reader = Callable[[_Reader, Json, ProvenanceOf], Fact | None]
_READERS: dict[str, Reader] = {
    "AllergyIntolerance": _allergy,
    "Condition": _condition,
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "Observation": _observation,
    "Immunization": _immunization,
    "DeviceUseStatement": _device_use,
    "RelatedPerson": _trusted_person,
}
# The document's frame and what facts refer to: neither facts nor skipped entries.
_FRAME = frozenset(
    {
        "Composition",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Device",
        "Medication",
        "Specimen",
        "Location",
        "Encounter",
        "RelatedPerson",
    }
)


def looks_like_json(content: bytes) -> bool:
    return content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _bundle(content: bytes) -> Json | Extraction | None:
    """The Bundle, the Extraction of a refusal, or None for JSON that is no FHIR Bundle at all."""
    if len(content) > MAX_BYTES:
        return Extraction(error=f"document trop volumineux pour l'extraction ({len(content)} octets)")
    try:
        data = json.loads(content.decode("utf-8-sig"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # not JSON: nothing this reader knows
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        return None
    if data.get("type") != "document":
        return Extraction(error=f"Bundle FHIR de type « {str(data.get('type'))[:40]} » et non « document »")
    if len(_list(data.get("entry"))) > MAX_ENTRIES:
        return Extraction(error=f"document FHIR de plus de {MAX_ENTRIES} entrées : non lu")
    return data


def extract_bundle(content: bytes) -> Extraction | None:
    """Facts of one FHIR document (Bundle type ``document``); None when ``content`` is no FHIR
    Bundle (nothing to read). Never raises for bad input."""
    found = _bundle(content)
    if found is None or isinstance(found, Extraction):
        return found
    ident = _obj(found.get("identifier"))
    doc_id = _str(ident.get("value"))
    system = _str(ident.get("system"))
    base = Extraction(
        document_id=f"{_oid(system)}^{doc_id}"
        if doc_id and system and system != "urn:ietf:rfc:3986"
        else doc_id,
        level=3,
    )
    reader = _Reader(found)
    try:
        reader.run()
        reader.lab_report()
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        return replace(base, error=f"extraction interrompue : {type(exc).__name__}")
    counts: dict[str, int] = {}
    for f in reader.facts:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    notes = tuple(reader.failed[:MAX_NOTES])
    if len(reader.failed) > MAX_NOTES:
        notes += (f"… et {len(reader.failed) - MAX_NOTES} autres entrées illisibles",)
    return replace(
        base,
        facts=tuple(reader.facts),
        skipped_entries=reader.skipped,
        failed_entries=len(reader.failed),
        notes=("document FHIR (Bundle de type document)", *notes),
        counts=counts,
        text=_narrative(reader.composition),
    )


_TAG = re.compile(r"<[^>]*>")


def _narrative(composition: Json) -> str | None:
    """The sections' titles and narrative text, tags removed (as the CDA reader's ``text``)."""
    parts: list[str] = []
    for sec in _list(composition.get("section"))[:200]:
        sec = _obj(sec)
        for text in (_str(sec.get("title")), _str(_obj(sec.get("text")).get("div"))):
            cleaned = " ".join(unescape(_TAG.sub(" ", text)).split()) if text else ""
            if cleaned:
                parts.append(cleaned)
    return "\n".join(parts) or None
