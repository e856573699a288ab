"""Wiring: settings -> engine, key ring, blob store -> Runtime and ASGI app."""

from __future__ import annotations

from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.blobs import FileBlobStore
from dmp.store.crypto import KeyRing
from dmp.store.db import make_engine


def build_runtime(settings: Settings, *, pool_size: int = 10) -> Runtime:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url, pool_size=pool_size)
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
