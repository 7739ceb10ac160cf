"""Finding courses: full-text search (PostgreSQL tsvector with a GIN index, SQLite FTS5 on the
embedded default), tag and level filters, sorting and pages; and the card data a course list
shows."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Float,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    case,
    event,
    exc,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Delete, Insert, UpdateBase

from catalog.models import Course, CourseTag, Lesson, Section
from hub.broker import Broker, Subscription
from hub.db import Database, Prepared
from hub.identity.models import User
from media.models import Video

log = logging.getLogger(__name__)

Sort = Literal["relevance", "popular", "newest", "rating", "price", "price_desc"]
SORTS: tuple[Sort, ...] = ("relevance", "popular", "newest", "rating", "price", "price_desc")
# Orders with an index (migration 0019), which a search matching many courses reads in.
INDEXED_SORTS = frozenset({"newest", "price", "price_desc"})
# A search in at least 1 course in this many is listed in index order (newest, price): about
# this many courses are read per course listed, fewer than sorting every match costs.
WALK_SHARE = 8

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


# Listings are kept this long by the process that served them (ListingCache); 0: never. Writes
# of listing tables through any hub process empty every hub's cache at once (``broadcast``):
# what this bounds is how late a sale's enrollment count (and any write the cache does not
# see) reaches the listings.
LISTING_CACHE_SECONDS = 60.0
# At most this many pages and this many bytes of them (a page of 20 cards is about 12 KB), and
# as many rankings (about 1.6 KB each): a minute of the bench's mix asks for about 15,000
# distinct pages, most of them two-word searches asked for once; these keep the pages asked
# for again.
LISTING_CACHE_ENTRIES = 8192
LISTING_CACHE_BYTES = 96 << 20
RANKING_CACHE_ENTRIES = 16384
RANKING_CACHE_BYTES = 32 << 20
# The broker channel on which hub processes announce writes of listing tables.
LISTINGS_CHANNEL = "catalog.listings"
# A ranking keeps the first this many courses of its order: the pages within them (10 pages
# of 20) are read by id; a page beyond them is read with a statement of its own.
RANKED_COURSES = 200
# Tables whose rows show on a listing page (cards, their order, the total): a write to any of
# them through this process empties every hub's cache. For the tables with columns named here,
# only an UPDATE of one of those columns, or a DELETE, does: a new user or video is on no card
# yet (a lesson must name the video: that write counts), and a video's progress (written
# every second while it is transcoded) shows on none.
LISTING_TABLES = frozenset(
    {"courses", "course_tags", "course_sections", "course_lessons", "videos", "users"}
)
LISTING_COLUMNS = {
    "videos": frozenset({"status", "duration"}),
    "users": frozenset({"display_name"}),
}

# Words, tag, level, sort, page and page size: one page of one listing.
ListingKey = tuple[tuple[str, ...], str | None, str | None, str, int, int]
# Words, tag, level and sort: one listing, whichever its page.
RankingKey = tuple[tuple[str, ...], str | None, str | None, str]
# Words, tag and level: the courses of a listing, whichever their order.
SearchKey = tuple[tuple[str, ...], str | None, str | None]


class Cached(Protocol):
    """What a ``TtlCache`` keeps: its size, and when the database read it shows began (None:
    when its load began)."""

    @property
    def size(self) -> int: ...

    @property
    def read_at(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One listing page as served (JSON), and when the ranking it shows was read."""

    body: bytes
    read_at: float | None = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(frozen=True, slots=True)
class Ranking:
    """One listing's order: the ids of its first ``RANKED_COURSES`` courses and the count of
    all of them, as read at ``read_at``."""

    ids: array[int]
    total: int
    read_at: float

    @property
    def size(self) -> int:
        return 8 * len(self.ids) + 64

    @property
    def complete(self) -> bool:
        return len(self.ids) >= self.total


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Cached)
# Reads a value; its argument: how long what it takes from another cache must still live
# (0 for a request that missed, the refresh window for a refresh ahead of expiry).
Load = Callable[[float], Awaitable[V]]


