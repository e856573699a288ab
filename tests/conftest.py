"""Shared fixtures: the suite runs on SQLite and on PostgreSQL (real servers, no mocks)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from dmp.api.app import create_app
from dmp.auth.pki import init_ca, issue_card, load_ca
from dmp.auth.tokens import TokenSigner
from dmp.demo.client import token_form
from dmp.domain.identity import Sex
from dmp.domain.ins import SYSTEM_NIR, compute_key
from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.blobs import FileBlobStore
from dmp.store.crypto import KeyRing
from dmp.store.db import make_engine, upgrade
from dmp.store.schema import metadata

BASE = "http://testserver"
_pg_url: str | None = None


def _postgres_url() -> str:
    global _pg_url
    if _pg_url is None:
        from dmp.devtools.pgcluster import fresh_database, postgres_url

        try:
            server = postgres_url()
        except Exception as exc:  # no server and no binaries
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL indisponible en CI : {exc}")
            pytest.skip(f"PostgreSQL indisponible : {exc}")
        _pg_url = fresh_database(server, f"dmp_test_{os.getpid()}")
    return _pg_url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'dmp.sqlite3'}"
    else:
        url = _postgres_url()
    eng = make_engine(url, pool_size=5)
    upgrade(eng)
    # Tables declared but not yet migrated (work in progress) are created directly;
    # tests/integration/test_migrations.py checks the migrations alone on fresh databases.
    metadata.create_all(eng)
    yield eng
    eng.dispose()
    if request.param == "postgresql":
        _drop_database(url)


def _drop_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(
        server.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate(engine: Engine) -> None:
    from dmp.audit import install_protection, uninstall_protection

    names = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        uninstall_protection(conn)  # the trail refuses DELETE: lift it between tests only
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(names) + " CASCADE"))
        else:
            for n in names:
                conn.execute(text(f"DELETE FROM {n}"))
        install_protection(conn)


@dataclass(frozen=True)
class Card:
    slug: str
    dir: Path
    idnps: str
    name: str


CARDS: dict[str, tuple[str, str, str | None, str] | tuple[str, str, str | None, str, str]] = {
    "doctor": ("10001234565", "10", "SM26", "Charles MULLER"),
    "doctor2": ("10002345675", "10", "SM27", "Charles DAVID"),
    "pharmacist": ("10003456786", "21", None, "Pierre DIDOT"),
    "nurse": ("10004567896", "60", None, "Anne LEROY"),
    "revoked": ("10009999995", "10", "SM26", "Rémi VOQUÉ"),
    "urgentist": ("10005678908", "10", "SM59", "Ursule RGENCE"),
    "regulator": ("10006789019", "10", "SM26", "Régis ULATEUR", "SAMU_SMUR"),
    "occupational": ("10007890121", "10", "SM25", "Thérèse TRAVAIL"),
    # The médecin coordonnateur of an EHPAD: practice setting ESSMS on the card (AC-17).
    "esms": ("10008901232", "10", None, "Estelle HPAD", "ESSMS"),
}


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    init_ca(d)
    return d


@pytest.fixture(scope="session")
def cards(pki_dir: Path) -> dict[str, Card]:
    out = {}
    for slug, (rpps, prof, spec, name, *rest) in CARDS.items():
        target = pki_dir.parent / f"card-{slug}"
        issue_card(
            pki_dir,
            rpps=rpps,
            profession=prof,
            specialty=spec,
            name=name,
            structure_id=f"S-{slug}",
            structure_name=f"Structure {slug}",
            out=target,
            setting=rest[0] if rest else None,
        )
        out[slug] = Card(slug, target, "8" + rpps, name)
    return out


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TokenSigner:
    return TokenSigner.generate_file(tmp_path_factory.mktemp("keys") / "token.pem")


class Api:
    """A test client speaking as professionals, with their tokens cached."""

    def __init__(self, client: TestClient, cards: dict[str, Card], runtime: Runtime, app: Any) -> None:
        self.client = client
        self.cards = cards
        self.runtime = runtime
        self.app = app
        self._tokens: dict[str, str] = {}

    def person_token(self, actor: Any) -> str:
        """A token for a patient or representative (their login arrives with issue 3)."""
        token, _ = self.app.state.dmp.signer.issue(actor, now=self.runtime.now(), issuer=BASE)
        self._tokens[f"person:{actor.id}"] = token
        return str(token)

    def token(self, who: str = "doctor", **kw: str | None) -> str:
        if who.startswith("person:"):
            return self._tokens[who]
        if who not in self._tokens or kw:
            resp = self.client.post(
                "/oauth/token", data=token_form(self.cards[who].dir, f"{BASE}/oauth/token", **kw)
            )
            assert resp.status_code == 200, resp.text
            if kw:
                return str(resp.json()["access_token"])
            self._tokens[who] = resp.json()["access_token"]
        return self._tokens[who]

    def headers(self, who: str = "doctor", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}", "Accept": "application/fhir+json", **extra}

    def get(self, path: str, who: str = "doctor", **kw: Any) -> Any:
        return self.client.get(f"/fhir/{path}", headers=self.headers(who), **kw)

    def post(
        self, path: str, body: Any, who: str = "doctor", content_type: str = "application/fhir+json"
    ) -> Any:
        import json

        return self.client.post(
            f"/fhir/{path}",
            content=json.dumps(body),
            headers=self.headers(who, **{"Content-Type": content_type}),
        )

    def patch(self, path: str, ops: Any, who: str = "doctor") -> Any:
        import json

        return self.client.patch(
            f"/fhir/{path}",
            content=json.dumps(ops),
            headers=self.headers(who, **{"Content-Type": "application/json-patch+json"}),
        )


def share_master_key(settings: Settings, key: bytes) -> None:
    """The CLI run on this instance's DMP_VAR_DIR finds the server's master key (SE-02: the names
    the commands read are sealed under keys it wraps), as on a real deployment."""
    import base64

    path = settings.keys_dir / "master.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64encode(key) + b"\n")
    path.chmod(0o600)


@pytest.fixture()
def runtime(engine: Engine, tmp_path: Path) -> Runtime:
    truncate(engine)
    settings = Settings(var_dir=tmp_path, base_url=BASE, database_url=str(engine.url))
    share_master_key(settings, b"k" * 32)
    return Runtime(
        settings=settings,
        engine=engine,
        keyring=KeyRing(b"k" * 32),
        blobs=FileBlobStore(tmp_path / "blobs", fsync=False),
    )


@pytest.fixture()
def api(runtime: Runtime, cards: dict[str, Card], pki_dir: Path, signer: TokenSigner) -> Iterator[Api]:
    app = create_app(runtime, signer=signer, ca_cert=load_ca(pki_dir).certificate)
    with TestClient(app, base_url=BASE) as client:
        yield Api(client, cards, runtime, app)


# ---- identities -------------------------------------------------------------------------

_orders = itertools.count(1)


@dataclass(frozen=True)
class Identity:
    nir: str
    family: str
    given: str
    sex: Sex
    birth_date: date
    birth_place: str

    @property
    def system(self) -> str:
        return SYSTEM_NIR

    @property
    def ref(self) -> str:
        return f"Patient?identifier={SYSTEM_NIR}|{self.nir}"


def new_identity(
    family: str = "DUPONT",
    given: str = "Marie",
    sex: Sex = Sex.FEMALE,
    birth_date: date = date(1980, 5, 17),
    birth_place: str = "75056",
) -> Identity:
    order = next(_orders) % 1000
    first13 = f"{1 if sex is Sex.MALE else 2}{birth_date:%y}{birth_date:%m}{birth_place}{order:03d}"
    return Identity(
        first13 + compute_key(first13),
        family,
        f"{given}{order}" if given else given,
        sex,
        birth_date,
        birth_place,
    )


def patient_resource(ident: Identity, *, consent: bool = True, channel: str | None = None) -> dict[str, Any]:
    from dmp.fhir.patient import (
        BIRTH_PLACE_URL,
        CONSENT_CHANNEL_URL,
        CREATION_CONSENT_URL,
        INSEE_CODE_URL,
    )

    p: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM_NIR, "value": ident.nir}],
        "name": [{"use": "official", "family": ident.family, "given": [ident.given]}],
        "gender": ident.sex.value,
        "birthDate": ident.birth_date.isoformat(),
        "extension": [
            {
                "url": BIRTH_PLACE_URL,
                "valueAddress": {
                    "extension": [{"url": INSEE_CODE_URL, "valueCoding": {"code": ident.birth_place}}]
                },
            }
        ],
    }
    if consent:
        c: dict[str, Any] = {
            "resourceType": "Consent",
            "id": "creation",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "dateTime": "2026-11-23T09:30:00+01:00",
            "policyRule": {
                "coding": [
                    {
                        "system": "https://dmp.example.org/fhir/CodeSystem/dmp-consent-policy",
                        "code": "creation-dmp",
                    }
                ]
            },
        }
        if channel:
            c["extension"] = [{"url": CONSENT_CHANNEL_URL, "valueCode": channel}]
        p["contained"] = [c]
        p["extension"].append({"url": CREATION_CONSENT_URL, "valueReference": {"reference": "#creation"}})
    return p


@pytest.fixture()
def patient(api: Api) -> Identity:
    """A patient whose record has been opened by the doctor."""
    ident = new_identity()
    resp = api.post("Patient", patient_resource(ident))
    assert resp.status_code == 201, resp.text
    return ident


def unique_oid() -> str:
    return f"1.2.250.1.999.{uuid.uuid4().int % 10**12}"


# ---- a real `dmp serve`, for the real FHIR clients (tests/integration/test_client_*.py) ---------


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from live_server import live_server

    url = ""
    if request.param == "postgresql":
        from dmp.devtools.pgcluster import fresh_database

        # The suite's server (or skip/fail as the suite does); a database of the live server's own.
        url = fresh_database(_postgres_url(), f"dmp_live_{os.getpid()}")
    with live_server(tmp_path_factory.mktemp(f"live-{request.param}"), url) as server:
        yield server
    if url:
        _drop_database(url)


@dataclass(frozen=True)
class LiveRecord:
    ident: Identity
    patient_id: str
    unique_ids: list[str]

    @property
    def identifier(self) -> str:
        return f"{SYSTEM_NIR}|{self.ident.nir}"


@pytest.fixture()
def live_record(live: Any) -> LiveRecord:
    """A new record on the live server, holding five documents published by the doctor."""
    from live_server import publish_documents

    ident = new_identity(family="CLIENT")
    status, created = live.call("POST", "Patient", patient_resource(ident))
    assert status == 201, created
    return LiveRecord(ident, created["id"], publish_documents(live, SYSTEM_NIR, ident.nir, 5))
