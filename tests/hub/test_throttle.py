"""Login throttling per account and per client address, in memory and in Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from hub.app import create_app
from hub.clock import FakeClock
from hub.ratelimit import Limit, MemoryRateLimiter, RateLimiter, RedisRateLimiter, Take
from tests.conftest import make_settings, sign_up

Client = TestClient[Any, Any]


async def login(client: Client, email: str, password: str, ip: str = "203.0.113.7") -> Any:
    return await client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
    )


@pytest.fixture
async def proxied(
    aiohttp_client: Any, tmp_path: Any, database_url: str, clock: FakeClock, fast_hashing: Any
) -> Client:
    """A hub behind a proxy, so tests can speak from several client addresses."""
    settings = make_settings(
        tmp_path, database_url, trust_forwarded_for=True, login_max_failures_per_address=8
    )
    return await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))  # type: ignore[no-any-return]


async def test_account_is_throttled_after_five_failures(proxied: Client, clock: FakeClock) -> None:
    ana = await sign_up(proxied, "Ana", login=False)
    for i in range(5):
        # From different addresses: the account limit holds on its own.
        resp = await login(proxied, ana.email, "wrong password", ip=f"198.51.100.{i}")
        assert resp.status == 401
    blocked = await login(proxied, ana.email, ana.password, ip="198.51.100.99")
    assert blocked.status == 429
    retry_after = int(blocked.headers["Retry-After"])
    assert 0 < retry_after <= 900
    problem = await blocked.json()
    assert problem["code"] == "rate_limited"
    assert problem["retry_after"] == retry_after

    clock.advance(retry_after)
    assert (await login(proxied, ana.email, ana.password)).status == 200


async def test_unknown_accounts_are_throttled_the_same(proxied: Client) -> None:
    ana = await sign_up(proxied, "Ana", login=False)
    for email in (ana.email, "ghost@example.com"):
        statuses = [
            (await login(proxied, email, "wrong password", ip=f"192.0.2.{i}")).status
            for i in range(6)
        ]
        # Existence is not revealed: the same sequence for a real and an unknown account.
        assert statuses == [401] * 5 + [429]


async def test_success_resets_the_account_counter(proxied: Client) -> None:
    ana = await sign_up(proxied, "Ana", login=False)
    for _ in range(4):
        await login(proxied, ana.email, "wrong password")
    assert (await login(proxied, ana.email, ana.password)).status == 200
    for _ in range(4):
        assert (await login(proxied, ana.email, "wrong password")).status == 401


async def test_address_is_throttled_across_accounts(proxied: Client, clock: FakeClock) -> None:
    for i in range(8):
        assert (await login(proxied, f"user{i}@example.com", "wrong password")).status == 401
    resp = await login(proxied, "someone-else@example.com", "any password")
    assert resp.status == 429
    # Another address is unaffected.
    other = await login(proxied, "someone-else@example.com", "any password", ip="192.0.2.200")
    assert other.status == 401


@pytest.mark.redis
async def test_redis_limiter_is_shared_between_hubs(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    prefix = f"cohort-test-{uuid.uuid4().hex}"
    try:
        hub_a, hub_b = RedisRateLimiter(redis, prefix), RedisRateLimiter(redis, prefix)
        for _ in range(3):
            await hub_a.hit("login:account:x", 60)
        assert await hub_b.retry_after("login:account:x", 4, 60) == 0
        await hub_b.hit("login:account:x", 60)
        wait = await hub_a.retry_after("login:account:x", 4, 60)
        assert 59 < wait <= 60
        await hub_b.reset("login:account:x")
        assert await hub_a.retry_after("login:account:x", 4, 60) == 0
        # Short windows expire on the server's clock.
        await hub_a.hit("k", 0.2)
        assert await hub_a.retry_after("k", 1, 0.2) > 0
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def _take_and_give_back(limiter: RateLimiter) -> None:
    """``take`` checks every limit and hits them all, or none; ``give_back`` undoes a take."""
    limits = [Limit("msg:x", 3, 60), Limit("slow:x", 1, 30)]
    assert await limiter.take(limits, "t1") is None
    refused = await limiter.take(limits, "t2")
    assert refused is not None
    assert refused.index == 1  # slow mode: one per 30 s
    assert 29 < refused.retry_after <= 30
    # The refused take recorded nothing: the message budget still has two.
    assert await limiter.take(limits[:1], "t3") is None
    assert await limiter.take(limits[:1], "t4") is None
    refused = await limiter.take(limits[:1], "t5")
    assert refused is not None
    assert refused.index == 0
    await limiter.give_back(["msg:x"], "t4")
    assert await limiter.take(limits[:1], "t6") is None


async def _take_many(limiter: RateLimiter) -> None:
    """``take_many`` is ``take`` for each request in order: a request sees the hits of the ones
    before it in the same batch, and a refused one records nothing."""
    budget = Limit("msg:y", 2, 60)
    slow = Limit("slow:y", 1, 30)
    got = await limiter.take_many(
        [
            Take([budget], "a"),
            Take([budget, slow], "b"),  # the budget's second hit, slow mode's first
            Take([budget], "c"),  # the budget is spent
            Take([Limit("msg:z", 2, 60)], "d"),  # someone else's budget
            Take([slow], "e"),
        ]
    )
    assert [r is None for r in got] == [True, True, False, True, False]
    refused = got[2]
    assert refused is not None
    assert refused.index == 0
    assert 59 < refused.retry_after <= 60
    refused = got[4]
    assert refused is not None
    assert refused.index == 0
    assert 29 < refused.retry_after <= 30
    assert await limiter.take_many([]) == []
    await limiter.give_back(["msg:y"], "a")
    assert await limiter.take_many([Take([budget], "f")]) == [None]


async def test_memory_limiter_takes_and_gives_back(clock: FakeClock) -> None:
    await _take_and_give_back(MemoryRateLimiter(clock))
    await _take_many(MemoryRateLimiter(clock))


@pytest.mark.redis
async def test_redis_limiter_takes_and_gives_back(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    prefix = f"cohort-test-{uuid.uuid4().hex}"
    try:
        await _take_and_give_back(RedisRateLimiter(redis, prefix))
        await _take_many(RedisRateLimiter(redis, prefix))
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
