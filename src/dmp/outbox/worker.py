"""The outbox worker: claims due messages, sends them, records the outcome.

Delivery is **at least once**. A batch is claimed in a short transaction: each message gets
one more attempt and a lease (``not_before`` pushed to ``now + lease``) so that no other
worker takes it meanwhile. Messages are then sent outside any transaction, and each outcome
is written in its own short transaction: ``sent``, a retry after an exponential backoff, or
``failed`` after ``max_attempts``. A worker that dies between sending and recording leaves
the message to be sent again once its lease has expired.

On PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``: concurrent workers claim
disjoint batches without waiting on each other. Each message has a relay ``partition``
(0..63, from its ``patient_id``); a worker given ``partitions`` (``DMP_OUTBOX_PARTITIONS``,
e.g. ``0-15``) claims only those, so that relays can be split by partition range, one per
shard once the table is distributed on ``patient_id`` (Citus; ADR 0009). By default a
worker owns every partition and claims without that filter, as before. On SQLite the claim
transaction is ``BEGIN IMMEDIATE`` (see ``dmp.store.db``): claims are serialised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from dmp.outbox.messages import FAILED, PENDING, SENT
from dmp.outbox.privacy import mask_recipient, scrub
from dmp.outbox.templates import render
from dmp.outbox.transports import (
    OutgoingMessage,
    PermanentDeliveryError,
    Transport,
    TransportUnavailable,
)
from dmp.store import sealed_fields
from dmp.store.schema_outbox import outbox_message as t
from dmp.store.shard import all_partitions

log = logging.getLogger("dmp.outbox")

DEFAULT_BATCH = 50
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Backoff:
    """Wait ``base × 2^(attempts−1)`` after the n-th failed attempt, capped, minus a jitter of
    up to ``jitter`` × that delay. The jitter is derived from the message id and the attempt
    number: it spreads retries of messages failed together, and is reproducible in tests."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    jitter: float = 0.2

    def delay(self, attempts: int, message_id: UUID) -> timedelta:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** min(max(attempts - 1, 0), 40))
        digest = hashlib.sha256(message_id.bytes + attempts.to_bytes(4, "big")).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return timedelta(seconds=raw * (1.0 - self.jitter * fraction))


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class DeliveryStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0  # claimed but handed back unsent (batch too slow for its lease)

    def __add__(self, other: DeliveryStats) -> DeliveryStats:
        return DeliveryStats(
            self.claimed + other.claimed,
            self.sent + other.sent,
            self.retried + other.retried,
            self.failed + other.failed,
            self.released + other.released,
        )


@dataclass(frozen=True)
class ClaimedMessage:
    patient_id: UUID
    id: UUID
    channel: str
    recipient: str
    template: str
    params: dict[str, str]
    attempts: int  # including the current one


def claim_due(
    conn: Connection,
    now: datetime,
    *,
    channels: Collection[str],
    batch: int = DEFAULT_BATCH,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    lease: timedelta = DEFAULT_LEASE,
    patient_id: UUID | None = None,
    partitions: Collection[int] | None = None,
) -> tuple[list[ClaimedMessage], int]:
    """Claim up to ``batch`` due pending messages of ``channels`` (in ``conn``'s transaction),
    of ``partitions`` only when given (None: every partition).

    Returns the claimed messages and the number of messages abandoned (``failed``) because
    their attempts were used up by workers that died before recording an outcome.
    """
    query = (
        select(t.c.patient_id, t.c.id, t.c.channel, t.c.recipient, t.c.template, t.c.params,
               t.c.attempts)
        .where(t.c.status == PENDING, t.c.not_before <= now, t.c.channel.in_(sorted(channels)))
        .order_by(t.c.not_before)
        .limit(batch)
    )
    if patient_id is not None:
        query = query.where(t.c.patient_id == patient_id)
    if partitions is not None and not all_partitions(partitions):
        query = query.where(t.c.partition.in_(sorted(set(partitions))))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows: list[Any] = list(conn.execute(query).all())
    if sealed_fields.has_keyring(conn):  # SE-02: a record's messages are sealed under its key
        rows = sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient", "params"))
    by_key = t.c.patient_id == bindparam("k_patient"), t.c.id == bindparam("k_id")
    claimed: list[ClaimedMessage] = []
    exhausted: list[dict[str, Any]] = []
    for row in rows:
        key = {"k_patient": row.patient_id, "k_id": row.id}
        if row.attempts >= max_attempts:
            exhausted.append(key)
            continue
        claimed.append(ClaimedMessage(row.patient_id, row.id, row.channel, row.recipient, row.template,
                                      json.loads(row.params), row.attempts + 1))
    if claimed:
        conn.execute(
            update(t).where(*by_key).values(attempts=t.c.attempts + 1, not_before=now + lease),
            [{"k_patient": m.patient_id, "k_id": m.id} for m in claimed],
        )
    if exhausted:
        conn.execute(
            update(t).where(*by_key).values(
                status=FAILED, last_error="tentatives épuisées (envoi interrompu)"
            ),
            exhausted,
        )
        log.warning("outbox: %d message(s) abandoned after %d interrupted attempts",
                    len(exhausted), max_attempts)
    return claimed, len(exhausted)


