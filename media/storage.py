"""Where media bytes live: a ``Storage`` protocol with a local-disk backend (the embedded
default); the Cloudinary backend lives in ``media.cloudinary_storage``.

Keys are ``/``-separated paths. Raw uploads live under ``raw/`` and processed output under
``processed/``, so the two never mix and can have different lifecycles.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

RAW_PREFIX = "raw/"
PROCESSED_PREFIX = "processed/"
# Pieces of a long video encoded by separate workers, until they are stitched.
PARTS_PREFIX = "parts/"


class StorageError(Exception):
    """The backend failed (network, quota, permissions)."""


class ObjectMissing(StorageError):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    # Where a client can fetch the object directly; None when the hub serves it itself.
    url: str | None = None


class Storage(Protocol):
    """A flat key/value store of files."""

    async def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        """Store the file at ``source`` under ``key`` (replacing any object there)."""
        ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def get_bytes(self, key: str) -> bytes:
        """The whole object; for small ones (playlists, captions). Raises ObjectMissing."""
        ...

    async def fetch_to(self, key: str, target: Path) -> None:
        """Copy the object into a local file, streaming (sources can be hundreds of MB)."""
        ...

    async def local_path(self, key: str) -> Path | None:
        """A path on this machine the hub may stream from, or None for remote backends."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (``..``, absolute paths, empty parts)."""
    path = PurePosixPath(key)
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
        or path.is_absolute()
    ):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class LocalStorage:
    """Files under one directory; writes are atomic (temp file + rename), so a reader never sees
    half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        target = self._path(key)
        return await asyncio.to_thread(self._copy, key, source, target)

    def _copy(self, key: str, source: Path, target: Path) -> StoredObject:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key, target.stat().st_size)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        target = self._path(key)

        def write() -> StoredObject:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return StoredObject(key, len(data))

        return await asyncio.to_thread(write)

    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    async def fetch_to(self, key: str, target: Path) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(shutil.copyfile, path, target)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    async def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete_prefix(self, prefix: str) -> int:
        def delete() -> int:
            base = prefix.rstrip("/")
            target = self.root / check_key(base)
            if target.is_dir():
                count = sum(1 for p in target.rglob("*") if p.is_file())
                shutil.rmtree(target, ignore_errors=True)
                return count
            count = 0
            parent = target.parent
            if parent.is_dir():
                for p in parent.iterdir():
                    if p.is_file() and p.name.startswith(target.name):
                        p.unlink(missing_ok=True)
                        count += 1
            return count

        return await asyncio.to_thread(delete)
