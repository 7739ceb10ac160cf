"""Fixtures of the hub's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client of the shared test Redis."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
