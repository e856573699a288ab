"""Transactional outbox: every message to a person (codes, alerts, notices).

Use cases call ``enqueue(conn, …)`` in their own transaction; the worker
(``deliver_due``/``run_worker``, ``dmp outbox deliver``) sends the committed messages by
e-mail (SMTP) or SMS, with retries and backoff. See docs/outbox.md.
"""

from __future__ import annotations

from dmp.outbox.config import MailSettings, SmsSettings
from dmp.outbox.messages import FAILED, NO_RECORD, PENDING, SENT, enqueue, status_counts
from dmp.outbox.privacy import EMAIL, SMS, mask_email, mask_phone, mask_recipient
from dmp.outbox.templates import TEMPLATES, ParamValue, Rendered, render
from dmp.outbox.transports import (
    DeliveryError,
    GatewaySmsTransport,
    LoggingSmsTransport,
    OutgoingMessage,
    PermanentDeliveryError,
    SmsGateway,
    SmtpTransport,
    Transport,
    TransportUnavailable,
    default_transports,
)
from dmp.outbox.worker import Backoff, DeliveryStats, claim_due, deliver_due, run_worker
from dmp.store.shard import parse_partitions  # DMP_OUTBOX_PARTITIONS: a relay's share (ADR 0009)

__all__ = [
    "parse_partitions",
    "EMAIL",
    "FAILED",
    "NO_RECORD",
    "PENDING",
    "SENT",
    "SMS",
    "TEMPLATES",
    "Backoff",
    "DeliveryError",
    "DeliveryStats",
    "GatewaySmsTransport",
    "LoggingSmsTransport",
    "MailSettings",
    "OutgoingMessage",
    "ParamValue",
    "PermanentDeliveryError",
    "Rendered",
    "SmsGateway",
    "SmsSettings",
    "SmtpTransport",
    "Transport",
    "TransportUnavailable",
    "claim_due",
    "default_transports",
    "deliver_due",
    "enqueue",
    "mask_email",
    "mask_phone",
    "mask_recipient",
    "render",
    "run_worker",
    "status_counts",
]
