"""Small helpers shared by the FHIR mappers."""

from __future__ import annotations

import re
from collections.abc import Callable
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

# RFC 9110 §8.3.1 media-type = type "/" subtype *( OWS ";" OWS [ parameter ] ), ASCII only: what
# may stand in a Content-Type header, so a stored type never breaks (or injects into) a response.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*(?:{_TCHARS}=(?:{_TCHARS}|{_QUOTED}))?)*")


def is_media_type(value: object) -> bool:
    return isinstance(value, str) and MEDIA_TYPE.fullmatch(value) is not None


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DmpError("MALFORMED_JSON", str(exc)) from exc


# What a Python datetime (hence the database columns) can hold, in UTC. FHIR allows the years
# 0001–9999 in any time zone: a value whose UTC start falls outside is refused (422) in a body,
# and a search bound beyond either end is clamped to it (docs/api/mhd.md, « Limites »).
UTC_MIN = datetime.min.replace(tzinfo=UTC)
UTC_MAX = datetime.max.replace(tzinfo=UTC)


def parse_datetime(value: Any, element: str) -> datetime:
    """A FHIR date/dateTime/instant as an aware UTC datetime (start of its precision).

    A date without time is taken at midnight, Paris time: that is what a French
    producer means by "le 12 juin".
    """
    start, _ = parse_datetime_range(value, element)
    return start


def parse_datetime_range(value: Any, element: str, *, clamp: bool = False) -> tuple[datetime, datetime]:
    """[start, end) covered by a FHIR date/dateTime at its precision.

    A bound beyond what a datetime holds in UTC (0001-01-01T00:00Z to the end of 9999) is
    that edge; a start beyond it is refused (INVALID_VALUE) unless ``clamp`` (search bounds).
    """
    if not isinstance(value, str):
        raise DmpError("INVALID_VALUE", f"{element} doit être une date FHIR", expression=element)
    m = _DATETIME.fullmatch(value)
    if not m:
        raise DmpError("INVALID_VALUE", f"{element} : date « {value} » mal formée", expression=element)
    try:
        y = int(m["y"])
        if m["H"] is not None:
            tz = UTC if m["tz"] == "Z" else _offset(m["tz"])
            local = datetime(
                y, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0), tzinfo=tz
            )
            step = timedelta(minutes=1) if m["S"] is None else timedelta(seconds=1)
            end: Callable[[], datetime] = lambda: local + step  # noqa: E731
        elif m["d"] is not None:
            d = date(y, int(m["m"]), int(m["d"]))
            local = datetime(d.year, d.month, d.day, tzinfo=PARIS)
            end = lambda: local + timedelta(days=1)  # noqa: E731
        elif m["m"] is not None:
            month = int(m["m"])
            local = datetime(y, month, 1, tzinfo=PARIS)
            end = lambda: datetime(y + month // 12, month % 12 + 1, 1, tzinfo=PARIS)  # noqa: E731
        else:
            local = datetime(y, 1, 1, tzinfo=PARIS)
            end = lambda: datetime(y + 1, 1, 1, tzinfo=PARIS)  # noqa: E731
    except ValueError as exc:
        raise DmpError(
            "INVALID_VALUE", f"{element} : date « {value} » impossible", expression=element
        ) from exc
    edge = UTC_MIN if y < 5000 else UTC_MAX  # the side of the range the value fell off
    try:
        lo = local.astimezone(UTC)
    except OverflowError as exc:
        if not clamp:
            raise DmpError(
                "INVALID_VALUE",
                f"{element} : date « {value} » hors de la plage prise en charge "
                "(0001-01-01T00:00:00Z à 9999-12-31T23:59:59Z)",
                expression=element,
            ) from exc
        lo = edge
    try:
        hi = end().astimezone(UTC)
    except (OverflowError, ValueError):  # ValueError: the year 10000
        hi = edge
    return lo, hi


def _offset(tz: str) -> Any:
    sign = 1 if tz[0] == "+" else -1
    from datetime import timezone

    return timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))


def instant(dt: datetime) -> str:
    """FHIR instant in UTC with millisecond precision."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def concept_label(concept: Any) -> str:
    """A CodeableConcept as read: its text, else its first display, else its first code."""
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for c in concept.get("coding", []):
        if c.get("display") or c.get("code"):
            return str(c.get("display") or c.get("code"))
    return ""


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
