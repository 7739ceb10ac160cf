"""The catalog's listing cache: what a cached page may miss, and for how long."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from sqlalchemy import delete, update

from catalog.handlers_learning import (
    CatalogPage,
    CourseCardOut,
    Person,
    Rating,
    catalog_page_json,
)
from catalog.models import Course
from catalog.search import (
    INDEXED_SORTS,
    LISTINGS_CHANNEL,
    CourseSearch,
    ListedCourse,
    ListingCache,
    Page,
    SearchResult,
    Sort,
    TtlCache,
)
from catalog.services import CATALOG
from hub.app import create_app
from hub.broker import MemoryBroker
from hub.clock import FakeClock
from hub.db import Database
from hub.identity.models import User
from hub.services import HUB
from hub.settings import Settings
from media.models import Video
from tests.catalog import test_learning
from tests.catalog.test_learning import buy, course_with, search, text_lesson
from tests.conftest import Account, log_in, sign_up

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
    cache = TtlCache[Any, Page](ttl=5, now=Now())
    loads = 0
    release = asyncio.Event()

    async def load(_fresh_for: float) -> Page:
        nonlocal loads
        loads += 1
        await release.wait()
        return Page(b"%d" % loads)

    waiting = [asyncio.create_task(cache.get(KEY, load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [Page(b"1")] * 5
    assert loads == 1

    async def broken(_fresh_for: float) -> Page:
        raise RuntimeError("database went away")

    other = (("sql",), None, None, "relevance", 1, 20)
    with pytest.raises(RuntimeError):
        await cache.get(other, broken)
    assert await cache.get(other, load) == Page(b"2")  # the failure was not kept


async def test_a_write_during_a_load_is_not_missed_by_later_requests() -> None:
    cache = TtlCache[Any, Page](ttl=5, now=Now())
    release = asyncio.Event()
    answers = iter([b"before the write", b"after the write"])

    async def load(_fresh_for: float) -> Page:
        page = next(answers)
        await release.wait()
        return Page(page)

    early = asyncio.create_task(cache.get(KEY, load))
    await asyncio.sleep(0)
    cache.clear()  # a write commits while that page is read
    late = asyncio.create_task(cache.get(KEY, load))
    await asyncio.sleep(0)
    release.set()
    assert await early == Page(b"before the write")  # asked before the write: either page is right
    assert await late == Page(b"after the write")  # asked after it: read again, not joined
    assert await cache.get(KEY, load) == Page(b"after the write")  # and that one is kept


async def test_a_page_asked_for_near_its_end_is_read_again_in_the_background() -> None:
    now = Now()
    cache = TtlCache[Any, Page](ttl=5, now=now, refresh_ahead=1)
    answers = iter(range(100))
    release = asyncio.Event()

    async def load(_fresh_for: float) -> Page:
        page = b"%d" % next(answers)
        await release.wait()
        return Page(page)

    release.set()
    assert await cache.get(KEY, load) == Page(b"0")
    release.clear()
    now.value += 3.9  # not yet near the end: nothing read
    assert await cache.get(KEY, load) == Page(b"0")
    await asyncio.sleep(0)
    now.value += 0.2  # 0.9 s left: served from the cache, read again behind it
    assert await cache.get(KEY, load) == Page(b"0")
    assert await cache.get(KEY, load) == Page(b"0")  # one refresh at a time
    release.set()
    await settled()
    now.value += 0.9  # the first page is gone; the refreshed one lives 5 s from its read
    assert await cache.get(KEY, load) == Page(b"1")

    # A write while a refresh reads: the refreshed page is not kept.
    release.clear()
    now.value += 3.9
    assert await cache.get(KEY, load) == Page(b"1")
    await asyncio.sleep(0)
    cache.clear()
    release.set()
    await settled()
    assert await cache.get(KEY, load) == Page(b"3")


async def test_a_value_that_must_live_on_is_read_again_and_lives_from_its_read() -> None:
    now = Now()
    cache = TtlCache[Any, Page](ttl=5, now=now, refresh_ahead=0)
    answers = iter(range(100))

    async def load(_fresh_for: float) -> Page:
        return Page(b"%d" % next(answers))

    assert await cache.get(KEY, load) == Page(b"0")
    now.value += 4.5
    assert await cache.get(KEY, load, fresh_for=0.4) == Page(b"0")
    assert await cache.get(KEY, load, fresh_for=1) == Page(b"1")  # 0.5 s left: too little
    now.value += 4.9
    assert await cache.get(KEY, load) == Page(b"1")

    # A value read from an older one lives as long as that one: from when it was read.
    async def derived(_fresh_for: float) -> Page:
        return Page(b"derived", read_at=now.value - 4)

    other = (("sql",), None, None, "relevance", 1, 20)
    assert await cache.get(other, derived) == Page(b"derived", read_at=now.value - 4)
    now.value += 1.1
    assert await cache.get(other, load) == Page(b"2")


async def test_pages_are_kept_within_a_byte_budget() -> None:
    cache = TtlCache[Any, Page](ttl=5, now=Now(), max_bytes=250)

    async def load(_fresh_for: float) -> Page:
        return Page(b"x" * 100)

    loads = 0

    async def counted(fresh_for: float) -> Page:
        nonlocal loads
        loads += 1
        return await load(fresh_for)

    for page in (1, 2, 3):  # 300 bytes: the first page goes
        await cache.get((*KEY[:4], page, 20), load)
    await cache.get((*KEY[:4], 3, 20), counted)
    await cache.get((*KEY[:4], 2, 20), counted)
    assert loads == 0
    await cache.get((*KEY[:4], 1, 20), counted)
    assert loads == 1


async def test_a_page_expires_after_ttl_and_the_oldest_pages_go_first() -> None:
    now = Now()
    cache = TtlCache[Any, Page](ttl=5, max_entries=2, now=now, refresh_ahead=0)
    answers = iter(range(100))

    async def load(_fresh_for: float) -> Page:
        return Page(b"%d" % next(answers))

    assert await cache.get(KEY, load) == Page(b"0")
    now.value += 4.9
    assert await cache.get(KEY, load) == Page(b"0")
    now.value += 0.2
    assert await cache.get(KEY, load) == Page(b"1")
    for page in (2, 3):  # two more pages push the first out
        await cache.get((*KEY[:4], page, 20), load)
    assert await cache.get(KEY, load) == Page(b"4")


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


async def test_a_sale_leaves_the_listings_and_its_count_shows_within_ttl(
    client: Any, app: web.Application, teacher: Account, database_url: str
) -> None:
    """Emptying the cache on every sale would keep it empty while courses sell: the buyer's
    course count reaches the listings as another hub's write does, within ttl."""
    course, _ = await course_with(client, teacher, [text_lesson()], title="Python basics", price=5)
    ana = await sign_up(client, "Ana")  # a new user is a write the listings see (owners' names)
    assert (await search(client, q="python"))["items"][0]["enrollments"] == 0
    await buy(client, ana, course)
    # PostgreSQL's sale is one statement the cache does not watch; SQLite's goes through the
    # engine, whose writes of listing tables empty it (sales there are few).
    on_sqlite = database_url.startswith("sqlite")
    assert (await search(client, q="python"))["items"][0]["enrollments"] == int(on_sqlite)
    app[CATALOG].search.cache.clear()  # what ttl seconds do
    assert (await search(client, q="python"))["items"][0]["enrollments"] == 1


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


