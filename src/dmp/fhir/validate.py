"""Structural validation against the FHIR R4 (4.0.1) models of ``fhirclient``.

Every resource the service accepts for storage goes through here, so what it later
serves back is valid FHIR R4 too (the test suite checks emitted resources the
same way).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

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


def model_class(resource_type: str) -> Any:
    module = importlib.import_module(f"fhirclient.models.{_MODULES[resource_type]}")
    return getattr(module, resource_type)


def validate(resource: Json, expected: str | None = None) -> None:
    """Raise INVALID_RESOURCE unless ``resource`` is a structurally valid R4 resource."""
    rtype = resource.get("resourceType")
    if expected and rtype != expected:
        raise DmpError("INVALID_RESOURCE", f"ressource {expected} attendue, {rtype!s} reçue")
    if rtype not in _MODULES:
        raise DmpError("UNKNOWN_RESOURCE_TYPE", str(rtype))
    try:
        model_class(rtype)(resource, strict=True)
    except Exception as exc:  # fhirclient raises FHIRValidationError, TypeError, ValueError
        detail = _OBJ.sub(r"\1", str(exc)).replace("{root}:", "").strip()
        detail = re.sub(r"\s+", " ", detail)
        raise DmpError("INVALID_RESOURCE", f"{rtype} : {detail[:1500]}") from exc
