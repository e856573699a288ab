"""The ``dmp`` command line: serve, database, PKI, record desk operations, demo."""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

from dmp.settings import Settings

if TYPE_CHECKING:
    from dmp.services.context import Runtime


def _settings() -> Settings:
    return Settings.from_env()


def _transaction(engine: Any) -> AbstractContextManager[Any]:
    """The unit of work every adapter uses (dmp.services.unit_of_work), imported when needed."""
    from dmp.services.unit_of_work import transaction

    return transaction(engine)


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

    from dmp.bootstrap import build_runtime, migrate

    settings = _settings()
    runtime = build_runtime(settings)
    migrate(runtime.engine)
    runtime.engine.dispose()
    origin = f"http://{host}:{port}"
    click.echo(f"DMP à l'écoute sur {origin} (base de données : {settings.db_url.split('@')[-1]})")
    click.echo(f"  API FHIR (MHD/PDSm)       {origin}/fhir")
    click.echo(f"  Espace patient            {origin}/connexion")
    click.echo(f"  Espace professionnel      {origin}/pro/connexion")
    if settings.base_url.rstrip("/") != origin:
        click.echo(f"  Adresse publique (DMP_BASE_URL) : {settings.base_url}")
    uvicorn.run(
        "dmp.bootstrap:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,
        # X-Forwarded-For is read by the application, from DMP_TRUSTED_PROXIES only (api/app.py);
        # uvicorn's default would believe any local peer.
        proxy_headers=False,
    )


@main.group(help="Base de données.")
def db() -> None:
    pass


