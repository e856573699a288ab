"""What the use cases need from the running instance, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from dmp.settings import Settings
from dmp.store import sealed_fields
from dmp.store.blobs import BlobStore
from dmp.store.crypto import KeyRing


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keyring: KeyRing
    blobs: BlobStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # Readers holding only a connection open sealed fields with this ring (SE-02).
        sealed_fields.bind_keyring(self.engine, self.keyring)

    def now(self) -> datetime:
        return self.clock()

    @property
    def fhir_base(self) -> str:
        return self.settings.base_url.rstrip("/") + "/fhir"
