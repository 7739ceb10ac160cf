"""hub/batching.Coalescer: calls that arrive while a batch is handled go together into the next
one, and a caller that goes away takes nothing with it."""

from __future__ import annotations

import asyncio

import pytest

from hub.batching import Coalescer


async def test_a_cancelled_caller_leaves_its_batch_and_item_handled() -> None:
    handled: list[list[int]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(items: list[int]) -> list[int]:
        handled.append(items)
        started.set()
        await release.wait()
        return [i * 10 for i in items]

    batches: Coalescer[int, int] = Coalescer(handle, max_batch=10, name="test")
    first = asyncio.create_task(batches.submit(1))
    await asyncio.wait_for(started.wait(), 5)  # the first batch is under way
    others = [asyncio.create_task(batches.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    others[1].cancel()  # its socket closed while it waited
    release.set()
    assert await first == 10
    assert await others[0] == 20
    assert await others[2] == 40
    assert others[1].cancelled()
    await batches.idle()
    assert handled == [[1], [2, 3, 4]]  # the cancelled caller's item was handled all the same


async def test_two_workers_handle_two_batches_at_once_and_the_rest_gather() -> None:
    """With two workers the second call of a busy moment is handled beside the first; the calls
    that arrive while both are busy go together into the next batch, and each learns its own
    outcome."""
    handled: list[list[int]] = []
    in_handler = [asyncio.Event(), asyncio.Event()]
    release = asyncio.Event()

    async def handle(items: list[int]) -> list[int | BaseException]:
        handled.append(items)
        if len(handled) <= 2:
            in_handler[len(handled) - 1].set()
        await release.wait()
        return [ValueError(i) if i == 4 else i * 10 for i in items]

    batches: Coalescer[int, int] = Coalescer(handle, max_batch=10, name="test", workers=2)
    first = asyncio.create_task(batches.submit(1))
    await asyncio.wait_for(in_handler[0].wait(), 5)
    second = asyncio.create_task(batches.submit(2))
    await asyncio.wait_for(in_handler[1].wait(), 5)  # both workers are in their handler
    later = [asyncio.create_task(batches.submit(i)) for i in (3, 4, 5)]
    await asyncio.sleep(0)
    assert handled == [[1], [2]]
    release.set()
    assert [await first, await second] == [10, 20]
    assert await later[0] == 30
    with pytest.raises(ValueError, match="4"):
        await later[1]
    assert await later[2] == 50
    await batches.idle()
    assert sorted(map(sorted, handled)) == [[1], [2], [3, 4, 5]]


async def test_closing_waits_for_every_worker_and_refuses_new_calls() -> None:
    release = asyncio.Event()

    async def handle(items: list[int]) -> list[int]:
        await release.wait()
        return items

    batches: Coalescer[int, int] = Coalescer(handle, max_batch=10, name="test", workers=2)
    calls = [asyncio.create_task(batches.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(batches.close())
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await closing
    assert [await c for c in calls] == [1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        await batches.submit(3)
