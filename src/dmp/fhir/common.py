"""Small helpers shared by the FHIR mappers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from dmp.errors import DmpError

PARIS = ZoneInfo("Europe/Paris")
Json = dict[str, Any]

_DATETIME = re.compile(
    r"(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2}))?)?)?"
)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DmpError("MALFORMED_JSON", str(exc)) from exc


def parse_datetime(value: Any, element: str) -> datetime:
    """A FHIR date/dateTime/instant as an aware UTC datetime (start of its precision).

    A date without time is taken at midnight, Paris time: that is what a French
    producer means by "le 12 juin".
    """
    start, _ = parse_datetime_range(value, element)
    return start


def parse_datetime_range(value: Any, element: str) -> tuple[datetime, datetime]:
    """[start, end) covered by a FHIR date/dateTime at its precision."""
    if not isinstance(value, str):
        raise DmpError("INVALID_VALUE", f"{element} doit être une date FHIR", expression=element)
    m = _DATETIME.fullmatch(value)
    if not m:
        raise DmpError("INVALID_VALUE", f"{element} : date « {value} » mal formée", expression=element)
    try:
        y = int(m["y"])
        if m["H"] is not None:
            tz = UTC if m["tz"] == "Z" else _offset(m["tz"])
            start = datetime(
                y, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0), tzinfo=tz
            )
            step = timedelta(minutes=1) if m["S"] is None else timedelta(seconds=1)
            return start.astimezone(UTC), (start + step).astimezone(UTC)
        if m["d"] is not None:
            d = date(y, int(m["m"]), int(m["d"]))
            start = datetime(d.year, d.month, d.day, tzinfo=PARIS)
            return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)
        if m["m"] is not None:
            month = int(m["m"])
            start = datetime(y, month, 1, tzinfo=PARIS)
            end = datetime(y + month // 12, month % 12 + 1, 1, tzinfo=PARIS)
            return start.astimezone(UTC), end.astimezone(UTC)
        return (
            datetime(y, 1, 1, tzinfo=PARIS).astimezone(UTC),
            datetime(y + 1, 1, 1, tzinfo=PARIS).astimezone(UTC),
        )
    except ValueError as exc:
        raise DmpError(
            "INVALID_VALUE", f"{element} : date « {value} » impossible", expression=element
        ) from exc


def _offset(tz: str) -> Any:
    sign = 1 if tz[0] == "+" else -1
    from datetime import timezone

    return timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))


def instant(dt: datetime) -> str:
    """FHIR instant in UTC with millisecond precision."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def codings(concept: Any) -> list[Json]:
    """The codings of a CodeableConcept, or a lone Coding as a one-item list."""
    if not isinstance(concept, dict):
        return []
    if "code" in concept and "coding" not in concept:
        return [concept]
    value = concept.get("coding")
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def require(obj: Json, key: str, element: str) -> Any:
    value = obj.get(key)
    if value is None or value == "" or value == []:
        raise DmpError("MISSING_ELEMENT", element, expression=element)
    return value


def contained_by_ref(resource: Json, reference: Any) -> Json | None:
    """Resolve a local reference ``#id`` to a contained resource."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    for c in resource.get("contained") or []:
        if isinstance(c, dict) and c.get("id") == ref[1:]:
            return c
    return None


def identifier_value(resource: Json | None, system: str) -> str | None:
    if not resource:
        return None
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def human_name(resource: Json | None) -> str | None:
    if not resource:
        return None
    names = resource.get("name")
    if isinstance(names, list) and names and isinstance(names[0], dict):
        n = names[0]
        parts = [*(n.get("prefix") or []), *(n.get("given") or []), n.get("family") or ""]
        text = n.get("text") or " ".join(p for p in parts if isinstance(p, str) and p)
        return str(text) or None
    if isinstance(names, str):
        return names
    return None


def human_size(n: int) -> str:
    """A byte count for a French message: « 20 Mo », « 1,5 ko », « 800 octets »."""
    for unit, size in (("Mo", 1024 * 1024), ("ko", 1024)):
        if n >= size:
            value = f"{n / size:.1f}".rstrip("0").rstrip(".").replace(".", ",")
            return f"{value} {unit}"
    return f"{n} octets"
