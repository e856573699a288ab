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
}


_CLASSES: dict[str, Any] = {
    rtype: getattr(importlib.import_module(f"fhirclient.models.{module}"), rtype)
    for rtype, module in _MODULES.items()
}
# What the models raise for bad input; anything else is a bug of ours and must surface as a 500.
_INVALID = (FHIRValidationError, TypeError, ValueError)


def model_class(resource_type: str) -> Any:
    return _CLASSES[resource_type]


def validate(resource: Json, expected: str | None = None) -> None:
    """Raise INVALID_RESOURCE unless ``resource`` is a structurally valid R4 resource."""
    rtype = resource.get("resourceType")
    if expected and rtype != expected:
        raise DmpError("INVALID_RESOURCE", f"ressource {expected} attendue, {rtype!s} reçue")
    if rtype not in _MODULES:
        raise DmpError("UNKNOWN_RESOURCE_TYPE", str(rtype))
    try:
        model_class(rtype)(resource, strict=True)
    except _INVALID as exc:
        detail = _OBJ.sub(r"\1", str(exc)).replace("{root}:", "").strip()
        detail = re.sub(r"\s+", " ", detail)
        raise DmpError("INVALID_RESOURCE", f"{rtype} : {detail[:1500]}") from exc