@db.command("upgrade", help="Applique les migrations (Alembic) jusqu'à la dernière version.")
def db_upgrade() -> None:
    from dmp.bootstrap import make_engine, migrate

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    migrate(engine)
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
@click.option("--setting", default=None, help="Cadre d'exercice TRE_A01 (ex. SAMU_SMUR).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
def pki_issue_card(
    rpps: str,
    profession: str,
    specialty: str | None,
    name: str,
    structure_id: str | None,
    structure_name: str | None,
    setting: str | None,
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
            setting=setting,
        )
    except PkiError as exc:
        _fail(str(exc))
    click.echo(f"Carte émise (numéro de série {files.serial:X}) : {files.certificate}, {files.key}")


@pki.command("revoke", help="Révoque un certificat de carte (numéro de série hexadécimal ou fichier).")
@click.argument("serial_or_cert")
@click.option("--reason", default=None)
def pki_revoke(serial_or_cert: str, reason: str | None) -> None:
    from cryptography import x509

    from dmp.bootstrap import make_engine, migrate
    from dmp.services import client_auth

    path = Path(serial_or_cert)
    if path.exists():
        serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    else:
        try:
            serial = int(serial_or_cert.replace(":", ""), 16)
        except ValueError:
            _fail("numéro de série hexadécimal ou chemin de certificat attendu")
            return
    engine = make_engine(_settings())
    migrate(engine)
    with _transaction(engine) as conn:
        if not client_auth.revoke(conn, serial, datetime.now(UTC), reason):
            click.echo("Certificat déjà révoqué.")
            return
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
@click.option("--email", default=None, help="Adresse électronique du patient (activation, codes).")
@click.option("--phone", default=None, help="Numéro de mobile du patient.")
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
    email: str | None = None,
    phone: str | None = None,
) -> None:
    from dmp.bootstrap import build_runtime, migrate
    from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
    from dmp.domain.ins import parse_ins
    from dmp.errors import DmpError
    from dmp.fhir.patient import CreationRequest

    settings = _settings()
    rt = build_runtime(settings, pool_size=1)
    migrate(rt.engine)
    now = datetime.now(UTC)
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        _fail(f"date de naissance « {birth_date} » invalide : AAAA-MM-JJ attendue")
        return
    try:
        req = CreationRequest(
            ins=parse_ins(ins_system, ins_value, allow_test=settings.test_instance),
            traits=StrictTraits(
                birth_family_name=family,
                birth_given_names=tuple(given.split()),
                sex=Sex(sex),
                birth_date=born,
                birth_place_insee=birth_place.upper(),
            ),
            identity_status=IdentityStatus.QUAL,
            usual_family_name=None,
            usual_given_name=None,
            consent_at=now,
            consent_channel=channel,
        )
        from dmp.services import record_opening, records
        from dmp.services.unit_of_work import reserved_transaction

        reserve = lambda conn: records.reserve(conn, rt, req, now)  # noqa: E731
        with reserved_transaction(rt.engine, reserve) as (conn, held):
            # The INS reserved first (ADR 0009 b), then the record and its holder's account: the
            # code is printed for the desk letter.
            pid, code = record_opening.open_record(
                conn, rt, _desk_actor(agent), req, now, email=email, phone=phone, reserved=held  # type: ignore[arg-type]
            )
    except (DmpError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
        return
    click.echo(f"DMP créé : Patient/{pid}")
    click.echo(f"Code d'activation du compte patient (à remettre au patient) : {code}")


def _record_change(patient: str, action: str, agent: str, reason: str | None) -> None:
    from dmp.bootstrap import build_runtime, migrate
    from dmp.errors import DmpError
    from dmp.services import records

    rt = build_runtime(_settings(), pool_size=1)
    migrate(rt.engine)
    try:
        pid = UUID(patient.removeprefix("Patient/"))
    except ValueError:
        _fail("identifiant Patient/<uuid> attendu")
        return
    now = datetime.now(UTC)
    try:
        with _transaction(rt.engine) as conn:
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
@click.option("--patients", default=12, show_default=True, type=click.IntRange(min=2))
def demo(patients: int) -> None:
    from dmp.demo.loader import DemoLoadError, load_demo

    try:
        load_demo(_settings(), patients=patients)
    except DemoLoadError as exc:
        _fail(str(exc))


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


# ---- outbox: messages to people (docs/outbox.md) -----------------------------------------------


@main.group(help="Messages aux personnes (codes, alertes, avis) : file d'envoi transactionnelle.")
def outbox() -> None:
    pass


@outbox.command("deliver", help="Envoie les messages dus (courriel par SMTP, SMS), avec reprises.")
@click.option("--once", is_flag=True, help="Envoie ce qui est dû maintenant, puis s'arrête.")
@click.option("--poll", default=2.0, show_default=True, type=float, help="Attente entre deux passes (s).")
@click.option("--batch", default=50, show_default=True, type=int, help="Messages par lot.")
def outbox_deliver(once: bool, poll: float, batch: int) -> None:
    import logging
    import signal
    import threading

    from dmp.bootstrap import bind_keys, make_engine, migrate
    from dmp.outbox import (
        DeliveryStats,
        MailSettings,
        SmsSettings,
        default_transports,
        deliver_due,
        parse_partitions,
        run_worker,
    )

    settings = _settings()
    try:
        mail = MailSettings.from_env()
        sms = SmsSettings.from_env()
        # This relay's share of the queue (ADR 0009): "0-63" (default: every partition).
        partitions = parse_partitions(os.environ.get("DMP_OUTBOX_PARTITIONS"))
    except ValueError as exc:
        _fail(str(exc))
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dmp.outbox").setLevel(logging.INFO)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings, pool_size=2)
    migrate(engine)
    bind_keys(engine, settings)  # a record's messages are sealed under its key (SE-02)
    transports = default_transports(mail, sms)
    if once:
        total = DeliveryStats()
        while True:
            stats = deliver_due(engine, transports, datetime.now(UTC), batch, partitions=partitions)
            total += stats
            if stats.claimed < batch:
                break
    else:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(
            f"Distribution des messages (SMTP {mail.host}:{mail.port}, TLS : {mail.tls}) ; "
            "Ctrl-C pour arrêter."
        )
        total = run_worker(engine, transports, stop, poll, batch=batch, partitions=partitions)
    engine.dispose()
    click.echo(
        f"Envoyés : {total.sent} ; à réessayer : {total.retried} ; en échec définitif : {total.failed}."
    )


@outbox.command("status", help="Compte les messages de la file par état.")
def outbox_status() -> None:
    from dmp.bootstrap import make_engine, migrate
    from dmp.outbox import status_counts

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings, pool_size=1)
    migrate(engine)
    with engine.connect() as conn:
        counts = status_counts(conn, now=datetime.now(UTC))
    engine.dispose()
    click.echo(f"En attente : {counts['pending']} (dont {counts['due']} à envoyer maintenant)")
    click.echo(f"Envoyés : {counts['sent']}")
    click.echo(f"En échec définitif : {counts['failed']}")


