"""The outbox on SQLite and PostgreSQL, delivered to a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from sqlalchemy import Engine, delete, func, select

from dmp.cli import main
from dmp.outbox import (
    EMAIL,
    FAILED,
    NO_RECORD,
    PENDING,
    SENT,
    SMS,
    Backoff,
    LoggingSmsTransport,
    MailSettings,
    SmtpTransport,
    Transport,
    claim_due,
    deliver_due,
    enqueue,
    run_worker,
    status_counts,
)
from dmp.store.schema_outbox import outbox_message

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # 10:30 in Paris
ADDRESS = "elise.martin@exemple.fr"
PATIENT = uuid.UUID("0b7a1c5e-2f0c-4d7e-9a51-3c4d5e6f7a8b")
BREAK_GLASS: dict[str, Any] = {"professional": "Dr Hélène BÉRANGER (SAMU 75)", "at": NOW,
               "reason": "Patiente inconsciente, allergies à vérifier"}


# ---- a real SMTP server on loopback -----------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    login: bytes | None


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what it receives; refuses the recipients listed in ``refuse``."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: utilisateur inconnu"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, msg, login))
        return "250 2.0.0 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self, **kwargs: Any) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                      server_hostname="smtp.test", **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self, **kw: Any) -> MailSettings:
        return MailSettings(**{"host": "127.0.0.1", "port": self.port, "timeout": 5.0,
                               "mail_from": "DMP <ne-pas-repondre@dmp.test>", **kw})


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    """A server on a free loopback port, not started: ``smtp.start()`` when needed."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture()
def db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(delete(outbox_message))
    return engine


def row(engine: Engine, message_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox_message).where(outbox_message.c.id == message_id)).one()


def queue(engine: Engine, *, channel: str = EMAIL, recipient: str = ADDRESS,
          template: str = "break_glass_alert", params: dict[str, Any] | None = None,
          patient_id: uuid.UUID = PATIENT, dedup_key: str | None = None, now: datetime = NOW) -> uuid.UUID:
    with engine.begin() as conn:
        return enqueue(conn, patient_id=patient_id, channel=channel, recipient=recipient, template=template,
                       params=BREAK_GLASS if params is None else params, now=now, dedup_key=dedup_key)


def body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# ---- e-mail -----------------------------------------------------------------------------------


def test_email_is_delivered_in_french_with_proper_mime(db: Engine, smtp: SmtpServer) -> None:
    smtp.start()
    message_id = queue(db)
    stats = deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW)
    assert (stats.claimed, stats.sent, stats.retried, stats.failed) == (1, 1, 0, 0)

    [got] = smtp.inbox.received
    assert got.mail_from == "ne-pas-repondre@dmp.test"
    assert got.rcpt_tos == [ADDRESS]
    msg = got.message
    assert msg["Subject"] == "Votre DMP a été consulté en urgence"
    assert msg["To"] == ADDRESS
    assert msg["Message-ID"] == f"<{message_id}@dmp.test>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    text = body(msg)
    assert text.startswith("Bonjour,\n\n")
    assert ("Votre DMP a été consulté en urgence (bris de glace) par Dr Hélène BÉRANGER (SAMU 75), "
            "le 23/11/2026 à 10:30.\nMotif : Patiente inconsciente, allergies à vérifier") in text
    assert "L'équipe du Dossier Médical Partagé" in text
    # Proper MIME on the wire: encoded subject, quoted-printable UTF-8 body.
    headers = got.raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in headers.lower()
    assert b"Content-Transfer-Encoding: quoted-printable" in headers

    r = row(db, message_id)
    assert (r.status, r.attempts, r.last_error, r.sent_at) == (SENT, 1, None, NOW)
    # Sent once: nothing left to deliver.
    assert deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW + timedelta(hours=2)).claimed == 0
    assert len(smtp.inbox.received) == 1


def test_internationalised_address_over_smtputf8(db: Engine, smtp: SmtpServer) -> None:
    smtp.start()
    queue(db, recipient="élise.martin@exemple.fr")
    assert deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW).sent == 1
    [got] = smtp.inbox.received
    assert got.rcpt_tos == ["élise.martin@exemple.fr"]
    assert got.message["Subject"] == "Votre DMP a été consulté en urgence"


