"""Sliding-window counters for throttling: in memory for one process, in Redis across many."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Protocol

from redis.asyncio import Redis

from hub.clock import Clock


class RateLimiter(Protocol):
    async def retry_after(self, key: str, limit: int, window: float) -> float:
        """Seconds until ``key`` may act again (0 when it has fewer than ``limit`` recent hits)."""
        ...

    async def hit(self, key: str, window: float) -> None:
        """Record one event for ``key``, kept for ``window`` seconds."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str, window: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        horizon = self._clock.monotonic() - window
        while hits and hits[0] <= horizon:
            hits.popleft()
        return hits

    async def retry_after(self, key: str, limit: int, window: float) -> float:
        hits = self._live(key, window)
        if not hits:
            self._hits.pop(key, None)
        if len(hits) < limit:
            return 0.0
        return hits[-limit] + window - self._clock.monotonic()

    async def hit(self, key: str, window: float) -> None:
        self._live(key, window).append(self._clock.monotonic())

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)


# Atomic trim + count + oldest-of-the-last-`limit` lookup, so concurrent hubs agree.
_RETRY_AFTER = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then return '0' end
local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


class RedisRateLimiter:
    """A sorted set per key, scored by the Redis server's clock so hubs' skew does not matter."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:rl:"
        self._retry_after = redis.register_script(_RETRY_AFTER)

    async def _now(self) -> float:
        seconds, micros = await self._redis.time()
        return seconds + micros / 1e6

    async def retry_after(self, key: str, limit: int, window: float) -> float:
        now = await self._now()
        result = await self._retry_after(keys=[self._prefix + key], args=[now, window, limit])
        return max(0.0, float(result))

    async def hit(self, key: str, window: float) -> None:
        now = await self._now()
        full = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(full, {uuid.uuid4().hex: now})
            pipe.expire(full, int(window) + 1)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
