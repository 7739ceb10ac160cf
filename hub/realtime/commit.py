"""Group commit of durable channel messages: the messages that arrive while a batch is being
written go together into the next one.

A message is stored (its sequence number taken from its channel's head, in the storing
transaction), then announced on the broker, then its publisher hears back: each of those holds
for every message of a batch exactly as for a message alone. What a batch shares is the write
(on PostgreSQL one statement for every channel's heads, messages and companion rows: one round
trip and one WAL flush) and one broker round trip. The first message of a quiet moment is
written at once; only messages that arrive while a write is under way wait, and for no longer
than that write. Under load the batches grow by themselves, so the cost per message falls as
the rate rises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from hub.realtime.store import MessageStore, Pending, Stored

log = logging.getLogger(__name__)

# Messages per transaction at most (a backlog is written in several).
MAX_BATCH = 256

Announce = Callable[[Sequence[Stored]], Awaitable[None]]


class GroupCommit:
    """Stores durable messages a batch at a time; one writer task while there is work."""

    def __init__(self, store: MessageStore, announce: Announce) -> None:
        self._store = store
        self._announce = announce
        self._waiting: list[tuple[Pending, asyncio.Future[Stored]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, message: Pending) -> Stored:
        """Store ``message`` and announce it; returns it once both are done.

        Raises whatever storing it raised (a failing message does not fail its batch-mates:
        a failed batch is retried one message at a time)."""
        if self._closed:
            raise RuntimeError("the gateway is closed")
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        # Retrieved even when the publisher is gone (see the shield below).
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((message, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_all(), name="group-commit"
            )
        # A publisher that goes away (its socket closed) does not take the batch with it.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Finish what was submitted; refuse anything new."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                try:
                    await self._write(batch)
                except asyncio.CancelledError:
                    for _, future in batch + self._waiting:
                        future.cancel()
                    self._waiting.clear()
                    raise
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[Pending, asyncio.Future[Stored]]]) -> None:
        try:
            stored = await self._store.store_many([m for m, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning(
                "a batch of durable messages failed; storing them one by one",
                extra={"messages": len(batch)},
                exc_info=True,
            )
            for one in batch:
                await self._write([one])
            return
        await self._announce(stored)
        for (_, future), message in zip(batch, stored, strict=True):
            _settle(future, message)


def _settle(future: asyncio.Future[Stored], outcome: Stored | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