class TtlCache(Generic[K, V]):
    """Values by key for ``ttl`` seconds from the database read they show, with one load in
    flight per key, refresh ahead of expiry, and invalidation (``clear``).

    Concurrent misses of one key wait for a single load. A value asked for in the last
    ``refresh_ahead`` seconds of its life is read again in the background while the kept one
    is served: a popular value does not expire under its readers (and the values a busy
    minute loaded together do not all expire together). ``clear`` drops every value, and a
    value being loaded at that moment is neither kept nor handed to requests that come after
    it. At most ``max_entries`` values and ``max_bytes`` of them are kept; the least recently
    used go first.
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
        self.now = now
        self._refreshing: set[asyncio.Task[V]] = set()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._generation = 0
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()
        # Values being read, with the generation they were started in.
        self._loading: dict[K, tuple[int, asyncio.Future[V]]] = {}

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()
        self._bytes = 0

    def peek(self, key: K, fresh_for: float = 0.0) -> V | None:
        """The kept value for ``key`` if it lives more than ``fresh_for`` seconds more."""
        cached = self._values.get(key)
        if cached is None or cached[0] - self.now() <= fresh_for:
            return None
        return cached[1]

    async def get(self, key: K, load: Load[V], *, fresh_for: float = 0.0) -> V:
        """The kept value for ``key`` if it lives more than ``fresh_for`` seconds more, else
        what ``load`` returns (then kept)."""
        cached = self._values.get(key)
        now = self.now()
        if cached is not None and cached[0] - now > fresh_for:
            self._values.move_to_end(key)
            if cached[0] - now <= self.refresh_ahead and key not in self._loading:
                task = asyncio.create_task(
                    self._fill(key, load, self.refresh_ahead, *self._loading_now(key))
                )
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
                    raise  # this request was cancelled, not the one loading the value
            return await self.get(key, load, fresh_for=fresh_for)
        return await self._fill(key, load, fresh_for, *self._loading_now(key))

    def _refreshed(self, task: asyncio.Task[V]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The kept value was served; the next request after it expires reads again.
            log.warning("listing refresh failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop background refreshes (the database is about to go)."""
        for task in list(self._refreshing):
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    def _loading_now(self, key: K) -> tuple[int, float, asyncio.Future[V]]:
        """Mark ``key`` as being read from now on (what ``_fill`` then reads)."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = (self._generation, future)
        return self._generation, self.now(), future

    async def _fill(
        self,
        key: K,
        load: Load[V],
        fresh_for: float,
        generation: int,
        started: float,
        future: asyncio.Future[V],
    ) -> V:
        try:
            result = await load(fresh_for)
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
            read_at = started if result.read_at is None else min(started, result.read_at)
            self._keep(key, read_at + self.ttl, result)
        return result

    def _keep(self, key: K, expires: float, value: V) -> None:
        old = self._values.pop(key, None)
        if old is not None:
            self._bytes -= old[1].size
        self._values[key] = (expires, value)
        self._bytes += value.size
        while len(self._values) > self._max or self._bytes > self._max_bytes:
            self._bytes -= self._values.popitem(last=False)[1][1].size


class ListingCache:
    """Catalog listings this process read in the last few seconds: each listing's order
    (``rankings``: the first ``RANKED_COURSES`` ids and the count, by words, tag, level and
    sort) and the pages served from it (``pages``, as JSON).

    The catalog is read far more than it is written, and the same searches come back (the
    first page of the catalog, popular words), while ranking full-text matches is the most
    expensive query of the hub. One ranking serves every page of a listing within it: a later
    page costs a read of its 20 courses by id, not a ranking of every match. What a kept page
    or ranking may miss, and for how long:

    * writes through this process: nothing. The engine reports every INSERT, UPDATE and
      DELETE of a listing table (``LISTING_TABLES``) when it runs and again when its
      transaction commits, and each report empties the cache; a page or ranking being read
      at that moment is neither kept nor handed to requests that come after the report. (A
      search that read the database in the moment between a writer's report and its commit
      may keep the old listing for up to ``ttl``; SQL sent as plain text is not seen: whoever
      sends it calls ``clear`` after its commit, except sales, whose enrollment counts are
      left to ``ttl`` so that selling courses does not keep the cache empty.)
    * writes through other hub processes: as soon as the broker carries their announcement
      (``broadcast``: each process announces its writes of listing tables after they commit,
      and empties its cache on the announcements of the others, and whenever the broker
      reconnects, as announcements may have been lost meanwhile). Without ``broadcast``,
      and for writes the cache does not see (a sale's count), at most ``ttl`` seconds: a
      page lives no longer than the ranking it was read from, counted from when that
      ranking was read, and its cards (enrollments, ratings, titles) were read after it.
    """

    def __init__(
        self,
        ttl: float = LISTING_CACHE_SECONDS,
        now: Callable[[], float] = time.monotonic,
        refresh_ahead: float | None = None,
    ) -> None:
        self.ttl = ttl
        self.pages: TtlCache[ListingKey, Page] = TtlCache(ttl, now=now, refresh_ahead=refresh_ahead)
        self.rankings: TtlCache[RankingKey, Ranking] = TtlCache(
            ttl,
            now=now,
            refresh_ahead=refresh_ahead,
            max_entries=RANKING_CACHE_ENTRIES,
            max_bytes=RANKING_CACHE_BYTES,
        )
        # Set by a committed write of a listing table through this process, while
        # ``broadcast`` runs: its announcer tells the other processes.
        self._written: asyncio.Event | None = None

    def clear(self) -> None:
        self.rankings.clear()
        self.pages.clear()

    @asynccontextmanager
    async def broadcast(self, broker: Broker) -> AsyncIterator[None]:
        """While inside: announce this process's writes of listing tables to every other hub
        process through ``broker``, and empty this cache on theirs (and whenever the broker
        reconnects: announcements published meanwhile are lost). Announcements of writes
        that commit close together are sent as one."""
        origin = uuid.uuid4().hex.encode()
        written = asyncio.Event()
        subscribed: list[Subscription] = []

        async def reconnected() -> None:
            self.clear()

        async def listen() -> None:
            # The hub starts while the broker is down (readyz says so); until the subscription
            # is made, other hubs' writes show within ttl, and it empties the cache once made.
            delay = 0.5
            while not subscribed:
                try:
                    subscribed.append(await broker.subscribe(LISTINGS_CHANNEL))
                except Exception:
                    log.warning("listing announcements: broker unavailable, retrying")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                else:
                    if delay > 0.5:
                        self.clear()
            async for message in subscribed[0]:
                if message.data != origin:
                    self.clear()

        async def announce() -> None:
            while True:
                await written.wait()
                written.clear()
                try:
                    await broker.publish(LISTINGS_CHANNEL, origin)
                except Exception:
                    # Other hubs then show the write within ttl; the next write tries again.
                    log.warning("could not announce a listing write", exc_info=True)

        broker.on_reconnect.append(reconnected)
        self._written = written
        tasks = [asyncio.create_task(listen()), asyncio.create_task(announce())]
        try:
            yield
        finally:
            self._written = None
            broker.on_reconnect.remove(reconnected)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for subscription in subscribed:
                try:
                    await subscription.close()
                except Exception:  # the broker is gone already: nothing left to unsubscribe
                    log.warning("listing announcements not unsubscribed cleanly", exc_info=True)

    def _announce(self) -> None:
        if self._written is not None:
            self._written.set()

    def watch(self, engine: AsyncEngine) -> None:
        """Empty the cache on every write of a listing table through ``engine``."""
        event.listen(engine.sync_engine, "after_execute", self._after_execute)
        event.listen(engine.sync_engine, "commit", self._on_commit)
        event.listen(engine.sync_engine, "rollback", self._on_rollback)

    def _after_execute(
        self, conn: Connection, statement: Any, multiparams: Any, params: Any, *_: Any
    ) -> None:
        table = getattr(statement, "table", None) if isinstance(statement, UpdateBase) else None
        name = getattr(table, "name", None)
        if name in LISTING_TABLES and _shows(name, statement, multiparams, params):
            self.clear()
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                self._announce()  # committed already
            else:
                conn.info[_WROTE_LISTING] = True

    def _on_commit(self, conn: Connection) -> None:
        if conn.info.pop(_WROTE_LISTING, False):
            self.clear()
            # After the commit: another process that empties its cache on this reads the write.
            self._announce()

    def _on_rollback(self, conn: Connection) -> None:
        # A transaction cut short (a cancelled statement) is being rolled back: its connection
        # refuses `info` until then, and raising here would fail the rollback itself. The
        # flag, if any, costs at most one needless emptying of the cache.
        with contextlib.suppress(exc.SQLAlchemyError):
            conn.info.pop(_WROTE_LISTING, None)

    async def close(self) -> None:
        """Stop background refreshes (the database is about to go)."""
        await self.pages.close()
        await self.rankings.close()


_WROTE_LISTING = "cohort_wrote_listing"


def _shows(table: str, statement: UpdateBase, multiparams: Any, params: Any) -> bool:
    """Whether this write of a listing table can change a listing (``LISTING_COLUMNS``)."""
    columns = LISTING_COLUMNS.get(table)
    if columns is None or isinstance(statement, Delete):
        return True
    if isinstance(statement, Insert):
        return False
    # The columns an UPDATE sets: its values (Core) or its parameters' keys (an ORM flush).
    names = {getattr(c, "key", c) for c in getattr(statement, "_values", None) or ()}
    names.update(params or ())
    for each in multiparams or ():
        names.update(each)
    return not names or not columns.isdisjoint(names)


class CourseSearch:
    def __init__(
        self, db: Database, cache: ListingCache | None = None, ranked: int = RANKED_COURSES
    ) -> None:
        self._db = db
        self.cache = cache or ListingCache()
        self.cache.watch(db.engine)
        self.ranked = ranked

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
        neither the database nor the serialization), else read by id from the listing's
        ranking when that is kept (or read first) and holds the page, else read whole."""
        words = query_words(q or "")
        sort = sort or ("relevance" if words else "popular")
        tag = tag.lower() if tag else None
        key = (tuple(words), tag, level, sort, page, page_size)
        offset = (page - 1) * page_size
        if self.cache.ttl <= 0:
            return render(await self._search(words, tag, level, sort, offset, page_size))

        if offset + page_size > self.ranked:  # beyond the ranking: a statement of its own

            async def load_page(_fresh_for: float) -> Page:
                result = await self._search(words, tag, level, sort, offset, page_size)
                return Page(render(result))

            return (await self.cache.pages.get(key, load_page)).body

        # The cards of this page when its ranking is read for it (in the same round trip).
        read_with: list[ListedCourse] | None = None

        async def load_ranking(fresh_for: float) -> Ranking:
            nonlocal read_with
            ranking, read_with = await self._rank(
                words, tag, level, sort, fresh_for, offset, page_size
            )
            return ranking

        async def load_ranked_page(fresh_for: float) -> Page:
            ranking = await self.cache.rankings.get(key[:4], load_ranking, fresh_for=fresh_for)
            cards = read_with
            if cards is None:  # a kept ranking, or one read for another page
                ids = ranking.ids[offset : offset + page_size].tolist()
                cards = await self._cards(ids) if ids else []
            return Page(render(SearchResult(cards, ranking.total)), ranking.read_at)

        return (await self.cache.pages.get(key, load_ranked_page)).body

    def _params(
        self, listing: _Listing, words: list[str], tag: str | None, level: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if level:
            params["level"] = level
        if tag:
            params["tag"] = tag
        if words:
            params["match"] = (
                " & ".join(f"{w}:*" for w in words)
                if listing.postgres
                else " ".join(f'"{w}"*' for w in words)
            )
        return params

    async def _rank(
        self,
        words: list[str],
        tag: str | None,
        level: str | None,
        sort: Sort,
        fresh_for: float,
        offset: int,
        page_size: int,
    ) -> tuple[Ranking, list[ListedCourse] | None]:
        """The listing's first ``ranked`` ids in order, and the count of all its courses; on
        PostgreSQL with the cards of the page at ``offset`` (None: not read).

        The count is the same for every sort of one search: when another sort's ranking of
        it is kept, its count is taken and only the first ids are read (no count of every
        match; for newest and price, read in index order when the search matches at least
        1 course in ``WALK_SHARE`` of the catalog)."""
        read_at = self.cache.rankings.now()
        known = self._known((tuple(words), tag, level), fresh_for)
        walk = False
        if known is not None and self._postgres and words and sort in INDEXED_SORTS:
            catalog = self._known(((), None, None), fresh_for)
            walk = catalog is not None and known.total * WALK_SHARE >= catalog.total
        listing = _listing(self._postgres, bool(words), bool(level), bool(tag), sort, walk)
        params = self._params(listing, words, tag, level)
        params["limit"] = self.ranked
        cards: list[ListedCourse] | None = None
        prepared = listing.ids_page_pg if known is not None else listing.ranked_page_pg
        if prepared is not None:
            async with self._db.driver() as driver:
                rows = await prepared.all(driver, **params, offset=offset, page_size=page_size)
            ids = array("q", rows[0]["ids"] or ())
            total = int(rows[0]["total"] or 0) if known is None else known.total
            cards = [_listed(row) for row in rows if row["id"] is not None]
        else:
            statement = listing.ids if known is not None else listing.ranked
            async with self._db.connect() as conn:
                result = (await conn.execute(statement, params)).all()
            ids = array("q", [r.id for r in result])
            total = int(result[0].total if result else 0) if known is None else known.total
        if known is not None:
            read_at = min(read_at, known.read_at)
        return Ranking(ids, total, read_at), cards

    def _known(self, search: SearchKey, fresh_for: float) -> Ranking | None:
        """A kept ranking of this search (any sort) that lives long enough to lend its
        count: beyond the refresh window, so what is read from it is not refreshed at once."""
        fresh_for = max(fresh_for, self.cache.rankings.refresh_ahead)
        for sort in SORTS:
            ranking = self.cache.rankings.peek((*search, sort), fresh_for)
            if ranking is not None:
                return ranking
        return None

    async def _cards(self, ids: list[int]) -> list[ListedCourse]:
        """The cards of these courses, in this order (those no longer published left out)."""
        cards = _cards_statement(self._postgres)
        if cards.prepared is not None:
            async with self._db.driver() as driver:
                rows = await cards.prepared.all(driver, ids=ids)
        else:
            async with self._db.connect() as conn:
                result = await conn.execute(cards.statement, {"ids": ids})
                rows = [r._mapping for r in result.all()]
        by_id = {row["id"]: row for row in rows}
        return [_listed(by_id[i]) for i in ids if i in by_id]

    @property
    def _postgres(self) -> bool:
        return self._db.engine.dialect.name == "postgresql"

    async def _search(
        self,
        words: list[str],
        tag: str | None,
        level: str | None,
        sort: Sort,
        offset: int,
        page_size: int,
    ) -> SearchResult:
        """One page read whole: its cards and the count of the listing, in one statement."""
        listing = _listing(self._postgres, bool(words), bool(level), bool(tag), sort)
        params = self._params(listing, words, tag, level)
        params.update(limit=page_size, offset=offset)
        if listing.page_pg is not None and listing.count_pg is not None:
            # The driver's own connection: SQLAlchemy's work per statement (binding, processing
            # each row) would cost more CPU than the rest of the page.
            async with self._db.driver() as driver:
                rows = await listing.page_pg.all(driver, **params)
                if not rows and offset > 0:  # past the last page: no row to carry the total
                    total = await listing.count_pg.scalar(driver, **params)
                else:
                    total = rows[0]["total"] if rows else 0
            # (SQLAlchemy's dialect gave the driver its JSON codec: tags come decoded.)
            cards = [_listed(row) for row in rows]
        else:
            async with self._db.connect() as conn:
                result = (await conn.execute(listing.page, params)).all()
                if not result and offset > 0:
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
    count of matches on every row; ``count``, the count alone (for a page past the last);
    ``ranked``, the first ``limit`` ids in order with the total count on every row; and
    ``ids``, those ids alone. Bound parameters: ``match``, ``level``, ``tag``, ``limit`` and
    (``page``) ``offset``. On PostgreSQL also compiled once for the driver (``*_pg``)."""

    postgres: bool
    page: Select[Any]
    count: Select[Any]
    ranked: Select[Any]
    ids: Select[Any]
    page_pg: Prepared | None = None
    count_pg: Prepared | None = None
    # ``ranked`` and ``ids`` with the cards of one page of them (bound ``offset`` and
    # ``page_size``) in the same round trip: one row per card, the ids as one array (and the
    # total) on the first (the driver decodes 200 rows in about 8 times the CPU of one array
    # of 200 ids).
    ranked_page_pg: Prepared | None = None
    ids_page_pg: Prepared | None = None


@functools.lru_cache(maxsize=256)
def _listing(
    postgres: bool, words: bool, level: bool, tag: bool, sort: Sort, walk: bool = False
) -> _Listing:
    """Built once per shape: building and keying a statement costs about as much CPU as
    running it. ``walk`` (PostgreSQL): the words are matched by calling ``ts_match_vq``, the
    function behind ``@@``, which no index serves: the planner then reads the courses in the
    order's index and stops at ``limit``, instead of finding every match in the full-text
    index and sorting them (which a prepared statement's generic plan, blind to how common
    the words are, would choose)."""
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
            if walk:
                matches = matches.where(func.ts_match_vq(document, tsquery))
            else:
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

    ranked = (
        select(m, func.count().over().label("total"))
        .order_by(*order(m.c))
        .limit(bindparam("limit", type_=Integer))
    )
    # The same without the count, the order's expressions read from the table itself (with
    # no subquery in between, a walk can follow an index).
    ids = (
        matches.with_only_columns(
            Course.id, *(expr.label(f"k{i}") for i, (expr, _, _) in enumerate(keys[:-1]))
        )
        .order_by(
            *(
                (e.desc() if descending else e.asc()).nulls_last()
                if nulls_last
                else (e.desc() if descending else e.asc())
                for e, descending, nulls_last in keys
            )
        )
        .limit(bindparam("limit", type_=Integer))
    )
    page_ids = (
        select(m, func.count().over().label("total"))
        .order_by(*order(m.c))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    page = (
        select(*_card_columns(), page_ids.c.total)
        .select_from(page_ids)
        .join(Course, Course.id == page_ids.c.id)
        .join(User, User.id == Course.owner_id)
        .order_by(*order(page_ids.c))
    )
    if not postgres:
        return _Listing(False, page, count, ranked, ids)
    return _Listing(
        True,
        page,
        count,
        ranked,
        ids,
        Prepared(page),
        Prepared(count),
        Prepared(_with_page(ranked, order, counted=True)),
        Prepared(_with_page(ids, order, counted=False)),
    )


def _with_page(
    head: Select[Any], order: Callable[[Any], list[Any]], *, counted: bool
) -> Select[Any]:
    """``head``'s ids as one array (and its total), with the cards of one page of them: one
    statement where a ranking and then a page would take two round trips."""
    r = head.cte("r")  # read twice: PostgreSQL reads it once and keeps it
    columns = [func.array_agg(aggregate_order_by(r.c.id, *order(r.c))).label("ids")]
    if counted:
        columns.append(func.max(r.c.total).label("total"))
    ranking = select(*columns).subquery("ranking")
    shown = (
        select(r)
        .order_by(*order(r.c))
        .limit(bindparam("page_size", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("shown")
    )
    cards = (
        select(*_card_columns(), func.row_number().over(order_by=order(shown.c)).label("n"))
        .select_from(shown)
        .join(Course, Course.id == shown.c.id)
        .join(User, User.id == Course.owner_id)
        .subquery("cards")
    )
    first = or_(cards.c.n.is_(None), cards.c.n == 1)
    return (
        select(
            case((first, ranking.c.ids)).label("ids"),
            *([ranking.c.total] if counted else []),
            *(c for c in cards.c if c.name != "n"),
        )
        .select_from(ranking.outerjoin(cards, true()))
        .order_by(cards.c.n)
    )


def _card_columns() -> list[Any]:
    """What a card shows of a course (every lesson has its section: no join for counting)."""
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
    return [
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
    ]


@dataclass(frozen=True, slots=True)
class _Cards:
    """The cards of the published courses among ``ids`` (in no order), for pages read from a
    ranking; on PostgreSQL also compiled for the driver (``ids`` an array)."""

    statement: Select[Any]
    prepared: Prepared | None


@functools.lru_cache(maxsize=2)
def _cards_statement(postgres: bool) -> _Cards:
    cards = (
        select(*_card_columns())
        .join(User, User.id == Course.owner_id)
        .where(Course.status == "published")
    )
    if not postgres:
        return _Cards(cards.where(Course.id.in_(bindparam("ids", expanding=True))), None)
    cards = cards.where(Course.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    return _Cards(cards, Prepared(cards))


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
