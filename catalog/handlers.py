"""HTTP edge of the catalog: course authoring and course pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from catalog.courses import CourseManager, CourseView, LessonDraft
from catalog.covers import MAX_COVER_BYTES
from catalog.handlers_learning import CourseCardOut, Person, card_out, register_learning_routes
from catalog.reviews import ReviewView
from catalog.services import CATALOG
from hub.api import Api, RequestModel, authenticate, path_int
from hub.errors import PayloadTooLarge
from hub.identity.manager import Principal
from hub.identity.models import User
from payments.handlers import idempotency_key

Tag = Annotated[str, Field(min_length=1, max_length=40)]


class CourseBody(RequestModel):
    title: str = Field(min_length=3, max_length=200)
    subtitle: str = Field(default="", max_length=300)
    description: str = Field(default="", max_length=20_000)
    tags: list[Tag] = Field(default_factory=list, max_length=12)
    level: Literal["beginner", "intermediate", "advanced"] = "beginner"
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    price: int = Field(default=0, ge=0, le=1_000_000, description="coins; 0 is free")


class CoursePatch(RequestModel):
    title: str | None = Field(default=None, min_length=3, max_length=200)
    subtitle: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    tags: list[Tag] | None = Field(default=None, max_length=12)
    level: Literal["beginner", "intermediate", "advanced"] | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    price: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _not_empty(self) -> CoursePatch:
        if not self.model_fields_set or any(
            getattr(self, f) is None for f in self.model_fields_set
        ):
            raise ValueError("send at least one field, none of them null")
        return self


class SectionBody(RequestModel):
    title: str = Field(min_length=1, max_length=200)


class LessonBody(RequestModel):
    title: str = Field(min_length=1, max_length=200)
    kind: Literal["video", "text"]
    video_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    body: str = Field(default="", max_length=100_000, description="markdown, for text lessons")
    free_preview: bool = False

    @model_validator(mode="after")
    def _matches_kind(self) -> LessonBody:
        if self.kind == "video" and not self.video_id:
            raise ValueError("a video lesson needs video_id")
        if self.kind == "text" and not self.body.strip():
            raise ValueError("a text lesson needs a body")
        return self


class LessonPatch(RequestModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    video_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    body: str | None = Field(default=None, max_length=100_000)
    free_preview: bool | None = None
    section_id: int | None = Field(default=None, ge=1, description="move to this section")

    @model_validator(mode="after")
    def _not_empty(self) -> LessonPatch:
        if not self.model_fields_set or any(
            getattr(self, f) is None for f in self.model_fields_set
        ):
            raise ValueError("send at least one field, none of them null")
        return self


class OrderBody(RequestModel):
    sections: list[int] = Field(description="every section id of the course, in order")
    lessons: dict[int, list[int]] = Field(
        default_factory=dict, description="section id → its lesson ids, in order"
    )


class CourseRating(BaseModel):
    average: float | None = Field(description="1 to 5; null before the first review")
    count: int


class LessonOut(BaseModel):
    id: int
    title: str
    kind: Literal["video", "text"]
    free_preview: bool
    duration: float | None = Field(description="seconds, for video lessons")
    video_id: str | None = Field(description="only for the owner (playback comes from /api/videos)")
    completed: bool | None = Field(description="the viewer's completion; null unless enrolled")


class SectionOut(BaseModel):
    id: int
    title: str
    lessons: list[LessonOut]


class CourseOut(BaseModel):
    id: int
    slug: str
    title: str
    subtitle: str
    description: str
    tags: list[str]
    level: str
    language: str
    price: int
    status: Literal["draft", "published", "archived"]
    owner_id: int
    created_at: datetime
    published_at: datetime | None
    rating: CourseRating
    owner: Person
    enrollments: int
    cover_url: str | None
    enrolled: bool = Field(description="the viewer is enrolled")
    sections: list[SectionOut]

    @classmethod
    def of(
        cls,
        view: CourseView,
        viewer_id: int | None,
        rating: CourseRating,
        card: CourseCardOut,
        completed: set[int] | None,
    ) -> CourseOut:
        c = view.course
        mine = viewer_id == c.owner_id
        return cls(
            id=c.id,
            slug=c.slug,
            title=c.title,
            subtitle=c.subtitle,
            description=c.description,
            tags=list(c.tags),
            level=c.level,
            language=c.language,
            price=c.price,
            status=c.status,
            owner_id=c.owner_id,
            created_at=c.created_at,
            published_at=c.published_at,
            rating=rating,
            owner=card.owner,
            enrollments=card.enrollments,
            cover_url=card.cover_url,
            enrolled=completed is not None,
            sections=[
                SectionOut(
                    id=sv.section.id,
                    title=sv.section.title,
                    lessons=[
                        LessonOut(
                            id=lv.lesson.id,
                            title=lv.lesson.title,
                            kind=lv.lesson.kind,
                            free_preview=lv.lesson.free_preview,
                            duration=lv.duration,
                            video_id=lv.lesson.video_id if mine else None,
                            completed=None if completed is None else lv.lesson.id in completed,
                        )
                        for lv in sv.lessons
                    ],
                )
                for sv in view.sections
            ],
        )


class SectionOutShort(BaseModel):
    id: int
    course_id: int
    title: str
    position: int


class LessonOutShort(BaseModel):
    id: int
    section_id: int
    title: str
    kind: str
    position: int
    free_preview: bool


class ReviewBody(RequestModel):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=5000)


class ReviewQuery(RequestModel):
    cursor: int | None = Field(default=None, ge=1)
    limit: int = Field(default=20, ge=1, le=100)


class ReviewOut(BaseModel):
    id: int
    rating: int
    comment: str
    author: dict[str, int | str]
    created_at: datetime
    updated_at: datetime


class RatingOut(BaseModel):
    average: float | None
    count: int


class ReviewList(BaseModel):
    items: list[ReviewOut]
    rating: RatingOut
    next_cursor: int | None


class EnrollmentOut(BaseModel):
    id: int
    course_id: int
    price_paid: int
    created_at: datetime


class EnrollmentEnvelope(BaseModel):
    enrollment: EnrollmentOut


def _courses(request: web.Request) -> CourseManager:
    return request.app[CATALOG].courses


async def course_out_for(request: web.Request, viewer: User | None, course_id: int) -> CourseOut:
    services = request.app[CATALOG]
    view = await services.courses.view(viewer, course_id)
    summary = await services.reviews.summary(course_id)
    rating = CourseRating(average=summary.average, count=summary.count)
    card = await services.search.card(course_id)
    enrolled = viewer is not None and await services.learning.is_enrolled(viewer.id, course_id)
    completed = (
        await services.learning.completed_lessons(viewer.id, course_id)
        if viewer is not None and enrolled
        else None
    )
    return CourseOut.of(view, viewer.id if viewer else None, rating, card_out(card), completed)


def register_routes(api: Api) -> None:
    tags = ("courses",)
    register_learning_routes(api)

    @api.route(
        "PUT",
        r"/api/courses/{course_id:\d+}/cover",
        summary="Upload a course cover (owner)",
        response=CourseOut,
        request_body={
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/jpeg", "image/png", "image/webp")
            },
        },
        errors=[404, 413, 422],
        tags=tags,
    )
    async def put_cover(request: web.Request, principal: Principal) -> CourseOut:
        """The raw image as the body (JPEG, PNG or WebP, at most 5 MB); it is decoded and
        stored re-encoded as a JPEG."""
        if (request.content_length or 0) > MAX_COVER_BYTES:
            raise PayloadTooLarge("A cover image is at most 5 MB.")
        data = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            data += chunk
            if len(data) > MAX_COVER_BYTES:
                raise PayloadTooLarge("A cover image is at most 5 MB.")
        course_id = path_int(request, "course_id")
        await request.app[CATALOG].covers.upload(principal, course_id, bytes(data))
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "POST",
        "/api/courses",
        summary="Create a course (verified teachers)",
        body=CourseBody,
        response=CourseOut,
        status=201,
        errors=[403],
        tags=tags,
    )
    async def create_course(
        request: web.Request, principal: Principal, body: CourseBody
    ) -> CourseOut:
        course = await _courses(request).create(principal, body.model_dump())
        return await course_out_for(request, principal.user, course.id)

    @api.route(
        "PATCH",
        r"/api/courses/{course_id:\d+}",
        summary="Edit a course (owner)",
        body=CoursePatch,
        response=CourseOut,
        errors=[404],
        tags=tags,
    )
    async def patch_course(
        request: web.Request, principal: Principal, body: CoursePatch
    ) -> CourseOut:
        course_id = path_int(request, "course_id")
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        await _courses(request).update(principal, course_id, changes)
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "GET",
        r"/api/courses/{course_id:\d+}",
        summary="A course and its curriculum",
        response=CourseOut,
        auth=False,
        errors=[404],
        tags=tags,
    )
    async def get_course(request: web.Request) -> CourseOut:
        """Published courses for everyone (locked lessons show titles and durations only);
        drafts for their owner and admins."""
        viewer = (await authenticate(request)).user if "Authorization" in request.headers else None
        return await course_out_for(request, viewer, path_int(request, "course_id"))

    @api.route(
        "POST",
        r"/api/courses/{course_id:\d+}/sections",
        summary="Add a section (owner)",
        body=SectionBody,
        response=SectionOutShort,
        status=201,
        errors=[404],
        tags=tags,
    )
    async def add_section(
        request: web.Request, principal: Principal, body: SectionBody
    ) -> SectionOutShort:
        section = await _courses(request).add_section(
            principal, path_int(request, "course_id"), body.title
        )
        return SectionOutShort(
            id=section.id,
            course_id=section.course_id,
            title=section.title,
            position=section.position,
        )

    @api.route(
        "POST",
        r"/api/sections/{section_id:\d+}/lessons",
        summary="Add a lesson (owner)",
        body=LessonBody,
        response=LessonOutShort,
        status=201,
        errors=[404],
        tags=tags,
    )
    async def add_lesson(
        request: web.Request, principal: Principal, body: LessonBody
    ) -> LessonOutShort:
        draft = LessonDraft(
            title=body.title,
            kind=body.kind,
            video_id=body.video_id,
            body=body.body,
            free_preview=body.free_preview,
        )
        lesson = await _courses(request).add_lesson(
            principal, path_int(request, "section_id"), draft
        )
        return LessonOutShort(
            id=lesson.id,
            section_id=lesson.section_id,
            title=lesson.title,
            kind=lesson.kind,
            position=lesson.position,
            free_preview=lesson.free_preview,
        )

    @api.route(
        "PUT",
        r"/api/courses/{course_id:\d+}/order",
        summary="Reorder sections and lessons",
        body=OrderBody,
        response=CourseOut,
        errors=[404],
        tags=tags,
    )
    async def reorder(request: web.Request, principal: Principal, body: OrderBody) -> CourseOut:
        course_id = path_int(request, "course_id")
        await _courses(request).reorder(principal, course_id, body.sections, body.lessons)
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "POST",
        r"/api/courses/{course_id:\d+}/publish",
        summary="Publish a course (owner)",
        response=CourseOut,
        errors=[404, 409],
        tags=tags,
    )
    async def publish(request: web.Request, principal: Principal) -> CourseOut:
        """Refused (409, with the reason) while the course has no lesson or a lesson's video
        is not ready."""
        course_id = path_int(request, "course_id")
        await _courses(request).publish(principal, course_id)
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "POST",
        r"/api/courses/{course_id:\d+}/unpublish",
        summary="Take a course off the catalog (owner or admin)",
        response=CourseOut,
        errors=[404],
        tags=tags,
    )
    async def unpublish(request: web.Request, principal: Principal) -> CourseOut:
        course_id = path_int(request, "course_id")
        await _courses(request).unpublish(principal, course_id)
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "POST",
        r"/api/courses/{course_id:\d+}/archive",
        summary="Retire a course (owner or admin)",
        response=CourseOut,
        errors=[404],
        tags=tags,
    )
    async def archive(request: web.Request, principal: Principal) -> CourseOut:
        """Off the catalog and not for sale; enrolled students keep it."""
        course_id = path_int(request, "course_id")
        await _courses(request).archive(principal, course_id)
        return await course_out_for(request, principal.user, course_id)

    @api.route(
        "PATCH",
        r"/api/sections/{section_id:\d+}",
        summary="Rename a section (owner)",
        body=SectionBody,
        response=SectionOutShort,
        errors=[404],
        tags=tags,
    )
    async def edit_section(
        request: web.Request, principal: Principal, body: SectionBody
    ) -> SectionOutShort:
        section = await _courses(request).edit_section(
            principal, path_int(request, "section_id"), body.title
        )
        return SectionOutShort(
            id=section.id,
            course_id=section.course_id,
            title=section.title,
            position=section.position,
        )

    @api.route(
        "DELETE",
        r"/api/sections/{section_id:\d+}",
        summary="Delete an empty section (owner)",
        status=204,
        errors=[404, 409],
        tags=tags,
    )
    async def delete_section(request: web.Request, principal: Principal) -> None:
        await _courses(request).delete_section(principal, path_int(request, "section_id"))

    @api.route(
        "PATCH",
        r"/api/lessons/{lesson_id:\d+}",
        summary="Edit or move a lesson (owner)",
        body=LessonPatch,
        response=LessonOutShort,
        errors=[404],
        tags=tags,
    )
    async def edit_lesson(
        request: web.Request, principal: Principal, body: LessonPatch
    ) -> LessonOutShort:
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        lesson = await _courses(request).edit_lesson(
            principal, path_int(request, "lesson_id"), changes
        )
        return LessonOutShort(
            id=lesson.id,
            section_id=lesson.section_id,
            title=lesson.title,
            kind=lesson.kind,
            position=lesson.position,
            free_preview=lesson.free_preview,
        )

    @api.route(
        "DELETE",
        r"/api/lessons/{lesson_id:\d+}",
        summary="Delete a lesson (owner)",
        status=204,
        errors=[404, 409],
        tags=tags,
    )
    async def delete_lesson(request: web.Request, principal: Principal) -> None:
        await _courses(request).delete_lesson(principal, path_int(request, "lesson_id"))

    @api.route(
        "POST",
        r"/api/courses/{course_id:\d+}/purchase",
        summary="Buy a course with coins",
        response=EnrollmentEnvelope,
        status=201,
        errors=[402, 404, 409],
        tags=tags,
    )
    async def purchase(request: web.Request, principal: Principal) -> web.Response:
        """Pays the price from the wallet (split between the teacher and the platform) and
        enrolls, in one transaction. 402 with `balance` and `price` when coins are short; 409
        when already enrolled. Send an `Idempotency-Key` to make retries safe: the same key
        replays the first answer without paying again."""
        services = request.app[CATALOG]
        answer = await services.purchases.purchase(
            principal.user,
            path_int(request, "course_id"),
            idempotency_key(request, principal, b""),
        )
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )

    @api.route(
        "PUT",
        r"/api/courses/{course_id:\d+}/review",
        summary="Rate a course (enrolled)",
        body=ReviewBody,
        response=ReviewOut,
        errors=[403, 404],
        tags=tags,
    )
    async def write_review(
        request: web.Request, principal: Principal, body: ReviewBody
    ) -> ReviewOut:
        """One review per student per course; sending it again edits it."""
        view = await request.app[CATALOG].reviews.write(
            principal, path_int(request, "course_id"), body.rating, body.comment
        )
        return _review_out(view)

    @api.route(
        "GET",
        r"/api/courses/{course_id:\d+}/reviews",
        summary="A course's reviews",
        query=ReviewQuery,
        response=ReviewList,
        auth=False,
        tags=tags,
    )
    async def list_reviews(request: web.Request, query: ReviewQuery) -> ReviewList:
        """Newest first, with the average rating and the count."""
        views, summary = await request.app[CATALOG].reviews.list(
            path_int(request, "course_id"), before=query.cursor, limit=query.limit
        )
        items = [_review_out(v) for v in views]
        return ReviewList(
            items=items,
            rating=RatingOut(average=summary.average, count=summary.count),
            next_cursor=items[-1].id if len(items) == query.limit else None,
        )


def _review_out(view: ReviewView) -> ReviewOut:
    r = view.review
    return ReviewOut(
        id=r.id,
        rating=r.rating,
        comment=r.comment,
        author={"id": view.author.id, "display_name": view.author.display_name},
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