def deliver_due(
    engine: Engine,
    transports: Mapping[str, Transport],
    now: datetime,
    batch: int = DEFAULT_BATCH,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
    lease: timedelta = DEFAULT_LEASE,
    patient_id: UUID | None = None,
    partitions: Collection[int] | None = None,
) -> DeliveryStats:
    """Deliver one batch of due messages for the channels that have a transport (of
    ``partitions`` only, when given)."""
    if now.tzinfo is None:
        raise ValueError("date et heure sans fuseau horaire")
    with engine.begin() as conn:
        claimed, abandoned = claim_due(conn, now, channels=transports.keys(), batch=batch,
                                       max_attempts=max_attempts, lease=lease, patient_id=patient_id,
                                       partitions=partitions)
    sent = retried = failed = released = 0
    down: dict[str, str] = {}  # channel → error, once its transport is unavailable
    started = time.monotonic()
    try:
        for i, m in enumerate(claimed):
            if i and time.monotonic() - started > lease.total_seconds() / 2:
                # Half the lease is gone: hand the rest back rather than risk another worker
                # claiming them (expired lease) while this one is still sending.
                released = _release(engine, claimed[i:], now)
                log.warning("outbox: batch slower than half its lease, %d message(s) handed back",
                            released)
                break
            if m.channel in down:
                outcome = _Outcome(error=down[m.channel])
            else:
                outcome = _send(m, transports[m.channel])
            masked = mask_recipient(m.channel, m.recipient)
            if outcome.channel_down and outcome.error is not None:
                down[m.channel] = outcome.error
            if outcome.error is None:
                _record(engine, m, status=SENT, sent_at=now, last_error=None)
                sent += 1
                log.info("outbox message %s (%s, %s) sent to %s, attempt %d",
                         m.id, m.channel, m.template, masked, m.attempts)
            elif outcome.permanent or m.attempts >= max_attempts:
                _record(engine, m, status=FAILED, last_error=outcome.error)
                failed += 1
                log.error("outbox message %s (%s, %s) to %s failed for good after %d attempt(s): %s",
                          m.id, m.channel, m.template, masked, m.attempts, outcome.error)
            else:
                due = now + backoff.delay(m.attempts, m.id)
                _record(engine, m, status=PENDING, not_before=due, last_error=outcome.error)
                retried += 1
                log.warning("outbox message %s (%s, %s) to %s: attempt %d failed, next at %s: %s",
                            m.id, m.channel, m.template, masked, m.attempts,
                            due.isoformat(timespec="seconds"), outcome.error)
    finally:
        for transport in transports.values():
            try:
                transport.close()
            except Exception as exc:  # a close failure must not hide the outcome
                log.warning("outbox: closing a transport failed: %s", type(exc).__name__)
    return DeliveryStats(claimed=len(claimed) + abandoned, sent=sent, retried=retried,
                         failed=failed + abandoned, released=released)


@dataclass(frozen=True)
class _Outcome:
    error: str | None = None  # without personal data
    permanent: bool = False
    channel_down: bool = False


def _send(m: ClaimedMessage, transport: Transport) -> _Outcome:
    try:
        rendered = render(m.template, m.params, m.channel)
    except (ValueError, KeyError) as exc:  # template withdrawn, or stored row unusable
        return _Outcome(scrub(f"rendu impossible : {type(exc).__name__}: {exc}", m.recipient), True)
    outgoing = OutgoingMessage(id=m.id, channel=m.channel, recipient=m.recipient, template=m.template,
                               subject=rendered.subject, text=rendered.text)
    try:
        transport.send(outgoing)
    except TransportUnavailable as exc:
        return _Outcome(scrub(str(exc), m.recipient), channel_down=True)
    except PermanentDeliveryError as exc:
        return _Outcome(scrub(str(exc), m.recipient), permanent=True)
    except Exception as exc:
        return _Outcome(scrub(f"{type(exc).__name__}: {exc}", m.recipient))
    return _Outcome()


def _record(engine: Engine, m: ClaimedMessage, **values: Any) -> None:
    """Write an outcome, unless another worker has claimed the message since (lease expired)."""
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.patient_id == m.patient_id, t.c.id == m.id, t.c.status == PENDING,
                   t.c.attempts == m.attempts)
            .values(**values)
        )


def _release(engine: Engine, messages: list[ClaimedMessage], now: datetime) -> int:
    """Undo the claim of messages not sent: due again at once, the attempt not counted."""
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.patient_id == bindparam("k_patient"), t.c.id == bindparam("k_id"),
                   t.c.status == PENDING, t.c.attempts == bindparam("k_attempts"))
            .values(attempts=t.c.attempts - 1, not_before=now),
            [{"k_patient": m.patient_id, "k_id": m.id, "k_attempts": m.attempts} for m in messages],
        )
    return len(messages)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_worker(
    engine: Engine,
    transports: Mapping[str, Transport],
    stop_event: threading.Event,
    poll_interval: float = 2.0,
    *,
    clock: Callable[[], datetime] = _utcnow,
    batch: int = DEFAULT_BATCH,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: Backoff = DEFAULT_BACKOFF,
    lease: timedelta = DEFAULT_LEASE,
    patient_id: UUID | None = None,
    partitions: Collection[int] | None = None,
) -> DeliveryStats:
    """Deliver until ``stop_event`` is set: a full batch is followed at once by the next one,
    otherwise the worker sleeps ``poll_interval`` seconds. A database outage is logged and
    waited out; messages stay in the table meanwhile."""
    total = DeliveryStats()
    while not stop_event.is_set():
        try:
            stats = deliver_due(engine, transports, clock(), batch, max_attempts, backoff=backoff,
                                lease=lease, patient_id=patient_id, partitions=partitions)
        except SQLAlchemyError as exc:
            # The exception text may quote bound parameters (recipients): the type only.
            log.warning("outbox: database unavailable (%s), retrying in %.1f s",
                        type(exc).__name__, poll_interval)
            stop_event.wait(poll_interval)
            continue
        except Exception as exc:  # keep delivering the other messages; no personal data logged
            log.error("outbox: delivery pass failed (%s), retrying in %.1f s",
                      type(exc).__name__, poll_interval)
            stop_event.wait(poll_interval)
            continue
        total += stats
        if stats.claimed < batch:
            stop_event.wait(poll_interval)
    return total
