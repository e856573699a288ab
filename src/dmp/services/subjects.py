"""Resolve a FHIR reference to a patient into the record it designates."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote
from uuid import UUID

from sqlalchemy import Connection

from dmp.errors import DmpError
from dmp.fhir.patient import find_ins
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
        ins = find_ins([{"system": system, "value": value}], allow_test=allow_test)
        if ins is None:
            raise DmpError("INS_SYSTEM_NOT_ALLOWED", system)
        row = records.find_by_ins(conn, ins)
    elif isinstance(ref, str) and ref.startswith("Patient/"):
        pid = parse_uuid(ref.split("/", 1)[1])
        row = records.get(conn, pid) if pid else None
    elif isinstance(subject.get("identifier"), dict):
        ident = subject["identifier"]
        ins = find_ins([ident], allow_test=allow_test)
        if ins is None:
            raise DmpError("INS_SYSTEM_NOT_ALLOWED", str(ident.get("system")))
        row = records.find_by_ins(conn, ins)
    else:
        raise DmpError("INVALID_VALUE", "référence au patient non reconnue", expression="subject")
    if row is None:
        raise DmpError("RECORD_NOT_FOUND")
    return row
