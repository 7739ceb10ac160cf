"""Finding courses: full-text search (PostgreSQL tsvector with a GIN index, SQLite FTS5 on the
embedded default), tag and level filters, sorting and pages; and the card data a course list
shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Float, Integer, Select, exists, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Course, CourseTag, Lesson, Section
from hub.db import Database
from hub.identity.models import User
from media.models import Video

Sort = Literal["relevance", "popular", "newest", "rating", "price", "price_desc"]

# Must stay identical to the expression of the `courses_fts_idx` index (migration 0008), with
# the columns qualified; PostgreSQL matches the parsed expressions, so the index is used.
PG_DOCUMENT = (
    "setweight(to_tsvector('english', courses.title), 'A') || "
    "setweight(to_tsvector('english', courses.subtitle || ' ' || courses.tags_text), 'B') || "
    "setweight(to_tsvector('english', courses.description), 'C')"
)
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


class CourseSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(
        self,
        *,
        q: str | None,
        tag: str | None,
        level: str | None,
        sort: Sort | None,
        page: int,
        page_size: int,
    ) -> SearchResult:
        words = query_words(q or "")
        sort = sort or ("relevance" if words else "popular")
        postgres = self._db.engine.dialect.name == "postgresql"
        query: Select[Any] = select(Course.id).where(Course.status == "published")
        if level:
            query = query.where(Course.level == level)
        if tag:
            query = query.where(
                exists().where(CourseTag.course_id == Course.id, CourseTag.tag == tag.lower())
            )
        rank: Any = None
        if words:
            if postgres:
                tsquery = func.to_tsquery(
                    literal_column("'english'::regconfig"), " & ".join(f"{w}:*" for w in words)
                )
                document: Any = literal_column(f"({PG_DOCUMENT})")
                query = query.where(document.op("@@")(tsquery))
                rank = -func.ts_rank_cd(document, tsquery)
            else:
                hits = (
                    text(
                        "SELECT rowid AS id, bm25(courses_fts, 10.0, 4.0, 4.0, 1.0) AS rank "
                        "FROM courses_fts WHERE courses_fts MATCH :match"
                    )
                    .bindparams(match=" ".join(f'"{w}"*' for w in words))
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
        async with self._db.sessions() as s:
            total = await s.scalar(select(func.count()).select_from(query.subquery()))
            ids = list(
                await s.scalars(
                    query.order_by(*order).limit(page_size).offset((page - 1) * page_size)
                )
            )
            cards = await cards_for(s, ids)
        return SearchResult(cards, int(total or 0))

    async def card(self, course_id: int) -> CourseCard:
        async with self._db.sessions() as s:
            cards = await cards_for(s, [course_id])
        return cards[0]

    async def tags(self, limit: int = 50) -> list[tuple[str, int]]:
        """Tags of published courses, most used first."""
        async with self._db.sessions() as s:
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


async def cards_for(s: AsyncSession, ids: list[int]) -> list[CourseCard]:
    """Card data for these courses, in the order given: owner, lesson count, video duration
    and the cover video (the first lesson video that is ready)."""
    if not ids:
        return []
    courses = {
        c.id: (c, u)
        for c, u in (
            await s.execute(
                select(Course, User)
                .join(User, User.id == Course.owner_id)
                .where(Course.id.in_(ids))
            )
        ).all()
    }
    rows = (
        await s.execute(
            select(Lesson.course_id, Lesson.video_id, Video.duration, Video.status)
            .join(Section, Section.id == Lesson.section_id)
            .outerjoin(Video, Video.id == Lesson.video_id)
            .where(Lesson.course_id.in_(ids))
            .order_by(Lesson.course_id, Section.position, Lesson.position)
        )
    ).all()
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
