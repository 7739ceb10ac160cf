"""The garbage collector of a hub holding thousands of sockets.

Each open WebSocket is a few hundred tracked objects, so a hub with 5,000 of them holds well over
a million, and every full collection walks them all: measured on bench/fanout.py (10,000
sockets on two hubs), one full collection every ~15 s, each stopping every delivery for 0.4 to
2.3 s. Almost all of those objects live as long as their socket. So, while the hub holds many
sockets, whatever survives a full collection is frozen (``gc.freeze``: left out of later
collections, still freed by reference counting when it dies), and the next full collections
walk only what became long-lived since. Garbage cycles among frozen objects (a closed socket's,
say) are reclaimed once enough sockets closed since the last freeze, or after ``THAW_AFTER``
seconds: then everything is thawed, and the next full collection walks it all once and freezes
the survivors again.

The young generations need help too. CPython collects generation 0 when allocations outnumber
deallocations by 700, and a hub replaces each socket's waiters (the receive coroutine, its
future, the heartbeat's timer) whenever the socket reads a frame: new objects as fast as old
ones die, so no collection comes while the young list grows to 35,000-60,000 objects, and then
one walks them all (10-60 ms measured on bench/fanout.py, on both hubs at once). So while the
hub holds many sockets, generation 0 is collected every ``YOUNG_EVERY`` seconds and generation 1
every ``MIDDLE_EVERY``-th time, and what survives generation 1 is frozen as well (a cycle that
dies after that waits for the next thaw, as a closed socket's does). Measured in one `rooms`
run: the longest young pause went to about 1 ms and the middle one's to 3-6 ms, with no full
collection in a minute of load; p99.9 of deliveries 24.9 ms against 40-41 ms before, p99
unchanged (11.3 ms: the tail there is the event loop's queueing, not the collector).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# Sockets held from which survivors of a full collection are frozen (tests never get there).
FREEZE_FROM = 1000
# Thaw once this many sockets closed since the first freeze, or this share of those open…
THAW_CLOSED = 1000
THAW_SHARE = 0.25
# …or this many seconds after the first freeze.
THAW_AFTER = 1800.0
# Seconds between two log lines of pauses (only when something was collected meanwhile).
REPORT_EVERY = 15.0
# While the hub holds FREEZE_FROM sockets or more: a young collection this often, and every
# MIDDLE_EVERY-th of them a collection of the middle generation, whose survivors are frozen.
YOUNG_EVERY = 0.1
MIDDLE_EVERY = 10


class Collector:
    """Freezes the survivors of full collections while ``open_sockets()`` is at least
    ``FREEZE_FROM``, thaws as above, and logs the collector's pauses per generation."""

    def __init__(self) -> None:
        self.open_sockets = 0
        self._closed = 0  # sockets closed since the first freeze
        self._frozen_at: float | None = None
        self._started = 0.0
        self._count = [0, 0, 0]
        self._total = [0.0, 0.0, 0.0]
        self._longest = [0.0, 0.0, 0.0]

    def opened(self) -> None:
        self.open_sockets += 1

    def closed(self) -> None:
        self.open_sockets -= 1
        if self._frozen_at is None:
            return
        self._closed += 1
        if self._closed >= max(THAW_CLOSED, THAW_SHARE * self.open_sockets):
            self.thaw()

    def thaw(self) -> None:
        """Everything frozen goes back to the oldest generation (the next full collection
        walks it, reclaims the cycles among it, and freezes the survivors again)."""
        if self._frozen_at is None:
            return
        gc.unfreeze()
        self._frozen_at = None
        self._closed = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        generation = info["generation"]
        self._count[generation] += 1
        self._total[generation] += spent
        self._longest[generation] = max(self._longest[generation], spent)
        if generation >= 1 and self.open_sockets >= FREEZE_FROM:
            # Right after a collection of the middle or oldest generation the young ones are
            # empty and what survived is in the oldest: freeze it, so that no later collection
            # walks it again.
            gc.freeze()
            if self._frozen_at is None:
                self._frozen_at = time.monotonic()

    async def run(self) -> None:
        """Until cancelled: the policy installed, pauses logged every ``REPORT_EVERY`` s."""
        gc.callbacks.append(self._callback)
        ticker = asyncio.get_running_loop().create_task(self._tick(), name="gc-ticker")
        try:
            while True:
                await asyncio.sleep(REPORT_EVERY)
                if self._frozen_at is not None and time.monotonic() - self._frozen_at > THAW_AFTER:
                    self.thaw()
                self.report()
        finally:
            ticker.cancel()
            gc.callbacks.remove(self._callback)
            self.thaw()

    async def _tick(self) -> None:
        """Young collections on a clock while the hub holds many sockets (module docstring)."""
        ticks = 0
        while True:
            await asyncio.sleep(YOUNG_EVERY)
            if self.open_sockets >= FREEZE_FROM:
                ticks += 1
                gc.collect(1 if ticks % MIDDLE_EVERY == 0 else 0)

    def report(self) -> None:
        if not any(self._count):
            return
        log.info(
            "gc pauses",
            extra={
                "gc_collections": list(self._count),
                "gc_total_ms": [round(t * 1000, 1) for t in self._total],
                "gc_longest_ms": [round(t * 1000, 1) for t in self._longest],
                "sockets": self.open_sockets,
            },
        )
        self._count = [0, 0, 0]
        self._total = [0.0, 0.0, 0.0]
        self._longest = [0.0, 0.0, 0.0]
