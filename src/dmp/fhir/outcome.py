"""OperationOutcome rendering of DmpError."""

from __future__ import annotations

from dmp.errors import DmpError
from dmp.fhir import CANONICAL
from dmp.fhir.common import Json

ERROR_CODE_SYSTEM = f"{CANONICAL}/CodeSystem/dmp-error"


def operation_outcome(err: DmpError) -> Json:
    return {"resourceType": "OperationOutcome", "issue": [_issue(e) for e in err.issues or (err,)]}


def _issue(err: DmpError) -> Json:
    issue: Json = {
        "severity": "error" if err.status < 500 else "fatal",
        "code": err.kind.issue_type,
        "details": {
            "coding": [{"system": ERROR_CODE_SYSTEM, "code": err.code}],
            "text": err.message,
        },
        "diagnostics": err.message,
    }
    expression = [e for e in (err.expression, err.technical) if e]
    if expression:
        issue["expression"] = expression
    return issue
