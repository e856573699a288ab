"""A bounded fuzzer over every /fhir route, against a real ``dmp serve`` (SQLite and PostgreSQL).

Search parameters come from the server's own CapabilityStatement; values mix plausible ones with
NUL and other control characters, years 0000/0001/9999/10000, unicode, huge numbers, empty and
repeated parameters. Bodies are mutations of valid ones: an ITI-65 Bundle, a Patient, a Consent
and a JSON Patch. For every answer: no 5xx, every 4xx is a FHIR OperationOutcome, and the one
keep-alive connection everything goes through stays open (no ``Connection: close``, and the
next request on it is answered).

Deterministic (``derandomize``, no example database) and bounded: about 1,200 requests per
database, ``FUZZ_SCALE`` (environment) multiplies the example counts for a longer run.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from helpers import one_doc_bundle
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import Identity, new_identity, patient_resource

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
FHIR_JSON = "application/fhir+json"
# uvicorn closes a keep-alive connection idle this long (its timeout_keep_alive, 5 s), less a margin.
IDLE_CLOSE_SECONDS = 4.0


def _fuzz(examples: int) -> Any:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: the failure names the request
        suppress_health_check=list(HealthCheck),
    )


# ---- the client: one keep-alive connection, every answer checked -----------------------------


@dataclass
class Fuzzer:
    host: str
    port: int
    token: str
    conn: http.client.HTTPConnection
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    last_answer: float = field(default_factory=time.monotonic)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = FHIR_JSON,
        accept: str = FHIR_JSON,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if body is not None and content_type is not None:
            headers["Content-Type"] = content_type
        what = f"{method} {path[:300]!r} body={body[:300] if body else body!r}"
        try:
            try:
                self.conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The server closes a keep-alive connection idle longer than its timeout (uvicorn:
                # 5 s), as HTTP allows; a loaded machine can leave it idle that long between two
                # examples. Only that case is retried, on a new connection; a connection lost
                # while the server answers stays an error.
                if time.monotonic() - self.last_answer < IDLE_CLOSE_SECONDS:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            raise AssertionError(f"connection lost after {what}: {exc!r}") from exc
        self.last_answer = time.monotonic()
        self.sent += 1
        self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
        assert resp.status < 500, f"{resp.status} for {what}: {data[:500]!r}"
        assert (resp.getheader("connection") or "").lower() != "close", f"Connection: close for {what}"
        mime = (resp.getheader("content-type") or "").split(";")[0]
        parsed: Any = None
        if mime in (FHIR_JSON, "application/json"):
            parsed = json.loads(data)
        if resp.status >= 400:
            assert mime == FHIR_JSON, f"{resp.status} in {mime!r} for {what}"
            assert parsed.get("resourceType") == "OperationOutcome", f"{parsed} for {what}"
            for issue in parsed["issue"]:
                assert issue["diagnostics"] == issue["details"]["text"]
        return resp.status, parsed

    def json(self, method: str, path: str, value: Any, content_type: str = FHIR_JSON) -> tuple[int, Any]:
        return self.request(method, path, json.dumps(value, ensure_ascii=False).encode(), content_type)


@dataclass(frozen=True)
class Seed:
    ident: Identity
    patient_id: str
    document_id: str
    list_id: str
    unique_id: str
    bundle: dict[str, Any]
    doc_search: list[str]
    list_search: list[str]
    other_search: dict[str, list[str]]


@pytest.fixture(scope="module")
def fuzzer(live: Any) -> Iterator[tuple[Fuzzer, Seed]]:
    url = urlsplit(live.base)
    assert url.hostname and url.port
    f = Fuzzer(
        url.hostname, url.port, live.token, http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    )
    status, capability = f.request("GET", "/fhir/metadata")
    assert status == 200
    declared = {
        r["type"]: [p["name"] for p in r.get("searchParam", [])] for r in capability["rest"][0]["resource"]
    }
    ident = new_identity(family="FUZZ")
    status, created = f.json("POST", "/fhir/Patient", patient_resource(ident))
    assert status == 201, created
    valid, docref = one_doc_bundle(ident)
    status, published = f.json("POST", "/fhir", valid)
    assert status == 200, published
    list_id, doc_id = (e["response"]["location"].split("/")[1] for e in published["entry"][:2])
    seed = Seed(
        ident,
        created["id"],
        doc_id,
        list_id,
        docref["masterIdentifier"]["value"],
        valid,
        declared["DocumentReference"],
        declared["List"],
        {k: v for k, v in declared.items() if k not in ("DocumentReference", "List")},
    )
    yield f, seed
    # The connection outlived every request, and still answers.
    status, _ = f.request("GET", "/fhir/metadata")
    assert status == 200
    f.conn.close()


# ---- values ---------------------------------------------------------------------------------

NASTY = [
    "",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x7f",
    "\r\n",
    "\t",
    " ",
    "9999-12-31",
    "0001-01-01",
    "0000-01-01",
    "10000-01-01",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2026-02-30",
    "2026-13",
    "99999999999999999999999999",
    "-1",
    "0",
    "1e309",
    "NaN",
    "%00",
    "%",
    "%ZZ",
    "éàü",
    "😀",
    "\u202e",
    "\ufeff",
    "'; DROP TABLE document;--",
    "|",
    ",",
    ",,,",
    "||",
    "a|b|c",
    "Patient/",
    "Patient/" + "x" * 300,
    "Patient/00000000-0000-0000-0000-000000000000",
    "a" * 5000,
    "ge9999-12-31",
    "lt0001-01-01",
    "le9999",
    "gt10000",
    "sa9999-12-31T23:59:59Z",
    "eb0001",
    "ne0001-01-01",
    "ap2026",
    "urn:oid:",
    "urn:ietf:rfc:3986|urn:uuid:",
    "true",
    "null",
    "[]",
    "{}",
    "-date,date",
    "_lastUpdated",
]
PREFIXES = ["", "eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap", "xx"]
YEARS = ["0000", "0001", "0002", "1900", "2026", "9998", "9999", "10000", "99999"]

dates = st.builds(
    lambda p, y, rest: p + y + rest,
    st.sampled_from(PREFIXES),
    st.sampled_from(YEARS),
    st.sampled_from(
        [
            "",
            "-01",
            "-12",
            "-12-31",
            "-01-01",
            "-02-29",
            "-12-31T23:59:59Z",
            "-01-01T00:00:00+14:00",
            "-12-31T23:59:59-14:00",
            "-06-15T12:00",
            "-06-15T12:00:00.123+02:00",
            "-00-00",
            "T",
        ]
    ),
)
texts = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    dates,
)


def search_value(seed: Seed) -> st.SearchStrategy[str]:
    plausible = [
        f"Patient/{seed.patient_id}",
        f"{seed.ident.system}|{seed.ident.nir}",
        seed.unique_id,
        f"urn:ietf:rfc:3986|{seed.unique_id}",
        seed.document_id,
        "current",
        "superseded",
        "11488-4",
        "http://loinc.org|11488-4",
        "N",
        "true",
        "false",
        "20",
        "accurate",
    ]
    return st.one_of(st.sampled_from(plausible), texts, st.lists(texts, max_size=3).map(",".join))


@st.composite
def search_params(draw: Any, seed: Seed, declared: list[str]) -> list[tuple[str, str]]:
    """Mostly declared parameters (so most searches get past the parameter checks), some not."""
    anchors = [
        [],
        [("patient", f"Patient/{seed.patient_id}")],
        [("patient.identifier", f"{seed.ident.system}|{seed.ident.nir}")],
    ]
    params = list(draw(st.sampled_from(anchors)))
    specials = ["_count", "_offset", "_sort", "_total", "_summary", "_format", "_id", "_elements"]
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        kind = draw(st.integers(min_value=0, max_value=9))
        if kind < 6:
            name = draw(st.sampled_from(declared))
        elif kind < 8:
            name = draw(st.sampled_from(specials))
        elif kind < 9:
            name = draw(st.sampled_from(declared)) + st_suffix(draw(st.sampled_from(declared)))
        else:
            name = draw(texts)
        is_date = name in ("date", "creation", "period")
        value = draw(dates if is_date and draw(st.booleans()) else search_value(seed))
        params.append((name, value))
    return params


def st_suffix(name: str) -> str:
    return {"date": ":missing", "type": ":text", "patient": ":Patient"}.get(name, ":exact")


def query(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**25), max_value=10**25),
        st.floats(allow_nan=False, allow_infinity=False),
        texts,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: Any, original: Any, mutations: int = 3) -> Any:
    """``original`` with a few of its elements replaced, removed, duplicated or given a sibling."""
    value = copy.deepcopy(original)
    for _ in range(draw(st.integers(min_value=1, max_value=mutations))):
        paths = [p for p in _paths(value) if p]
        if not paths:
            return draw(json_values)
        path = draw(st.sampled_from(paths))
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        kind = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "add"]))
        if kind == "replace":
            parent[last] = draw(json_values)
        elif kind == "delete":
            del parent[last]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif isinstance(parent, dict):
            parent[draw(texts)] = draw(json_values)
        else:
            parent.insert(last, draw(json_values))
    return value


# ---- the fuzz tests ------------------------------------------------------------------------


@_fuzz(350)
@given(data=st.data())
def test_fuzz_document_and_list_searches(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    rtype, declared = data.draw(
        st.sampled_from([("DocumentReference", seed.doc_search), ("List", seed.list_search)])
    )
    params = data.draw(search_params(seed, declared))
    if data.draw(st.booleans()):
        f.request("GET", f"/fhir/{rtype}?{query(params)}")
    else:
        half = data.draw(st.integers(min_value=0, max_value=len(params)))
        f.request(
            "POST",
            f"/fhir/{rtype}/_search?{query(params[:half])}",
            query(params[half:]).encode(),
            data.draw(
                st.sampled_from(
                    [
                        "application/x-www-form-urlencoded",
                        "application/x-www-form-urlencoded; charset=latin-1",
                        "text/plain",
                    ]
                )
            ),
        )


@_fuzz(200)
@given(data=st.data())
def test_fuzz_other_searches(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    rtype = data.draw(st.sampled_from(sorted(seed.other_search)))
    declared = seed.other_search[rtype] or ["_id"]
    params = data.draw(search_params(seed, declared))
    f.request("GET", f"/fhir/{rtype}?{query(params)}")


@_fuzz(150)
@given(data=st.data())
def test_fuzz_reads(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    rtype = data.draw(
        st.sampled_from(
            ["DocumentReference", "List", "Binary", "Patient", "Consent", "AuditEvent", "Foo", ""]
        )
    )
    ident = data.draw(
        st.one_of(
            st.sampled_from(
                [seed.document_id, seed.list_id, seed.patient_id, str(uuid.uuid4()), seed.document_id.upper()]
            ),
            texts,
        )
    )
    path = f"/fhir/{rtype}/{quote(ident, safe='')}"
    if data.draw(st.booleans()):
        path += f"/_history/{quote(data.draw(st.one_of(st.sampled_from(['1', '2', '0']), texts)), safe='')}"
    accept = data.draw(st.sampled_from([FHIR_JSON, "*/*", "application/json", "text/html", "a/b;q=x", ""]))
    method = data.draw(st.sampled_from(["GET", "GET", "GET", "DELETE", "PUT"]))
    f.request(method, path, b"{}" if method == "PUT" else None, accept=accept or FHIR_JSON)


@_fuzz(300)
@given(data=st.data())
def test_fuzz_iti65_bundles(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    valid, _ = one_doc_bundle(seed.ident)  # a fresh uniqueId, so an intact mutation may publish
    body = data.draw(mutated(valid))
    f.json("POST", data.draw(st.sampled_from(["/fhir", "/fhir/"])), body)


@_fuzz(100)
@given(data=st.data())
def test_fuzz_patient_creation(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, _ = fuzzer
    body = data.draw(mutated(patient_resource(new_identity(family="FUZZ"))))
    f.json("POST", "/fhir/Patient", body)


@_fuzz(60)
@given(data=st.data())
def test_fuzz_consents(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{seed.patient_id}"},
        "dateTime": "2026-11-23T09:30:00+01:00",
        "policyRule": {
            "coding": [
                {"system": "https://dmp.example.org/fhir/CodeSystem/dmp-consent-policy", "code": "authorise"}
            ]
        },
        "provision": {"type": "permit", "actor": [{"reference": {"identifier": {"value": "810002345675"}}}]},
    }
    f.json("POST", "/fhir/Consent", data.draw(mutated(consent, 2)))


@_fuzz(120)
@given(data=st.data())
def test_fuzz_patches(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    f, seed = fuzzer
    valid = [
        {"op": "replace", "path": "/status", "value": "current"},
        {"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"code": "MASQUE_PS"}]}},
        {"op": "test", "path": "/meta/versionId", "value": "1"},
    ]
    ops = data.draw(st.one_of(mutated(valid, 2), json_values))
    target = data.draw(
        st.sampled_from(
            [
                f"/fhir/DocumentReference/{seed.document_id}",
                f"/fhir/DocumentReference?identifier={quote(seed.unique_id, safe='')}",
                "/fhir/DocumentReference?identifier=%00",
                f"/fhir/DocumentReference/{uuid.uuid4()}",
            ]
        )
    )
    f.json("PATCH", target, ops, data.draw(st.sampled_from(["application/json-patch+json", FHIR_JSON])))


@_fuzz(120)
@given(data=st.data())
def test_fuzz_raw_bodies(fuzzer: tuple[Fuzzer, Seed], data: Any) -> None:
    """Bytes that are not JSON, or not UTF-8, under every content type, on every writing route."""
    f, seed = fuzzer
    path = data.draw(
        st.sampled_from(
            [
                "/fhir",
                "/fhir/Patient",
                "/fhir/Consent",
                f"/fhir/DocumentReference/{seed.document_id}",
                "/fhir/List/_search",
            ]
        )
    )
    method = "PATCH" if "DocumentReference/" in path else "POST"
    good = json.dumps(seed.bundle).encode()
    body = data.draw(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from(
                [
                    b"",
                    b"{",
                    b"[]",
                    b"null",
                    b"1" * 400,
                    b'{"a":' * 2000,
                    good[: len(good) // 2],
                    '{"resourceType": "Patient", "x": "é"}'.encode("latin-1"),
                    b"\xef\xbb\xbf{}",
                    b'{"resourceType":"Bundle","type":"transaction","entry":[' + b"{}," * 3000 + b"{}]}",
                ]
            ),
        )
    )
    ctype = data.draw(
        st.sampled_from(
            [
                FHIR_JSON,
                f"{FHIR_JSON}; charset=latin-1",
                f"{FHIR_JSON}; charset=utf-8",
                "application/json",
                "application/json-patch+json",
                "application/x-www-form-urlencoded",
                "text/plain",
                "",
                "a/b;;",
                f"{FHIR_JSON};;;charset",
            ]
        )
    )
    f.request(method, path, body, ctype or None)


def test_fuzz_covered_enough(fuzzer: tuple[Fuzzer, Seed]) -> None:
    """The counts the suite promises (run last in this module): every request answered below 500."""
    f, _ = fuzzer
    print(f"fuzz: {f.sent} requests, statuses {dict(sorted(f.statuses.items()))}")
    assert f.sent >= int(1000 * min(SCALE, 1))
    assert not any(s >= 500 for s in f.statuses)
