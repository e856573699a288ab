"""Blob stores: where sealed (encrypted) document bytes live.

The interface is deliberately tiny (put / get / delete of opaque bytes by key) so
that an S3 adapter can fill it; the plaintext never reaches a store.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,128})?")


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class BlobNotFound(KeyError):
    pass


class FileBlobStore:
    """Local directory store; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():  # content-addressed within a record: same key, same bytes
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fdatasync(f.fileno())
            os.replace(tmp, path)
            if self.fsync:
                # The rename itself must survive a power loss before the row that names it commits.
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class MemoryBlobStore:
    """In-process store for unit tests of code that only needs the interface."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.data.setdefault(key, data)

    def get(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError as exc:
            raise BlobNotFound(key) from exc

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
