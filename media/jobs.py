"""The transcode job queue: BullMQ over Redis when configured (interoperable with the Node
BullMQ tools), an in-process queue on the embedded default. Both retry a failing job with
exponential backoff and give up after the configured number of attempts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

QUEUE_NAME = "cohort-transcode"

# (video id, attempt number starting at 1)
JobHandler = Callable[[str, int], Awaitable[None]]
# (video id, reason): called once when a job has failed for good
FailureHandler = Callable[[str, str], Awaitable[None]]


class PermanentJobError(Exception):
    """Retrying cannot help (bad input): fail the job now."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: backoff, doubling each time."""
        return float(self.backoff_seconds * 2 ** (attempt - 1))


class JobQueue(Protocol):
    async def enqueue(self, video_id: str) -> None: ...

    async def start_workers(
        self, handler: JobHandler, on_failure: FailureHandler, concurrency: int
    ) -> None:
        """Start consuming jobs in this process until ``close``."""
        ...

    async def close(self) -> None: ...


class InProcessJobQueue:
    """An asyncio queue; what it held is not durable, so the media manager re-enqueues
    unfinished videos from the database when the process starts."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: set[str] = set()

    async def enqueue(self, video_id: str) -> None:
        if video_id in self._queued:
            return
        self._queued.add(video_id)
        await self._queue.put((video_id, 1))

    async def start_workers(
        self, handler: JobHandler, on_failure: FailureHandler, concurrency: int
    ) -> None:
        if self._tasks:
            raise RuntimeError("workers already started")
        for n in range(concurrency):
            task = asyncio.create_task(self._work(handler, on_failure), name=f"transcode-{n}")
            self._tasks.add(task)

    async def _work(self, handler: JobHandler, on_failure: FailureHandler) -> None:
        while True:
            video_id, attempt = await self._queue.get()
            self._queued.discard(video_id)
            try:
                await handler(video_id, attempt)
            except asyncio.CancelledError:
                raise
            except PermanentJobError as exc:
                await on_failure(video_id, str(exc))
            except Exception as exc:
                if attempt >= self._policy.attempts:
                    log.warning("job failed for good", extra={"video_id": video_id})
                    await on_failure(video_id, _reason(exc))
                else:
                    log.warning(
                        "job failed; retrying",
                        extra={"video_id": video_id, "attempt": attempt, "error": str(exc)},
                    )
                    self._retry_later(video_id, attempt + 1, self._policy.delay(attempt))

    def _retry_later(self, video_id: str, attempt: int, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            self._queued.add(video_id)
            await self._queue.put((video_id, attempt))

        task = asyncio.create_task(later(), name=f"retry-{video_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


class BullMQJobQueue:
    """BullMQ: jobs survive any process; a worker that dies mid-job stops renewing its lock
    and the job goes back to the queue for another worker (BullMQ's stalled-job check)."""

    def __init__(
        self, redis_url: str, prefix: str, policy: RetryPolicy, lock_seconds: float
    ) -> None:
        from bullmq import Queue

        self._connection = redis_url
        self._prefix = f"{prefix}:bull"
        self._policy = policy
        self._lock_ms = int(lock_seconds * 1000)
        self._queue = Queue(QUEUE_NAME, {"connection": redis_url, "prefix": self._prefix})
        self._worker: Any = None

    async def enqueue(self, video_id: str) -> None:
        await self._queue.add(
            "transcode",
            {"video_id": video_id},
            {
                "attempts": self._policy.attempts,
                "backoff": {
                    "type": "exponential",
                    "delay": int(self._policy.backoff_seconds * 1000),
                },
                "removeOnComplete": True,
                "removeOnFail": 1000,
            },
        )

    async def start_workers(
        self, handler: JobHandler, on_failure: FailureHandler, concurrency: int
    ) -> None:
        from bullmq import UnrecoverableError, Worker

        policy = self._policy

        async def process(job: Any, token: str) -> None:
            video_id = str(job.data["video_id"])
            attempt = int(job.attemptsMade) + 1
            try:
                await handler(video_id, attempt)
            except PermanentJobError as exc:
                await on_failure(video_id, str(exc))
                raise UnrecoverableError(str(exc)) from None
            except Exception as exc:
                if attempt >= policy.attempts:
                    await on_failure(video_id, _reason(exc))
                raise

        if self._worker is not None:
            raise RuntimeError("workers already started")
        self._worker = Worker(
            QUEUE_NAME,
            process,
            {
                "connection": self._connection,
                "prefix": self._prefix,
                "concurrency": concurrency,
                "lockDuration": self._lock_ms,
                "stalledInterval": max(1000, self._lock_ms // 2),
                "maxStalledCount": 2,
            },
        )

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.close()
            self._worker = None
        await self._queue.close()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"Processing failed: {text}"[:500]
