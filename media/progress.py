"""Live transcode progress: in memory on the embedded default, in Redis across processes (the
worker writes it, any hub reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

PROGRESS_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class Progress:
    percent: float
    stage: str


class ProgressStore(Protocol):
    async def set(self, video_id: str, progress: Progress) -> None: ...

    async def get(self, video_id: str) -> Progress | None: ...

    async def clear(self, video_id: str) -> None: ...


class MemoryProgressStore:
    def __init__(self) -> None:
        self._items: dict[str, Progress] = {}

    async def set(self, video_id: str, progress: Progress) -> None:
        self._items[video_id] = progress

    async def get(self, video_id: str) -> Progress | None:
        return self._items.get(video_id)

    async def clear(self, video_id: str) -> None:
        self._items.pop(video_id, None)


class RedisProgressStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:video-progress:"

    async def set(self, video_id: str, progress: Progress) -> None:
        key = self._prefix + video_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"percent": progress.percent, "stage": progress.stage})
            pipe.expire(key, PROGRESS_TTL)
            await pipe.execute()

    async def get(self, video_id: str) -> Progress | None:
        raw = await self._redis.hgetall(self._prefix + video_id)
        if not raw:
            return None
        stage = raw[b"stage"]
        return Progress(
            float(raw[b"percent"]), stage.decode() if isinstance(stage, bytes) else stage
        )

    async def clear(self, video_id: str) -> None:
        await self._redis.delete(self._prefix + video_id)
