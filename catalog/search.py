"""Finding courses: full-text search (PostgreSQL tsvector with a GIN index, SQLite FTS5 on the
embedded default), tag and level filters, sorting and pages; and the card data a course list
shows."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    Float,
    Integer,
    Select,
    String,
    bindparam,
    event,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from catalog.models import Course, CourseTag, Lesson, Section
from hub.db import Database
from hub.identity.models import User
from media.models import Video

Sort = Literal["relevance", "popular", "newest", "rating", "price", "price_desc"]

# PostgreSQL: each course's weighted document (title A; subtitle and tags B; description C),
# a stored generated column with a GIN index (migrations 0008 and 0012; no model column, so
# the ORM never writes it).
PG_DOCUMENT = "courses.search_fts"
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 12


def query_words(q: str) -> list[str]:
    """The words of a search; punctuation and operators are dropped, so user input never
    reaches either engine's query syntax."""
    return [w.lower() for w in _WORD.findall(q)][:MAX_WORDS]


@dataclass(frozen=True, slots=True)
class CourseCard:
    course: Course
    owner: User
    lesson_count: int
    duration: float
    cover_video_id: str | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    cards: list[CourseCard]
    total: int


# Listing pages are kept this long by the process that served them (ListingCache); 0: never.
LISTING_CACHE_SECONDS = 5.0
LISTING_CACHE_ENTRIES = 512
# Tables whose rows show on a listing page (cards, their order, the total): a write to any of
# them through this process empties the cache.
LISTING_TABLES = frozenset(
    {"courses", "course_tags", "course_sections", "course_lessons", "videos", "users"}
)

ListingKey = tuple[tuple[str, ...], str | None, str | None, str, int, int]


