"""The catalog's listing cache: what a cached page may miss, and for how long."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from catalog.models import Course
from catalog.search import ListingCache
from catalog.services import CATALOG
from hub.db import Database
from tests.catalog import test_learning
from tests.catalog.test_learning import course_with, search, text_lesson
from tests.conftest import Account

teacher = test_learning.teacher  # the fixture

KEY = (("python",), None, None, "relevance", 1, 20)


class Now:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


async def test_concurrent_misses_share_one_load_and_errors_are_not_kept() -> None:
    cache = ListingCache(ttl=5, now=Now())
    loads = 0
    release = asyncio.Event()

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await release.wait()
        return b"%d" % loads

    waiting = [asyncio.create_task(cache.get(KEY, load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [b"1"] * 5
    assert loads == 1

    async def broken() -> bytes:
        raise RuntimeError("database went away")

    other = (("sql",), None, None, "relevance", 1, 20)
    with pytest.raises(RuntimeError):
        await cache.get(other, broken)
    assert await cache.get(other, load) == b"2"  # the failure was not kept


async def test_a_page_expires_after_ttl_and_the_oldest_pages_go_first() -> None:
    now = Now()
    cache = ListingCache(ttl=5, max_entries=2, now=now)
    answers = iter(range(100))

    async def load() -> bytes:
        return b"%d" % next(answers)

    assert await cache.get(KEY, load) == b"0"
    now.value += 4.9
    assert await cache.get(KEY, load) == b"0"
    now.value += 0.2
    assert await cache.get(KEY, load) == b"1"
    for page in (2, 3):  # two more pages push the first out
        await cache.get((*KEY[:4], page, 20), load)
    assert await cache.get(KEY, load) == b"4"


async def test_writes_through_this_process_show_at_once_others_within_ttl(
    client: Any, app: web.Application, teacher: Account, database_url: str
) -> None:
    course, _ = await course_with(client, teacher, [text_lesson()], title="Python basics")
    assert (await search(client, q="python"))["items"][0]["enrollments"] == 0
    # Another hub process writes (its own engine): this one's page may be ttl seconds old.
    other = Database(database_url)
    try:
        async with other.transaction() as s:
            await s.execute(update(Course).where(Course.id == course).values(enrollment_count=7))
    finally:
        await other.dispose()
    assert (await search(client, q="python"))["items"][0]["enrollments"] == 0
    app[CATALOG].search.cache.clear()  # what ttl seconds do
    assert (await search(client, q="python"))["items"][0]["enrollments"] == 7
    # A write through this process empties the cache when it runs and when it commits.
    resp = await client.patch(
        f"/api/courses/{course}", json={"title": "Rust", "tags": ["systems"]}, headers=teacher.auth
    )
    assert resp.status == 200
    assert (await search(client, q="python"))["total"] == 0
    assert (await search(client, q="rust"))["total"] == 1