# ---- clinical ingestion (issue 12) ----------------------------------------------------------


@main.group(help="Extraction des données cliniques des documents publiés.")
def ingestion() -> None:
    pass


_INGESTION_LABELS = {
    "ok": "Documents lus",
    "partial": "Lus en partie",
    "skipped": "Sans données à extraire (PDF, image…)",
    "error": "En échec",
}


@ingestion.command("status", help="Compte les extractions par issue et liste les derniers échecs.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(0, 1000))
def ingestion_status(limit: int) -> None:
    from dmp.bootstrap import make_engine, migrate
    from dmp.services.ingestion_status import ingestion_status as read_status

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings, pool_size=1)
    migrate(engine)
    with engine.connect() as conn:
        status = read_status(conn, limit=limit)
    engine.dispose()
    for key, label in _INGESTION_LABELS.items():
        click.echo(f"{label} : {status.counts[key]}")
    if status.last_failures:
        click.echo("Derniers échecs (document, date, issue, motif) :")
    for f in status.last_failures:
        issue = "échec" if f.status == "error" else "partiel"
        click.echo(f"  {f.document_id}  {f.at.isoformat(timespec='seconds')}  {issue}  {f.detail or '—'}")


# ---- audit trail (issue 5) ------------------------------------------------------------------


@main.group(help="Clés de chiffrement : scellement des lignes anciennes, rotation (dossier, clé maîtresse).")
def keys() -> None:
    pass


def _each_record(rt: Runtime, desc: str, work: Any, only: UUID | None = None) -> int:
    """``work(conn, pid)`` for every record (or one), one transaction per record, with progress."""
    from tqdm import tqdm

    from dmp.services import keys as record_keys

    ids = [only] if only is not None else record_keys.record_ids(rt.engine)
    done = 0
    with tqdm(total=len(ids), unit=" dossier(s)", desc=desc, disable=None) as bar:
        for pid in ids:
            with _transaction(rt.engine) as conn:
                if work(conn, pid):
                    done += 1
            bar.update(1)
    return done


@keys.command("reseal", help="Chiffre les champs encore en clair (lignes écrites avant SE-02) ; relançable.")
def keys_reseal() -> None:
    from dmp.bootstrap import build_runtime
    from dmp.services import keys as record_keys

    rt = build_runtime(_settings(), pool_size=1)
    try:
        n = _each_record(rt, "Scellement", lambda conn, pid: record_keys.reseal_record(conn, rt.keyring, pid))
    finally:
        rt.engine.dispose()
    click.echo(f"{n} dossier(s) avaient des champs en clair, désormais chiffrés.")


@keys.command("rotate-record", help="Nouvelle clé d'un dossier : tout rechiffré, l'ancienne clé détruite.")
@click.argument("patient")
def keys_rotate_record(patient: str) -> None:
    from dmp.bootstrap import build_runtime
    from dmp.services import keys as record_keys

    pid = _audit_patient(patient)
    rt = build_runtime(_settings(), pool_size=1)
    stale: list[str] = []
    try:
        with _transaction(rt.engine) as conn:
            if not record_keys.record_ids_exist(conn, pid):
                _fail(f"dossier inconnu : Patient/{pid}")
            done = record_keys.rotate_record(conn, rt.keyring, rt.blobs, pid)  # type: ignore[arg-type]
        stale = done.stale_blobs
        for key in stale:  # the commit made them unreachable: the old ciphertexts go too
            rt.blobs.delete(key)
    finally:
        rt.engine.dispose()
    click.echo(
        f"Clé du dossier Patient/{pid} renouvelée : {done.fields} champ(s), {done.blobs} document(s), "
        f"{done.facts} fait(s) clinique(s) rechiffrés ; l'ancienne clé est détruite."
    )


