"""Wiring: settings -> engine, key ring, blob store -> Runtime and ASGI app.

The composition root: the one place above the services that names the store's concrete pieces.
The CLI and the API get their engine, migrations and blob store from here, never from
``dmp.store`` directly (ADR 0001).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store import db as store_db
from dmp.store.blobs import FileBlobStore
from dmp.store.crypto import KeyRing


def make_engine(settings: Settings, *, pool_size: int = 10) -> Engine:
    """An engine on ``settings.db_url`` (no migration, no key: see :func:`migrate`)."""
    return store_db.make_engine(settings.db_url, pool_size=pool_size)


def migrate(engine: Engine) -> None:
    """Apply the migrations up to the latest revision (Alembic)."""
    store_db.upgrade(engine)


def blob_store(settings: Settings) -> FileBlobStore:
    """The sealed blob store, without the key ring (the files stay sealed)."""
    return FileBlobStore(settings.blob_dir)


def build_runtime(settings: Settings, *, pool_size: int = 10) -> Runtime:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = store_db.make_engine(settings.db_url, pool_size=pool_size)
    return Runtime(
        settings=settings,
        engine=engine,
        keyring=KeyRing(settings.master_key()),
        blobs=FileBlobStore(settings.blob_dir),
    )


def asgi_app() -> object:
    """Entry point for ``uvicorn --factory dmp.bootstrap:asgi_app`` (multi-worker serving)."""
    from dmp.api.app import create_app

    return create_app(build_runtime(Settings.from_env()))


def new_master_keyring(path: Path) -> KeyRing:
    """The key ring of a new master key read from ``path`` (32 bytes, base64), created there if
    absent (0600): the target of ``dmp keys rotate-master``."""
    import base64
    import secrets

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        raise ValueError(f"{path} : clé maîtresse en base64 attendue") from None
    if len(key) != 32:
        raise ValueError(f"{path} : la clé maîtresse doit faire 32 octets")
    return KeyRing(key)


def bind_keys(engine: Engine, settings: Settings) -> None:
    """Let readers on ``engine`` open sealed fields (tools with their own engine: audit export)."""
    from dmp.store import sealed_fields

    sealed_fields.bind_keyring(engine, KeyRing(settings.master_key()))
