"""Transports: how a rendered message leaves (SMTP for e-mail; SMS through a gateway).

A transport raises:

* ``TransportUnavailable`` when the channel itself is down (server unreachable, refused
  connection or credentials): the worker retries later and does not try the other messages
  of that channel in the same batch;
* ``PermanentDeliveryError`` when this message can never be delivered (recipient refused
  with a 5xx code): the message is marked ``failed`` at once;
* ``DeliveryError`` (or any other exception) for a temporary failure of this message.

Error texts are stored in ``outbox_message.last_error`` and logged: they must not contain the
recipient or any other personal data (see ``privacy.scrub``).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import smtplib
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

from dmp.outbox.config import MailSettings, SmsSettings
from dmp.outbox.privacy import EMAIL, SMS, mask_phone, scrub

log = logging.getLogger("dmp.outbox")


class DeliveryError(Exception):
    """A temporary failure; the text carries no personal data."""


class PermanentDeliveryError(DeliveryError):
    """This message can never be delivered: no retry."""


class TransportUnavailable(DeliveryError):
    """The whole channel is down: retry later, skip this channel for the rest of the batch."""


@dataclass(frozen=True)
class OutgoingMessage:
    id: UUID  # the outbox message id: stable across retries (Message-ID, gateway reference)
    channel: str
    recipient: str
    template: str
    subject: str  # empty for SMS
    text: str


class Transport(Protocol):
    def send(self, message: OutgoingMessage) -> None: ...

    def close(self) -> None:
        """Release connections kept between the messages of a batch."""
        ...


# ---- e-mail ----------------------------------------------------------------------------------


def build_email(
    message: OutgoingMessage, settings: MailSettings, now: datetime | None = None
) -> EmailMessage:
    """A plain-text UTF-8 e-mail; its Message-ID is derived from the outbox id, so that a
    duplicate sent after a worker crash carries the same Message-ID."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = message.recipient
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = f"<{message.id}@{settings.domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = "fr"  # after set_content, which resets the Content-* headers
    return msg


