"""Course covers: an uploaded image (checked by decoding it, re-encoded as a JPEG without its
metadata) or, by default, the poster of the course's first ready lesson video."""

from __future__ import annotations

import asyncio
import io
import secrets
from fractions import Fraction

import av

from catalog.models import Course
from catalog.search import cards_for
from hub.db import Database
from hub.errors import FieldError, NotFound, ValidationFailed
from hub.identity.manager import Principal
from media.manager import VideoManager

MAX_COVER_BYTES = 5 << 20
COVER_WIDTH = 1280
COVER_PREFIX = "covers/"
# Magic numbers of the formats accepted: JPEG, PNG, WebP.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def _looks_like_image(data: bytes) -> bool:
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return webp or any(data.startswith(sig) for sig in _SIGNATURES)


def reencode(data: bytes) -> bytes:
    """Decode an image and encode it again as a JPEG at most 1280 px wide.

    Raises:
        ValidationFailed: not a JPEG, PNG or WebP image that decodes.
    """
    if not _looks_like_image(data):
        raise ValidationFailed([FieldError("body", "must be a JPEG, PNG or WebP image")])
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
    except (av.FFmpegError, StopIteration, ValueError) as exc:
        raise ValidationFailed([FieldError("body", "is not an image that decodes")]) from exc
    width = min(COVER_WIDTH, frame.width) // 2 * 2 or 2
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qscale": "3"}
    scaled = frame.reformat(width=width, height=height, format="yuvj420p")
    packets = codec.encode(scaled) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


class CourseCovers:
    def __init__(self, db: Database, videos: VideoManager) -> None:
        self._db = db
        self._videos = videos

    async def upload(self, principal: Principal, course_id: int, data: bytes) -> Course:
        if len(data) > MAX_COVER_BYTES:
            raise ValidationFailed([FieldError("body", "must be at most 5 MB")])
        async with self._db.sessions() as s:
            course = await s.get(Course, course_id)
        if course is None or course.owner_id != principal.user.id:
            raise NotFound("No course of yours with this id.")
        jpeg = await asyncio.to_thread(reencode, data)
        key = f"{COVER_PREFIX}{course_id}/{secrets.token_hex(8)}.jpg"
        await self._videos.storage.put_bytes(key, jpeg, "image/jpeg")
        async with self._db.transaction() as s:
            course = await s.get(Course, course_id)
            if course is None:
                raise NotFound("No course of yours with this id.")
            old, course.cover_key = course.cover_key, key
        if old:
            await self._videos.storage.delete_prefix(old)
        return course

    async def image(self, course_id: int) -> bytes:
        """A course's cover: public, like a shop window (drafts included, so the studio can
        show it).

        Raises:
            NotFound: no course, or it has no cover yet.
        """
        async with self._db.sessions() as s:
            course = await s.get(Course, course_id)
            if course is None:
                raise NotFound("No course with this id.")
            cards = await cards_for(s, [course_id])
        cover_video_id = cards[0].cover_video_id if cards else None
        if course.cover_key:
            return await self._videos.storage.get_bytes(course.cover_key)
        poster = await self._videos.poster(cover_video_id) if cover_video_id else None
        if poster is None:
            raise NotFound("This course has no cover yet.")
        return poster
