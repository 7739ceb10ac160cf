"""Who may watch a video, and signed, expiring playback URLs.

The signature lives in the URL *path* (``/media/<token>/<video>/…``), not the query string, so
the relative URIs inside HLS playlists inherit it: a player resolving ``720p/index.m3u8``
against the master's URL keeps the token without any playlist rewriting.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from hub.clock import Clock
from hub.errors import Forbidden
from hub.identity.models import User
from media.models import Video


class Entitlement(Protocol):
    """Decides whether a user may watch a video. The course catalog provides the real rule
    (enrolled, or a free preview); media itself knows only owners and admins."""

    async def can_watch(self, user: User, video: Video) -> bool: ...


class OwnerOrAdmin:
    async def can_watch(self, user: User, video: Video) -> bool:
        return user.is_admin or user.id == video.owner_id


class PlaybackSigner:
    def __init__(self, secret: str, ttl_seconds: int, clock: Clock) -> None:
        self._key = hmac.new(secret.encode(), b"cohort:playback", hashlib.sha256).digest()
        self._ttl = ttl_seconds
        self._clock = clock

    def token(self, video_id: str, user_id: int) -> str:
        expires = int(self._clock.now().timestamp()) + self._ttl
        return f"{expires}-{user_id}-{self._mac(video_id, user_id, expires)}"

    def verify(self, token: str, video_id: str) -> int:
        """The user id the token was issued to.

        Raises:
            Forbidden: malformed, forged, foreign (another video) or expired.
        """
        parts = token.split("-")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise Forbidden("This playback link is not valid.")
        expires, user_id, mac = int(parts[0]), int(parts[1]), parts[2]
        if not hmac.compare_digest(self._mac(video_id, user_id, expires), mac):
            raise Forbidden("This playback link is not valid.")
        if expires < self._clock.now().timestamp():
            raise Forbidden("This playback link has expired; reload the video.")
        return user_id

    def _mac(self, video_id: str, user_id: int, expires: int) -> str:
        message = f"{video_id}:{user_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]