class ListingCache:
    """Catalog pages this process served in the last few seconds, by query.

    The catalog is read far more than it is written, and the same searches come back (the
    first page of the catalog, popular words), while ranking full-text matches is the most
    expensive query of the hub. What a cached page may miss, and for how long:

    * writes through this process: nothing. The engine reports every INSERT, UPDATE and
      DELETE of a listing table (``LISTING_TABLES``) when it runs and again when its
      transaction commits, and each report empties the cache. (A search that read the
      database in the moment between a writer's report and its commit may keep the old page
      for up to ``ttl``; SQL sent as plain text is not seen.)
    * writes through other hub processes: at most ``ttl`` seconds.

    So a sale's enrollment count and a new rating reach other hubs' listings within ``ttl``.
    Concurrent misses of one query wait for a single database query. At most ``max_entries``
    pages are kept; the least recently used go first.
    """

    def __init__(
        self,
        ttl: float = LISTING_CACHE_SECONDS,
        max_entries: int = LISTING_CACHE_ENTRIES,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._now = now
        self._generation = 0
        self._pages: OrderedDict[ListingKey, tuple[float, bytes]] = OrderedDict()
        self._loading: dict[ListingKey, asyncio.Future[bytes]] = {}

    def clear(self) -> None:
        self._generation += 1
        self._pages.clear()

    def watch(self, engine: AsyncEngine) -> None:
        """Empty the cache on every write of a listing table through ``engine``."""
        event.listen(engine.sync_engine, "after_execute", self._after_execute)
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _after_execute(self, conn: Connection, statement: Any, *_: Any) -> None:
        table = getattr(statement, "table", None) if isinstance(statement, UpdateBase) else None
        if table is not None and getattr(table, "name", None) in LISTING_TABLES:
            conn.info[_WROTE_LISTING] = True
            self.clear()

    def _on_commit(self, conn: Connection) -> None:
        if conn.info.pop(_WROTE_LISTING, False):
            self.clear()

    async def get(self, key: ListingKey, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached page for ``key``, or what ``load`` returns (then cached)."""
        if self.ttl <= 0:
            return await load()
        cached = self._pages.get(key)
        if cached is not None and cached[0] > self._now():
            self._pages.move_to_end(key)
            return cached[1]
        loading = self._loading.get(key)
        if loading is not None:
            try:
                return await asyncio.shield(loading)
            except asyncio.CancelledError:
                if not loading.cancelled():
                    raise  # this request was cancelled, not the one loading the page
            return await self.get(key, load)
        generation = self._generation
        started = self._now()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            result = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters, if any, raise it themselves
            raise
        finally:
            del self._loading[key]
        future.set_result(result)
        if generation == self._generation:  # no write happened while it was read
            self._pages[key] = (started + self.ttl, result)
            self._pages.move_to_end(key)
            while len(self._pages) > self._max:
                self._pages.popitem(last=False)
        return result


_WROTE_LISTING = "cohort_wrote_listing"


class CourseSearch:
    def __init__(self, db: Database, cache: ListingCache | None = None) -> None:
        self._db = db
        self.cache = cache or ListingCache()
        self.cache.watch(db.engine)

    async def search(
        self,
        *,
        q: str | None,
        tag: str | None,
        level: str | None,
        sort: Sort | None,
        page: int,
        page_size: int,
        render: Callable[[SearchResult], bytes],
    ) -> bytes:
        """A page of published courses as ``render`` serializes it, served from
        ``ListingCache`` when the same page was rendered in the last few seconds (a hit costs
        neither the database nor the serialization)."""
        words = query_words(q or "")
        sort = sort or ("relevance" if words else "popular")
        key = (tuple(words), tag.lower() if tag else None, level, sort, page, page_size)

        async def load() -> bytes:
            result = await self._search(
                words, tag=tag, level=level, sort=sort, page=page, page_size=page_size
            )
            return render(result)

        return await self.cache.get(key, load)

    async def _search(
        self,
        words: list[str],
        *,
        tag: str | None,
        level: str | None,
        sort: Sort,
        page: int,
        page_size: int,
    ) -> SearchResult:
        postgres = self._db.engine.dialect.name == "postgresql"
        listing, count = _listing(postgres, bool(words), bool(level), bool(tag), sort)
        params: dict[str, Any] = {"limit": page_size, "offset": (page - 1) * page_size}
        if level:
            params["level"] = level
        if tag:
            params["tag"] = tag.lower()
        if words:
            params["match"] = (
                " & ".join(f"{w}:*" for w in words)
                if postgres
                else " ".join(f'"{w}"*' for w in words)
            )
        # Reads outside a transaction on PostgreSQL; the page and its total in one statement.
        async with self._db.read_sessions() as s:
            rows = (await s.execute(listing, params)).all()
            if rows:
                total = int(rows[0].total)
            elif page == 1:
                total = 0
            else:  # past the last page: the window count had no row to ride on
                total = int(await s.scalar(count, params) or 0)
            cards = await cards_for(s, [row.id for row in rows])
        return SearchResult(cards, total)

    async def card(self, course_id: int) -> CourseCard:
        async with self._db.read_sessions() as s:
            cards = await cards_for(s, [course_id])
        return cards[0]

    async def tags(self, limit: int = 50) -> list[tuple[str, int]]:
        """Tags of published courses, most used first."""
        async with self._db.read_sessions() as s:
            rows = (
                await s.execute(
                    select(CourseTag.tag, func.count())
                    .join(Course, Course.id == CourseTag.course_id)
                    .where(Course.status == "published")
                    .group_by(CourseTag.tag)
                    .order_by(func.count().desc(), CourseTag.tag)
                    .limit(limit)
                )
            ).all()
        return [(tag, int(n)) for tag, n in rows]


# The card statements, built once.
_CARD_COURSES = (
    select(Course, User)
    .join(User, User.id == Course.owner_id)
    .where(Course.id.in_(bindparam("ids", expanding=True)))
)
_CARD_LESSONS = (
    select(Lesson.course_id, Lesson.video_id, Video.duration, Video.status)
    .join(Section, Section.id == Lesson.section_id)
    .outerjoin(Video, Video.id == Lesson.video_id)
    .where(Lesson.course_id.in_(bindparam("ids", expanding=True)))
    .order_by(Lesson.course_id, Section.position, Lesson.position)
)


@functools.lru_cache(maxsize=128)
def _listing(
    postgres: bool, words: bool, level: bool, tag: bool, sort: Sort
) -> tuple[Select[Any], Select[Any]]:
    """The statements of one shape of search: (the page's ids, each with the total count) and
    (the count alone), with bound parameters ``match``, ``level``, ``tag``, ``limit`` and
    ``offset``. Built once per shape: building and keying a statement costs about as much CPU
    as running it."""
    query: Select[Any] = select(Course.id).where(Course.status == "published")
    if level:
        query = query.where(Course.level == bindparam("level"))
    if tag:
        query = query.where(
            exists().where(CourseTag.course_id == Course.id, CourseTag.tag == bindparam("tag"))
        )
    rank: Any = None
    if words:
        if postgres:
            tsquery = func.to_tsquery(
                literal_column("'english'::regconfig"), bindparam("match", type_=String)
            )
            document: Any = literal_column(PG_DOCUMENT)
            query = query.where(document.op("@@")(tsquery))
            rank = -func.ts_rank_cd(document, tsquery)
        else:
            hits = (
                text(
                    "SELECT rowid AS id, bm25(courses_fts, 10.0, 4.0, 4.0, 1.0) AS rank "
                    "FROM courses_fts WHERE courses_fts MATCH :match"
                )
                .columns(id=Integer, rank=Float)
                .subquery("hits")
            )
            query = query.join(hits, hits.c.id == Course.id)
            rank = hits.c.rank  # bm25: lower is better
    order: list[Any]
    if sort == "relevance" and rank is not None:
        order = [rank, Course.enrollment_count.desc(), Course.id.desc()]
    elif sort == "newest":
        order = [Course.published_at.desc(), Course.id.desc()]
    elif sort == "rating":
        average = Course.rating_total * 1.0 / func.nullif(Course.rating_count, 0)
        order = [average.desc().nulls_last(), Course.rating_count.desc(), Course.id.desc()]
    elif sort == "price":
        order = [Course.price.asc(), Course.id.asc()]
    elif sort == "price_desc":
        order = [Course.price.desc(), Course.id.desc()]
    else:  # popular, or relevance without words
        order = [Course.enrollment_count.desc(), Course.id.desc()]
    page = (
        query.add_columns(func.count().over().label("total"))
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    return page, select(func.count()).select_from(query.subquery())


async def cards_for(s: AsyncSession, ids: list[int]) -> list[CourseCard]:
    """Card data for these courses, in the order given: owner, lesson count, video duration
    and the cover video (the first lesson video that is ready)."""
    if not ids:
        return []
    courses = {c.id: (c, u) for c, u in (await s.execute(_CARD_COURSES, {"ids": ids})).all()}
    rows = (await s.execute(_CARD_LESSONS, {"ids": ids})).all()
    lessons: dict[int, int] = {}
    duration: dict[int, float] = {}
    cover: dict[int, str] = {}
    for course_id, video_id, seconds, status in rows:
        lessons[course_id] = lessons.get(course_id, 0) + 1
        duration[course_id] = duration.get(course_id, 0.0) + float(seconds or 0.0)
        if video_id and status == "ready" and course_id not in cover:
            cover[course_id] = video_id
    return [
        CourseCard(
            course=courses[i][0],
            owner=courses[i][1],
            lesson_count=lessons.get(i, 0),
            duration=round(duration.get(i, 0.0), 3),
            cover_video_id=cover.get(i),
        )
        for i in ids
        if i in courses
    ]
