"""Finding courses: full-text search (PostgreSQL tsvector with a GIN index, SQLite FTS5 on the
embedded default), tag and level filters, sorting and pages; and the card data a course list
shows."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
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
from hub.db import Database, Prepared
from hub.identity.models import User
from media.models import Video

log = logging.getLogger(__name__)

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
class ListedCourse:
    """What a catalog card shows of one course, read with the page itself (no ORM objects)."""

    id: int
    slug: str
    title: str
    subtitle: str
    tags: list[str]
    level: str
    language: str
    price: int
    status: str
    published_at: datetime | None
    enrollment_count: int
    rating_count: int
    rating_total: int
    cover_key: str | None
    owner_id: int
    owner_name: str
    lesson_count: int
    duration: float
    cover_video_id: str | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    cards: list[ListedCourse]
    total: int


# Listing pages are kept this long by the process that served them (ListingCache); 0: never.
LISTING_CACHE_SECONDS = 5.0
# At most this many pages and this many bytes of them (a page of 20 cards is about 12 KB).
LISTING_CACHE_ENTRIES = 4096
LISTING_CACHE_BYTES = 32 << 20
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
      transaction commits, and each report empties the cache; a page being read from the
      database at that moment is neither kept nor handed to requests that come after the
      report. (A search that read the database in the moment between a writer's report and
      its commit may keep the old page for up to ``ttl``; SQL sent as plain text is not seen:
      whoever sends it calls ``clear`` after its commit.)
    * writes through other hub processes: at most ``ttl`` seconds.

    So a sale's enrollment count and a new rating reach other hubs' listings within ``ttl``.
    Concurrent misses of one query wait for a single database query. A page asked for in the
    last ``refresh_ahead`` seconds of its life is read again in the background while the kept
    one is served: a popular page does not expire under its readers (and the pages a busy
    minute loaded together do not all expire together). At most ``max_entries`` pages and
    ``max_bytes`` of them are kept; the least recently used go first.
    """

    def __init__(
        self,
        ttl: float = LISTING_CACHE_SECONDS,
        max_entries: int = LISTING_CACHE_ENTRIES,
        now: Callable[[], float] = time.monotonic,
        max_bytes: int = LISTING_CACHE_BYTES,
        refresh_ahead: float | None = None,
    ) -> None:
        self.ttl = ttl
        self.refresh_ahead = ttl / 4 if refresh_ahead is None else refresh_ahead
        self._refreshing: set[asyncio.Task[bytes]] = set()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._now = now
        self._generation = 0
        self._pages: OrderedDict[ListingKey, tuple[float, bytes]] = OrderedDict()
        # Pages being read, with the generation they were started in.
        self._loading: dict[ListingKey, tuple[int, asyncio.Future[bytes]]] = {}

    def clear(self) -> None:
        self._generation += 1
        self._pages.clear()
        self._bytes = 0

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
        now = self._now()
        if cached is not None and cached[0] > now:
            self._pages.move_to_end(key)
            if cached[0] - now <= self.refresh_ahead and key not in self._loading:
                task = asyncio.create_task(self._fill(key, load, *self._loading_now(key)))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshed)
            return cached[1]
        loading = self._loading.get(key)
        if loading is not None and loading[0] == self._generation:
            future = loading[1]
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if not future.cancelled():
                    raise  # this request was cancelled, not the one loading the page
            return await self.get(key, load)
        return await self._fill(key, load, *self._loading_now(key))

    def _refreshed(self, task: asyncio.Task[bytes]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The kept page was served; the next request after it expires reads again.
            log.warning("listing page refresh failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop background refreshes (the database is about to go)."""
        for task in list(self._refreshing):
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    def _loading_now(self, key: ListingKey) -> tuple[int, float, asyncio.Future[bytes]]:
        """Mark ``key`` as being read from now on (what ``_fill`` then reads)."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._loading[key] = (self._generation, future)
        return self._generation, self._now(), future

    async def _fill(
        self,
        key: ListingKey,
        load: Callable[[], Awaitable[bytes]],
        generation: int,
        started: float,
        future: asyncio.Future[bytes],
    ) -> bytes:
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
            if self._loading.get(key, (0, None))[1] is future:
                del self._loading[key]
        future.set_result(result)
        if generation == self._generation:  # no write happened while it was read
            self._keep(key, started + self.ttl, result)
        return result

    def _keep(self, key: ListingKey, expires: float, page: bytes) -> None:
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._pages[key] = (expires, page)
        self._bytes += len(page)
        while len(self._pages) > self._max or self._bytes > self._max_bytes:
            self._bytes -= len(self._pages.popitem(last=False)[1][1])


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
        listing = _listing(postgres, bool(words), bool(level), bool(tag), sort)
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
        if listing.page_pg is not None and listing.count_pg is not None:
            # The driver's own connection: SQLAlchemy's work per statement (binding, processing
            # each row) would cost more CPU than the rest of the page.
            async with self._db.driver() as driver:
                rows = await listing.page_pg.all(driver, **params)
                if not rows and page > 1:  # past the last page: no row to carry the total
                    total = await listing.count_pg.scalar(driver, **params)
                else:
                    total = rows[0]["total"] if rows else 0
            # (SQLAlchemy's dialect gave the driver its JSON codec: tags come decoded.)
            cards = [_listed(row) for row in rows]
        else:
            async with self._db.connect() as conn:
                result = (await conn.execute(listing.page, params)).all()
                if not result and page > 1:
                    total = (await conn.execute(listing.count, params)).scalar_one()
                else:
                    total = result[0].total if result else 0
            cards = [_listed(row._mapping) for row in result]
        return SearchResult(cards, int(total))

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


def _listed(row: Any) -> ListedCourse:
    return ListedCourse(
        id=row["id"],
        slug=row["slug"],
        title=row["title"],
        subtitle=row["subtitle"],
        tags=row["tags"],
        level=row["level"],
        language=row["language"],
        price=row["price"],
        status=row["status"],
        published_at=row["published_at"],
        enrollment_count=row["enrollment_count"],
        rating_count=row["rating_count"],
        rating_total=row["rating_total"],
        cover_key=row["cover_key"],
        owner_id=row["owner_id"],
        owner_name=row["owner_name"],
        lesson_count=row["lesson_count"],
        duration=round(float(row["duration"] or 0.0), 3),
        cover_video_id=row["cover_video_id"],
    )


@dataclass(frozen=True, slots=True)
class _Listing:
    """The statements of one shape of search: ``page``, the cards of one page with the total
    count of matches on every row, and ``count``, the count alone (for a page past the last).
    Bound parameters: ``match``, ``level``, ``tag``, ``limit`` and ``offset``. On PostgreSQL
    both also compiled once for the driver (``page_pg``, ``count_pg``)."""

    page: Select[Any]
    count: Select[Any]
    page_pg: Prepared | None
    count_pg: Prepared | None


@functools.lru_cache(maxsize=128)
def _listing(postgres: bool, words: bool, level: bool, tag: bool, sort: Sort) -> _Listing:
    """Built once per shape: building and keying a statement costs about as much CPU as
    running it."""
    matches: Select[Any] = select(Course.id).where(Course.status == "published")
    if level:
        matches = matches.where(Course.level == bindparam("level"))
    if tag:
        matches = matches.where(
            exists().where(CourseTag.course_id == Course.id, CourseTag.tag == bindparam("tag"))
        )
    rank: Any = None
    if words:
        if postgres:
            tsquery = func.to_tsquery(
                literal_column("'english'::regconfig"), bindparam("match", type_=String)
            )
            document: Any = literal_column(PG_DOCUMENT)
            matches = matches.where(document.op("@@")(tsquery))
            rank = func.ts_rank_cd(document, tsquery)
        else:
            hits = (
                text(
                    "SELECT rowid AS id, bm25(courses_fts, 10.0, 4.0, 4.0, 1.0) AS rank "
                    "FROM courses_fts WHERE courses_fts MATCH :match"
                )
                .columns(id=Integer, rank=Float)
                .subquery("hits")
            )
            matches = matches.join(hits, hits.c.id == Course.id)
            rank = -hits.c.rank  # bm25: lower is better
    # The order: sort keys as (expression, descending, nulls last), every sort ending with the
    # id, so pages are stable.
    keys: list[tuple[Any, bool, bool]]
    if sort == "relevance" and rank is not None:
        keys = [
            (rank, True, False),
            (Course.enrollment_count, True, False),
            (Course.id, True, False),
        ]
    elif sort == "newest":
        keys = [(Course.published_at, True, False), (Course.id, True, False)]
    elif sort == "rating":
        average = Course.rating_total * 1.0 / func.nullif(Course.rating_count, 0)
        keys = [(average, True, True), (Course.rating_count, True, False), (Course.id, True, False)]
    elif sort == "price":
        keys = [(Course.price, False, False), (Course.id, False, False)]
    elif sort == "price_desc":
        keys = [(Course.price, True, False), (Course.id, True, False)]
    else:  # popular, or relevance without words
        keys = [(Course.enrollment_count, True, False), (Course.id, True, False)]
    count = select(func.count()).select_from(matches.subquery())
    # The matches with their sort keys only. On PostgreSQL, OFFSET 0 keeps this subquery as it
    # is: flattened into the window below, each match's whole document would be carried
    # through the window (to rank it above), which spills to disk for common words.
    sorted_matches = matches.with_only_columns(
        Course.id, *(expr.label(f"k{i}") for i, (expr, _, _) in enumerate(keys[:-1]))
    )
    if postgres:
        sorted_matches = sorted_matches.offset(literal_column("0"))
    m = sorted_matches.subquery("m")

    def order(columns: Any) -> list[Any]:
        result = []
        for i, (_, descending, nulls_last) in enumerate(keys):
            column = columns.id if i == len(keys) - 1 else columns[f"k{i}"]
            column = column.desc() if descending else column.asc()
            result.append(column.nulls_last() if nulls_last else column)
        return result

    page_ids = (
        select(m, func.count().over().label("total"))
        .order_by(*order(m.c))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    # Card data per course of the page (every lesson has its section: no join for counting).
    lesson_count = select(func.count()).where(Lesson.course_id == Course.id).scalar_subquery()
    duration = (
        select(func.sum(Video.duration))
        .select_from(Lesson.__table__.join(Video.__table__, Video.id == Lesson.video_id))
        .where(Lesson.course_id == Course.id)
        .scalar_subquery()
    )
    cover = (
        select(Lesson.video_id)
        .select_from(
            Lesson.__table__.join(Section.__table__, Section.id == Lesson.section_id).join(
                Video.__table__, Video.id == Lesson.video_id
            )
        )
        .where(Lesson.course_id == Course.id, Video.status == "ready")
        .order_by(Section.position, Lesson.position)
        .limit(1)
        .scalar_subquery()
    )
    page = (
        select(
            Course.id,
            Course.slug,
            Course.title,
            Course.subtitle,
            Course.tags,
            Course.level,
            Course.language,
            Course.price,
            Course.status,
            Course.published_at,
            Course.enrollment_count,
            Course.rating_count,
            Course.rating_total,
            Course.cover_key,
            User.id.label("owner_id"),
            User.display_name.label("owner_name"),
            lesson_count.label("lesson_count"),
            duration.label("duration"),
            cover.label("cover_video_id"),
            page_ids.c.total,
        )
        .select_from(page_ids)
        .join(Course, Course.id == page_ids.c.id)
        .join(User, User.id == Course.owner_id)
        .order_by(*order(page_ids.c))
    )
    if not postgres:
        return _Listing(page, count, None, None)
    return _Listing(page, count, Prepared(page), Prepared(count))


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
