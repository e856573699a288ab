"""Persistence: SQLAlchemy Core tables, engine set-up and the encrypted blob store.

The tables live in ``schema`` (core) and ``schema_*`` (one module per concern), all on the one
``schema.metadata``. Importing any module of this package runs this file first, so the
metadata always holds every table (``create_all``, Alembic's autogenerate) while ``schema``
itself imports none of its extensions (no import cycle).
"""

from dmp.store import schema as _schema  # noqa: F401  (the base: metadata and core tables)
from dmp.store import schema_accounts as _accounts  # noqa: F401
from dmp.store import schema_audit as _audit  # noqa: F401
from dmp.store import schema_outbox as _outbox  # noqa: F401
from dmp.store import schema_policy as _policy  # noqa: F401
