"""The transcode job queue: BullMQ over Redis when configured (interoperable with the Node
BullMQ tools), an in-process queue on the embedded default. Both retry a failing job with
exponential backoff and give up after the configured number of attempts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

QUEUE_NAME = "cohort-transcode"

JobKind = Literal["video", "part", "audio", "stitch"]


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work on a video: the whole job (which may fan out), one part of a long
    video, its audio, or the stitching of the parts."""

    video_id: str
    kind: JobKind = "video"
    part: int = 0

    @property
    def key(self) -> str:
        return f"{self.video_id}:{self.kind}:{self.part}"

    def as_data(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "kind": self.kind, "part": self.part}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Job:
        return cls(str(data["video_id"]), data.get("kind", "video"), int(data.get("part", 0)))


# (job, attempt number starting at 1)
JobHandler = Callable[[Job, int], Awaitable[None]]
# (job, reason): called once when a job has failed for good
FailureHandler = Callable[[Job, str], Awaitable[None]]


class PermanentJobError(Exception):
    """Retrying cannot help (bad input): fail the job now."""


class JobInterrupted(Exception):
    """The worker is shutting down; the job must run again later, elsewhere or after a
    restart."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: backoff, doubling each time."""
        return float(self.backoff_seconds * 2 ** (attempt - 1))


class JobQueue(Protocol):
    async def enqueue(self, job: Job) -> None: ...

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
        self._queue: asyncio.Queue[tuple[Job, int]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._queued: set[str] = set()

    async def enqueue(self, job: Job) -> None:
        if job.key in self._queued:
            return
        self._queued.add(job.key)
        await self._queue.put((job, 1))

    async def start_workers(
        self, handler: JobHandler, on_failure: FailureHandler, concurrency: int
    ) -> None:
        if self._tasks:
            raise RuntimeError("workers already started")
        for n in range(concurrency):
            task = asyncio.create_task(self._work(handler, on_failure), name=f"transcode-{n}")
            self._tasks.add(task)

    async def _work(self, handler: JobHandler, on_failure: FailureHandler) -> None:
        me = asyncio.current_task()
        assert me is not None
        while True:
            job, attempt = await self._queue.get()
            self._queued.discard(job.key)
            self._busy.add(me)
            try:
                await handler(job, attempt)
            except asyncio.CancelledError:
                raise
            except JobInterrupted:
                # Not durable here: the video is picked up again when the process restarts.
                return
            except PermanentJobError as exc:
                await on_failure(job, str(exc))
            except Exception as exc:
                if attempt >= self._policy.attempts:
                    log.warning("job failed for good", extra={"job": job.key})
                    await on_failure(job, _reason(exc))
                else:
                    log.warning(
                        "job failed; retrying",
                        extra={"job": job.key, "attempt": attempt, "error": str(exc)},
                    )
                    self._retry_later(job, attempt + 1, self._policy.delay(attempt))
            finally:
                self._busy.discard(me)

    def _retry_later(self, job: Job, attempt: int, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            self._queued.add(job.key)
            await self._queue.put((job, attempt))

        task = asyncio.create_task(later(), name=f"retry-{job.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float = 30.0) -> None:
        """Stop: idle workers at once; busy ones get ``grace`` seconds to wind down (the
        owner interrupts their jobs first), so no job is cut off mid-write."""
        for task in self._tasks - self._busy:
            task.cancel()
        busy = list(self._busy)
        if busy:
            _done, pending = await asyncio.wait(busy, timeout=grace)
            for task in pending:
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

    async def enqueue(self, job: Job) -> None:
        await self._queue.add(
            job.kind,
            job.as_data(),
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
        from bullmq import DelayedError, UnrecoverableError, Worker

        policy = self._policy

        async def process(bull_job: Any, token: str) -> None:
            job = Job.from_data(bull_job.data)
            attempt = int(bull_job.attemptsMade) + 1
            try:
                await handler(job, attempt)
            except JobInterrupted:
                # Back to the queue without spending an attempt: this worker is stopping.
                await bull_job.moveToDelayed(int(time.time() * 1000) + 1000, token)
                raise DelayedError() from None
            except PermanentJobError as exc:
                await on_failure(job, str(exc))
                raise UnrecoverableError(str(exc)) from None
            except Exception as exc:
                if attempt >= policy.attempts:
                    await on_failure(job, _reason(exc))
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
