"""The International Patient Summary of a record (``GET /fhir/Patient/{id}/$summary``).

Pure rendering: the Patient and the clinical facts the actor may see (dmp.services.facts, which
filters them exactly as their source documents) become a ``document`` Bundle whose first entry
is the Composition (LOINC 60591-5), one section per IPS kind of fact with a French narrative,
then the DMP as the Device authoring it, the Patient and the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from uuid import NAMESPACE_URL, uuid5

from dmp.fhir.common import Json
from dmp.fhir.common import concept_label as _label

LOINC = "http://loinc.org"
TITLE = "Synthèse du dossier médical partagé"
XHTML = "http://www.w3.org/1999/xhtml"
EMPTY_REASON = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
            "code": "unavailable",
            "display": "Unavailable",
        }
    ]
}


def _status(res: Json, key: str) -> str:
    return _label(res.get(key))


def _value(res: Json) -> str:
    q = res.get("valueQuantity")
    if isinstance(q, dict):
        return " ".join(str(x) for x in (q.get("value"), q.get("unit") or q.get("code")) if x is not None)
    return _label(res.get("valueCodeableConcept")) or str(res.get("valueString") or "")


def _when(res: Json, *keys: str) -> str:
    for k in keys:
        v = res.get(k)
        if isinstance(v, dict):
            v = v.get("start")
        if v:
            return str(v)[:10]
    return ""


def _observed(r: Json) -> tuple[str, str, str]:
    return _label(r.get("code")), _value(r), _when(r, "effectiveDateTime", "effectivePeriod")


def _reported(r: Json) -> tuple[str, str, str]:
    """A DiagnosticReport: its title, how many results it groups, its date."""
    count = len(r.get("result") or [])
    detail = f"{count} résultat(s)" if count else ""
    return _label(r.get("code")), detail, _when(r, "effectiveDateTime", "issued")


def _device(r: Json) -> tuple[str, str, str]:
    label = str((r.get("device") or {}).get("display") or "")
    if not label:
        devices = [c for c in r.get("contained", []) if c.get("resourceType") == "Device"]
        label = _label(devices[0].get("type")) if devices else ""
    return label, str(r.get("status") or ""), _when(r, "timingPeriod", "recordedOn")


def _directive(r: Json) -> tuple[str, str, str]:
    provision = r.get("provision") or {}
    codes = provision.get("code") or []
    what = _label(codes[0]) if codes else "Directives anticipées"
    decision = {"permit": "oui", "deny": "non"}.get(str(provision.get("type")), "")
    return what, decision, _when(r, "dateTime", "period") or _when(provision, "period")


def _dosage(res: Json) -> str:
    dosage = res.get("dosage") or [{}]
    return str(dosage[0].get("text") or "")


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    code: str
    display: str
    columns: tuple[str, str, str]
    row: Callable[[Json], tuple[str, str, str]]  # element, detail, date
    required: bool  # IPS requires it: present, with an empty reason, when there is nothing


SECTIONS = (
    Section("allergies", "Allergies et intolérances", "48765-2", "Allergies and adverse reactions Document",
            ("Allergie", "Statut", "Date"),
            lambda r: (_label(r.get("code")), _status(r, "clinicalStatus"), _when(r, "onsetDateTime")), True),
    Section("problems", "Problèmes et pathologies", "11450-4", "Problem list - Reported",
            ("Problème", "Statut", "Date"),
            lambda r: (_label(r.get("code")), _status(r, "clinicalStatus"), _when(r, "onsetDateTime")), True),
    Section("medications", "Traitements", "10160-0", "History of Medication use Narrative",
            ("Médicament", "Posologie", "Début"),
            lambda r: (_label(r.get("medicationCodeableConcept")), _dosage(r), _when(r, "effectivePeriod")),
            True),
    Section("immunizations", "Vaccinations", "11369-6", "History of Immunization Narrative",
            ("Vaccin", "Lot", "Date"),
            lambda r: (_label(r.get("vaccineCode")), str(r.get("lotNumber") or ""),
                       _when(r, "occurrenceDateTime")), False),
    Section("results", "Résultats d'examens", "30954-2",
            "Relevant diagnostic tests/laboratory data Narrative",
            ("Examen", "Résultat", "Date"),
            lambda r: _reported(r) if r.get("resourceType") == "DiagnosticReport" else _observed(r), False),
    Section("vital-signs", "Signes vitaux", "8716-3", "Vital signs",
            ("Mesure", "Valeur", "Date"),
            _observed, False),
    Section("devices", "Dispositifs médicaux", "46264-8", "History of medical device use",
            ("Dispositif", "Statut", "Période"),
            _device, False),
    Section("advance-directives", "Directives anticipées", "42348-3", "Advance directives",
            ("Directive", "Souhait exprimé", "Date"),
            _directive, False),
)
_BY_TYPE = {
    "AllergyIntolerance": "allergies",
    "Condition": "problems",
    "MedicationStatement": "medications",
    "Immunization": "immunizations",
    "DiagnosticReport": "results",
    "DeviceUseStatement": "devices",
}


def section_of(res: Json) -> str | None:
    """The IPS section a fact belongs to (None: none of them)."""
    rtype = res.get("resourceType")
    if rtype == "Observation":
        cats = {c.get("code") for cat in res.get("category", []) for c in cat.get("coding", [])}
        return "vital-signs" if "vital-signs" in cats else "results"
    if rtype == "Consent":  # only the patient's advance directives are facts (scope adr)
        scope = {c.get("code") for c in (res.get("scope") or {}).get("coding", [])}
        return "advance-directives" if "adr" in scope else None
    return _BY_TYPE.get(str(rtype))


def _div(body: str) -> str:
    return f'<div xmlns="{XHTML}">{body}</div>'


def _table(section: Section, facts: Sequence[Json]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in section.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in section.row(f)) + "</tr>" for f in facts
    )
    return _div(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _section(section: Section, facts: Sequence[Json]) -> Json | None:
    out: Json = {
        "title": section.title,
        "code": {"coding": [{"system": LOINC, "code": section.code, "display": section.display}]},
    }
    if facts:
        out["text"] = {"status": "generated", "div": _table(section, facts)}
        out["entry"] = [{"reference": f"{f['resourceType']}/{f['id']}"} for f in facts]
        return out
    if not section.required:
        return None
    out["text"] = {"status": "generated", "div": _div("<p>Aucune information disponible.</p>")}
    out["emptyReason"] = EMPTY_REASON
    return out


def summary_bundle(patient: Json, facts: Sequence[Json], *, base: str, now: str) -> Json:
    """The IPS document Bundle of ``patient`` with ``facts``, dated ``now`` (an instant)."""
    pid = str(patient["id"])
    document_id = uuid5(NAMESPACE_URL, f"{base}/Patient/{pid}/$summary/{now}")
    composition_url = f"urn:uuid:{uuid5(document_id, 'Composition')}"
    device_url = f"urn:uuid:{uuid5(NAMESPACE_URL, f'{base}/Device/dmp')}"
    grouped: dict[str, list[Json]] = {s.key: [] for s in SECTIONS}
    for f in facts:
        key = section_of(f)
        if key is not None:
            grouped[key].append(f)
    sections = [s for s in (_section(sec, grouped[sec.key]) for sec in SECTIONS) if s is not None]
    composition: Json = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "date": now,
        "author": [{"reference": device_url, "display": "Dossier Médical Partagé"}],
        "title": TITLE,
        "section": sections,
    }
    device: Json = {
        "resourceType": "Device",
        "deviceName": [{"name": "Dossier Médical Partagé", "type": "user-friendly-name"}],
    }
    included = [f for key in grouped for f in grouped[key]]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{document_id}"},
        "type": "document",
        "timestamp": now,
        "entry": [
            {"fullUrl": composition_url, "resource": composition},
            {"fullUrl": device_url, "resource": device},
            {"fullUrl": f"{base}/Patient/{pid}", "resource": patient},
            *({"fullUrl": f"{base}/{f['resourceType']}/{f['id']}", "resource": f} for f in included),
        ],
    }
