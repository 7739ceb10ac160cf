"""Resumable uploads with the tus 1.0 protocol (core, creation, creation-with-upload,
termination, expiration): a teacher on a bad connection resumes where the bytes stopped instead
of starting over. The bytes received are always kept, even when a request breaks off."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.clock import Clock
from hub.db import Database
from hub.errors import (
    Conflict,
    FieldError,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from hub.identity.manager import Principal
from media.manager import VideoManager, choices_from_fields, validate_choices
from media.models import Upload

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration"


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key base64value,key2 base64value2`` → dict.

    Raises:
        MalformedRequest: a pair that is not key + base64.
    """
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            result[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise MalformedRequest(f"Upload-Metadata value of {key!r} is not base64.") from None
    return result


class TusUploads:
    def __init__(
        self,
        *,
        db: Database,
        videos: VideoManager,
        clock: Clock,
        directory: Path,
        max_bytes: int,
        expiry: timedelta,
    ) -> None:
        self._db = db
        self._videos = videos
        self._clock = clock
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._expiry = expiry
        self._locks: dict[str, asyncio.Lock] = {}

    def _path(self, upload_id: str) -> Path:
        return self._dir / f"{upload_id}.part"

    async def create(self, principal: Principal, length: int, meta: dict[str, str]) -> Upload:
        """Raises: Forbidden, PayloadTooLarge, ValidationFailed."""
        self._videos.require_uploader(principal)
        if length > self.max_bytes:
            raise PayloadTooLarge(f"Uploads are limited to {self.max_bytes} bytes.")
        if length <= 0:
            raise ValidationFailed([FieldError("Upload-Length", "the file is empty")])
        validate_choices(choices_from_fields(meta, meta.get("filename", "video")))
        now = self._clock.now()
        upload = Upload(
            id=uuid.uuid4().hex,
            owner_id=principal.user.id,
            length=length,
            offset=0,
            meta=meta,
            created_at=now,
            expires_at=now + self._expiry,
        )
        await asyncio.to_thread(self._path(upload.id).touch)
        async with self._db.transaction() as s:
            s.add(upload)
        return upload

    async def get(self, principal: Principal, upload_id: str) -> Upload:
        async with self._db.sessions() as s:
            upload = await s.get(Upload, upload_id)
        if upload is None or upload.owner_id != principal.user.id:
            raise NotFound("No upload with this id.")
        if upload.video_id is None and upload.expires_at <= self._clock.now():
            raise NotFound("This upload has expired.")
        return upload

    async def append(
        self, principal: Principal, upload_id: str, offset: int, chunks: AsyncIterator[bytes]
    ) -> Upload:
        """Append a PATCH body at ``offset``; on the last byte the video is created.

        Raises:
            NotFound, Conflict (offset mismatch), PayloadTooLarge (past Upload-Length).
        """
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        async with lock:
            upload = await self.get(principal, upload_id)
            if upload.video_id is not None or offset != upload.offset:
                raise Conflict(f"Upload-Offset must be {upload.offset}.")
            path = self._path(upload_id)
            received = upload.offset
            too_long = False
            handle = await asyncio.to_thread(path.open, "r+b")
            try:
                handle.seek(received)
                async for chunk in chunks:
                    room = upload.length - received
                    if len(chunk) > room:
                        chunk, too_long = chunk[:room], True
                    # Written inline (a page-cache copy of at most a MiB): a cancelled
                    # handler can then never have received bytes it did not keep.
                    handle.write(chunk)
                    received += len(chunk)
                    if too_long:
                        break
            finally:
                # Whatever arrived is kept, even if the client vanished mid-request (or the
                # server cancelled this handler when it did).
                handle.truncate(received)
                handle.close()
                upload = await asyncio.shield(self._save_offset(upload_id, received))
            if too_long:
                raise PayloadTooLarge("The body goes past Upload-Length.")
            if upload.offset == upload.length:
                meta = dict(upload.meta)
                choices = choices_from_fields(meta, meta.get("filename", "video"))
                video = await self._videos.create(principal, path, choices)
                upload = await self._save_offset(upload_id, received, video_id=video.id)
                await asyncio.to_thread(path.unlink, missing_ok=True)
            return upload

    async def _save_offset(
        self, upload_id: str, offset: int, video_id: str | None = None
    ) -> Upload:
        async with self._db.transaction() as s:
            upload = await s.get(Upload, upload_id)
            if upload is None:
                raise NotFound("No upload with this id.")
            upload.offset = offset
            if video_id is not None:
                upload.video_id = video_id
        return upload

    async def terminate(self, principal: Principal, upload_id: str) -> None:
        upload = await self.get(principal, upload_id)
        async with self._db.transaction() as s:
            stored = await s.get(Upload, upload.id)
            if stored is not None:
                await s.delete(stored)
        await asyncio.to_thread(self._path(upload_id).unlink, missing_ok=True)
        self._locks.pop(upload_id, None)

    async def expire(self) -> int:
        """Forget unfinished uploads past their expiry, and their bytes."""
        now = self._clock.now()
        async with self._db.transaction() as s:
            stale = list(
                await s.scalars(
                    select(Upload).where(Upload.expires_at <= now, Upload.video_id.is_(None))
                )
            )
            for upload in stale:
                await s.delete(upload)
        for upload in stale:
            await asyncio.to_thread(self._path(upload.id).unlink, missing_ok=True)
        return len(stale)

    def headers(self, upload: Upload) -> dict[str, Any]:
        headers = {
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Tus-Resumable": TUS_VERSION,
            "Cache-Control": "no-store",
        }
        if upload.video_id is None:
            headers["Upload-Expires"] = upload.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        else:
            headers["Cohort-Video-Id"] = upload.video_id
        return headers
