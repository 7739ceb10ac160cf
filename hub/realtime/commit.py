"""Group commit of durable channel messages: the messages that arrive while a batch is being
written go together into the next one (hub/batching.py).

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

import logging
from collections.abc import Awaitable, Callable, Sequence

from hub.batching import Coalescer
from hub.realtime.store import MessageStore, NotStored, Pending, Stored

log = logging.getLogger(__name__)

# Messages per transaction at most (a backlog is written in several).
MAX_BATCH = 256

Announce = Callable[[Sequence[Stored]], Awaitable[None]]


class GroupCommit:
    """Stores durable messages a batch at a time; one writer task while there is work."""

    def __init__(self, store: MessageStore, announce: Announce) -> None:
        self._store = store
        self._announce = announce
        self._batches: Coalescer[Pending, Stored] = Coalescer(
            self._write, max_batch=MAX_BATCH, name="group-commit"
        )

    async def submit(self, message: Pending) -> Stored:
        """Store ``message`` and announce it; returns it once both are done.

        Raises:
            NotStored: its guard refused it (nothing was written for it).
            Whatever storing it raised (a failing message does not fail its batch-mates: a
            failed batch is retried one message at a time)."""
        return await self._batches.submit(message)

    async def idle(self) -> None:
        """Returns once every message submitted so far was stored and announced (or failed)."""
        await self._batches.idle()

    async def close(self) -> None:
        """Finish what was submitted; refuse anything new."""
        await self._batches.close()

    async def _write(self, batch: list[Pending]) -> list[Stored | NotStored | BaseException]:
        try:
            stored = await self._store.store_many(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            log.warning(
                "a batch of durable messages failed; storing them one by one",
                extra={"messages": len(batch)},
                exc_info=True,
            )
            outcomes: list[Stored | NotStored | BaseException] = []
            for one in batch:
                outcomes += await self._write([one])
            return outcomes
        await self._announce([s for s in stored if isinstance(s, Stored)])
        return list(stored)