@pytest.mark.parametrize("template,params,subject,excerpt", [
    ("otp_code", {"code": "482913", "minutes": 10}, "Votre code à usage unique DMP",
     "Votre code à usage unique est : 482913\n\nIl est valable 10 minutes"),
    ("password_changed", {"at": NOW}, "Le mot de passe de votre compte DMP a été modifié",
     "modifié le 23/11/2026 à 10:30"),
    ("majority_notice", {"majority_date": NOW.date()},
     "Vous êtes majeur(e) : vous gérez désormais seul(e) votre DMP", "Depuis le 23/11/2026"),
])
def test_other_templates_over_smtp(db: Engine, smtp: SmtpServer, template: str, params: dict[str, Any],
                                   subject: str, excerpt: str) -> None:
    smtp.start()
    queue(db, template=template, params=params, patient_id=NO_RECORD)
    assert deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW).sent == 1
    [got] = smtp.inbox.received
    assert got.message["Subject"] == subject
    assert excerpt in body(got.message)


def test_message_of_a_rolled_back_transaction_is_never_sent(db: Engine, smtp: SmtpServer) -> None:
    smtp.start()

    class EventFailed(Exception):
        pass

    with pytest.raises(EventFailed), db.begin() as conn:
        enqueue(conn, patient_id=PATIENT, channel=EMAIL, recipient=ADDRESS, template="break_glass_alert",
                params=BREAK_GLASS, now=NOW)
        raise EventFailed
    stats = deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW + timedelta(days=1))
    assert stats.claimed == 0
    assert smtp.inbox.received == []
    with db.connect() as conn:
        assert status_counts(conn) == {PENDING: 0, SENT: 0, FAILED: 0}


