"""The ``dmp`` command line: serve, database, PKI, record desk operations, demo."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import click

from dmp.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _fail(message: str) -> None:
    click.echo(f"Erreur : {message}", err=True)
    sys.exit(1)


@click.group(help="Dossier Médical Partagé — serveur de référence.")
def main() -> None:
    pass


@main.command(help="Sert l'API FHIR/MHD (par défaut sur 127.0.0.1:8080).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    from dmp.bootstrap import build_runtime
    from dmp.store.db import upgrade

    settings = _settings()
    runtime = build_runtime(settings)
    upgrade(runtime.engine)
    runtime.engine.dispose()
    click.echo(f"DMP à l'écoute sur http://{host}:{port}/fhir (base : {settings.db_url.split('@')[-1]})")
    uvicorn.run(
        "dmp.bootstrap:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


@main.group(help="Base de données.")
def db() -> None:
    pass


@db.command("upgrade", help="Applique les migrations (Alembic) jusqu'à la dernière version.")
def db_upgrade() -> None:
    from dmp.store.db import make_engine, upgrade

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    upgrade(engine)
    click.echo("Schéma à jour.")


@main.group(help="IGC de test (remplace l'IGC-Santé) : autorité et cartes CPS.")
def pki() -> None:
    pass


@pki.command("init", help="Crée l'autorité de certification de l'instance.")
def pki_init() -> None:
    from dmp.auth.pki import PkiError, init_ca

    settings = _settings()
    try:
        init_ca(settings.pki_dir)
    except PkiError as exc:
        _fail(str(exc))
    click.echo(f"Autorité de certification créée dans {settings.pki_dir}.")


@pki.command("issue-card", help="Émet un certificat de carte CPS pour un professionnel.")
@click.option("--rpps", required=True, help="Numéro RPPS (11 chiffres).")
@click.option("--profession", required=True, help="Code profession TRE_G15 (10 = médecin…).")
@click.option("--specialty", default=None, help="Savoir-faire (ex. SM26).")
@click.option("--name", required=True, help="Prénom NOM.")
@click.option("--structure-id", default=None)
@click.option("--structure-name", default=None)
@click.option("--out", required=True, type=click.Path(path_type=Path))
def pki_issue_card(
    rpps: str,
    profession: str,
    specialty: str | None,
    name: str,
    structure_id: str | None,
    structure_name: str | None,
    out: Path,
) -> None:
    from dmp.auth.pki import PkiError, issue_card

    try:
        files = issue_card(
            _settings().pki_dir,
            rpps=rpps,
            profession=profession,
            specialty=specialty,
            name=name,
            structure_id=structure_id,
            structure_name=structure_name,
            out=out,
        )
    except PkiError as exc:
        _fail(str(exc))
    click.echo(f"Carte émise (numéro de série {files.serial:X}) : {files.certificate}, {files.key}")


@pki.command("revoke", help="Révoque un certificat de carte (numéro de série hexadécimal ou fichier).")
@click.argument("serial_or_cert")
@click.option("--reason", default=None)
def pki_revoke(serial_or_cert: str, reason: str | None) -> None:
    from cryptography import x509
    from sqlalchemy import insert, select

    from dmp.store.db import make_engine, upgrade
    from dmp.store.schema import revoked_certificate

    path = Path(serial_or_cert)
    if path.exists():
        serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    else:
        try:
            serial = int(serial_or_cert.replace(":", ""), 16)
        except ValueError:
            _fail("numéro de série hexadécimal ou chemin de certificat attendu")
            return
    engine = make_engine(_settings().db_url)
    upgrade(engine)
    with engine.begin() as conn:
        if conn.execute(
            select(revoked_certificate).where(revoked_certificate.c.serial == str(serial))
        ).first():
            click.echo("Certificat déjà révoqué.")
            return
        conn.execute(
            insert(revoked_certificate).values(
                serial=str(serial), revoked_at=datetime.now(UTC), reason=reason
            )
        )
    click.echo(f"Certificat {serial:X} révoqué.")


@main.group(help="Opérations de guichet sur les dossiers (création, fermeture, réactivation).")
def record() -> None:
    pass


def _desk_actor(agent: str) -> object:
    from dmp.domain.actor import Actor, ActorKind

    return Actor(kind=ActorKind.OPERATOR, id=f"guichet:{agent}", name=agent)


@record.command("create", help="Crée un DMP au guichet, consentement du patient attesté par l'agent.")
@click.option("--ins", "ins_value", required=True, help="NIR ou NIA (15 caractères, clé comprise).")
@click.option("--ins-system", default="urn:oid:1.2.250.1.213.1.4.8", show_default=True)
@click.option("--family", required=True, help="Nom de naissance.")
@click.option("--given", required=True, help="Prénoms de naissance, séparés par des espaces.")
@click.option("--sex", type=click.Choice(["male", "female", "unknown"]), required=True)
@click.option("--birth-date", required=True, help="AAAA-MM-JJ")
@click.option("--birth-place", required=True, help="Code INSEE du lieu de naissance.")
@click.option(
    "--channel",
    default="insurance-desk",
    show_default=True,
    type=click.Choice(
        ["insurance-desk", "pharmacy", "professional-portal", "patient-online", "professional-software"]
    ),
)
@click.option("--agent", required=True, help="Nom de l'agent qui atteste le consentement.")
def record_create(
    ins_value: str,
    ins_system: str,
    family: str,
    given: str,
    sex: str,
    birth_date: str,
    birth_place: str,
    channel: str,
    agent: str,
) -> None:
    from dmp.bootstrap import build_runtime
    from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
    from dmp.domain.ins import parse_ins
    from dmp.errors import DmpError
    from dmp.fhir.patient import CreationRequest
    from dmp.services import records
    from dmp.store.db import upgrade

    settings = _settings()
    rt = build_runtime(settings, pool_size=1)
    upgrade(rt.engine)
    now = datetime.now(UTC)
    try:
        req = CreationRequest(
            ins=parse_ins(ins_system, ins_value, allow_test=settings.test_instance),
            traits=StrictTraits(
                birth_family_name=family,
                birth_given_names=tuple(given.split()),
                sex=Sex(sex),
                birth_date=date.fromisoformat(birth_date),
                birth_place_insee=birth_place.upper(),
            ),
            identity_status=IdentityStatus.QUAL,
            usual_family_name=None,
            usual_given_name=None,
            consent_at=now,
            consent_channel=channel,
        )
        with rt.engine.begin() as conn:
            pid = records.create(conn, rt, _desk_actor(agent), req, now)  # type: ignore[arg-type]
    except (DmpError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
        return
    click.echo(f"DMP créé : Patient/{pid}")


def _record_change(patient: str, action: str, agent: str, reason: str | None) -> None:
    from dmp.bootstrap import build_runtime
    from dmp.errors import DmpError
    from dmp.services import records
    from dmp.store.db import upgrade

    rt = build_runtime(_settings(), pool_size=1)
    upgrade(rt.engine)
    try:
        pid = UUID(patient.removeprefix("Patient/"))
    except ValueError:
        _fail("identifiant Patient/<uuid> attendu")
        return
    now = datetime.now(UTC)
    try:
        with rt.engine.begin() as conn:
            if action == "close":
                records.close(conn, _desk_actor(agent), pid, reason, now)  # type: ignore[arg-type]
            else:
                records.reactivate(conn, _desk_actor(agent), pid, now)  # type: ignore[arg-type]
    except DmpError as exc:
        _fail(exc.message)
    click.echo("DMP fermé (les données sont conservées)." if action == "close" else "DMP réactivé.")


@record.command("close", help="Ferme un DMP à la demande du patient ; les données sont conservées.")
@click.argument("patient")
@click.option("--agent", required=True)
@click.option("--reason", default=None)
def record_close(patient: str, agent: str, reason: str | None) -> None:
    _record_change(patient, "close", agent, reason)


@record.command("reactivate", help="Réactive un DMP fermé.")
@click.argument("patient")
@click.option("--agent", required=True)
def record_reactivate(patient: str, agent: str) -> None:
    _record_change(patient, "reactivate", agent, None)


@main.command(help="Charge un jeu de données de démonstration et affiche comment appeler l'API.")
@click.option("--patients", default=12, show_default=True)
def demo(patients: int) -> None:
    from dmp.demo.loader import load_demo

    load_demo(_settings(), patients=patients)


@main.command("client-token", help="Obtient un jeton d'accès avec une carte (outil client de test).")
@click.option("--card", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--url", default=None, help="Base du service (défaut : DMP_BASE_URL).")
@click.option("--purpose", default="TREAT", type=click.Choice(["TREAT", "ETREAT", "CENTRE15"]))
@click.option("--justification", default=None)
def client_token(card: Path, url: str | None, purpose: str, justification: str | None) -> None:
    from dmp.demo.client import request_token

    base = (url or _settings().base_url).rstrip("/")
    try:
        token = request_token(base, card, purpose=purpose, justification=justification)
    except RuntimeError as exc:
        _fail(str(exc))
        return
    click.echo(token)


def _json(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)
