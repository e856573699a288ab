"""Messaging settings, read from the environment (documented in docs/outbox.md).

They live here rather than in ``dmp.settings`` because only the outbox worker needs them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

TlsMode = Literal["none", "starttls", "tls"]
TLS_MODES: tuple[TlsMode, ...] = ("none", "starttls", "tls")
DEFAULT_PORTS: dict[TlsMode, int] = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_MAIL_FROM = "Dossier Médical Partagé <ne-pas-repondre@localhost>"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MailSettings:
    """How e-mails leave: an SMTP relay (submission) reached with smtplib."""

    host: str = "localhost"
    port: int = 25
    tls: TlsMode = "none"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    mail_from: str = DEFAULT_MAIL_FROM
    timeout: float = 30.0
    ca_file: Path | None = None  # extra trust anchors (internal relay); system store otherwise

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"DMP_SMTP_TLS doit valoir none, starttls ou tls (reçu : {self.tls!r})")
        if not 0 < self.port < 65536:
            raise ValueError(f"DMP_SMTP_PORT invalide : {self.port}")
        if (self.user is None) != (self.password is None):
            raise ValueError("DMP_SMTP_USER et DMP_SMTP_PASSWORD vont ensemble")
        if self.user is not None and self.tls == "none" and not _is_loopback(self.host):
            raise ValueError(
                "identifiants SMTP refusés sans chiffrement vers un serveur distant : "
                "DMP_SMTP_TLS=starttls ou tls"
            )
        if "@" not in self.envelope_from:
            raise ValueError(f"DMP_MAIL_FROM invalide : {self.mail_from!r}")
        if self.timeout <= 0:
            raise ValueError("DMP_SMTP_TIMEOUT doit être positif")

    @property
    def envelope_from(self) -> str:
        """The bare address of ``mail_from`` (SMTP ``MAIL FROM``)."""
        return parseaddr(self.mail_from)[1]

    @property
    def domain(self) -> str:
        return self.envelope_from.rpartition("@")[2] or "localhost"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MailSettings:
        e = os.environ if env is None else env
        tls = (e.get("DMP_SMTP_TLS") or "none").strip().lower()
        if tls not in TLS_MODES:
            raise ValueError(f"DMP_SMTP_TLS doit valoir none, starttls ou tls (reçu : {tls!r})")
        mode: TlsMode = tls
        try:
            port = int(e.get("DMP_SMTP_PORT") or DEFAULT_PORTS[mode])
            timeout = float(e.get("DMP_SMTP_TIMEOUT") or 30.0)
        except ValueError:
            raise ValueError("DMP_SMTP_PORT et DMP_SMTP_TIMEOUT doivent être des nombres") from None
        ca_file = e.get("DMP_SMTP_CA_FILE")
        return cls(
            host=e.get("DMP_SMTP_HOST") or "localhost",
            port=port,
            tls=mode,
            user=e.get("DMP_SMTP_USER") or None,
            password=e.get("DMP_SMTP_PASSWORD") or None,
            mail_from=e.get("DMP_MAIL_FROM") or DEFAULT_MAIL_FROM,
            timeout=timeout,
            ca_file=Path(ca_file) if ca_file else None,
        )


@dataclass(frozen=True)
class SmsSettings:
    """No SMS gateway is wired in: the logging adapter can copy SMS to a file (development)."""

    log_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmsSettings:
        e = os.environ if env is None else env
        path = e.get("DMP_SMS_LOG_FILE")
        return cls(log_file=Path(path) if path else None)