@keys.command("rotate-master", help="Nouvelle clé maîtresse : chaque clé de dossier est ré-enveloppée.")
@click.option(
    "--new-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Nouvelle clé (32 octets en base64) ; par défaut générée dans <var>/keys/master.key.new.",
)
def keys_rotate_master(new_key_file: Path | None) -> None:
    from dmp.bootstrap import build_runtime, new_master_keyring
    from dmp.services import keys as record_keys

    settings = _settings()
    rt = build_runtime(settings, pool_size=1)
    path = new_key_file or settings.keys_dir / "master.key.new"
    try:
        new_ring = new_master_keyring(path)
        def rewrap(conn: Any, pid: UUID) -> bool:
            return record_keys.rewrap_record(conn, rt.keyring, new_ring, pid)

        n = _each_record(rt, "Ré-enveloppement", rewrap)
    except ValueError as exc:
        _fail(str(exc))
        return
    finally:
        rt.engine.dispose()
    click.echo(f"{n} dossier(s) ré-enveloppé(s) sous la clé maîtresse {new_ring.kek_id}.")
    if settings.master_key_b64:
        click.echo(f"Remplacez DMP_MASTER_KEY par le contenu de {path}, puis effacez ce fichier.")
    else:
        path.replace(settings.keys_dir / "master.key")
        click.echo("La nouvelle clé remplace var/keys/master.key (l'ancienne est effacée) ; redémarrez.")


@main.group(help="Journal d'audit (traçabilité) : vérification, ancrage signé, export, protection.")
def audit() -> None:
    pass


def _audit_patient(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value.removeprefix("Patient/"))
    except ValueError:
        _fail("identifiant Patient/<uuid> attendu")
        raise  # unreachable: _fail exits


