"""Blob stores: where sealed (encrypted) document bytes live.

The interface is deliberately tiny (put / get / delete of opaque bytes by key) so
that an S3 adapter can fill it; the plaintext never reaches a store.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,128})?")


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class StoredBlob:
    """One object found by a scan: a key, or the temporary file of an interrupted write."""

    name: str  # the key, or for a partial write its path relative to the store's root
    modified: float  # POSIX time of the last write
    partial: bool = False  # an interrupted write's temporary file: never a key, never read


@runtime_checkable
class ScannableBlobStore(BlobStore, Protocol):
    """A store that can list what it holds (for the garbage collector, dmp.services.blob_hygiene)."""

    def scan(self) -> Iterator[StoredBlob]: ...

    def discard(self, entry: StoredBlob) -> None: ...


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

    def scan(self) -> Iterator[StoredBlob]:
        """Every object and every temporary file left by an interrupted write (two levels)."""
        for top in _entries(self.root):
            if top.is_dir(follow_symlinks=False):
                for entry in _entries(Path(top.path)):
                    found = _stored(f"{top.name}/{entry.name}", entry)
                    if found is not None:
                        yield found
            else:
                found = _stored(top.name, top)
                if found is not None:
                    yield found

    def discard(self, entry: StoredBlob) -> None:
        if entry.partial:
            name = entry.name.rsplit("/", 1)
            if not name[-1].startswith(".tmp-") or any(not _KEY.fullmatch(p) for p in name[:-1]):
                raise ValueError(f"invalid temporary file {entry.name!r}")
            (self.root / entry.name).unlink(missing_ok=True)
        else:
            self.delete(entry.name)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except FileNotFoundError:  # removed meanwhile
        return []


def _stored(name: str, entry: os.DirEntry[str]) -> StoredBlob | None:
    if not entry.is_file(follow_symlinks=False):
        return None
    try:
        modified = entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:  # renamed or removed meanwhile
        return None
    if entry.name.startswith(".tmp-"):
        return StoredBlob(name, modified, partial=True)
    if not _KEY.fullmatch(name):
        return None  # not ours: never touched
    return StoredBlob(name, modified)


class MemoryBlobStore:
    """In-process store for unit tests of code that only needs the interface."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}

    def put(self, key: str, data: bytes) -> None:
        self.data.setdefault(key, data)
        self.modified.setdefault(key, time.time())

    def get(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError as exc:
            raise BlobNotFound(key) from exc

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
        self.modified.pop(key, None)

    def scan(self) -> Iterator[StoredBlob]:
        for key in list(self.data):
            yield StoredBlob(key, self.modified.get(key, 0.0))

    def discard(self, entry: StoredBlob) -> None:
        self.delete(entry.name)
