"""One unit of work for every adapter: the API, the portals and the CLI run each use case so.

The transaction is opened here and committed when the use case returns. A refusal (``DmpError``)
rolls back everything the use case did, then its trail entry, if it carries one, is committed in
a transaction of its own, so a refused attempt is traced even though nothing else remains. A
uniqueness violation the database detects (two publications racing for one uniqueId, two desks
opening one INS) becomes the refusal it means instead of a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

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
