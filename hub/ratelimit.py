"""Sliding-window counters for throttling: in memory for one process, in Redis across many."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from hub.clock import Clock
from hub.resp import FastRedis


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` hits on ``key`` within ``window`` seconds."""

    key: str
    limit: int
    window: float


@dataclass(frozen=True, slots=True)
class Refused:
    """Which of the limits given to ``take`` refused (its index), and the seconds until it
    would not."""

    index: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class Take:
    """One ``take``: its limits, and the name of the hits it records."""

    limits: Sequence[Limit]
    token: str


class RateLimiter(Protocol):
    async def retry_after(self, key: str, limit: int, window: float) -> float:
        """Seconds until ``key`` may act again (0 when it has fewer than ``limit`` recent hits)."""
        ...

    async def hit(self, key: str, window: float) -> None:
        """Record one event for ``key``, kept for ``window`` seconds."""
        ...

    async def take(self, limits: Sequence[Limit], token: str) -> Refused | None:
        """Check and hit at once, atomically (one round trip): when every limit has room,
        record a hit named ``token`` on each and return None; otherwise record nothing and
        say which refused first."""
        ...

    async def take_many(self, requests: Sequence[Take]) -> list[Refused | None]:
        """``take`` for each request, in order, in one round trip: a request sees the hits of
        the ones before it."""
        ...

    async def give_back(self, keys: Sequence[str], token: str) -> None:
        """Undo ``take``'s hits named ``token`` (the action they paid for did not happen)."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # key -> (time, token) of each recent hit, oldest first
        self._hits: dict[str, deque[tuple[float, str]]] = {}

    def _live(self, key: str, window: float) -> deque[tuple[float, str]]:
        hits = self._hits.setdefault(key, deque())
        horizon = self._clock.monotonic() - window
        while hits and hits[0][0] <= horizon:
            hits.popleft()
        return hits

    async def retry_after(self, key: str, limit: int, window: float) -> float:
        hits = self._live(key, window)
        if not hits:
            self._hits.pop(key, None)
        if len(hits) < limit:
            return 0.0
        return hits[-limit][0] + window - self._clock.monotonic()

    async def hit(self, key: str, window: float) -> None:
        self._live(key, window).append((self._clock.monotonic(), ""))

    async def take(self, limits: Sequence[Limit], token: str) -> Refused | None:
        for index, limit in enumerate(limits):
            wait = await self.retry_after(limit.key, limit.limit, limit.window)
            if wait > 0:
                return Refused(index, wait)
        now = self._clock.monotonic()
        for limit in limits:
            self._live(limit.key, limit.window).append((now, token))
        return None

    async def take_many(self, requests: Sequence[Take]) -> list[Refused | None]:
        return [await self.take(r.limits, r.token) for r in requests]

    async def give_back(self, keys: Sequence[str], token: str) -> None:
        for key in keys:
            hits = self._hits.get(key)
            if hits is not None:
                self._hits[key] = deque(h for h in hits if h[1] != token)

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


# For each request in turn: every one of its limits checked (as above), then, when all have
# room, every one hit, in one script: the Redis server's clock (TIME in a script that writes is
# fine with effects replication, the default since Redis 5). A batch of requests is one round
# trip, and a request sees the hits of those before it.
# KEYS: every request's limits' keys, in order; ARGV: for each request its number of limits, its
# token, then limit and window of each. Returns {refused limit (1-based) or 0, wait} for each
# request.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
local k, a = 0, 1
while a <= #ARGV do
  local n, token = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 2
  local refused, wait = 0, '0'
  for i = 1, n do
    local key = KEYS[k + i]
    local limit, window = tonumber(ARGV[a + 2 * i - 2]), tonumber(ARGV[a + 2 * i - 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      refused, wait = i, tostring(tonumber(oldest[2]) + window - now)
      break
    end
  end
  if refused == 0 then
    for i = 1, n do
      redis.call('ZADD', KEYS[k + i], now, token)
      redis.call('EXPIRE', KEYS[k + i], math.floor(tonumber(ARGV[a + 2 * i - 1])) + 1)
    end
  end
  out[#out + 1] = refused
  out[#out + 1] = wait
  k, a = k + n, a + 2 * n
end
return out
"""


_TAKE_BYTES = _TAKE.encode()


class RedisRateLimiter:
    """A sorted set per key, scored by the Redis server's clock so hubs' skew does not matter."""

    def __init__(self, redis: Redis, prefix: str, fast: FastRedis | None = None) -> None:
        """``fast``: the hub's lean connection, for ``take_many``; redis-py's otherwise."""
        self._redis = redis
        self._fast = fast
        self._prefix = f"{prefix}:rl:"
        self._retry_after = redis.register_script(_RETRY_AFTER)
        self._take = redis.register_script(_TAKE)

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

    async def take(self, limits: Sequence[Limit], token: str) -> Refused | None:
        return (await self.take_many([Take(limits, token)]))[0]

    async def take_many(self, requests: Sequence[Take]) -> list[Refused | None]:
        if not requests:
            return []
        keys: list[str] = []
        args: list[str | int | float] = []
        for request in requests:
            args += [len(request.limits), request.token]
            for limit in request.limits:
                keys.append(self._prefix + limit.key)
                args += [limit.limit, limit.window]
        if self._fast is not None:
            out = await self._fast.evalsha(_TAKE_BYTES, keys, args)
        else:
            out = await self._take(keys=keys, args=args)
        return [
            None if int(index) == 0 else Refused(int(index) - 1, max(0.0, float(wait)))
            for index, wait in zip(out[0::2], out[1::2], strict=True)
        ]

    async def give_back(self, keys: Sequence[str], token: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(self._prefix + key, token)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
