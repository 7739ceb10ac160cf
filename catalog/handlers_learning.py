"""HTTP edge of finding and learning courses: the catalog listing, covers, lessons, progress,
"my learning" and the teacher's dashboards (contract: docs/courses.md)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field

from catalog.learning import LearningItem, LessonAccess, ProgressView
from catalog.search import CourseCard, ListedCourse, SearchResult, Sort
from catalog.services import CATALOG
from catalog.stats import BUCKET_SECONDS
from hub.api import Api, RequestModel, path_int
from hub.errors import FieldError, ValidationFailed
from hub.identity.manager import Principal


class Person(BaseModel):
    id: int
    display_name: str


class Rating(BaseModel):
    average: float | None
    count: int


class CourseCardOut(BaseModel):
    id: int
    slug: str
    title: str
    subtitle: str
    tags: list[str]
    level: str
    language: str
    price: int
    status: Literal["draft", "published", "archived"]
    owner: Person
    rating: Rating
    enrollments: int
    lesson_count: int
    duration: float = Field(description="seconds of video")
    cover_url: str | None
    published_at: datetime | None


def cover_url(course_id: int, cover_key: str | None, cover_video_id: str | None) -> str | None:
    """The cover's URL: the uploaded image, else the first ready lesson video's poster."""
    if cover_key:
        version = cover_key.rsplit("/", 1)[-1].split(".")[0]
    elif cover_video_id:
        version = cover_video_id[:12]
    else:
        return None
    return f"/api/courses/{course_id}/cover?v={version}"


def average_rating(total: int, count: int) -> float | None:
    return round(total / count, 2) if count else None


def card_out(card: CourseCard) -> CourseCardOut:
    c = card.course
    return CourseCardOut(
        id=c.id,
        slug=c.slug,
        title=c.title,
        subtitle=c.subtitle,
        tags=list(c.tags),
        level=c.level,
        language=c.language,
        price=c.price,
        status=c.status,
        owner=Person(id=card.owner.id, display_name=card.owner.display_name),
        rating=Rating(average=average_rating(c.rating_total, c.rating_count), count=c.rating_count),
        enrollments=c.enrollment_count,
        lesson_count=card.lesson_count,
        duration=card.duration,
        cover_url=cover_url(c.id, c.cover_key, card.cover_video_id),
        published_at=c.published_at,
    )


def catalog_page_json(result: SearchResult, page: int, page_size: int) -> bytes:
    """``CatalogPage`` as JSON, byte for byte what pydantic writes for it (a test holds them
    together), from plain values: a catalog page is the hub's busiest answer, and building
    and dumping its models costs more CPU than reading the page from the database."""
    return orjson.dumps(
        {
            "items": [_listed_json(c) for c in result.cards],
            "page": page,
            "page_size": page_size,
            "total": result.total,
        },
        option=orjson.OPT_UTC_Z,
    )


def _listed_json(c: ListedCourse) -> dict[str, Any]:
    """``CourseCardOut`` of a catalog listing (``card_out`` for ORM rows)."""
    return {
        "id": c.id,
        "slug": c.slug,
        "title": c.title,
        "subtitle": c.subtitle,
        "tags": c.tags,
        "level": c.level,
        "language": c.language,
        "price": c.price,
        "status": c.status,
        "owner": {"id": c.owner_id, "display_name": c.owner_name},
        "rating": {
            "average": average_rating(c.rating_total, c.rating_count),
            "count": c.rating_count,
        },
        "enrollments": c.enrollment_count,
        "lesson_count": c.lesson_count,
        "duration": c.duration,
        "cover_url": cover_url(c.id, c.cover_key, c.cover_video_id),
        "published_at": c.published_at,
    }


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Seconds = Annotated[float, Field(ge=0, le=86_400), AfterValidator(_finite)]


class CatalogQuery(RequestModel):
    q: str | None = Field(default=None, max_length=200)
    tag: str | None = Field(default=None, max_length=40)
    level: Literal["beginner", "intermediate", "advanced"] | None = None
    sort: Sort | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=50)


class CatalogPage(BaseModel):
    items: list[CourseCardOut]
    page: int
    page_size: int
    total: int


class TagCount(BaseModel):
    tag: str
    count: int


class TagList(BaseModel):
    items: list[TagCount]


class ProgressOut(BaseModel):
    position: float
    watched_seconds: float
    percent: float
    completed: bool
    completed_at: datetime | None


def progress_out(view: ProgressView | None) -> ProgressOut | None:
    if view is None:
        return None
    return ProgressOut(
        position=view.position,
        watched_seconds=view.watched_seconds,
        percent=view.percent,
        completed=view.completed,
        completed_at=view.completed_at,
    )


class LessonDetail(BaseModel):
    id: int
    course_id: int
    section_id: int
    title: str
    kind: Literal["video", "text"]
    free_preview: bool
    duration: float | None
    body: str | None = Field(description="markdown of a text lesson")
    video_id: str | None = Field(description="give it to GET /api/videos/{id} to play it")
    enrolled: bool
    progress: ProgressOut | None
    prev_lesson_id: int | None
    next_lesson_id: int | None


def lesson_out(access: LessonAccess) -> LessonDetail:
    lesson = access.lesson
    return LessonDetail(
        id=lesson.id,
        course_id=lesson.course_id,
        section_id=lesson.section_id,
        title=lesson.title,
        kind=lesson.kind,
        free_preview=lesson.free_preview,
        duration=access.duration,
        body=lesson.body if lesson.kind == "text" else None,
        video_id=lesson.video_id,
        enrolled=access.enrolled,
        progress=progress_out(access.progress),
        prev_lesson_id=access.prev_lesson_id,
        next_lesson_id=access.next_lesson_id,
    )


class Heartbeat(RequestModel):
    position: Seconds
    watched: list[tuple[Seconds, Seconds]] = Field(
        default_factory=list,
        max_length=500,
        description="ranges [from, to] played since the previous heartbeat, in seconds",
    )


class NextLesson(BaseModel):
    id: int
    title: str


class LearningEntry(BaseModel):
    course: CourseCardOut
    enrolled_at: datetime
    percent: float
    completed_lessons: int
    total_lessons: int
    next_lesson: NextLesson | None
    last_activity_at: datetime


class LearningOut(BaseModel):
    items: list[LearningEntry]
    balance: int = Field(description="coins in the wallet")


def learning_entry(item: LearningItem) -> LearningEntry:
    return LearningEntry(
        course=card_out(item.card),
        enrolled_at=item.enrolled_at,
        percent=item.percent,
        completed_lessons=item.completed_lessons,
        total_lessons=item.total_lessons,
        next_lesson=NextLesson(id=item.next_lesson[0], title=item.next_lesson[1])
        if item.next_lesson
        else None,
        last_activity_at=item.last_activity_at,
    )


class StudioCourseOut(BaseModel):
    course: CourseCardOut
    coins_earned: int


class StudioList(BaseModel):
    items: list[StudioCourseOut]


class DayCount(BaseModel):
    date: date
    count: int


class DayCoins(BaseModel):
    date: date
    coins: int


class EnrollmentStats(BaseModel):
    total: int
    by_day: list[DayCount]


class Dropoff(BaseModel):
    bucket_seconds: int
    counts: list[int] = Field(description="students who watched part of [i·5, i·5+5) seconds")


class LessonStatsOut(BaseModel):
    id: int
    title: str
    kind: Literal["video", "text"]
    duration: float | None
    viewers: int
    completed: int
    completion_rate: float
    dropoff: Dropoff


class CourseStatsOut(BaseModel):
    course_id: int
    enrollments: EnrollmentStats
    coins_earned: int
    coins_by_day: list[DayCoins]
    lessons: list[LessonStatsOut]


def register_learning_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/courses",
        summary="Find published courses",
        query=CatalogQuery,
        response=CatalogPage,
        auth=False,
        tags=("courses",),
    )
    async def list_courses(request: web.Request, query: CatalogQuery) -> web.Response:
        """Full-text search (every word as a prefix), tag and level filters; sorted by
        relevance (default with `q`), popularity (default), newest, rating or price."""

        body = await request.app[CATALOG].search.search(
            q=query.q,
            tag=query.tag,
            level=query.level,
            sort=query.sort,
            page=query.page,
            page_size=query.page_size,
            render=lambda result: catalog_page_json(result, query.page, query.page_size),
        )
        return web.Response(body=body, content_type="application/json")

    @api.route(
        "GET",
        "/api/tags",
        summary="Skill tags in use",
        response=TagList,
        auth=False,
        tags=("courses",),
    )
    async def list_tags(request: web.Request) -> TagList:
        tags = await request.app[CATALOG].search.tags()
        return TagList(items=[TagCount(tag=t, count=n) for t, n in tags])

    @api.route(
        "GET",
        r"/api/courses/{course_id:\d+}/cover",
        summary="A published course's cover image",
        auth=False,
        content_type="image/jpeg",
        errors=[404],
        tags=("courses",),
    )
    async def get_cover(request: web.Request) -> web.Response:
        image = await request.app[CATALOG].covers.image(path_int(request, "course_id"))
        return web.Response(
            body=image,
            content_type="image/jpeg",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @api.route(
        "GET",
        r"/api/lessons/{lesson_id:\d+}",
        summary="Open a lesson",
        response=LessonDetail,
        errors=[403, 404],
        tags=("learning",),
    )
    async def get_lesson(request: web.Request, principal: Principal) -> LessonDetail:
        """Body and video for enrolled students, free previews, the owner and admins; others
        get 403 with the reason. Includes the student's progress (resume from `position`)."""
        access = await request.app[CATALOG].learning.open(
            principal.user, path_int(request, "lesson_id")
        )
        return lesson_out(access)

    @api.route(
        "POST",
        r"/api/lessons/{lesson_id:\d+}/progress",
        summary="Progress heartbeat from the player",
        body=Heartbeat,
        response=ProgressOut,
        errors=[403, 404, 409],
        tags=("learning",),
    )
    async def post_progress(
        request: web.Request, principal: Principal, body: Heartbeat
    ) -> ProgressOut:
        """`watched`: the ranges actually played since the previous heartbeat (seeking plays
        nothing). Complete at 90% unique seconds watched."""
        for i, (start, end) in enumerate(body.watched):
            if not start < end:
                raise ValidationFailed([FieldError(f"watched.{i}", "needs from < to")])
        view = await request.app[CATALOG].learning.heartbeat(
            principal.user,
            path_int(request, "lesson_id"),
            body.position,
            [(a, b) for a, b in body.watched],
        )
        out = progress_out(view)
        assert out is not None
        return out

    @api.route(
        "POST",
        r"/api/lessons/{lesson_id:\d+}/complete",
        summary="Mark a text lesson done",
        response=ProgressOut,
        errors=[403, 404, 409],
        tags=("learning",),
    )
    async def complete(request: web.Request, principal: Principal) -> ProgressOut:
        view = await request.app[CATALOG].learning.complete(
            principal.user, path_int(request, "lesson_id")
        )
        out = progress_out(view)
        assert out is not None
        return out

    @api.route(
        "GET",
        "/api/me/learning",
        summary="My courses and progress",
        response=LearningOut,
        tags=("learning",),
    )
    async def my_learning(request: web.Request, principal: Principal) -> LearningOut:
        services = request.app[CATALOG]
        items = await services.learning.overview(principal.user)
        balance = await services.ledger.balance(principal.user.id)
        return LearningOut(items=[learning_entry(i) for i in items], balance=balance)

    @api.route(
        "GET",
        "/api/studio/courses",
        summary="My courses as a teacher, in every status",
        response=StudioList,
        tags=("studio",),
    )
    async def studio_courses(request: web.Request, principal: Principal) -> StudioList:
        rows = await request.app[CATALOG].stats.studio(principal.user)
        return StudioList(
            items=[
                StudioCourseOut(course=card_out(r.card), coins_earned=r.coins_earned) for r in rows
            ]
        )

    @api.route(
        "GET",
        r"/api/studio/courses/{course_id:\d+}/stats",
        summary="How a course does (owner, admins)",
        response=CourseStatsOut,
        errors=[403, 404],
        tags=("studio",),
    )
    async def course_stats(request: web.Request, principal: Principal) -> CourseStatsOut:
        stats = await request.app[CATALOG].stats.course(
            principal.user, path_int(request, "course_id")
        )
        return CourseStatsOut(
            course_id=stats.course_id,
            enrollments=EnrollmentStats(
                total=stats.enrollments,
                by_day=[DayCount(date=d, count=n) for d, n in stats.enrollments_by_day],
            ),
            coins_earned=stats.coins_earned,
            coins_by_day=[DayCoins(date=d, coins=n) for d, n in stats.coins_by_day],
            lessons=[
                LessonStatsOut(
                    id=ls.id,
                    title=ls.title,
                    kind=ls.kind,
                    duration=ls.duration,
                    viewers=ls.viewers,
                    completed=ls.completed,
                    completion_rate=ls.completion_rate,
                    dropoff=Dropoff(bucket_seconds=BUCKET_SECONDS, counts=ls.dropoff),
                )
                for ls in stats.lessons
            ],
        )