def test_smtp_down_then_back_nothing_lost(
    db: Engine, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dmp.outbox")
    first = queue(db)
    second = queue(db, template="otp_code", params={"code": "123456", "minutes": 10})
    transports: dict[str, Transport] = {EMAIL: SmtpTransport(smtp.settings())}

    stats = deliver_due(db, transports, NOW)  # the port is closed
    assert (stats.claimed, stats.sent, stats.retried) == (2, 0, 2)
    for message_id in (first, second):
        r = row(db, message_id)
        assert r.status == PENDING
        assert r.attempts == 1
        assert r.not_before == NOW + Backoff().delay(1, message_id)
        assert NOW + timedelta(seconds=23) < r.not_before <= NOW + timedelta(seconds=30)
        assert r.last_error and "SMTP 127.0.0.1" in r.last_error
        assert "exemple.fr" not in r.last_error and "martin" not in r.last_error
    assert "exemple.fr" not in caplog.text and "e***@e***.fr" in caplog.text

    # Not due yet: a worker passing again right away leaves them alone.
    assert deliver_due(db, transports, NOW + timedelta(seconds=5)).claimed == 0

    smtp.start()
    stats = deliver_due(db, transports, NOW + timedelta(seconds=31))
    assert (stats.claimed, stats.sent) == (2, 2)
    assert sorted(m.message["Subject"] for m in smtp.inbox.received) == [
        "Votre DMP a été consulté en urgence", "Votre code à usage unique DMP"]
    r = row(db, first)
    assert (r.status, r.attempts, r.last_error) == (SENT, 2, None)


def test_worker_down_messages_wait_and_a_crashed_claim_is_retried_after_its_lease(
    db: Engine, smtp: SmtpServer
) -> None:
    smtp.start()
    message_id = queue(db)
    # A worker claims the message, then dies before sending or recording anything.
    with db.begin() as conn:
        claimed, _ = claim_due(conn, NOW, channels=[EMAIL], lease=timedelta(minutes=10))
    assert [m.id for m in claimed] == [message_id]
    transports: dict[str, Transport] = {EMAIL: SmtpTransport(smtp.settings())}
    assert deliver_due(db, transports, NOW + timedelta(minutes=5)).claimed == 0  # still leased
    assert smtp.inbox.received == []
    stats = deliver_due(db, transports, NOW + timedelta(minutes=11))
    assert stats.sent == 1
    assert row(db, message_id).attempts == 2
    assert len(smtp.inbox.received) == 1


def test_max_attempts_then_failed(db: Engine, smtp: SmtpServer) -> None:
    message_id = queue(db)
    transports: dict[str, Transport] = {EMAIL: SmtpTransport(smtp.settings())}
    at = NOW
    for attempt in (1, 2):
        stats = deliver_due(db, transports, at, max_attempts=3)
        assert stats.retried == 1
        assert row(db, message_id).attempts == attempt
        at += timedelta(hours=2)
    stats = deliver_due(db, transports, at, max_attempts=3)
    assert (stats.retried, stats.failed) == (0, 1)
    r = row(db, message_id)
    assert (r.status, r.attempts) == (FAILED, 3)
    assert r.last_error and "exemple.fr" not in r.last_error
    smtp.start()  # failed is final
    assert deliver_due(db, transports, at + timedelta(days=1), max_attempts=3).claimed == 0
    assert smtp.inbox.received == []


def test_attempts_used_up_by_crashed_workers_end_failed(db: Engine) -> None:
    message_id = queue(db)
    at = NOW
    for _ in range(2):
        with db.begin() as conn:
            claim_due(conn, at, channels=[EMAIL], max_attempts=2)
        at += timedelta(hours=1)
    stats = deliver_due(db, {EMAIL: SmtpTransport(MailSettings(port=1))}, at, max_attempts=2)
    assert (stats.claimed, stats.failed) == (1, 1)
    r = row(db, message_id)
    assert (r.status, r.attempts) == (FAILED, 2)


def test_recipient_refused_is_a_permanent_failure_without_personal_data(
    db: Engine, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dmp.outbox")
    smtp.inbox.refuse.add(ADDRESS)
    smtp.start()
    refused = queue(db)
    accepted = queue(db, recipient="paul@exemple.fr")
    stats = deliver_due(db, {EMAIL: SmtpTransport(smtp.settings())}, NOW)
    assert (stats.sent, stats.failed) == (1, 1)
    r = row(db, refused)
    assert (r.status, r.attempts) == (FAILED, 1)
    assert r.last_error == "SMTPRecipientsRefused 550"
    assert row(db, accepted).status == SENT  # the kept connection still works after a refusal
    assert [m.rcpt_tos for m in smtp.inbox.received] == [["paul@exemple.fr"]]
    assert ADDRESS not in caplog.text


# ---- TLS and credentials ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = tmp_path_factory.mktemp("smtp-tls")
    start = datetime.now(UTC) - timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC de test SMTP")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(start + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(d / "server.pem", d / "server.key")
    return Tls(d / "ca.pem", server)


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"dmp-relay", b"s3cret-\xc3\xa9t\xc3\xa9")
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def test_starttls_with_credentials(db: Engine, smtp: SmtpServer, tls: Tls) -> None:
    smtp.start(tls_context=tls.server, require_starttls=True, authenticator=_authenticator,
               auth_require_tls=True)
    queue(db)
    settings = smtp.settings(tls="starttls", user="dmp-relay", password="s3cret-été", ca_file=tls.ca_file)
    assert deliver_due(db, {EMAIL: SmtpTransport(settings)}, NOW).sent == 1
    [got] = smtp.inbox.received
    assert got.login == b"dmp-relay"
    assert got.message["Subject"] == "Votre DMP a été consulté en urgence"


def test_wrong_credentials_wait_for_a_fix_without_leaking_the_password(
    db: Engine, smtp: SmtpServer, tls: Tls
) -> None:
    smtp.start(tls_context=tls.server, require_starttls=True, authenticator=_authenticator,
               auth_require_tls=True)
    message_id = queue(db)
    wrong = smtp.settings(tls="starttls", user="dmp-relay", password="mauvais-mot", ca_file=tls.ca_file)
    assert deliver_due(db, {EMAIL: SmtpTransport(wrong)}, NOW).retried == 1
    r = row(db, message_id)
    assert r.status == PENDING and r.last_error and "SMTPAuthenticationError 535" in r.last_error
    assert "mauvais" not in r.last_error
    right = smtp.settings(tls="starttls", user="dmp-relay", password="s3cret-été", ca_file=tls.ca_file)
    assert deliver_due(db, {EMAIL: SmtpTransport(right)}, NOW + timedelta(minutes=1)).sent == 1


def test_untrusted_server_certificate_is_refused(db: Engine, smtp: SmtpServer, tls: Tls) -> None:
    smtp.start(tls_context=tls.server, require_starttls=True)
    message_id = queue(db)
    settings = smtp.settings(tls="starttls")  # system trust store: the test CA is unknown
    assert deliver_due(db, {EMAIL: SmtpTransport(settings)}, NOW).retried == 1
    assert smtp.inbox.received == []
    assert "SSLCertVerificationError" in (row(db, message_id).last_error or "")


def test_implicit_tls(db: Engine, smtp: SmtpServer, tls: Tls) -> None:
    smtp.start(ssl_context=tls.server)
    queue(db)
    settings = smtp.settings(tls="tls", ca_file=tls.ca_file)
    assert deliver_due(db, {EMAIL: SmtpTransport(settings)}, NOW).sent == 1
    assert smtp.inbox.received[0].rcpt_tos == [ADDRESS]


# ---- SMS --------------------------------------------------------------------------------------


def test_sms_through_the_logging_transport(
    db: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dmp.outbox")
    message_id = queue(db, channel=SMS, recipient="06 12 34 56 78", template="otp_code",
                       params={"code": "482913", "minutes": 5})
    assert row(db, message_id).recipient == "+33612345678"
    sms = LoggingSmsTransport(tmp_path / "var" / "sms.log")
    stats = deliver_due(db, {SMS: sms}, NOW)
    assert stats.sent == 1
    [sent] = sms.sent
    assert sent.id == message_id and sent.recipient == "+33612345678" and sent.subject == ""
    assert sent.text == ("DMP : votre code à usage unique est 482913 (valable 5 min). "
                         "Ne le communiquez à personne.")
    logged = (tmp_path / "var" / "sms.log").read_text(encoding="utf-8")
    assert "482913" in logged and "+33*******78" in logged and "612345678" not in logged
    assert (tmp_path / "var" / "sms.log").stat().st_mode & 0o777 == 0o600
    assert "+33*******78" in caplog.text and "612345678" not in caplog.text
    assert "482913" not in caplog.text  # the process log gets the length only
    assert row(db, message_id).status == SENT


def test_a_worker_only_takes_the_channels_it_can_send(db: Engine) -> None:
    email_id = queue(db)
    sms_id = queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
                   params={"code": "1", "minutes": 5})
    sms = LoggingSmsTransport()
    assert deliver_due(db, {SMS: sms}, NOW).sent == 1
    assert [m.id for m in sms.sent] == [sms_id]
    r = row(db, email_id)
    assert (r.status, r.attempts) == (PENDING, 0)


def test_claim_can_be_restricted_to_one_record(db: Engine) -> None:
    other = uuid.uuid4()
    queue(db, channel=SMS, recipient="+33612345678", template="otp_code", params={"code": "1", "minutes": 5})
    mine = queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
                 params={"code": "2", "minutes": 5}, patient_id=other)
    sms = LoggingSmsTransport()
    assert deliver_due(db, {SMS: sms}, NOW, patient_id=other).sent == 1
    assert [m.id for m in sms.sent] == [mine]


