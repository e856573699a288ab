"""Resolve a FHIR reference to a patient into the record it designates."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote
from uuid import UUID

from sqlalchemy import Connection

from dmp.domain.ins import parse_ins
from dmp.errors import DmpError
from dmp.services import records


def parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def resolve_subject(conn: Connection, subject: Any, *, allow_test: bool) -> Any:
    """The patient row a ``subject`` designates; RECORD_NOT_FOUND when there is none."""
    if not isinstance(subject, dict):
        raise DmpError("MISSING_ELEMENT", "subject (patient)")
    ref = subject.get("reference")
    row = None
    if isinstance(ref, str) and ref.startswith("Patient?identifier="):
        system, _, value = unquote(ref.split("=", 1)[1]).partition("|")
        row = records.find_by_ins(conn, parse_ins(system, value, allow_test=allow_test))
    elif isinstance(ref, str) and ref.startswith("Patient/"):
        pid = parse_uuid(ref.split("/", 1)[1])
        row = records.get(conn, pid) if pid else None
    elif isinstance(subject.get("identifier"), dict):
        ident = subject["identifier"]
        row = records.find_by_ins(
            conn,
            parse_ins(str(ident.get("system") or ""), str(ident.get("value") or ""), allow_test=allow_test),
        )
    else:
        raise DmpError("INVALID_VALUE", "référence au patient non reconnue", expression="subject")
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    return row
