"""Instance settings, read once from the environment (``DMP_*``).

The embedded default keeps everything under ``./var/``: SQLite database, encrypted
document store, PKI and keys. ``DMP_DATABASE_URL=postgresql+psycopg://…`` selects
PostgreSQL. Secrets (the master key) come from the environment or a key file that
is created with mode 0600 on first use and never committed (``var/`` is ignored).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
# Limits on what one request may hold (docs/api/mhd.md, « Limites »).
DEFAULT_MAX_BUNDLE_ENTRIES = 200
DEFAULT_MAX_SEARCH_PARAMETERS = 50


@dataclass(frozen=True)
class Settings:
    var_dir: Path = field(default_factory=lambda: Path("var"))
    database_url: str = ""
    base_url: str = "http://127.0.0.1:8080"
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    # Decoded documents of one ITI-65 Bundle together; 0: the same as max_document_bytes.
    max_submission_bytes: int = 0
    max_bundle_entries: int = DEFAULT_MAX_BUNDLE_ENTRIES
    # Query and form parameters of one search (each repetition counts).
    max_search_parameters: int = DEFAULT_MAX_SEARCH_PARAMETERS
    # Test INS OIDs (…4.10 / …4.11) are only accepted on a test instance.
    test_instance: bool = False
    master_key_b64: str | None = None
    page_size_default: int = 20
    page_size_max: int = 500
    # What a professional learns of documents masked from them: hidden | count | category.
    masking_transparency: str = "hidden"
    # INVISIBLE_PATIENT documents become visible to the patient after this many days.
    invisible_patient_max_days: int = 30
    # LC-08: days after the holder's majority during which professionals still access a record
    # whose continuation the holder has not confirmed; then they get the closed-record answer.
    majority_grace_days: int = 30
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated in
    # DMP_TRUSTED_PROXIES). Empty: the header is ignored and the peer's address is the client's.
    trusted_proxies: tuple[str, ...] = ()
    # Host names (host[:port]) the server answers to, besides DMP_BASE_URL's (DMP_ALLOWED_HOSTS,
    # comma-separated). Empty: any Host is served, and rewritten to DMP_BASE_URL's.
    allowed_hosts: tuple[str, ...] = ()
    # Seconds between two passes of the server's blob garbage collector (0: never, schedule
    # ``dmp blobs gc`` instead). Each worker runs it; it is idempotent and concurrency-safe.
    blob_gc_interval: int = 3600
    # Seconds after which a reservation of a uniqueId or an INS whose document (record) was never
    # written is stale: taken over by a later one, swept (ADR 0009 b). Must exceed the longest
    # publication transaction.
    reservation_timeout: int = 60

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'dmp.sqlite3').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.var_dir / "blobs"

    @property
    def pki_dir(self) -> Path:
        return self.var_dir / "pki"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def submission_bytes(self) -> int:
        return self.max_submission_bytes or self.max_document_bytes

    @property
    def max_request_bytes(self) -> int:
        # base64 inflates by 4/3; leave room for the metadata around the documents
        return max(self.submission_bytes, self.max_document_bytes) * 4 // 3 + 1024 * 1024

    @property
    def token_audience(self) -> str:
        return self.base_url.rstrip("/") + "/oauth/token"

    def master_key(self) -> bytes:
        """The key-encryption key; from DMP_MASTER_KEY or var/keys/master.key."""
        if self.master_key_b64:
            key = base64.b64decode(self.master_key_b64)
        else:
            path = self.keys_dir / "master.key"
            if not path.exists():
                _write_secret(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
            key = base64.b64decode(path.read_bytes().strip())
        if len(key) != 32:
            raise ValueError("DMP_MASTER_KEY doit contenir 32 octets encodés en base64")
        return key

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            var_dir=Path(e.get("DMP_VAR_DIR", "var")),
            database_url=e.get("DMP_DATABASE_URL", ""),
            base_url=e.get("DMP_BASE_URL", "http://127.0.0.1:8080"),
            max_document_bytes=int(e.get("DMP_MAX_DOCUMENT_BYTES", DEFAULT_MAX_DOCUMENT_BYTES)),
            max_submission_bytes=int(e.get("DMP_MAX_SUBMISSION_BYTES", "0")),
            max_bundle_entries=int(e.get("DMP_MAX_BUNDLE_ENTRIES", DEFAULT_MAX_BUNDLE_ENTRIES)),
            max_search_parameters=int(e.get("DMP_MAX_SEARCH_PARAMETERS", DEFAULT_MAX_SEARCH_PARAMETERS)),
            test_instance=e.get("DMP_TEST_INSTANCE", "").lower() in {"1", "true", "yes"},
            master_key_b64=e.get("DMP_MASTER_KEY") or None,
            masking_transparency=e.get("DMP_MASKING_TRANSPARENCY", "hidden"),
            invisible_patient_max_days=int(e.get("DMP_INVISIBLE_PATIENT_MAX_DAYS", "30")),
            majority_grace_days=int(e.get("DMP_MAJORITY_GRACE_DAYS", "30")),
            trusted_proxies=_comma_list(e.get("DMP_TRUSTED_PROXIES", "")),
            allowed_hosts=_comma_list(e.get("DMP_ALLOWED_HOSTS", "")),
            blob_gc_interval=int(e.get("DMP_BLOB_GC_INTERVAL", "3600")),
            reservation_timeout=int(e.get("DMP_RESERVATION_TIMEOUT", "60")),
        )


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` (0600) with ``data``, complete or not at all; if another process
    created it meanwhile, theirs is kept (link() refuses to replace it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
