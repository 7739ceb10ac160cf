"""Who is online in a channel, across hub processes.

Each hub records its own members; an entry lives ``PRESENCE_TTL`` seconds unless the hub
refreshes it, so a hub that dies stops counting its users within that time."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

PRESENCE_TTL = 60.0
REFRESH_EVERY = 20.0


class PresenceStore(Protocol):
    async def join(self, channel: str, user_id: int) -> None: ...

    async def leave(self, channel: str, user_id: int) -> None: ...

    async def online(self, channel: str) -> list[int]: ...

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        """``online`` of each channel, in one round trip where it can."""
        ...

    async def refresh(self, members: dict[str, set[int]]) -> None:
        """Keep this hub's entries alive: channel → users connected here."""
        ...


class MemoryPresence:
    def __init__(self) -> None:
        self._online: dict[str, set[int]] = defaultdict(set)

    async def join(self, channel: str, user_id: int) -> None:
        self._online[channel].add(user_id)

    async def leave(self, channel: str, user_id: int) -> None:
        users = self._online.get(channel)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._online[channel]

    async def online(self, channel: str) -> list[int]:
        return sorted(self._online.get(channel, ()))

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        return {channel: await self.online(channel) for channel in channels}

    async def refresh(self, members: dict[str, set[int]]) -> None:
        return None


class RedisPresence:
    """A sorted set per channel: member ``<user>:<hub>``, score the entry's expiry."""

    def __init__(self, redis: Redis, prefix: str, hub_id: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:presence:"
        self._hub = hub_id

    async def join(self, channel: str, user_id: int) -> None:
        key = self._prefix + channel
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {f"{user_id}:{self._hub}": time.time() + PRESENCE_TTL})
            pipe.expire(key, int(PRESENCE_TTL * 2))
            await pipe.execute()

    async def leave(self, channel: str, user_id: int) -> None:
        await self._redis.zrem(self._prefix + channel, f"{user_id}:{self._hub}")

    async def online(self, channel: str) -> list[int]:
        return (await self.online_many([channel]))[channel]

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                key = self._prefix + channel
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf")
            replies = await pipe.execute()
        return {
            channel: sorted({int(_text(m).split(":", 1)[0]) for m in members})
            for channel, members in zip(channels, replies[1::2], strict=True)
        }

    async def refresh(self, members: dict[str, set[int]]) -> None:
        expiry = time.time() + PRESENCE_TTL
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, users in members.items():
                if users:
                    key = self._prefix + channel
                    pipe.zadd(key, {f"{u}:{self._hub}": expiry for u in users})
                    pipe.expire(key, int(PRESENCE_TTL * 2))
            await pipe.execute()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