# ---- enqueue ----------------------------------------------------------------------------------


def test_dedup_key_makes_enqueue_idempotent(db: Engine) -> None:
    a = queue(db, dedup_key="bris-de-glace:session-1")
    b = queue(db, dedup_key="bris-de-glace:session-1")
    c = queue(db, dedup_key="bris-de-glace:session-1", patient_id=uuid.uuid4())
    d, e = queue(db), queue(db)
    assert a == b
    assert len({a, c, d, e}) == 4
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox_message)).scalar_one() == 4
    # In one transaction too.
    with db.begin() as conn:
        ids = {enqueue(conn, patient_id=NO_RECORD, channel=EMAIL, recipient=ADDRESS,
                       template="password_changed", params={"at": NOW}, now=NOW, dedup_key="mdp:42")
               for _ in range(3)}
    assert len(ids) == 1


def test_enqueue_refuses_bad_messages_and_writes_nothing(db: Engine) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"template": "inconnu"}, "modèle de message inconnu"),
        ({"template": "otp_code", "params": {"code": "1"}}, "paramètre(s) manquant(s) : minutes"),
        ({"template": "otp_code", "params": {"code": "1", "minutes": 5, "nir": "x"}}, "inattendu"),
        ({"recipient": "pas une adresse"}, "adresse électronique invalide"),
        ({"channel": SMS, "recipient": "12"}, "numéro de téléphone invalide"),
        ({"channel": "fax"}, "canal inconnu"),
        ({"now": datetime(2026, 11, 23, 9, 30)}, "fuseau horaire"),  # noqa: DTZ001
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            queue(db, **kwargs)
    with db.connect() as conn:
        assert status_counts(conn)[PENDING] == 0


# ---- concurrency ------------------------------------------------------------------------------


class SlowSms(LoggingSmsTransport):
    def send(self, message: Any) -> None:
        time.sleep(0.002)
        super().send(message)


