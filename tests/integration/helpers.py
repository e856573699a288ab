"""Builders shared by the integration tests."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import Identity
from dmp.demo.bundles import document_reference, provide_bundle
from dmp.domain.ins import compute_key

FIXTURES = Path(__file__).parent.parent / "fixtures"
CDA = b'<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def fix_ins(value: str) -> str:
    """The ANS examples carry INS numbers with a wrong check key: recompute it."""
    return value[:13] + compute_key(value[:13])


def doc(ident: Identity, content: bytes = CDA, **kw: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "unique_id": f"1.2.250.1.999.{uuid.uuid4().int % 10**15}",
        "type_code": "11488-4",
        "title": "CR de consultation",
        "date": "2026-11-20T10:00:00+01:00",
        "author_idnps": "810001234565",
        "author_name": "Charles MULLER",
        "binary_url": f"urn:uuid:{uuid.uuid4()}",
    }
    params.update(kw)
    return document_reference(content, ins_system=ident.system, ins_value=ident.nir, **params)


def bundle(ident: Identity, *docs: tuple[dict[str, Any], bytes | None]) -> dict[str, Any]:
    if not docs:
        d = doc(ident)
        docs = ((d, CDA),)
    return provide_bundle(list(docs), ins_system=ident.system, ins_value=ident.nir)


def one_doc_bundle(ident: Identity, content: bytes = CDA, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    d = doc(ident, content, **kw)
    return bundle(ident, (d, content if "binary_url" not in kw or kw["binary_url"] else None)), d


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def deep(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)


class FailingBlobs:
    """A blob store whose ``fail_at``-th write fails (1-based), like a disk filling up in the middle
    of a publication: the failure injection of the all-or-nothing tests."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.writes = inner, fail_at, 0

    def put(self, key: str, data: bytes) -> None:
        self.writes += 1
        if self.writes >= self.fail_at:
            raise OSError("injected failure (test)")
        self.inner.put(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def failing_blobs(api: Any, fail_at: int) -> Iterator[FailingBlobs]:
    """The server's blob store fails at its ``fail_at``-th write while the block runs."""
    runtime = api.app.state.dmp.runtime
    real = runtime.blobs
    runtime.blobs = FailingBlobs(real, fail_at)
    try:
        yield runtime.blobs
    finally:
        runtime.blobs = real