def _audit_instant(value: str | None, option: str) -> datetime | None:
    """ISO 8601 date or date-time; without an offset, Paris time is meant."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option} : date ISO 8601 attendue (ex. 2026-11-23 ou 2026-11-23T08:00:00+01:00)")
        raise
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("Europe/Paris"))
    return parsed.astimezone(UTC)


def _trace_audit_read(
    agent: str | None,
    pid: UUID | None,
    what: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> None:
    """Reading a record's trail is traced (``audit.read``), committed before anything is shown
    or handed over."""
    import getpass

    from dmp.bootstrap import make_engine
    from dmp.services import trail_read

    actor = trail_read.operator_actor(agent or getpass.getuser())
    engine = make_engine(_settings(), pool_size=1)
    try:
        with _transaction(engine) as conn:
            trail_read.trace_operator_read(
                conn, actor, pid, datetime.now(UTC), what=what, start=start, end=end, limit=limit
            )
    finally:
        engine.dispose()


@audit.command("verify", help="Recalcule les chaînes et contrôle têtes et ancres signées (code 1 si altéré).")
@click.option("--patient", default=None, help="Un seul dossier : Patient/<uuid>.")
@click.option("--since-anchor", type=int, default=None, help="Contrôle incrémental depuis l'ancre n° ID.")
def audit_verify(patient: str | None, since_anchor: int | None) -> None:
    from tqdm import tqdm

    from dmp.audit import count_entries, snapshot, verification_keys, verify

    settings = _settings()
    pid = _audit_patient(patient)
    with snapshot(settings.db_url) as conn:
        total = count_entries(conn, pid)
        with tqdm(total=total, unit=" entrées", desc="Vérification", disable=None) as bar:
            report = verify(
                conn, pid, since_anchor, keys=verification_keys(settings.keys_dir), progress=bar.update
            )
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@audit.command("anchor", help="Crée une ancre : racine de Merkle des têtes de chaîne, signée par l'instance.")
def audit_anchor() -> None:
    from dmp.audit import AnchorError, load_or_create_key, make_anchor
    from dmp.bootstrap import make_engine

    settings = _settings()
    key = load_or_create_key(settings.keys_dir)
    engine = make_engine(settings, pool_size=1)
    try:
        with _transaction(engine) as conn:
            anchor = make_anchor(conn, key, datetime.now(UTC))
    except AnchorError as exc:
        _fail(str(exc))
        return
    finally:
        engine.dispose()
    click.echo(
        f"Ancre n° {anchor.id} créée : {anchor.head_count} tête(s) de chaîne, "
        f"racine {anchor.merkle_root}, clé {anchor.key_id}."
    )


@audit.command("export", help="Exporte le journal en NDJSON d'AuditEvent FHIR (un dossier ou une période).")
@click.option("--patient", default=None, help="Patient/<uuid> ; par défaut tous les dossiers.")
@click.option("--since", default=None, help="Début inclus (ISO 8601 ; heure de Paris si pas de fuseau).")
@click.option("--until", default=None, help="Fin exclue (ISO 8601).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--agent", default=None, help="Qui consulte (défaut : l'utilisateur du système) ; tracé.")
def audit_export(
    patient: str | None, since: str | None, until: str | None, out: Path, agent: str | None
) -> None:
    from tqdm import tqdm

    from dmp.audit import count_entries, export_ndjson, snapshot
    from dmp.bootstrap import bind_keys

    settings = _settings()
    pid = _audit_patient(patient)
    start, end = _audit_instant(since, "--since"), _audit_instant(until, "--until")
    with snapshot(settings.db_url) as conn, out.open("wb") as f:
        bind_keys(conn.engine, settings)  # the export shows the justifications opened (SE-02)
        total = count_entries(conn, pid, start, end)
        with tqdm(total=total, unit=" entrées", desc="Export", disable=None) as bar:
            n = export_ndjson(
                conn, f, pid, start, end, base_url=settings.base_url + "/fhir", progress=bar.update
            )
    try:
        _trace_audit_read(agent, pid, "commande dmp audit export", start=start, end=end)
    except Exception:
        out.unlink(missing_ok=True)  # an export that cannot be traced is not handed over
        raise
    click.echo(f"{n} AuditEvent exporté(s) dans {out}.")


@audit.command("protect", help="Installe les déclencheurs qui refusent modification et suppression.")
@click.option("--role", default=None, help="PostgreSQL : rôle applicatif à limiter (ex. dmp_app).")
def audit_protect(role: str | None) -> None:
    from dmp.audit import install_protection, restrict_role
    from dmp.bootstrap import make_engine

    engine = make_engine(_settings(), pool_size=1)
    try:
        with _transaction(engine) as conn:
            install_protection(conn)
            if role:
                restrict_role(conn, role)
    except ValueError as exc:  # includes UnsupportedDatabase
        _fail(str(exc))
    finally:
        engine.dispose()
    click.echo("Journal d'audit protégé (ajout seul)" + (f" ; rôle {role} limité." if role else "."))


@audit.command("history", help="Affiche l'historique des accès d'un dossier, tel que le patient le voit.")
@click.argument("patient")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--agent", default=None, help="Qui consulte (défaut : l'utilisateur du système) ; tracé.")
def audit_history(patient: str, limit: int, agent: str | None) -> None:
    from dmp.audit import history, snapshot
    from dmp.bootstrap import bind_keys

    pid = _patient_ref(patient)
    settings = _settings()
    with snapshot(settings.db_url) as conn:
        bind_keys(conn.engine, settings)  # the justifications shown opened (SE-02)
        items = history(conn, pid, limit=limit)
    _trace_audit_read(agent, pid, "commande dmp audit history", limit=limit)  # before anything is shown
    if not items:
        click.echo("Aucune trace pour ce dossier.")
    for item in items:
        click.echo(f"{item.when} — {item.text}")


# ---- accounts: representatives, professionals' directory, patient apps (docs/accounts.md) ----------


def _accounts_runtime() -> Runtime:
    from dmp.bootstrap import build_runtime, migrate

    rt = build_runtime(_settings(), pool_size=1)
    migrate(rt.engine)
    return rt


def _patient_ref(value: str) -> UUID:
    try:
        return UUID(value.removeprefix("Patient/"))
    except ValueError:
        _fail("identifiant Patient/<uuid> attendu")
        raise


@record.command("add-representative", help="Déclare un représentant légal d'un mineur (crée son compte).")
@click.argument("patient")
@click.option("--email", required=True, help="Adresse électronique : l'identifiant du représentant.")
@click.option("--phone", default=None, help="Numéro de mobile.")
@click.option("--name", default=None, help="Prénom NOM du représentant.")
@click.option("--agent", required=True, help="Nom de l'agent du guichet.")
def record_add_representative(
    patient: str, email: str, phone: str | None, name: str | None, agent: str
) -> None:
    from dmp.accounts import add_representative
    from dmp.errors import DmpError

    rt = _accounts_runtime()
    pid = _patient_ref(patient)
    try:
        with _transaction(rt.engine) as conn:
            issued = add_representative(conn, pid, datetime.now(UTC), settings=rt.settings, email=email,
                                        phone=phone, name=name, agent=agent)
    except (DmpError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
        return
    state = "créé" if issued.created else "existant"
    click.echo(f"Représentant légal déclaré pour Patient/{pid} (compte {state}).")
    if issued.activation_code:
        click.echo(f"Code d'activation du compte (à remettre au représentant) : {issued.activation_code}")
        click.echo("Il est aussi envoyé par courriel ; identifiant de connexion : l'adresse électronique.")
    else:
        click.echo("Compte déjà activé : le représentant voit ce dossier à sa prochaine connexion.")


@record.command("remove-representative", help="Retire l'accès d'un représentant légal à un dossier.")
@click.argument("patient")
@click.option("--email", required=True)
@click.option("--agent", required=True)
def record_remove_representative(patient: str, email: str, agent: str) -> None:
    from dmp.accounts import remove_representative

    rt = _accounts_runtime()
    pid = _patient_ref(patient)
    with _transaction(rt.engine) as conn:
        done = remove_representative(conn, pid, email, datetime.now(UTC), agent=agent)
    if not done:
        _fail("ce représentant n'a pas d'accès actif à ce dossier")
    click.echo("Accès du représentant légal retiré.")


@record.command("majority-check", help="Majorité (18 ans) : retire l'accès des représentants légaux "
                "et avertit le titulaire (un dossier, ou tous).")
@click.argument("patient", required=False)
def record_majority_check(patient: str | None) -> None:
    from dmp.accounts import check_majority, majority_check_all

    rt = _accounts_runtime()
    now = datetime.now(UTC)
    with _transaction(rt.engine) as conn:
        if patient:
            changed = [_patient_ref(patient)] if check_majority(conn, _patient_ref(patient), now) else []
        else:
            changed = majority_check_all(conn, now)
    click.echo(f"{len(changed)} dossier(s) passé(s) à la majorité.")
    for pid in changed:
        click.echo(f"  Patient/{pid}")


@record.command("activation-code", help="Émet un nouveau code d'activation du compte patient (guichet).")
@click.argument("patient")
@click.option("--email", default=None)
@click.option("--phone", default=None)
@click.option("--agent", required=True)
def record_activation_code(patient: str, email: str | None, phone: str | None, agent: str) -> None:
    from dmp.accounts import issue_patient_activation
    from dmp.errors import DmpError

    rt = _accounts_runtime()
    pid = _patient_ref(patient)
    try:
        with _transaction(rt.engine) as conn:
            code = issue_patient_activation(conn, pid, datetime.now(UTC), settings=rt.settings, email=email,
                                            phone=phone)
    except (DmpError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
        return
    click.echo(f"Code d'activation du compte patient (à remettre au patient) : {code}")


@main.group(help="Documents : tâches de fond sur les documents des dossiers.")
def documents() -> None:
    pass


@documents.command("announcement-reminders", help="AC-10 : rappelle à leur auteur les documents qui "
                   "attendent leur consultation d'annonce depuis DMP_INVISIBLE_PATIENT_MAX_DAYS jours.")
def documents_announcement_reminders() -> None:
    from dmp.services.announcement import send_reminders

    rt = _accounts_runtime()
    with _transaction(rt.engine) as conn:
        report = send_reminders(conn, now=datetime.now(UTC), max_days=rt.settings.invisible_patient_max_days)
    click.echo(f"{len(report.queued)} rappel(s) mis en file d'envoi.")
    click.echo(f"{len(report.undeliverable)} rappel(s) impossible(s) à envoyer (auteur sans adresse connue).")
    click.echo(f"{report.already} document(s) déjà rappelé(s).")
    for doc_id in report.undeliverable:
        click.echo(f"  sans adresse : DocumentReference/{doc_id}")


@documents.command("index", help="Recherche plein texte : indexe les documents publiés avant qu'elle "
                   "existe (index chiffré, un dossier par transaction ; relançable).")
def documents_index() -> None:
    from dmp.services.reindex import index_missing

    rt = _accounts_runtime()
    report = index_missing(rt, lambda: _transaction(rt.engine))
    click.echo(f"{report.indexed} document(s) indexé(s) dans {report.records} dossier(s).")
    if report.unreadable:
        click.echo(f"{report.unreadable} document(s) illisible(s) (fichier absent ou altéré), non indexé(s).")


@main.group(help="Annuaire des professionnels : comptes de connexion web (RPPS + mot de passe + TOTP).")
def pro() -> None:
    pass


@pro.command("add", help="Ajoute (ou met à jour) un professionnel et émet son code d'activation.")
@click.option("--rpps", required=True, help="Numéro RPPS (11 chiffres, clé de Luhn).")
@click.option("--profession", required=True, help="Code profession TRE_G15 (10 = médecin…).")
@click.option("--name", required=True, help="Prénom NOM.")
@click.option("--specialty", default=None, help="Savoir-faire (ex. SM26).")
@click.option("--structure-id", default=None)
@click.option("--structure-name", default=None)
@click.option("--setting", default=None, help="Cadre d'exercice TRE_A01 (ex. SAMU_SMUR pour la régulation).")
@click.option("--email", required=True, help="Adresse électronique (lien d'activation).")
def pro_add(rpps: str, profession: str, name: str, specialty: str | None, structure_id: str | None,
            structure_name: str | None, setting: str | None, email: str) -> None:
    from dmp.accounts import DirectoryEntry, upsert_professional
    from dmp.errors import DmpError

    rt = _accounts_runtime()
    entry = DirectoryEntry(rpps=rpps, profession=profession, name=name, specialty=specialty,
                           structure_id=structure_id, structure_name=structure_name, email=email,
                           setting=setting)
    try:
        with _transaction(rt.engine) as conn:
            issued = upsert_professional(conn, entry, datetime.now(UTC), settings=rt.settings)
    except (DmpError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
        return
    click.echo(f"Professionnel {'ajouté' if issued.created else 'mis à jour'} (RPPS {entry.rpps.strip()}).")
    if issued.activation_code:
        click.echo(f"Code d'activation (aussi envoyé par courriel) : {issued.activation_code}")
        click.echo(f"Activation : {rt.settings.base_url.rstrip('/')}/pro/activation")


@pro.command("import", help="Importe un extrait RPPS (CSV) : crée ou met à jour les comptes.")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--codes-out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Fichier (mode 0600) des codes d'activation des comptes sans adresse électronique.")
def pro_import(file: Path, codes_out: Path | None) -> None:
    import os

    from tqdm import tqdm

    from dmp.accounts.directory import import_file, read_entries

    rt = _accounts_runtime()
    try:
        total, _ = read_entries(file)
        with tqdm(total=total, unit=" ligne(s)", desc="Import RPPS", disable=None) as bar:
            report = import_file(rt.engine, file, datetime.now(UTC), settings=rt.settings,
                                 progress=bar.update)
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"{file} : {exc}")
        return
    click.echo(f"Comptes créés : {report.created} ; mis à jour : {report.updated} ; "
               f"lignes en double ignorées : {report.duplicates} ; lignes en erreur : {len(report.errors)}.")
    for line, message in report.errors[:50]:
        click.echo(f"  ligne {line} : {message}", err=True)
    if len(report.errors) > 50:
        click.echo(f"  … et {len(report.errors) - 50} autre(s).", err=True)
    if report.codes:
        lines = "".join(f"{rpps};{code}\n" for rpps, code in report.codes)
        if codes_out is not None:
            fd = os.open(codes_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("rpps;code_activation\n" + lines)
            click.echo(f"{len(report.codes)} code(s) d'activation (comptes sans adresse) : {codes_out}.")
        else:
            click.echo("Codes d'activation des comptes sans adresse électronique (RPPS;code) :")
            click.echo(lines, nl=False)
    if report.errors:
        sys.exit(1)


@pro.command("suspend", help="Suspend le compte web d'un professionnel (ses sessions sont fermées).")
@click.argument("rpps")
def pro_suspend(rpps: str) -> None:
    _pro_status(rpps, "suspended")
    click.echo(f"Compte du professionnel RPPS {rpps} suspendu ; ses sessions sont fermées.")


@pro.command("reactivate", help="Réactive le compte web suspendu d'un professionnel.")
@click.argument("rpps")
def pro_reactivate(rpps: str) -> None:
    _pro_status(rpps, "active")
    click.echo(f"Compte du professionnel RPPS {rpps} réactivé.")


def _pro_status(rpps: str, status: str) -> None:
    from dmp.accounts.service import PRO, set_status
    from dmp.domain.professional import validate_rpps
    from dmp.errors import DmpError

    try:
        value = validate_rpps(rpps)
    except DmpError as exc:
        _fail(exc.message)
        return
    rt = _accounts_runtime()
    with _transaction(rt.engine) as conn:
        found = set_status(conn, PRO, value, status, datetime.now(UTC))
    if not found:
        _fail(f"aucun compte pour le RPPS {value}")


@main.group(help="Applications des patients (OAuth2 code d'autorisation + PKCE).")
def app() -> None:
    pass


@app.command("register", help="Enregistre une application : affiche son client_id.")
@click.option("--name", required=True, help="Nom affiché au patient sur la page de consentement.")
@click.option("--redirect-uri", "redirect_uris", required=True, multiple=True,
              help="Adresse de retour exacte (répétable) : https, http sur 127.0.0.1, ou schéma privé.")
def app_register(name: str, redirect_uris: tuple[str, ...]) -> None:
    from dmp.accounts.oauth import register_client

    rt = _accounts_runtime()
    try:
        with _transaction(rt.engine) as conn:
            client_id = register_client(conn, name, list(redirect_uris), datetime.now(UTC))
    except ValueError as exc:
        _fail(str(exc))
        return
    base = rt.settings.base_url.rstrip("/")
    click.echo(f"Application enregistrée. client_id : {client_id}")
    click.echo(f"Autorisation : {base}/oauth/authorize (PKCE S256) ; jeton : {base}/oauth/token")


# ---- encrypted blob store -------------------------------------------------------------------

_DURATION_UNITS = {"s": 1, "min": 60, "m": 60, "h": 3600, "j": 86400, "d": 86400}


def _duration(value: str) -> float:
    """``3600``, ``90s``, ``30min``/``30m``, ``1h``, ``2j``/``2d`` as seconds (≥ 0)."""
    text = value.strip().lower()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number, factor = text[: -len(unit)], _DURATION_UNITS[unit]
            break
    else:
        number, factor = text, 1
    try:
        seconds = float(number) * factor
    except ValueError:
        seconds = -1
    if not 0 <= seconds < 1e10:  # also refuses nan and inf
        _fail(f"--older-than : durée attendue (ex. 0, 90s, 30min, 1h, 2j), pas « {value} »")
    return seconds


@main.group(help="Fichiers chiffrés des documents : ramasse-miettes des orphelins.")
def blobs() -> None:
    pass


@blobs.command(
    "gc",
    help="Supprime les fichiers chiffrés qu'aucun document ne référence et plus anciens que le délai "
    "de grâce (sans risque pendant les publications en cours), puis les réservations d'identifiants "
    "(uniqueId, INS) périmées qu'une publication ou une création interrompue a laissées.",
)
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    help="Délai de grâce : un fichier plus récent est toujours conservé (0, 90s, 30min, 1h, 2j).",
)
def blobs_gc(older_than: str) -> None:
    from datetime import timedelta

    from dmp.bootstrap import blob_store, make_engine
    from dmp.services import uniqueness
    from dmp.services.blob_hygiene import collect_garbage

    grace = timedelta(seconds=_duration(older_than))
    settings = _settings()
    engine = make_engine(settings, pool_size=1)  # no key needed: the files stay sealed
    try:
        report = collect_garbage(engine, blob_store(settings), older_than=grace)
        # The same periodic job sweeps the uniqueness reservations left by a crash (ADR 0009 b).
        swept = uniqueness.sweep(engine, settings, datetime.now(UTC))
    finally:
        engine.dispose()
    click.echo(f"Fichiers examinés : {report.examined}")
    click.echo(f"Supprimés (orphelins plus anciens que {older_than}) : {report.removed}")
    click.echo(
        f"Conservés : {report.kept} (référencés : {report.referenced}, récents : {report.young}, "
        f"hors dossiers : {report.foreign})"
    )
    click.echo(f"Réservations d'identifiants périmées supprimées : {swept}")
