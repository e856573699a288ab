"""ITI-105 Simplified Publish (IHE MHD 4.2): one DocumentReference carrying its document.

The server builds the SubmissionSet itself and hands the same Provide Document Bundle as
ITI-65 to ``parse_provide_bundle``, so validation, coherence, policy and trail apply
identically (docs/api/mhd.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from dmp.errors import DmpError
from dmp.fhir.bundle import MHD_LIST_TYPES, SOURCE_ID_URL, ProvideRequest, parse_provide_bundle
from dmp.fhir.common import Json, instant

# The sourceId of the submission sets this server builds for ITI-105 (the producer's software
# sends no SubmissionSet, hence no OID of its own). Under the server's test arc.
SIMPLIFIED_PUBLISH_SOURCE_OID = "1.2.250.1.999.105"
SUBMISSION_PROFILE = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-submissionset-comprehensive"
)
# Where the DocumentReference sits in the Bundle built in memory; locations are given back
# relative to the posted resource.
_ENTRY_PREFIX = "Bundle.entry[1].resource"


def _check_attachment(resource: Json) -> None:
    content = resource.get("content")
    first = content[0] if isinstance(content, list) and content else None
    attachment = first.get("attachment") if isinstance(first, dict) else None
    if not isinstance(attachment, dict):
        raise DmpError(
            "MISSING_ELEMENT", "content[0].attachment", expression="DocumentReference.content[0].attachment"
        )
    if attachment.get("data") is None:
        where = "DocumentReference.content[0].attachment.data"
        if attachment.get("url") is not None:
            raise DmpError(
                "MISSING_ELEMENT",
                "content[0].attachment.data : la publication simplifiée (ITI-105) transmet le document "
                "dans la fiche elle-même ; attachment.url n'est pas accepté (utilisez ITI-65, POST /fhir, "
                "pour un Binary séparé)",
                expression=where,
            )
        raise DmpError(
            "MISSING_ELEMENT", "content[0].attachment.data (le document encodé en base64)", expression=where
        )


def submission_bundle(resource: Json, now: datetime) -> Json:
    """The ITI-65 transaction Bundle equivalent to the posted DocumentReference."""
    doc_url = f"urn:uuid:{uuid.uuid4()}"
    submission: Json = {
        "resourceType": "List",
        "meta": {"profile": [SUBMISSION_PROFILE]},
        "extension": [
            {
                "url": SOURCE_ID_URL,
                "valueIdentifier": {
                    "system": "urn:ietf:rfc:3986",
                    "value": f"urn:oid:{SIMPLIFIED_PUBLISH_SOURCE_OID}",
                },
            }
        ],
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
        "date": instant(now),
        "entry": [{"item": {"reference": doc_url}}],
    }
    if resource.get("subject") is not None:
        submission["subject"] = resource["subject"]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": submission,
                "request": {"method": "POST", "url": "List"},
            },
            {
                "fullUrl": doc_url,
                "resource": resource,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    }


def _relocate(err: DmpError) -> None:
    """Point an error's location at the posted resource rather than the internal Bundle."""
    if err.expression and err.expression.startswith(_ENTRY_PREFIX):
        err.expression = "DocumentReference" + err.expression[len(_ENTRY_PREFIX) :]
    for issue in err.issues:
        _relocate(issue)


def relocated(err: DmpError) -> DmpError:
    _relocate(err)
    return err


def parse_simplified_publish(
    resource: Any, now: datetime, *, max_document_bytes: int, allow_test: bool = False
) -> ProvideRequest:
    """The ProvideRequest of an ITI-105 DocumentReference, or the refusal ITI-65 would give."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
        raise DmpError("INVALID_RESOURCE", "une ressource DocumentReference est attendue")
    if not isinstance(resource.get("subject"), dict):
        raise DmpError("MISSING_ELEMENT", "subject (patient)", expression="DocumentReference.subject")
    _check_attachment(resource)
    try:
        return parse_provide_bundle(
            submission_bundle(resource, now), max_document_bytes=max_document_bytes, allow_test=allow_test
        )
    except DmpError as err:
        raise relocated(err) from None