def _smtp_error(exc: BaseException, recipient: str | None = None) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused {','.join(str(c) for c in codes)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return scrub(f"{type(exc).__name__} {exc.smtp_code} {detail}", recipient)
    return scrub(f"{type(exc).__name__}: {exc}", recipient)


def _refusal(error: str, *, permanent: bool) -> DeliveryError:
    """The server refused the message: for good (a 5xx reply) or for now (retried later)."""
    return PermanentDeliveryError(error) if permanent else DeliveryError(error)


class SmtpTransport:
    """E-mail over SMTP (smtplib): no TLS, STARTTLS or implicit TLS; login when credentials are
    set; one connection kept for a batch and closed by ``close()``."""

    def __init__(self, settings: MailSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            cafile = str(self.settings.ca_file) if self.settings.ca_file else None
            self._ssl_context = ssl.create_default_context(cafile=cafile)
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP | None = None
        try:
            if s.tls == "tls":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.tls == "starttls":
                conn.starttls(context=self._tls_context())
                conn.ehlo()
            if s.user is not None and s.password is not None:
                _login(conn, s.user, s.password)
        except (OSError, smtplib.SMTPException) as exc:
            if conn is not None:
                _quietly_close(conn)
            raise TransportUnavailable(f"SMTP {s.host}:{s.port} : {_smtp_error(exc)}") from None
        return conn

    def send(self, message: OutgoingMessage) -> None:
        if message.channel != EMAIL:
            raise PermanentDeliveryError(f"canal {message.channel} non pris en charge par SMTP")
        msg = build_email(message, self.settings)
        reused = self._conn is not None
        for _ in range(2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.send_message(
                    msg, from_addr=self.settings.envelope_from, to_addrs=[message.recipient]
                )
                return
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset()
                codes = [code for code, _ in exc.recipients.values()]
                permanent = bool(codes) and all(500 <= c < 600 for c in codes)
                raise _refusal(_smtp_error(exc, message.recipient), permanent=permanent) from None
            except smtplib.SMTPDataError as exc:
                self._reset()
                permanent = 500 <= exc.smtp_code < 600
                raise _refusal(_smtp_error(exc, message.recipient), permanent=permanent) from None
            except smtplib.SMTPSenderRefused as exc:  # configuration: every message would fail
                self._drop()
                raise TransportUnavailable(_smtp_error(exc, message.recipient)) from None
            except smtplib.SMTPException as exc:  # (a subclass of OSError)
                self._drop()
                if not isinstance(exc, smtplib.SMTPServerDisconnected):
                    raise DeliveryError(_smtp_error(exc, message.recipient)) from None
                if reused:  # the kept connection had gone stale: one fresh try
                    reused = False
                    continue
                raise TransportUnavailable(_smtp_error(exc, message.recipient)) from None
            except OSError as exc:  # timeout, reset…
                self._drop()
                if reused:
                    reused = False
                    continue
                raise TransportUnavailable(_smtp_error(exc, message.recipient)) from None
        raise TransportUnavailable("SMTP : connexion perdue")  # pragma: no cover

    def _reset(self) -> None:
        """After a refused message, make the kept connection usable for the next one."""
        if self._conn is not None:
            try:
                self._conn.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            _quietly_close(self._conn)
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                _quietly_close(self._conn)
                self._conn = None


def _login(conn: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's ``login`` only takes ASCII credentials; AUTH PLAIN is UTF-8 (RFC 4616)."""
    if user.isascii() and password.isascii():
        conn.login(user, password)
        return
    if "plain" not in conn.esmtp_features.get("auth", "").lower().split():
        raise smtplib.SMTPException("identifiants non ASCII : le serveur doit proposer AUTH PLAIN")
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode("ascii")
    code, reply = conn.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _quietly_close(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


# ---- SMS -------------------------------------------------------------------------------------


class SmsGateway(Protocol):
    """What a real SMS provider adapter implements. ``reference`` is the outbox message id:
    pass it to the provider as the client reference so that it can drop a duplicate."""

    def send_sms(self, number: str, text: str, *, reference: str) -> None: ...


class GatewaySmsTransport:
    """SMS through an ``SmsGateway`` (the adapter raises the errors listed in this module)."""

    def __init__(self, gateway: SmsGateway) -> None:
        self.gateway = gateway

    def send(self, message: OutgoingMessage) -> None:
        if message.channel != SMS:
            raise PermanentDeliveryError(f"canal {message.channel} non pris en charge par SMS")
        self.gateway.send_sms(message.recipient, message.text, reference=str(message.id))

    def close(self) -> None:
        pass


class LoggingSmsTransport:
    """No gateway reachable here: logs a masked number and the text length, keeps the sent
    messages in ``sent`` (tests, development) and, when ``log_file`` is set, appends them to
    that file (mode 0600) so that a developer can read the codes on a development instance."""

    def __init__(self, log_file: Path | None = None) -> None:
        self.log_file = log_file
        self.sent: list[OutgoingMessage] = []
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        if message.channel != SMS:
            raise PermanentDeliveryError(f"canal {message.channel} non pris en charge par SMS")
        masked = mask_phone(message.recipient)
        log.info(
            "SMS %s (%s) to %s, %d characters: logging adapter, no gateway",
            message.id, message.template, masked, len(message.text),
        )
        with self._lock:
            self.sent.append(message)
            if self.log_file is not None:
                self._append(
                    self.log_file,
                    f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\t{masked}\t{message.template}\t{message.text}\n",
                )

    @staticmethod
    def _append(log_file: Path, line: str) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line)

    def close(self) -> None:
        pass


def default_transports(mail: MailSettings, sms: SmsSettings) -> dict[str, Transport]:
    """The transports of ``dmp outbox deliver``: SMTP, and the logging SMS adapter."""
    return {EMAIL: SmtpTransport(mail), SMS: LoggingSmsTransport(sms.log_file)}