# Listings read from a kept ranking -----------------------------------------------------------

SORTS = ("relevance", "popular", "newest", "rating", "price", "price_desc")


async def a_catalog(client: Any, teacher: Account, database_url: str) -> dict[int, dict[str, Any]]:
    """Eleven published courses ("garden" in eight of them, one draft) whose prices,
    publication times, enrollments and ratings give every sort ties to break; returns each
    published one's sort fields by id."""
    courses: dict[int, dict[str, Any]] = {}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(11):
        word = "garden" if n % 4 != 3 else "kitchen"
        title = f"{word.title()} course {n}" if n % 2 else f"Course {n}"
        course, _ = await course_with(
            client,
            teacher,
            [text_lesson()],
            title=title,
            subtitle="Plants and soil" if word == "garden" else "Knives",
            description=f"All about the {word}, part {n}.",
            tags=["outdoors" if n % 3 else "indoors"],
            level="beginner" if n % 2 else "advanced",
            price=(n * 7) % 4 * 10,
        )
        courses[course] = {
            "word": word,
            "tag": "outdoors" if n % 3 else "indoors",
            "level": "beginner" if n % 2 else "advanced",
            "price": (n * 7) % 4 * 10,
            "published_at": base.replace(day=1 + n % 5),
            "enrollment_count": (n * 5) % 3,
            "rating_count": n % 3,
            "rating_total": (n % 3) * (3 + n % 2),
        }
    await course_with(client, teacher, [text_lesson()], publish=False, title="Garden draft")
    other = Database(database_url)  # set the counters as sales and reviews would
    try:
        async with other.transaction() as s:
            for course, fields in courses.items():
                values = {k: v for k, v in fields.items() if k not in ("word", "tag", "level")}
                await s.execute(update(Course).where(Course.id == course).values(**values))
    finally:
        await other.dispose()
    return courses


