"""Read clinical facts from a CI-SIS CDA R2 document (level 3 entries; level 1 text).

The walk follows the IHE PCC / XD-LAB / CI-SIS entry templates. Each ``<entry>`` of each
section is walked depth-first; the first element carrying a known template is read and
consumed (its subtree is not walked again), concern acts and organizers are walked through
with their status and author as context. Anything else is skipped, never an error: a
document the parser cannot read gives an ``Extraction`` with ``error`` set, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace

from lxml import etree

from dmp.cda import hardened_parser
from dmp.clinical.model import (
    Author,
    Code,
    Extraction,
    Fact,
    Kind,
    Provenance,
    Quantity,
    Range,
)
from dmp.clinical.pdftext import pdf_text

MAX_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 200
H = "{urn:hl7-org:v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

# Entry templates (IHE PCC, IHE XD-LAB).
T_CONCERN = "1.3.6.1.4.1.19376.1.5.3.1.4.5.1"
T_PROBLEM_CONCERN = "1.3.6.1.4.1.19376.1.5.3.1.4.5.2"
T_ALLERGY_CONCERN = "1.3.6.1.4.1.19376.1.5.3.1.4.5.3"
T_PROBLEM = "1.3.6.1.4.1.19376.1.5.3.1.4.5"
T_ALLERGY = "1.3.6.1.4.1.19376.1.5.3.1.4.6"
T_STATUS_OBS = "1.3.6.1.4.1.19376.1.5.3.1.4.1.1"
T_MEDICATION = "1.3.6.1.4.1.19376.1.5.3.1.4.7"
T_IMMUNIZATION = "1.3.6.1.4.1.19376.1.5.3.1.4.12"
T_VITAL_SIGN = "1.3.6.1.4.1.19376.1.5.3.1.4.13.2"
T_LAB_OBS = "1.3.6.1.4.1.19376.1.3.1.6"
T_DOSE_NUMBER = "2.16.840.1.113883.10.20.1.46"
# A medical device supplied or implanted (CCD supply, CI-SIS FR-Dispositif-medical).
T_DEVICES = frozenset({"2.16.840.1.113883.10.20.1.34", "1.2.250.1.213.1.1.3.20"})
# « Directives anticipées » (CCD advance directive, IHE PCC, CI-SIS FR-Directive-anticipee).
T_ADVANCE_DIRECTIVES = frozenset(
    {"2.16.840.1.113883.10.20.1.17", "1.3.6.1.4.1.19376.1.5.3.1.4.13.7", "1.2.250.1.213.1.1.3.54"}
)

LOINC = "2.16.840.1.113883.6.1"
BLOOD_GROUP_CODES = frozenset({"882-1", "883-9", "10331-7", "34474-7", "34475-4"})
DOSE_NUMBER_CODE = "30973-2"
# Sections whose problems are past ones (antécédents) and medications stopped ones.
PAST_PROBLEM_SECTIONS = frozenset({"11348-0", "47519-4"})
STOPPED_MEDICATION_SECTIONS = frozenset({"18610-6"})
# Document types (JDV J66, LOINC) of lab reports: CR d'examens biologiques, TROD.
LAB_REPORT_TYPES = frozenset({"11502-2", "96173-0"})
LAB_REPORT_RESULTS = frozenset({"lab_result", "blood_group"})
# The CI-SIS header names the « personne de confiance » as an informant whose relatedEntity has
# classCode NOK (the « personne à prévenir » is ECON).
TRUSTED_PERSON_CLASS = "NOK"
HEADER = "En-tête du document"
ADVANCE_DIRECTIVES_CODE = "42348-3"  # LOINC « Advance directives »

_WS = re.compile(r"\s+")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    out = _WS.sub(" ", text).strip()
    return out or None


def fhir_datetime(ts: str | None) -> str | None:
    """HL7 TS to FHIR date/dateTime; None when unreadable. A time without zone keeps the date only."""
    if not ts:
        return None
    m = _TS.match(ts.strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, tz = m.groups()
    if not mo:
        return y
    if not d:
        return f"{y}-{mo}"
    if not hh or not tz:
        return f"{y}-{mo}-{d}"
    return f"{y}-{mo}-{d}T{hh}:{mi or '00'}:{ss or '00'}{tz[:3]}:{tz[3:]}"


def _tids(el: etree._Element) -> tuple[str, ...]:
    return tuple(t.get("root", "") for t in el.findall(f"{H}templateId"))


def _ids(el: etree._Element) -> tuple[str, ...]:
    out = []
    for i in el.findall(f"{H}id"):
        root = i.get("root")
        if root:
            ext = i.get("extension")
            out.append(f"{root}^{ext}" if ext else root)
    return tuple(out)


@dataclass
class _Ctx:
    """What a concern act or organizer passes down to the facts it holds."""

    status: str | None = None
    start: str | None = None
    end: str | None = None
    author: Author | None = None
    specimen: Code | None = None


class _Reader:
    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.refs: dict[str, str] = {}
        for el in root.iter():
            ident = el.get("ID") if isinstance(el.tag, str) else None
            if ident:
                text = _clean("".join(el.itertext()))
                if text:
                    self.refs[ident] = text
        self.facts: list[Fact] = []
        self.skipped = 0

    # ---- data types -------------------------------------------------------------------------
    def text_of(self, el: etree._Element | None) -> str | None:
        """Text of a <text> or <originalText>: its reference into the narrative, else its content."""
        if el is None:
            return None
        ref = el.find(f"{H}reference")
        if ref is not None:
            target = (ref.get("value") or "").lstrip("#")
            if target and target in self.refs:
                return self.refs[target]
        own = _clean((el.text or "") + "".join((c.tail or "") for c in el if isinstance(c.tag, str)))
        if own:
            return own
        if ref is None:
            return _clean("".join(el.itertext()))
        return None

    def code(self, el: etree._Element | None) -> Code | None:
        if el is None:
            return None
        text = self.text_of(el.find(f"{H}originalText"))
        code, system, display = el.get("code"), el.get("codeSystem"), _clean(el.get("displayName"))
        if not code:
            tr = el.find(f"{H}translation")
            if tr is not None and tr.get("code"):
                code, system, display = tr.get("code"), tr.get("codeSystem"), _clean(tr.get("displayName"))
        if not (code or text):
            return None
        return Code(system=system if code else None, code=code, display=display, text=text)

    @staticmethod
    def quantity(el: etree._Element | None) -> Quantity | None:
        if el is None:
            return None
        value = el.get("value")
        if value is None:
            return None
        try:
            float(value)
        except ValueError:
            return None
        return Quantity(value=value, unit=el.get("unit") or None)

    def ivl(self, el: etree._Element | None) -> tuple[str | None, str | None]:
        if el is None:
            return None, None
        if el.get("value"):
            return fhir_datetime(el.get("value")), None
        low, high = el.find(f"{H}low"), el.find(f"{H}high")
        center = el.find(f"{H}center")
        start = fhir_datetime(low.get("value")) if low is not None else None
        if start is None and center is not None:
            start = fhir_datetime(center.get("value"))
        end = fhir_datetime(high.get("value")) if high is not None else None
        return start, end

    def author(self, el: etree._Element) -> Author | None:
        a = el.find(f"{H}author")
        if a is None:
            return None
        t = a.find(f"{H}time")
        aa = a.find(f"{H}assignedAuthor")
        name = ident = None
        if aa is not None:
            ids = _ids(aa)
            ident = ids[0] if ids else None
            n = aa.find(f"{H}assignedPerson/{H}name")
            if n is not None:
                given = [g.text or "" for g in n.findall(f"{H}given")]
                family = [f.text or "" for f in n.findall(f"{H}family")]
                name = _clean(" ".join([*given, *family]))
            if name is None:
                name = _clean(aa.findtext(f"{H}representedOrganization/{H}name"))
        return Author(name=name, id=ident, time=fhir_datetime(t.get("value")) if t is not None else None)

    def value(self, obs: etree._Element) -> tuple[Quantity | None, Code | None, str | None]:
        """(quantity, coded value, text) of an observation's value, by its xsi:type."""
        v = obs.find(f"{H}value")
        if v is None:
            return None, None, None
        xtype = (v.get(XSI_TYPE) or "").split(":")[-1]
        if xtype in {"PQ", "INT", "REAL"}:
            return self.quantity(v), None, None
        if xtype in {"CD", "CE", "CV", "CO"}:
            return None, self.code(v), None
        return None, None, self.value_text(v, xtype)

    def value_text(self, v: etree._Element, xtype: str) -> str | None:
        """A value that is neither a quantity nor a code, as text (boolean, interval, ratio…)."""
        if xtype == "BL":
            boolean: str | None = v.get("value")
            return boolean
        if xtype == "IVL_PQ":
            low, high = v.find(f"{H}low"), v.find(f"{H}high")
            parts = [
                f"{op} {q.value} {q.unit or ''}".strip()
                for op, q in ((">=", self.quantity(low)), ("<=", self.quantity(high)))
                if q is not None
            ]
            return " ; ".join(parts) or None
        if xtype == "RTO":
            num, den = self.quantity(v.find(f"{H}numerator")), self.quantity(v.find(f"{H}denominator"))
            if num and den:
                return f"{num.value}/{den.value}"
        return self.text_of(v)

    def reference_range(self, obs: etree._Element) -> Range | None:
        rr = obs.find(f"{H}referenceRange/{H}observationRange")
        if rr is None:
            return None
        v = rr.find(f"{H}value")
        low = high = None
        if v is not None:
            low, high = self.quantity(v.find(f"{H}low")), self.quantity(v.find(f"{H}high"))
        text = self.text_of(rr.find(f"{H}text"))
        if low is None and high is None and text is None:
            return None
        return Range(low=low, high=high, text=text)

    # ---- the walk --------------------------------------------------------------------------
    def run(self) -> None:
        index = 0
        for section in self.root.iter(f"{H}section"):
            sec_code_el = section.find(f"{H}code")
            sec_code = sec_code_el.get("code") if sec_code_el is not None else None
            sec_title = _clean(section.findtext(f"{H}title"))
            for entry in section.findall(f"{H}entry"):
                before = len(self.facts)
                for child in entry:
                    if isinstance(child.tag, str) and child.tag != f"{H}templateId":
                        self.walk(child, _Ctx(), sec_code, sec_title, index)
                if len(self.facts) == before:
                    self.skipped += 1
                index += 1

    def walk(
        self, el: etree._Element, ctx: _Ctx, sec_code: str | None, sec_title: str | None, idx: int
    ) -> None:
        tids = set(_tids(el))
        local = etree.QName(el).localname
        prov = Provenance(sec_code, sec_title, idx, _tids(el), _ids(el), self.author(el) or ctx.author)
        if local == "act" and tids & {T_CONCERN, T_PROBLEM_CONCERN, T_ALLERGY_CONCERN}:
            ctx = self.concern(el, ctx)
        elif self.fact(el, local, tids, ctx, prov):
            return
        specimen = self.specimen(el)
        if specimen is not None or self.author(el) is not None:
            ctx = replace(ctx, specimen=specimen or ctx.specimen, author=self.author(el) or ctx.author)
        if local == "organizer":  # a battery or vital-signs organizer dates the observations it groups
            start, end = self.ivl(el.find(f"{H}effectiveTime"))
            if start:
                ctx = replace(ctx, start=start)
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname
            if name in {
                "entryRelationship",
                "component",
                "act",
                "observation",
                "organizer",
                "substanceAdministration",
                "procedure",
                "encounter",
            }:
                self.walk(child, ctx, sec_code, sec_title, idx)

    def concern(self, el: etree._Element, ctx: _Ctx) -> _Ctx:
        """A concern act passes its status, dates and author down to the facts it holds."""
        status_el = el.find(f"{H}statusCode")
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        return _Ctx(
            status=status_el.get("code") if status_el is not None else None,
            start=start,
            end=end,
            author=self.author(el) or ctx.author,
            specimen=ctx.specimen,
        )

    def fact(self, el: etree._Element, local: str, tids: set[str], ctx: _Ctx, prov: Provenance) -> bool:
        """Read ``el`` as a fact if its template is one we know; True when it was one (read or not)."""
        if local == "observation" and tids & T_ADVANCE_DIRECTIVES:
            self.advance_directive(el, prov)
        elif local == "supply" and tids & T_DEVICES:
            if el.get("moodCode", "EVN") == "EVN":  # a prescribed device is not one the patient has
                self.device(el, prov)
        elif local == "observation" and T_ALLERGY in tids:
            self.allergy(el, ctx, prov)
        elif local == "observation" and T_PROBLEM in tids:
            self.problem(el, ctx, prov)
        elif local == "substanceAdministration" and T_IMMUNIZATION in tids:
            if el.get("moodCode", "EVN") == "EVN":  # a planned vaccination is not a fact
                self.immunization(el, prov)
        elif local == "substanceAdministration" and T_MEDICATION in tids:
            self.medication(el, prov)
        elif local == "observation" and (tids & {T_LAB_OBS, T_VITAL_SIGN} or self.is_blood_group(el)):
            self.observation(el, ctx, prov, "vital_sign" if T_VITAL_SIGN in tids else "lab_result")
        else:
            return False
        return True

    # ---- readers ---------------------------------------------------------------------------
    def specimen(self, el: etree._Element) -> Code | None:
        sp = el.find(f"{H}specimen/{H}specimenRole/{H}specimenPlayingEntity/{H}code")
        return self.code(sp)

    @staticmethod
    def is_blood_group(el: etree._Element) -> bool:
        c = el.find(f"{H}code")
        return c is not None and c.get("codeSystem") == LOINC and c.get("code") in BLOOD_GROUP_CODES

    def _status_obs(self, el: etree._Element) -> str | None:
        for er in el.findall(f"{H}entryRelationship/{H}observation"):
            if T_STATUS_OBS in _tids(er):
                v = er.find(f"{H}value")
                code = str(v.get("code") or "") if v is not None else ""
                if code:
                    return code
        return None

    def allergy(self, el: etree._Element, ctx: _Ctx, prov: Provenance) -> None:
        agent = self.code(el.find(f"{H}participant/{H}participantRole/{H}playingEntity/{H}code"))
        if agent is None:
            name = _clean(el.findtext(f"{H}participant/{H}participantRole/{H}playingEntity/{H}name"))
            agent = Code(text=name) if name else None
        value = self.code(el.find(f"{H}value"))
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        status = self._status_obs(el) or {
            "active": "active",
            "completed": "resolved",
            "suspended": "inactive",
        }.get(ctx.status or "")
        self.facts.append(
            Fact(
                kind="allergy",
                provenance=prov,
                code=agent or value,
                category=self.code(el.find(f"{H}code")),
                status=status,
                effective_start=start or ctx.start,
                effective_end=end,
            )
        )

    def problem(self, el: etree._Element, ctx: _Ctx, prov: Provenance) -> None:
        value = self.code(el.find(f"{H}value"))
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        status = self._status_obs(el)
        if status is None:
            if ctx.status == "active":
                status = "active"
            elif ctx.status == "completed" or end or prov.section_code in PAST_PROBLEM_SECTIONS:
                status = "resolved"
            elif ctx.status == "suspended":
                status = "inactive"
        text = self.text_of(el.find(f"{H}text"))
        if value is None and text:
            value = Code(text=text)
        if el.get("negationInd") == "true":
            return  # an absence of the problem is not a problem
        self.facts.append(
            Fact(
                kind="problem",
                provenance=prov,
                code=value,
                category=self.code(el.find(f"{H}code")),
                status=status,
                effective_start=start or ctx.start,
                effective_end=end or ctx.end,
            )
        )

    def _product(self, el: etree._Element) -> tuple[Code | None, str | None]:
        mm = el.find(f"{H}consumable/{H}manufacturedProduct/{H}manufacturedMaterial")
        if mm is None:
            return None, None
        code = self.code(mm.find(f"{H}code"))
        name = _clean(mm.findtext(f"{H}name"))
        if code is None and name:
            code = Code(text=name)
        elif code is not None and code.text is None and name:
            code = replace(code, text=name)
        lot = _clean(mm.findtext(f"{H}lotNumberText"))
        return code, lot

    def medication(self, el: etree._Element, prov: Provenance) -> None:
        code, _lot = self._product(el)
        start = end = None
        for et in el.findall(f"{H}effectiveTime"):
            xtype = (et.get(XSI_TYPE) or "").split(":")[-1]
            if xtype not in {"PIVL_TS", "EIVL_TS", "SXPR_TS"} and start is None and end is None:
                start, end = self.ivl(et)
        # A structured posology (CI-SIS prescriptions) puts the dose in subordinate administrations:
        # read the first one when the treatment itself carries none.
        dosing = el
        if el.find(f"{H}doseQuantity") is None:
            sub = el.find(f"{H}entryRelationship/{H}substanceAdministration")
            if sub is not None and sub.find(f"{H}doseQuantity") is not None:
                dosing = sub
        frequency = self.frequency(dosing) or self.frequency(el)
        dose, dose_range = self.dose(dosing.find(f"{H}doseQuantity"))
        mood = el.get("moodCode", "EVN")
        if mood != "EVN":
            status = "intended"
        elif prov.section_code in STOPPED_MEDICATION_SECTIONS:
            status = "stopped"
        else:
            status = "active"
        self.facts.append(
            Fact(
                kind="medication",
                provenance=prov,
                code=code,
                status=status,
                effective_start=start,
                effective_end=end,
                route=self.code(el.find(f"{H}routeCode")),
                dose=dose,
                dose_range=dose_range,
                frequency=frequency,
                value_text=self.text_of(el.find(f"{H}text")),
                mood=mood,
            )
        )

    def frequency(self, el: etree._Element) -> Quantity | None:
        for et in el.findall(f"{H}effectiveTime"):
            xtype = (et.get(XSI_TYPE) or "").split(":")[-1]
            if xtype == "PIVL_TS":
                return self.quantity(et.find(f"{H}period"))
            if xtype == "SXPR_TS":
                for comp in et.findall(f"{H}comp"):
                    if (comp.get(XSI_TYPE) or "").split(":")[-1] == "PIVL_TS":
                        return self.quantity(comp.find(f"{H}period"))
        return None

    def dose(self, dq: etree._Element | None) -> tuple[Quantity | None, Range | None]:
        if dq is None:
            return None, None
        dose = self.quantity(dq)
        if dose is not None:
            return dose, None
        low, high = self.quantity(dq.find(f"{H}low")), self.quantity(dq.find(f"{H}high"))
        if low is not None and high is not None and low == high:
            return low, None
        if low is not None or high is not None:
            return None, Range(low=low, high=high)
        return None, None

    def immunization(self, el: etree._Element, prov: Provenance) -> None:
        code, lot = self._product(el)
        dose_number = None
        for obs in el.findall(f"{H}entryRelationship/{H}observation"):
            c = obs.find(f"{H}code")
            if T_DOSE_NUMBER in _tids(obs) or (c is not None and c.get("code") == DOSE_NUMBER_CODE):
                v = obs.find(f"{H}value")
                if v is not None and (v.get("value") or "").isdigit():
                    dose_number = int(v.get("value", "0"))
        start, _end = self.ivl(el.find(f"{H}effectiveTime"))
        self.facts.append(
            Fact(
                kind="immunization",
                provenance=prov,
                code=code,
                status="not-done" if el.get("negationInd") == "true" else "completed",
                effective_start=start,
                route=self.code(el.find(f"{H}routeCode")),
                lot=lot,
                dose_number=dose_number,
                category=self.code(el.find(f"{H}code")),
            )
        )

    def observation(self, el: etree._Element, ctx: _Ctx, prov: Provenance, kind: Kind) -> None:
        if self.is_blood_group(el):
            kind = "blood_group"
        quantity, value_code, value_text = self.value(el)
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        status_el = el.find(f"{H}statusCode")
        self.facts.append(
            Fact(
                kind=kind,
                provenance=prov,
                code=self.code(el.find(f"{H}code")),
                status=status_el.get("code") if status_el is not None else None,
                effective_start=start or ctx.start,
                effective_end=end,
                value=quantity,
                value_code=value_code,
                value_text=value_text,
                reference_range=self.reference_range(el),
                interpretation=self.code(el.find(f"{H}interpretationCode")),
                specimen=self.specimen(el) or ctx.specimen,
            )
        )

    def device(self, el: etree._Element, prov: Provenance) -> None:
        role = el.find(f"{H}participant/{H}participantRole")
        code = udi = None
        if role is not None:
            code = self.code(role.find(f"{H}playingDevice/{H}code"))
            if code is None:
                name = _clean(role.findtext(f"{H}playingDevice/{H}manufacturerModelName"))
                code = Code(text=name) if name else None
            role_ids = role.findall(f"{H}id")
            if role_ids:
                udi = role_ids[0].get("extension") or role_ids[0].get("root") or None
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        self.facts.append(
            Fact(
                kind="device",
                provenance=prov,
                code=code,
                status="completed" if end else "active",
                effective_start=start,
                effective_end=end,
                udi=udi,
            )
        )

    def advance_directive(self, el: etree._Element, prov: Provenance) -> None:
        """A directive: its kind (LOINC), whether it authorises (BL value), since when, its document.
        The generic « Directives anticipées » (42348-3) valued false says there are none: no fact."""
        code = self.code(el.find(f"{H}code"))
        value = el.find(f"{H}value")
        allowed = value.get("value") if value is not None else None
        if allowed == "false" and (code is None or code.code == ADVANCE_DIRECTIVES_CODE):
            return
        start, end = self.ivl(el.find(f"{H}effectiveTime"))
        status_el = el.find(f"{H}statusCode")
        docs = tuple(i for ext in el.findall(f"{H}reference/{H}externalDocument") for i in _ids(ext))
        self.facts.append(
            Fact(
                kind="directive",
                provenance=prov,
                code=code,
                status=status_el.get("code") if status_el is not None else None,
                effective_start=start,
                effective_end=end,
                value_text=allowed,
                documents=docs,
            )
        )

    def header_facts(self) -> None:
        """Facts of the header, after the body's: the trusted person."""
        for rel in self.root.findall(f"{H}informant/{H}relatedEntity"):
            if rel.get("classCode") != TRUSTED_PERSON_CLASS:
                continue
            name_el = rel.find(f"{H}relatedPerson/{H}name")
            name = None
            if name_el is not None:
                given = [g.text or "" for g in name_el.findall(f"{H}given")]
                family = [f.text or "" for f in name_el.findall(f"{H}family")]
                name = _clean(" ".join([*given, *family])) or _clean("".join(name_el.itertext()))
            telecom = tuple(t.get("value", "") for t in rel.findall(f"{H}telecom") if t.get("value"))
            prov = Provenance(None, HEADER, -1, (), ())  # entry_index -1: the header
            self.facts.append(
                Fact(kind="trusted_person", provenance=prov, code=self.code(rel.find(f"{H}code")),
                     status="active", name=name, telecom=telecom)
            )

    def lab_report(self) -> None:
        """A lab report document's DiagnosticReport: its results, its date, its author."""
        code_el = self.root.find(f"{H}code")
        if code_el is None or code_el.get("code") not in LAB_REPORT_TYPES:
            return
        results = tuple(i for i, f in enumerate(self.facts) if f.kind in LAB_REPORT_RESULTS)
        if not results:
            return
        dates = sorted(d for i in results if (d := self.facts[i].effective_start))
        issued = self.root.find(f"{H}effectiveTime")
        doc_author = self.author(self.root)
        author = Author(
            name=doc_author.name if doc_author else None,
            id=doc_author.id if doc_author else None,
            time=fhir_datetime(issued.get("value")) if issued is not None else None,
        )
        prov = Provenance(None, HEADER, -1, _tids(self.root), _ids(self.root), author)
        self.facts.append(
            Fact(
                kind="lab_report",
                provenance=prov,
                code=self.code(code_el),
                status="completed",
                effective_start=dates[0] if dates else None,
                results=results,
            )
        )


