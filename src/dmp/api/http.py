"""Request/response helpers shared by the routes: bodies, content types, errors."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dmp.errors import DmpError
from dmp.fhir import FHIR_JSON
from dmp.fhir.common import dumps, human_size, loads
from dmp.fhir.outcome import operation_outcome

log = logging.getLogger("dmp.api")
JSON_TYPES = {"application/fhir+json", "application/json"}
PATCH_TYPES = {"application/json-patch+json"}


class FhirResponse(Response):
    media_type = FHIR_JSON

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None):
        body = content if isinstance(content, bytes) else dumps(content)
        super().__init__(body, status_code=status_code, headers=headers, media_type=FHIR_JSON)


def error_response(err: DmpError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="dmp"'} if err.status == 401 else None
    return FhirResponse(operation_outcome(err), err.status, headers)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, accepted: set[str]) -> bytes:
    """The request body, refusing a wrong content type or an oversize body early."""
    mt = media_type(request)
    if mt not in accepted:
        raise DmpError(
            "UNSUPPORTED_MEDIA_TYPE", f"{mt or 'absent'} (attendu : {' ou '.join(sorted(accepted))})"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise DmpError("REQUEST_TOO_LARGE", human_size(limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DmpError("REQUEST_TOO_LARGE", human_size(limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int, accepted: set[str] = JSON_TYPES) -> Any:
    return loads(await read_body(request, limit, accepted))
