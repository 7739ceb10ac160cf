"""Presence across hubs (``RedisPresence``): members count while their hub beats; a user online
through two hubs stays online when one of them lets go; a dead hub's members stop counting and
are removed; a Redis that lost its data gets each hub's entries back."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from hub.realtime.presence import MemoryPresence, RedisPresence

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]


@pytest.fixture
def prefix() -> str:
    return f"presence-test-{uuid.uuid4().hex[:8]}"


async def _keys(redis: Redis, prefix: str) -> list[str]:
    return sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}:*")])


async def test_a_user_online_through_two_hubs_leaves_once(redis: Redis, prefix: str) -> None:
    one = RedisPresence(redis, prefix, "one")
    two = RedisPresence(redis, prefix, "two")
    assert (await one.heartbeat()).lost  # first beat: nothing of this hub was stored yet
    await two.heartbeat()
    await one.join("room:a", 7)
    await two.join("room:a", 7)
    await two.join("room:a", 8)
    assert await one.online_many(["room:a", "room:b"]) == {"room:a": [7, 8], "room:b": []}
    # Hub one's last tab of user 7 closes: still online through hub two, nobody is told.
    assert await one.leave("room:a", 7, last_here=True) is True
    assert await two.online("room:a") == [7, 8]
    assert await two.leave("room:a", 7, last_here=False) is False
    assert await one.online("room:a") == [8]
    await two.leave("room:a", 8, last_here=True)
    await one.retire()
    await two.retire()
    # Nothing is left but the marks that each hub's entries were cleaned up (they expire).
    assert await _keys(redis, prefix) == [
        f"{prefix}:presence-forget:one",
        f"{prefix}:presence-forget:two",
    ]


async def test_a_dead_hubs_members_stop_counting_and_are_removed(redis: Redis, prefix: str) -> None:
    alive = RedisPresence(redis, prefix, "alive")
    dying = RedisPresence(redis, prefix, "dying", ttl=0.3)
    await alive.heartbeat()
    await dying.heartbeat()
    await alive.join("room:a", 1)
    for user in (2, 3):
        await dying.join("room:a", user)
    await dying.join("room:b", 2)
    assert await alive.online_many(["room:a", "room:b"]) == {"room:a": [1, 2, 3], "room:b": [2]}
    # Hub "dying" stops beating. Its members count until its last beat's time is up, then not.
    expires = await redis.zscore(f"{prefix}:presence-hubs", "dying")
    assert expires is not None
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.01)  # past its time, by its score
    assert await alive.online_many(["room:a", "room:b"]) == {"room:a": [1], "room:b": []}
    beat = await alive.heartbeat()
    assert (beat.lost, beat.dead) == (False, ["dying"])
    await alive.forget("dying")
    members = {m.decode() for m in await redis.zrange(f"{prefix}:online:room:a", 0, -1)}
    assert members == {"1:alive"}
    assert not await redis.exists(f"{prefix}:online:room:b", f"{prefix}:presence-hub:dying")
    assert (await alive.heartbeat()).dead == []
    # A hub that was only stalled finds itself lost at its next beat and writes its entries again.
    assert (await dying.heartbeat()).lost
    await dying.restore({"room:a": {2, 3}, "room:b": {2}})
    assert await alive.online_many(["room:a", "room:b"]) == {"room:a": [1, 2, 3], "room:b": [2]}
    await alive.retire()
    await dying.retire()


async def test_a_redis_that_lost_its_data_gets_the_entries_back(redis: Redis, prefix: str) -> None:
    hub = RedisPresence(redis, prefix, "hub")
    await hub.heartbeat()
    await hub.join("room:a", 5)
    assert not (await hub.heartbeat()).lost
    for key in await _keys(redis, prefix):  # what a restarted Redis (no persistence) has
        await redis.delete(key)
    assert await hub.online("room:a") == []
    assert (await hub.heartbeat()).lost
    await hub.restore({"room:a": {5}})
    assert await hub.online("room:a") == [5]
    await hub.retire()


async def test_memory_presence_has_one_hub() -> None:
    presence = MemoryPresence()
    await presence.join("room:a", 1)
    assert await presence.leave("room:a", 1, last_here=True) is False
    assert await presence.online("room:a") == []
    assert not (await presence.heartbeat()).lost
