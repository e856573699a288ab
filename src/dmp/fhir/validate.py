"""Structural validation against the FHIR R4 (4.0.1) models of ``fhirclient``.

Every resource the service accepts for storage goes through here, so what it later
serves back is valid FHIR R4 too (the test suite checks emitted resources the
same way). ``fhirclient`` is a runtime dependency (ADR 0008): its models are imported
when this module is, so a missing install fails at start-up, never as a client error.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from fhirclient.models.fhirabstractbase import FHIRValidationError

from dmp.errors import DmpError
from dmp.fhir.common import Json

_OBJ = re.compile(r"<(?:class '|)fhirclient\.models\.[\w.]*?\.(\w+)(?:' | object at 0x[0-9a-f]+)?>")
_MODULES = {
    "DocumentReference": "documentreference",
    "List": "list",
    "Binary": "binary",
    "Patient": "patient",
    "Bundle": "bundle",
    "Consent": "consent",
    "OperationOutcome": "operationoutcome",
    "CapabilityStatement": "capabilitystatement",
    "Parameters": "parameters",
    "AuditEvent": "auditevent",
    # Clinical facts read from documents (dmp.clinical).
    "AllergyIntolerance": "allergyintolerance",
    "Condition": "condition",
    "MedicationStatement": "medicationstatement",
    "Observation": "observation",
    "Immunization": "immunization",
    "DeviceUseStatement": "deviceusestatement",
    "RelatedPerson": "relatedperson",
    "DiagnosticReport": "diagnosticreport",
}


_CLASSES: dict[str, Any] = {
    rtype: getattr(importlib.import_module(f"fhirclient.models.{module}"), rtype)
    for rtype, module in _MODULES.items()
}
# What the models raise for bad input; anything else is a bug of ours and must surface as a 500.
_INVALID = (FHIRValidationError, TypeError, ValueError)


def model_class(resource_type: str) -> Any:
    return _CLASSES[resource_type]


_MISSING = re.compile(r'Non-optional property "(\w+)"')
_SUPERFLUOUS = re.compile(r'Superfluous entry "([^"]*)"')
_WRONG_TYPE = re.compile(r"Wrong type <class '(\w+)'> .*expecting <class '(?:[\w.]+\.)?(\w+)'>")
_TYPES = {"str": "texte", "int": "entier", "float": "nombre", "bool": "booléen", "list": "liste"}
_TYPES_DICT = {"dict": "objet"}
_MAX_FAULTS = 20


def _faults(exc: BaseException, path: list[str]) -> list[tuple[list[str], BaseException]]:
    """The leaves of fhirclient's error tree, each with its element path."""
    if not isinstance(exc, FHIRValidationError):
        return [(path, exc)]
    out: list[tuple[list[str], BaseException]] = []
    for sub in exc.errors:
        sub_path = path
        if isinstance(sub, FHIRValidationError) and sub.path:
            sub_path = [*path, *str(sub.path).split(".")]
        out.extend(_faults(sub, sub_path))
    return out


def _fhirpath(rtype: str, parts: list[str]) -> str:
    out = rtype
    for p in parts:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def _french(rtype: str, parts: list[str], exc: BaseException) -> tuple[str, str]:
    """(element path, French sentence) for one fault of the models."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if m := _MISSING.search(text):
        return _fhirpath(rtype, [*parts, m[1]]), "élément obligatoire absent"
    if m := _SUPERFLUOUS.search(text):
        return _fhirpath(rtype, [*parts, m[1]]), "élément inconnu de FHIR R4 à cet endroit"
    if m := _WRONG_TYPE.search(text):
        got, want = m[1], m[2]
        names = {**_TYPES, **_TYPES_DICT}
        return (
            _fhirpath(rtype, parts),
            f"type incorrect ({names.get(got, got)} reçu, {names.get(want, 'objet ' + want)} attendu)",
        )
    if "does not match expected format" in text:
        return _fhirpath(rtype, parts), "valeur non conforme au format de son type FHIR R4"
    return _fhirpath(rtype, parts), "valeur non conforme à FHIR R4"


def validate(resource: Json, expected: str | None = None) -> None:
    """Raise INVALID_RESOURCE unless ``resource`` is a structurally valid R4 resource.

    One issue per fault, in French, naming the element; the models' own English words are
    kept only as a technical detail, after the element path in ``expression``.
    """
    rtype = resource.get("resourceType")
    if expected and rtype != expected:
        raise DmpError("INVALID_RESOURCE", f"ressource {expected} attendue, {rtype!s} reçue")
    if rtype not in _MODULES:
        raise DmpError("UNKNOWN_RESOURCE_TYPE", str(rtype))
    try:
        model_class(rtype)(resource, strict=True)
    except _INVALID as exc:
        issues = []
        for parts, leaf in _faults(exc, [])[:_MAX_FAULTS]:
            where, sentence = _french(str(rtype), parts, leaf)
            technical = re.sub(r"\s+", " ", _OBJ.sub(r"\1", str(leaf.args[0] if leaf.args else leaf)))
            issues.append(
                DmpError(
                    "INVALID_RESOURCE",
                    f"{where} : {sentence}",
                    expression=where,
                    technical=technical.strip()[:500],
                )
            )
        if len(issues) == 1:
            raise issues[0] from exc
        first = issues[0].detail
        raise DmpError(
            "INVALID_RESOURCE", f"{first} (et {len(issues) - 1} autre(s) anomalie(s))", issues=tuple(issues)
        ) from exc
