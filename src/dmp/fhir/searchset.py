"""Searchset Bundles, rendered by splicing each resource's stored JSON (no re-serialisation).

Pure rendering (the wire format), below the services: a search use case returns a page of rows
and the adapter renders it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson


class _Row(Protocol):
    @property
    def id(self) -> object: ...  # a UUID, or a fact's <document id>-<ordinal>
    @property
    def resource_json(self) -> Any: ...


class SearchPage(Protocol):
    """What a search use case answers (``dmp.services.search.Page``)."""

    @property
    def rows(self) -> Sequence[_Row]: ...
    @property
    def total(self) -> int | None: ...
    @property
    def next_offset(self) -> int | None: ...
    @property
    def offset(self) -> int: ...
    @property
    def notice(self) -> str | None: ...


def searchset(page: SearchPage, base: str, resource_type: str, params: Sequence[tuple[str, str]]) -> bytes:
    """Render a searchset Bundle by splicing the stored JSON (no re-serialisation)."""
    kept = [(k, v) for k, v in params if k not in ("_offset",)]
    self_link = f"{base}/{resource_type}?{urlencode(kept + [('_offset', str(page.offset))])}"
    links = [b'{"relation":"self","url":' + _q(self_link) + b"}"]
    if page.next_offset is not None:
        nxt = f"{base}/{resource_type}?{urlencode(kept + [('_offset', str(page.next_offset))])}"
        links.append(b'{"relation":"next","url":' + _q(nxt) + b"}")
    entries = [
        b'{"fullUrl":'
        + _q(f"{base}/{resource_type}/{r.id}")
        + b',"resource":'
        + bytes(r.resource_json)
        + b',"search":{"mode":"match"}}'
        for r in page.rows
    ]
    if page.notice:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "suppressed", "diagnostics": page.notice}],
        }
        entries.append(b'{"resource":' + orjson.dumps(outcome) + b',"search":{"mode":"outcome"}}')
    out = b'{"resourceType":"Bundle","type":"searchset",'
    if page.total is not None:
        out += b'"total":' + str(page.total).encode() + b","
    out += b'"link":[' + b",".join(links) + b"]"
    if entries:  # FHIR JSON forbids empty arrays
        out += b',"entry":[' + b",".join(entries) + b"]"
    return out + b"}"


def _q(s: str) -> bytes:
    return orjson.dumps(s)