def _too_deep(root: etree._Element) -> bool:
    stack = [(root, 0)]
    while stack:
        el, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in el)
    return False


def _narrative(root: etree._Element) -> str | None:
    parts = []
    for section in root.iter(f"{H}section"):
        title = _clean(section.findtext(f"{H}title"))
        if title:
            parts.append(title)
        text = section.find(f"{H}text")
        if text is not None:
            t = _clean(" ".join(text.itertext()))
            if t:
                parts.append(t)
    return "\n".join(parts) or None


def _level1(body: etree._Element, base: Extraction) -> Extraction:
    text_el = body.find(f"{H}text")
    if text_el is None:
        return replace(base, level=1, notes=(*base.notes, "corps non structuré sans texte"))
    media = text_el.get("mediaType") or "text/plain"
    raw = "".join(text_el.itertext())
    data: bytes | None = None
    if text_el.get("representation") == "B64":
        try:
            data = base64.b64decode(re.sub(r"\s+", "", raw), validate=True)
        except (binascii.Error, ValueError):
            return replace(
                base, level=1, media_type=media, error="contenu base64 du corps non structuré illisible"
            )
    if media.startswith("text/"):
        text = data.decode("utf-8", "replace") if data is not None else raw
        return replace(base, level=1, media_type=media, text=text.strip() or None)
    if media == "application/pdf" and data is not None:
        found = pdf_text(data)
        notes = (*base.notes, found.note) if found.note else base.notes
        return replace(base, level=1, media_type=media, text=found.text, notes=notes, error=found.error)
    return replace(base, level=1, media_type=media, notes=(*base.notes, f"texte non extrait du type {media}"))


