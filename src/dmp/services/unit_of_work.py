"""One unit of work for every adapter: the API, the portals and the CLI run each use case so.

The transaction is opened here and committed when the use case returns. A refusal (``DmpError``)
rolls back everything the use case did, then its trail entry, if it carries one, is committed in
a transaction of its own, so a refused attempt is traced even though nothing else remains. A
uniqueness violation the database detects (two publications racing for one uniqueId, two desks
opening one INS) becomes the refusal it means instead of a 500.

A use case that writes global uniqueness rows (a publication's uniqueIds, a record's INS) runs
in :func:`reserved_transaction`: its reservation phase first, committed in a short transaction
of its own, then its per-patient transaction; if that one fails, the reservation is released in
a compensating transaction (ADR 0009 b).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dmp.audit import AuditRecord, append_committed
from dmp.errors import DmpError


def integrity_error(exc: IntegrityError) -> DmpError:
    """The refusal a uniqueness violation stands for."""
    text = str(exc.orig).lower()
    if "document_uid" in text or "unique_id" in text:
        return DmpError("DUPLICATE_UNIQUE_ID", "publié en parallèle par une autre transaction")
    if "ins_index" in text:
        return DmpError("RECORD_EXISTS", "créé en parallèle par une autre transaction")
    return DmpError("TRANSACTION_FAILED")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """``with transaction(engine) as conn:`` — one use case, all or nothing, refusals traced."""
    try:
        with engine.begin() as conn:
            yield conn
    except IntegrityError as exc:
        raise integrity_error(exc) from exc
    except DmpError as err:
        if isinstance(err.audit_record, AuditRecord):
            append_committed(engine, err.audit_record)
        raise


class Reservation(Protocol):
    """What a reservation phase returns: it knows how to give its keys back."""

    def release(self, conn: Connection) -> None: ...


R = TypeVar("R", bound=Reservation)


@contextmanager
def reserved_transaction(
    engine: Engine, reserve: Callable[[Connection], R]
) -> Iterator[tuple[Connection, R]]:
    """``with reserved_transaction(engine, reserve) as (conn, held):`` — ``reserve`` committed in a
    transaction of its own (refusals traced like any), then the use case in ``conn``; if the use
    case fails, ``held`` is released before the failure goes on."""
    with transaction(engine) as conn:
        held = reserve(conn)
    try:
        with transaction(engine) as conn:
            yield conn, held
    except BaseException:
        _release(engine, held)
        raise


def _release(engine: Engine, held: Reservation) -> None:
    # If the database is gone too, the reservation stays: stale after DMP_RESERVATION_TIMEOUT,
    # then taken over and swept (dmp.store.reservations). The use case's failure is what matters.
    with suppress(SQLAlchemyError), engine.begin() as conn:
        held.release(conn)
