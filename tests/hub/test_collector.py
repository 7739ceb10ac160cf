"""The gateway's garbage-collector policy (hub/realtime/collector.py): survivors of a full
collection are frozen while the hub holds many sockets, and thawed again once enough of them
closed, so that the cycles left among them are reclaimed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator

import pytest

from hub.realtime.collector import FREEZE_FROM, THAW_CLOSED, Collector


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    policy = Collector()
    task = asyncio.create_task(policy.run())
    await asyncio.sleep(0)  # installed
    try:
        yield policy
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert gc.get_freeze_count() == 0  # stopping thaws


async def test_few_sockets_freeze_nothing(collector: Collector) -> None:
    for _ in range(FREEZE_FROM - 1):
        collector.opened()
    gc.collect()
    assert gc.get_freeze_count() == 0


async def test_survivors_are_frozen_and_thawed_once_enough_sockets_closed(
    collector: Collector,
) -> None:
    for _ in range(FREEZE_FROM + THAW_CLOSED):
        collector.opened()
    kept = [Cycle()]
    gc.collect()
    assert gc.get_freeze_count() > 0
    # A cycle that dies while frozen stays until the thaw (the price of not walking it).
    alive = weakref.ref(kept.pop())
    gc.collect()
    assert alive() is not None
    for _ in range(THAW_CLOSED - 1):
        collector.closed()
    assert gc.get_freeze_count() > 0
    collector.closed()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None


async def test_many_sockets_collect_young_on_a_clock_and_freeze_middle_survivors(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many sockets the young generations are collected on a clock, not only when
    allocations outnumber deallocations (a hub replacing each socket's waiters as fast as it
    makes new ones would otherwise let its young generation grow to tens of thousands of
    objects), and what survives the middle generation is frozen without any full collection."""
    import hub.realtime.collector as module

    monkeypatch.setattr(module, "YOUNG_EVERY", 0.005)
    # Per collection of the middle generation: whether anything was frozen right after it (the
    # policy's callback, installed first, runs before this one).
    frozen_after_middle: list[bool] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 1:
            frozen_after_middle.append(gc.get_freeze_count() > 0)

    gc.callbacks.append(seen)
    try:
        for _ in range(FREEZE_FROM):
            collector.opened()
        kept = [Cycle() for _ in range(10)]
        deadline = asyncio.get_running_loop().time() + 10
        while gc.get_freeze_count() == 0:
            assert asyncio.get_running_loop().time() < deadline, "nothing was frozen"
            await asyncio.sleep(0.005)
    finally:
        gc.callbacks.remove(seen)
    assert any(frozen_after_middle)  # frozen after the middle generation, no full walk needed
    assert len(kept) == 10