def _clinical_document(cda: bytes) -> tuple[etree._Element, tuple[str, ...]] | Extraction:
    """The ClinicalDocument element (and notes on how it was found), or the Extraction of a refusal."""
    if len(cda) > MAX_BYTES:
        return Extraction(error=f"document trop volumineux pour l'extraction ({len(cda)} octets)")
    try:
        root = etree.fromstring(cda, hardened_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:  # ValueError: e.g. an encoding lxml refuses
        return Extraction(error=f"document XML illisible : {exc}")
    notes: tuple[str, ...] = ()
    if root.tag != f"{H}ClinicalDocument":
        # A « CDA auto-présentable » is an XSL stylesheet carrying the document inside it.
        inner = next(root.iter(f"{H}ClinicalDocument"), None)
        if inner is None:
            return Extraction(error="ce document n'est pas un ClinicalDocument HL7 CDA R2")
        root, notes = inner, ("document CDA lu à l'intérieur de sa feuille de style (auto-présentable)",)
    if _too_deep(root):
        return Extraction(error=f"document trop profondément imbriqué (plus de {MAX_DEPTH} niveaux)")
    return root, notes


def extract(cda: bytes) -> Extraction:
    """Facts and text of one CDA document. Never raises for bad input: ``error`` says why."""
    found = _clinical_document(cda)
    if isinstance(found, Extraction):
        return found
    root, notes = found
    ids = _ids(root)
    base = Extraction(document_id=ids[0] if ids else None, notes=notes)
    body = root.find(f"{H}component/{H}nonXMLBody")
    if body is not None:
        return _level1(body, base)
    if root.find(f"{H}component/{H}structuredBody") is None:
        return replace(base, notes=(*base.notes, "document sans corps"))
    reader = _Reader(root)
    try:
        reader.run()
        reader.header_facts()
        reader.lab_report()
    except (ValueError, TypeError, AttributeError) as exc:  # a shape we did not foresee: say so, keep going
        return replace(base, level=3, error=f"extraction interrompue : {exc}")
    counts: dict[str, int] = {}
    for f in reader.facts:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return replace(
        base,
        level=3,
        facts=tuple(reader.facts),
        text=_narrative(root),
        skipped_entries=reader.skipped,
        counts=counts,
    )
