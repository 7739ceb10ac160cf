"""The broker: in memory, and over Redis between two hub apps."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.app import create_app
from hub.broker import MemoryBroker, RedisBroker
from hub.clock import FakeClock
from hub.services import HUB, REDIS_CONNECTIONS, redis_client
from tests.conftest import make_settings
from tests.hub.test_realtime import PrivateRedis, private_redis

__all__ = ["private_redis"]  # a fixture

pytestmark = pytest.mark.timeout(60)


async def test_memory_broker_delivers_to_subscribers_of_the_channel() -> None:
    broker = MemoryBroker()
    a = await broker.subscribe("chat:1", "chat:2")
    b = await broker.subscribe("chat:2")
    await broker.publish("chat:1", b"one")
    await broker.publish("chat:2", b"two")
    await broker.publish("chat:3", b"nobody")
    assert [(await a.get()).data, (await a.get()).data] == [b"one", b"two"]
    assert (await b.get()).data == b"two"
    await a.remove("chat:2")
    await broker.publish("chat:2", b"three")
    assert (await b.get()).data == b"three"
    await a.close()
    await b.close()
    with pytest.raises(StopAsyncIteration):
        await a.get()


async def test_slow_subscriber_drops_instead_of_blocking() -> None:
    broker = MemoryBroker()
    slow = await broker.subscribe("room", queue_size=3)
    fast = await broker.subscribe("room")
    for i in range(10):
        await broker.publish("room", str(i).encode())
    assert slow.dropped == 7
    assert [(await fast.get()).data for _ in range(10)] == [str(i).encode() for i in range(10)]
    assert [(await slow.get()).data for _ in range(3)] == [b"0", b"1", b"2"]
    await broker.close()


@pytest.mark.redis
async def test_redis_broker_carries_messages_between_two_hubs(
    aiohttp_client: Any, tmp_path: Path, redis_url: str, clock: FakeClock
) -> None:
    prefix = f"cohort-test-{uuid.uuid4().hex}"
    hubs = []
    for name in ("a", "b"):
        settings = make_settings(
            tmp_path / name,
            f"sqlite+aiosqlite:///{tmp_path / name}.db",
            redis_url=redis_url,
            redis_prefix=prefix,
        )
        client = await aiohttp_client(create_app(settings, clock=clock))
        hubs.append(client.app[HUB])
        assert (await client.get("/readyz")).status == 200
    hub_a, hub_b = hubs

    on_b = await hub_b.broker.subscribe("user:7")
    also_on_b = await hub_b.broker.subscribe("user:7", "user:8")
    on_a = await hub_a.broker.subscribe("user:8")
    await hub_a.broker.publish("user:7", b'{"hello":"from a"}')
    await hub_b.broker.publish("user:8", b"from b")

    async with asyncio.timeout(5):
        message = await on_b.get()
        assert (message.channel, message.data) == ("user:7", b'{"hello":"from a"}')
        assert (await also_on_b.get()).data == b'{"hello":"from a"}'
        assert (await also_on_b.get()).data == b"from b"
        assert (await on_a.get()).data == b"from b"

    # Another namespace on the same Redis hears nothing.
    other = make_settings(
        tmp_path / "c", f"sqlite+aiosqlite:///{tmp_path}/c.db", redis_url=redis_url
    )
    stranger = (await aiohttp_client(create_app(other, clock=clock))).app[HUB]
    eavesdrop = await stranger.broker.subscribe("user:7")
    await hub_a.broker.publish("user:7", b"second")
    # Redis delivers in publish order, so a marker published afterwards in the stranger's own
    # namespace arrives first only if "second" never reached it.
    await stranger.broker.publish("user:7", b"marker")
    async with asyncio.timeout(5):
        assert (await on_b.get()).data == b"second"
        assert (await eavesdrop.get()).data == b"marker"

    # After the last local subscriber leaves, the hub stops listening to that channel.
    await on_b.close()
    await also_on_b.close()
    await hub_a.broker.publish("user:7", b"unheard")
    await hub_a.broker.publish("user:8", b"heard")
    async with asyncio.timeout(5):
        assert (await on_a.get()).data == b"heard"


async def test_a_burst_beyond_the_redis_pool_waits_for_connections(redis_url: str) -> None:
    """Thousands of sockets closing at once each leave their channels' presence: with more
    commands in flight than the pool has connections, they wait for one instead of failing
    with "Too many connections"."""
    redis = redis_client(redis_url)
    key = f"test:burst:{uuid.uuid4().hex}"
    try:
        await asyncio.gather(*(redis.sadd(key, str(n)) for n in range(10 * REDIS_CONNECTIONS)))
        assert await redis.scard(key) == 10 * REDIS_CONNECTIONS
    finally:
        await redis.delete(key)
        await redis.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("lean", [True, False], ids=["lean", "redis-py"])
async def test_the_reconnect_hooks_run_even_when_redis_comes_back_quickly(
    private_redis: PrivateRedis, lean: bool
) -> None:
    """A Redis restarted quickly may never be reported as lost (redis-py reconnects pub/sub by
    itself, within its retries), yet what was published meanwhile is gone: the hooks must run.
    Both subscribers: the lean one, and redis-py's where there is no lean one (TLS)."""
    client = redis_client(private_redis.url)
    broker = RedisBroker(client, f"t{uuid.uuid4().hex[:6]}", lean=lean)
    back = asyncio.Event()

    async def hook() -> None:
        back.set()

    broker.on_reconnect.append(hook)
    await broker.start()
    sub = await broker.subscribe("chat:1")
    try:
        await broker.publish("chat:1", b"before")
        assert (await asyncio.wait_for(sub.get(), 5)).data == b"before"
        await private_redis.kill()
        await private_redis.start()
        await asyncio.wait_for(back.wait(), 10)
        await broker.publish("chat:1", b"after")  # and the channel is subscribed again
        assert (await asyncio.wait_for(sub.get(), 5)).data == b"after"
    finally:
        await sub.close()
        await broker.close()
        await client.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("lean", [True, False], ids=["lean", "redis-py"])
async def test_posted_messages_arrive_in_order_with_the_published_ones(
    redis_url: str, lean: bool
) -> None:
    """``post_many`` does not wait for Redis's answer, yet what a hub sends keeps its order:
    the batches it posts and the messages it publishes go down one connection."""
    client = redis_client(redis_url)
    broker = RedisBroker(client, f"t{uuid.uuid4().hex[:6]}", lean=lean)
    await broker.start()
    sub = await broker.subscribe("batch", "chat:1")
    try:
        for n in range(50):
            if n % 2:
                await broker.post_many([("batch", b"%d" % n)])
            else:
                await broker.publish("chat:1", b"%d" % n)
        async with asyncio.timeout(5):
            heard = [int((await sub.get()).data) for _ in range(50)]
        assert heard == list(range(50))
    finally:
        await sub.close()
        await broker.close()
        await client.aclose()