def expected_order(courses: dict[int, dict[str, Any]], sort: str) -> list[int]:
    """The catalog's order of these courses by a sort that does not rank words."""

    def average(c: dict[str, Any]) -> float:
        return c["rating_total"] / c["rating_count"] if c["rating_count"] else float("-inf")

    keys = {
        "popular": lambda i: (-courses[i]["enrollment_count"], -i),
        "newest": lambda i: (-courses[i]["published_at"].timestamp(), -i),
        "rating": lambda i: (-average(courses[i]), -courses[i]["rating_count"], -i),
        "price": lambda i: (courses[i]["price"], i),
        "price_desc": lambda i: (-courses[i]["price"], -i),
    }
    return sorted(courses, key=keys[sort])


async def test_every_page_of_every_sort_is_ordered_and_counted(
    client: Any, app: web.Application, teacher: Account, database_url: str
) -> None:
    courses = await a_catalog(client, teacher, database_url)
    search_service = app[CATALOG].search
    search_service.ranked = 5  # pages 1 and 2 (of 2) from the ranking, page 3 on read whole
    filters: list[dict[str, str]] = [
        {},
        {"q": "garden"},
        {"tag": "outdoors"},
        {"level": "beginner"},
    ]
    filters += [{"q": "gard", "level": "advanced"}, {"q": "garden plants", "tag": "indoors"}]
    for params in filters:
        for sort in SORTS:
            if sort == "relevance" and "q" not in params:
                continue
            whole = await search(client, **params, sort=sort, page_size=50)  # read whole
            order = [c["id"] for c in whole["items"]]
            matching = [
                i
                for i, c in courses.items()
                if ("q" not in params or c["word"] == "garden")
                and params.get("tag", c["tag"]) == c["tag"]
                and params.get("level", c["level"]) == c["level"]
            ]
            assert whole["total"] == len(order) == len(matching), (params, sort)
            assert set(order) == set(matching), (params, sort)
            if sort != "relevance":
                assert order == [i for i in expected_order(courses, sort) if i in matching]
            paged: list[int] = []
            for page in range(1, 8):  # the last ones are past the end
                got = await search(client, **params, sort=sort, page=page, page_size=2)
                assert got["total"] == len(order), (params, sort, page)
                assert (got["page"], got["page_size"]) == (page, 2)
                paged += [c["id"] for c in got["items"]]
                assert got["items"] == whole["items"][2 * (page - 1) : 2 * page]
            assert paged == order, (params, sort)

    # A course published through this process is listed at once, on every page it moves.
    before = [
        await search(client, q="garden", sort="price_desc", page=p, page_size=2) for p in (1, 2)
    ]
    new, _ = await course_with(client, teacher, [text_lesson()], title="Garden dear", price=90)
    after = [
        await search(client, q="garden", sort="price_desc", page=p, page_size=2) for p in (1, 2)
    ]
    assert [c["id"] for c in after[0]["items"]] == [new, before[0]["items"][0]["id"]]
    assert [c["id"] for c in after[1]["items"]] == [
        before[0]["items"][1]["id"],
        before[1]["items"][0]["id"],
    ]
    assert after[1]["total"] == before[1]["total"] + 1


