"""hub/batching.Coalescer: calls that arrive while a batch is handled go together into the next
one, and a caller that goes away takes nothing with it."""

from __future__ import annotations

import asyncio

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
