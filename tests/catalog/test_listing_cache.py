"""The catalog's listing cache: what a cached page may miss, and for how long."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from catalog.handlers_learning import (
    CatalogPage,
    CourseCardOut,
    Person,
    Rating,
    catalog_page_json,
)
from catalog.models import Course
from catalog.search import ListedCourse, ListingCache, SearchResult
from catalog.services import CATALOG
from hub.db import Database
from tests.catalog import test_learning
from tests.catalog.test_learning import course_with, search, text_lesson
from tests.conftest import Account

teacher = test_learning.teacher  # the fixture

KEY = (("python",), None, None, "relevance", 1, 20)


async def settled() -> None:
    """Let background refreshes that can finish, finish."""
    for _ in range(10):
        await asyncio.sleep(0)


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


async def test_a_write_during_a_load_is_not_missed_by_later_requests() -> None:
    cache = ListingCache(ttl=5, now=Now())
    release = asyncio.Event()
    answers = iter([b"before the write", b"after the write"])

    async def load() -> bytes:
        page = next(answers)
        await release.wait()
        return page

    early = asyncio.create_task(cache.get(KEY, load))
    await asyncio.sleep(0)
    cache.clear()  # a write commits while that page is read
    late = asyncio.create_task(cache.get(KEY, load))
    await asyncio.sleep(0)
    release.set()
    assert await early == b"before the write"  # asked before the write: either page is right
    assert await late == b"after the write"  # asked after it: read again, not joined
    assert await cache.get(KEY, load) == b"after the write"  # and that one is kept


async def test_a_page_asked_for_near_its_end_is_read_again_in_the_background() -> None:
    now = Now()
    cache = ListingCache(ttl=5, now=now, refresh_ahead=1)
    answers = iter(range(100))
    release = asyncio.Event()

    async def load() -> bytes:
        page = b"%d" % next(answers)
        await release.wait()
        return page

    release.set()
    assert await cache.get(KEY, load) == b"0"
    release.clear()
    now.value += 3.9  # not yet near the end: nothing read
    assert await cache.get(KEY, load) == b"0"
    await asyncio.sleep(0)
    now.value += 0.2  # 0.9 s left: served from the cache, read again behind it
    assert await cache.get(KEY, load) == b"0"
    assert await cache.get(KEY, load) == b"0"  # one refresh at a time
    release.set()
    await settled()
    now.value += 0.9  # the first page is gone; the refreshed one lives 5 s from its read
    assert await cache.get(KEY, load) == b"1"

    # A write while a refresh reads: the refreshed page is not kept.
    release.clear()
    now.value += 3.9
    assert await cache.get(KEY, load) == b"1"
    await asyncio.sleep(0)
    cache.clear()
    release.set()
    await settled()
    assert await cache.get(KEY, load) == b"3"


async def test_pages_are_kept_within_a_byte_budget() -> None:
    cache = ListingCache(ttl=5, now=Now(), max_bytes=250)

    async def load() -> bytes:
        return b"x" * 100

    loads = 0

    async def counted() -> bytes:
        nonlocal loads
        loads += 1
        return await load()

    for page in (1, 2, 3):  # 300 bytes: the first page goes
        await cache.get((*KEY[:4], page, 20), load)
    await cache.get((*KEY[:4], 3, 20), counted)
    await cache.get((*KEY[:4], 2, 20), counted)
    assert loads == 0
    await cache.get((*KEY[:4], 1, 20), counted)
    assert loads == 1


async def test_a_page_expires_after_ttl_and_the_oldest_pages_go_first() -> None:
    now = Now()
    cache = ListingCache(ttl=5, max_entries=2, now=now, refresh_ahead=0)
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


def test_a_page_is_written_as_its_model_says() -> None:
    """The listing writes its JSON itself, for speed: byte for byte what pydantic writes."""
    first = ListedCourse(
        id=7,
        slug="caf\u00e9-\u2028-x",
        title='Quotes " and \\ back\nslash \x01 \u65e5\u672c \U0001f600',
        subtitle="",
        tags=["python", "d\u00e9j\u00e0"],
        level="beginner",
        language="en",
        price=0,
        status="published",
        published_at=datetime(2026, 11, 27, 5, 10, 22, 173000, tzinfo=UTC),
        enrollment_count=12,
        rating_count=3,
        rating_total=11,
        cover_key="covers/7/ab12cd.jpg",
        owner_id=3,
        owner_name="Tina",
        lesson_count=4,
        duration=251.0,
        cover_video_id="0123456789abcdef0123456789abcdef",
    )
    cards = [
        first,
        replace(
            first,
            id=8,
            slug="b",
            tags=[],
            status="archived",
            published_at=None,
            rating_count=0,
            rating_total=0,
            cover_key=None,
            duration=0.0,
        ),
        replace(
            first,
            id=9,
            published_at=datetime(2026, 1, 1, tzinfo=UTC),
            rating_count=7,
            rating_total=33,
            cover_key=None,
            duration=0.123,
            cover_video_id=None,
        ),
    ]
    covers = ["/api/courses/7/cover?v=ab12cd", "/api/courses/8/cover?v=0123456789ab", None]
    expected = CatalogPage(
        items=[
            CourseCardOut(
                id=c.id,
                slug=c.slug,
                title=c.title,
                subtitle=c.subtitle,
                tags=c.tags,
                level=c.level,
                language=c.language,
                price=c.price,
                status=c.status,  # type: ignore[arg-type]
                owner=Person(id=c.owner_id, display_name=c.owner_name),
                rating=Rating(
                    average=round(c.rating_total / c.rating_count, 2) if c.rating_count else None,
                    count=c.rating_count,
                ),
                enrollments=c.enrollment_count,
                lesson_count=c.lesson_count,
                duration=c.duration,
                cover_url=cover,
                published_at=c.published_at,
            )
            for c, cover in zip(cards, covers, strict=True)
        ],
        page=2,
        page_size=3,
        total=40,
    )
    written = catalog_page_json(SearchResult(cards, 40), 2, 3)
    assert written == expected.model_dump_json().encode()