async def test_a_page_read_from_a_kept_ranking_lives_no_longer_than_it(
    client: Any, app: web.Application, teacher: Account, database_url: str
) -> None:
    courses = await a_catalog(client, teacher, database_url)
    now = Now()
    hub = Database(database_url)  # this hub's listings, on a clock the test moves
    other = Database(database_url)  # another hub process's writes
    listing = CourseSearch(hub, ListingCache(ttl=5, now=now, refresh_ahead=1), ranked=4)

    async def popular(page: int) -> dict[str, Any]:
        body = await listing.search(
            q=None,
            tag=None,
            level=None,
            sort="popular",
            page=page,
            page_size=2,
            render=lambda result: catalog_page_json(result, page, 2),
        )
        return orjson.loads(body)  # type: ignore[no-any-return]

    try:
        order = expected_order(courses, "popular")
        assert [c["id"] for c in (await popular(1))["items"]] == order[:2]
        # Another hub's sale makes the last course the most popular.
        async with other.transaction() as s:
            await s.execute(
                update(Course).where(Course.id == order[-1]).values(enrollment_count=99)
            )
        now.value += 3.5
        # Page 2, first asked now, comes from the ranking read 3.5 s ago: the old order (its
        # cards are read now)...
        second = await popular(2)
        assert [c["id"] for c in second["items"]] == order[2:4]
        # ...and it expires with that ranking, 5 s after the ranking was read, not after it.
        now.value += 1.6
        second = await popular(2)
        assert [c["id"] for c in second["items"]] == [order[1], order[2]]
        assert (await popular(1))["items"][0]["id"] == order[-1]
        assert (await popular(1))["items"][0]["enrollments"] == 99

        # A page asked for near its end is read again behind it, with a ranking read again.
        async with other.transaction() as s:
            await s.execute(update(Course).where(Course.id == order[-1]).values(enrollment_count=0))
        now.value += 4.5
        assert (await popular(1))["items"][0]["id"] == order[-1]  # kept: 0.5 s left
        refreshes = listing.cache.pages._refreshing  # the one started by that request
        assert len(refreshes) == 1
        await asyncio.wait_for(asyncio.gather(*refreshes), 5)
        now.value += 0.6  # the page kept at first has expired; the refreshed one has not
        assert [c["id"] for c in (await popular(1))["items"]] == order[:2]
    finally:
        await listing.cache.close()
        await hub.dispose()
        await other.dispose()


async def test_listings_that_borrow_a_count_are_ordered_and_counted(
    client: Any, teacher: Account, database_url: str
) -> None:
    """Once one sort of a search is kept, its other sorts take its count and read only their
    first courses (on PostgreSQL newest and price in index order, "garden" being in most
    courses): the same pages as when each is read whole."""
    courses = await a_catalog(client, teacher, database_url)
    hub = Database(database_url)
    listing = CourseSearch(hub, ListingCache(ttl=5, now=Now()), ranked=4)  # time stands still

    async def ids_and_total(sort: Sort, page: int, **params: Any) -> tuple[list[int], int]:
        body = await listing.search(
            q=params.get("q"),
            tag=params.get("tag"),
            level=params.get("level"),
            sort=sort,
            page=page,
            page_size=2,
            render=lambda result: catalog_page_json(result, page, 2),
        )
        got = orjson.loads(body)
        return [c["id"] for c in got["items"]], got["total"]

    try:
        for params in ({}, {"q": "garden"}, {"q": "gard", "level": "beginner"}):
            matching = [
                i
                for i, c in courses.items()
                if ("q" not in params or c["word"] == "garden")
                and params.get("level", c["level"]) == c["level"]
            ]
            for sort in ("popular", *INDEXED_SORTS, "rating"):
                order = [i for i in expected_order(courses, sort) if i in matching]
                for page in (1, 2):  # from the ranking (the first 4)
                    assert await ids_and_total(sort, page, **params) == (
                        order[2 * page - 2 : 2 * page],
                        len(matching),
                    ), (params, sort, page)
    finally:
        await listing.cache.close()
        await hub.dispose()


