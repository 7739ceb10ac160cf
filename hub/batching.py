"""Coalescing: the calls that arrive while a batch is being handled go together into the next one.

The first call of a quiet moment is handled at once; only calls that arrive while a batch is
under way wait, and for no longer than that batch. Under load the batches grow by themselves,
so a round trip's cost per call falls as the rate rises (hub/realtime/commit.py stores durable
messages this way; rooms/chat.py admits chat messages this way).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Handles a batch: one outcome per item, in order (an exception fails that item alone).
Handler = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[T, R]):
    """One handler task while there is work; at most ``max_batch`` items per batch."""

    def __init__(
        self,
        handle: Handler[T, R],
        *,
        max_batch: int,
        name: str,
        workers: int = 1,
    ) -> None:
        """``workers`` batches may be handled at once (two: one in the database while the calls
        arriving meanwhile gather for the next)."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._handle = handle
        self._max_batch = max_batch
        self._name = name
        self._max_workers = workers
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: T) -> R:
        """``item``'s outcome once its batch was handled (raised if it is an exception). A
        caller that goes away (its socket closed) does not take the batch with it."""
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._workers) < self._max_workers:
            self._workers.add(loop.create_task(self._work(), name=self._name))
        # No shield: a caller cancelled meanwhile cancels only its own future, which the worker
        # skips (its item is handled with the batch all the same).
        return await future

    async def idle(self) -> None:
        """Returns once nothing is left to handle: every call submitted so far, and those that
        joined meanwhile, handled (at once when none is waiting)."""
        while self._workers:
            await asyncio.wait(set(self._workers))  # however they end

    async def close(self) -> None:
        """Finish what was submitted; refuse anything new."""
        self._closed = True
        if self._workers:  # none starts from now on
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(asyncio.wait(set(self._workers)))

    async def _work(self) -> None:
        try:
            while self._waiting:
                batch: list[tuple[T, asyncio.Future[R]]] = []
                try:
                    batch = self._waiting[: self._max_batch]
                    del self._waiting[: self._max_batch]
                    outcomes = await self._handle([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    if len(self._workers) == 1:  # nobody is left to handle what waits
                        for _, future in self._waiting:
                            future.cancel()
                        self._waiting.clear()
                    raise
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            # At once, with no await since the loop found nothing waiting: a call submitted
            # from now on starts a worker of its own.
            self._workers.discard(asyncio.current_task())