def test_concurrent_workers_never_send_a_message_twice(db: Engine) -> None:
    ids = {queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
                 params={"code": str(i), "minutes": 5}) for i in range(40)}
    workers = [SlowSms() for _ in range(4)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(transport: SlowSms) -> None:
        try:
            start.wait()
            while deliver_due(db, {SMS: transport}, NOW, batch=3).claimed:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    sent = [m.id for w in workers for m in w.sent]
    assert len(sent) == len(ids) and set(sent) == ids
    with db.connect() as conn:
        assert status_counts(conn)[SENT] == 40


def test_skip_locked_claims_around_a_worker_holding_rows(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises claims (BEGIN IMMEDIATE)")
    for i in range(5):
        queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
              params={"code": str(i), "minutes": 5}, now=NOW + timedelta(seconds=i))
    holder = db.connect()
    tx = holder.begin()
    try:
        held, _ = claim_due(holder, NOW + timedelta(minutes=1), channels=[SMS], batch=2)  # rows locked
        sms = LoggingSmsTransport()
        result: list[int] = []
        th = threading.Thread(target=lambda: result.append(
            deliver_due(db, {SMS: sms}, NOW + timedelta(minutes=1)).sent))
        th.start()
        th.join(20)
        assert not th.is_alive(), "the second worker waited for the locked rows"
        assert result == [3]
        assert {m.id for m in sms.sent}.isdisjoint({m.id for m in held})
    finally:
        tx.rollback()  # the first worker dies: its claim is undone
        holder.close()
    sms2 = LoggingSmsTransport()
    assert deliver_due(db, {SMS: sms2}, NOW + timedelta(minutes=1)).sent == 2
    assert {m.id for m in sms2.sent} == {m.id for m in held}


def test_a_batch_slower_than_its_lease_hands_the_rest_back(db: Engine) -> None:
    ids = [queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
                 params={"code": str(i), "minutes": 5}, now=NOW + timedelta(seconds=i)) for i in range(3)]
    sms = SlowSms()
    stats = deliver_due(db, {SMS: sms}, NOW + timedelta(minutes=1), lease=timedelta(milliseconds=1))
    assert (stats.claimed, stats.sent, stats.released) == (3, 1, 2)
    assert [m.id for m in sms.sent] == ids[:1]
    for message_id in ids[1:]:
        r = row(db, message_id)
        assert (r.status, r.attempts, r.not_before) == (PENDING, 0, NOW + timedelta(minutes=1))


# ---- the worker loop and the command line -------------------------------------------------------


def test_run_worker_delivers_until_stopped(db: Engine, smtp: SmtpServer) -> None:
    smtp.start()
    stop = threading.Event()
    transports: dict[str, Transport] = {EMAIL: SmtpTransport(smtp.settings())}
    worker = threading.Thread(target=run_worker, args=(db, transports, stop, 0.05))
    worker.start()
    try:
        queue(db, now=datetime.now(UTC))
        deadline = time.monotonic() + 20
        while not smtp.inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(20)
    assert not worker.is_alive()
    assert len(smtp.inbox.received) == 1


def test_cli_deliver_once_and_status(db: Engine, smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.start()
    now = datetime.now(UTC)
    queue(db, now=now)
    queue(db, channel=SMS, recipient="+33612345678", template="otp_code",
          params={"code": "777111", "minutes": 5}, now=now)
    env = {
        "DMP_VAR_DIR": str(tmp_path / "var"),
        "DMP_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "DMP_SMTP_HOST": "127.0.0.1",
        "DMP_SMTP_PORT": str(smtp.port),
        "DMP_SMTP_TLS": "none",
        "DMP_MAIL_FROM": "Dossier Médical Partagé <ne-pas-repondre@dmp.test>",
        "DMP_SMS_LOG_FILE": str(tmp_path / "var" / "sms.log"),
    }
    runner = CliRunner()
    result = runner.invoke(main, ["outbox", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert "En attente : 2 (dont 2 à envoyer maintenant)" in result.output
    result = runner.invoke(main, ["outbox", "deliver", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "Envoyés : 2 ; à réessayer : 0 ; en échec définitif : 0." in result.output
    assert len(smtp.inbox.received) == 1
    assert "777111" in (tmp_path / "var" / "sms.log").read_text(encoding="utf-8")
    result = runner.invoke(main, ["outbox", "status"], env=env)
    assert "Envoyés : 2" in result.output and "En attente : 0" in result.output


def test_cli_refuses_a_bad_configuration(db: Engine, tmp_path: Path) -> None:
    env = {"DMP_VAR_DIR": str(tmp_path), "DMP_DATABASE_URL": db.url.render_as_string(hide_password=False),
           "DMP_SMTP_TLS": "ssl"}
    result = CliRunner().invoke(main, ["outbox", "deliver", "--once"], env=env)
    assert result.exit_code == 1
    assert "DMP_SMTP_TLS doit valoir none, starttls ou tls" in result.output