@pytest.mark.redis
async def test_a_write_through_another_hub_empties_this_hubs_listings(
    aiohttp_client: Any, settings: Settings, redis_url: str, clock: FakeClock, fast_hashing: Any
) -> None:
    """Two hub processes (their own engines and caches) over Redis: a course edit through
    one shows on the other as soon as its announcement arrives, not after the cache's ttl
    (a minute: longer than this test waits); a broker reconnect empties the cache too."""
    shared = settings.model_copy(
        update={"redis_url": redis_url, "redis_prefix": f"t{os.getpid()}-{uuid.uuid4().hex}"}
    )
    apps = [create_app(shared, clock=clock, hashing=fast_hashing) for _ in range(2)]
    here, there = [await aiohttp_client(app) for app in apps]
    cache = apps[0][CATALOG].search.cache
    assert cache.ttl >= 30
    tina = Account("tina@example.com", "teaching all day", "Tina")
    tina.id = (
        await apps[1][HUB].identity.ensure_account(
            tina.email, tina.password, "Tina", admin=False, teacher=True
        )
    ).id
    await log_in(there, tina)
    course, _ = await course_with(there, tina, [text_lesson()], title="Python basics")
    assert (await search(here, q="python"))["total"] == 1  # now kept here
    assert cache.pages.peek(KEY) is not None

    emptied = asyncio.Event()
    empty = cache.clear

    def clear() -> None:
        empty()
        emptied.set()

    cache.clear = clear  # type: ignore[method-assign]
    resp = await there.patch(
        f"/api/courses/{course}", json={"title": "Rust", "tags": ["systems"]}, headers=tina.auth
    )
    assert resp.status == 200
    await asyncio.wait_for(emptied.wait(), 5)
    assert (await search(here, q="python"))["total"] == 0
    assert (await search(here, q="rust"))["items"][0]["id"] == course

    # Announcements published while the broker was away are lost: a reconnect empties it.
    assert cache.pages.peek(KEY) is not None
    for hook in apps[0][HUB].broker.on_reconnect:
        await hook()
    assert cache.pages.peek(KEY) is None


async def test_writes_that_show_on_no_card_leave_the_listings(
    client: Any, app: web.Application
) -> None:
    """A sign-up, or a video's progress (written every second while it transcodes), would
    otherwise empty every hub's listings: only what a card shows counts."""
    cache = app[CATALOG].search.cache
    db = app[HUB].db

    async def load(_fresh_for: float) -> Page:
        return Page(b"kept")

    async def kept_after(write: Any) -> bool:
        await cache.pages.get(KEY, load)
        async with db.transaction() as s:
            await s.execute(write)
        return cache.pages.peek(KEY) is not None

    ana = await sign_up(client, "Ana")
    await cache.pages.get(KEY, load)
    await sign_up(client, "Bo")
    assert cache.pages.peek(KEY) is not None
    assert await kept_after(update(Video).where(Video.id == "v").values(stage="encoding"))
    assert not await kept_after(update(Video).where(Video.id == "v").values(status="ready"))
    assert not await kept_after(update(Video).where(Video.id == "v").values(duration=3.0))
    assert not await kept_after(delete(Video).where(Video.id == "v"))
    assert await kept_after(update(User).where(User.id == ana.id).values(bio="hi"))
    assert not await kept_after(update(User).where(User.id == ana.id).values(display_name="A"))
    # The same through an ORM flush (its parameters name the columns it sets).
    await cache.pages.get(KEY, load)
    async with db.transaction() as s:
        user = await s.get(User, ana.id)
        assert user is not None
        user.bio = "still nothing a card shows"
    assert cache.pages.peek(KEY) is not None
    async with db.transaction() as s:
        user = await s.get(User, ana.id)
        assert user is not None
        user.display_name = "Ana B."
    assert cache.pages.peek(KEY) is None


async def test_each_committed_write_is_announced_to_the_other_hubs(database_url: str) -> None:
    """Announced once committed, whether the statement commits by itself (``connect`` on
    PostgreSQL) or with its transaction; another hub's announcement empties the cache."""
    db = Database(database_url)
    broker = MemoryBroker()
    cache = ListingCache(ttl=60, now=Now())
    cache.watch(db.engine)
    other_hub = await broker.subscribe(LISTINGS_CHANNEL)
    try:
        async with cache.broadcast(broker):
            async with db.connect(writes=True) as conn:
                await conn.execute(update(Course).where(Course.id == -1).values(title="x"))
            first = await asyncio.wait_for(other_hub.get(), 5)
            async with db.transaction() as s:
                await s.execute(update(Course).where(Course.id == -1).values(title="y"))
            assert (await asyncio.wait_for(other_hub.get(), 5)).data == first.data
            emptied = asyncio.Event()
            cache.clear = emptied.set  # type: ignore[method-assign]
            await broker.publish(LISTINGS_CHANNEL, b"another hub")
            await asyncio.wait_for(emptied.wait(), 5)
    finally:
        await other_hub.close()
        await db.dispose()
