"""Request/response helpers shared by the routes: bodies, content types, errors."""

from __future__ import annotations

import logging
import re
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


def _charset(request: Request) -> str | None:
    for param in request.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


# C0 control characters but TAB, LF and CR: FHIR strings cannot carry them (R4 §2.24.0.1, the
# string type's regex), PostgreSQL refuses NUL in text, and none belongs in a header or a log.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _control_fault(text: str) -> str | None:
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def check_text(value: Any) -> None:
    """Refuse a control character in any string or key of a decoded JSON body (CONTROL_CHARACTER,
    the element's path in ``expression``). Iterative: orjson nests deeper than Python recurses."""
    root = value.get("resourceType") if isinstance(value, dict) else None
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                fault = _control_fault(key)
                if fault:
                    _refuse_control(fault, root, path)
                if isinstance(item, (dict, list, str)):
                    stack.append((item, (*path, key)))
        elif isinstance(node, list):
            kept = (dict, list, str)
            stack.extend((item, (*path, i)) for i, item in enumerate(node) if isinstance(item, kept))
        elif isinstance(node, str):
            fault = _control_fault(node)
            if fault:
                _refuse_control(fault, root, path)


def _refuse_control(fault: str, root: Any, path: tuple[str | int, ...]) -> None:
    where = str(root) if isinstance(root, str) and root.isidentifier() else "corps"
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    raise DmpError("CONTROL_CHARACTER", f"{fault} dans {where}", expression=where)


def check_params(params: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """Search parameters as read from a query string or a form: at most ``limit`` of them,
    and no control character in a name or a value."""
    if len(params) > limit:
        raise DmpError("TOO_MANY_SEARCH_PARAMETERS", f"{len(params)} reçus, {limit} au plus")
    for key, value in params:
        fault = _control_fault(key) or _control_fault(value)
        if fault:
            name = key if not _control_fault(key) else "?"
            raise DmpError("CONTROL_CHARACTER", f"{fault} dans le paramètre « {name} »", expression=name)
    return params


def query_params(request: Request, limit: int) -> list[tuple[str, str]]:
    """The one reader of a request's query parameters (see ``check_params``)."""
    return check_params(list(request.query_params.multi_items()), limit)


async def read_body(request: Request, limit: int, accepted: set[str]) -> bytes:
    """The request body, refusing a wrong content type, a charset other than UTF-8 or an
    oversize body early."""
    mt = media_type(request)
    if mt not in accepted:
        raise DmpError(
            "UNSUPPORTED_MEDIA_TYPE", f"{mt or 'absent'} (attendu : {' ou '.join(sorted(accepted))})"
        )
    charset = _charset(request)
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise DmpError("UNSUPPORTED_MEDIA_TYPE", f"jeu de caractères « {charset} » (seul UTF-8 est accepté)")
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
    """The one reader of JSON bodies: size, type, UTF-8, syntax, and no control character."""
    value = loads(await read_body(request, limit, accepted))
    check_text(value)
    return value
