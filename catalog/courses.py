"""Course authoring: verified teachers build courses from sections and lessons, reorder them
and publish when every lesson is ready."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Course, CourseTag, Lesson, Section
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from hub.identity.manager import Principal
from hub.identity.models import User
from media.models import Video

EDITABLE = ("title", "subtitle", "description", "tags", "level", "language", "price")


@dataclass(frozen=True, slots=True)
class LessonDraft:
    title: str
    kind: str  # video | text
    video_id: str | None = None
    body: str = ""
    free_preview: bool = False


@dataclass(frozen=True, slots=True)
class LessonView:
    lesson: Lesson
    duration: float | None


@dataclass(frozen=True, slots=True)
class SectionView:
    section: Section
    lessons: list[LessonView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CourseView:
    course: Course
    sections: list[SectionView]


def tag_words(tags: list[str]) -> list[str]:
    """A course's tags as the catalog filters them: stripped, lower-cased, unique."""
    return sorted({t.strip().lower() for t in tags if t.strip()})


async def _set_tags(s: AsyncSession, course: Course, tags: list[str]) -> None:
    words = tag_words(tags)
    course.tags_text = " ".join(words)
    await s.execute(delete(CourseTag).where(CourseTag.course_id == course.id))
    s.add_all(CourseTag(course_id=course.id, tag=word) for word in words)


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:200] or "course"


class CourseManager:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # Authoring -----------------------------------------------------------------------------

    async def create(self, principal: Principal, values: dict[str, Any]) -> Course:
        """Raises Forbidden unless a verified teacher (or admin)."""
        if not (principal.user.is_teacher or principal.user.is_admin):
            raise Forbidden("Only verified teachers can create courses.")
        now = self._clock.now()
        base = slugify(values["title"])
        async with self._db.transaction() as s:
            taken = await s.scalar(select(func.count()).where(Course.slug == base))
            slug = base if not taken else f"{base}-{secrets.token_hex(3)}"
            course = Course(
                owner_id=principal.user.id,
                slug=slug,
                status="draft",
                created_at=now,
                updated_at=now,
                **{name: values[name] for name in EDITABLE if name in values},
            )
            s.add(course)
            await s.flush()
            await _set_tags(s, course, list(values.get("tags", [])))
        return course

    async def update(self, principal: Principal, course_id: int, changes: dict[str, Any]) -> Course:
        async with self._db.transaction() as s:
            course = await self._owned(s, principal, course_id)
            for name, value in changes.items():
                if name in EDITABLE:
                    setattr(course, name, value)
            if "tags" in changes:
                await _set_tags(s, course, list(changes["tags"]))
            course.updated_at = self._clock.now()
        return course

    async def add_section(self, principal: Principal, course_id: int, title: str) -> Section:
        async with self._db.transaction() as s:
            await self._owned(s, principal, course_id)
            position = await s.scalar(
                select(func.coalesce(func.max(Section.position) + 1, 0)).where(
                    Section.course_id == course_id
                )
            )
            section = Section(course_id=course_id, title=title, position=int(position or 0))
            s.add(section)
        return section

    async def add_lesson(self, principal: Principal, section_id: int, draft: LessonDraft) -> Lesson:
        """Raises ValidationFailed for a video lesson without a video of the teacher's own."""
        async with self._db.transaction() as s:
            section = await s.get(Section, section_id)
            if section is None:
                raise NotFound("No section with this id.")
            await self._owned(s, principal, section.course_id)
            if draft.kind == "video":
                video = await s.get(Video, draft.video_id) if draft.video_id else None
                if video is None or video.owner_id != principal.user.id:
                    raise ValidationFailed(
                        [FieldError("video_id", "must be one of your uploaded videos")]
                    )
            position = await s.scalar(
                select(func.coalesce(func.max(Lesson.position) + 1, 0)).where(
                    Lesson.section_id == section_id
                )
            )
            lesson = Lesson(
                section_id=section_id,
                course_id=section.course_id,
                title=draft.title,
                kind=draft.kind,
                video_id=draft.video_id if draft.kind == "video" else None,
                body=draft.body if draft.kind == "text" else "",
                free_preview=draft.free_preview,
                position=int(position or 0),
            )
            s.add(lesson)
        return lesson

    async def reorder(
        self,
        principal: Principal,
        course_id: int,
        sections: list[int],
        lessons: dict[int, list[int]],
    ) -> None:
        """Set the order of every section, and of the lessons of the sections named.

        Raises:
            ValidationFailed: the lists are not exactly the course's sections / lessons.
        """
        async with self._db.transaction() as s:
            await self._owned(s, principal, course_id)
            existing = {
                sec.id: sec
                for sec in await s.scalars(select(Section).where(Section.course_id == course_id))
            }
            if sorted(sections) != sorted(existing):
                raise ValidationFailed([FieldError("sections", "must list every section once")])
            for position, section_id in enumerate(sections):
                existing[section_id].position = position
            for section_id, order in lessons.items():
                if section_id not in existing:
                    raise ValidationFailed([FieldError("lessons", f"no section {section_id}")])
                current = {
                    lesson.id: lesson
                    for lesson in await s.scalars(
                        select(Lesson).where(Lesson.section_id == section_id)
                    )
                }
                if sorted(order) != sorted(current):
                    raise ValidationFailed(
                        [FieldError(f"lessons.{section_id}", "must list every lesson once")]
                    )
                for position, lesson_id in enumerate(order):
                    current[lesson_id].position = position

    async def publish(self, principal: Principal, course_id: int) -> Course:
        """Raises Conflict naming why the course cannot be published yet."""
        async with self._db.transaction() as s:
            course = await self._owned(s, principal, course_id)
            rows = (
                await s.execute(
                    select(Lesson, Video.status)
                    .outerjoin(Video, Video.id == Lesson.video_id)
                    .where(Lesson.course_id == course_id)
                )
            ).all()
            if not rows:
                raise Conflict("Add at least one lesson before publishing.")
            not_ready = [
                lesson.title
                for lesson, status in rows
                if lesson.kind == "video" and status != "ready"
            ]
            if not_ready:
                raise Conflict(
                    "These lessons' videos are not ready yet: " + ", ".join(sorted(not_ready))
                )
            course.status = "published"
            course.published_at = course.published_at or self._clock.now()
            course.updated_at = self._clock.now()
        return course

    async def unpublish(self, principal: Principal, course_id: int) -> Course:
        """The owner, or an admin, takes a course off the catalog."""
        async with self._db.transaction() as s:
            course = await s.get(Course, course_id)
            if course is None or not (
                principal.user.is_admin or course.owner_id == principal.user.id
            ):
                raise NotFound("No course with this id.")
            course.status = "draft"
            course.updated_at = self._clock.now()
        return course

    async def archive(self, principal: Principal, course_id: int) -> Course:
        """Retire a course for good: off the catalog and not for sale, while its enrolled
        students keep it (the owner, or an admin)."""
        async with self._db.transaction() as s:
            course = await s.get(Course, course_id)
            if course is None or not (
                principal.user.is_admin or course.owner_id == principal.user.id
            ):
                raise NotFound("No course with this id.")
            course.status = "archived"
            course.updated_at = self._clock.now()
        return course

    async def edit_section(self, principal: Principal, section_id: int, title: str) -> Section:
        async with self._db.transaction() as s:
            section = await s.get(Section, section_id)
            if section is None:
                raise NotFound("No section with this id.")
            await self._owned(s, principal, section.course_id)
            section.title = title
        return section

    async def delete_section(self, principal: Principal, section_id: int) -> None:
        """Raises Conflict while the section has lessons (delete or move them first)."""
        async with self._db.transaction() as s:
            section = await s.get(Section, section_id)
            if section is None:
                raise NotFound("No section with this id.")
            await self._owned(s, principal, section.course_id)
            count = await s.scalar(select(func.count()).where(Lesson.section_id == section_id))
            if count:
                raise Conflict("Delete this section's lessons first.")
            await s.delete(section)

    async def edit_lesson(
        self, principal: Principal, lesson_id: int, changes: dict[str, Any]
    ) -> Lesson:
        """Change a lesson's title, body (text), video (video) or free preview flag, or move
        it to another section of the course (at its end).

        Raises:
            ValidationFailed: a body for a video lesson, a video that is not the teacher's,
                a section of another course, or an empty text body.
        """
        async with self._db.transaction() as s:
            lesson = await s.get(Lesson, lesson_id)
            if lesson is None:
                raise NotFound("No lesson with this id.")
            course = await self._owned(s, principal, lesson.course_id)
            if "body" in changes:
                if lesson.kind != "text":
                    raise ValidationFailed([FieldError("body", "only text lessons have a body")])
                if not str(changes["body"]).strip():
                    raise ValidationFailed([FieldError("body", "must not be empty")])
                lesson.body = changes["body"]
            if "video_id" in changes:
                if lesson.kind != "video":
                    raise ValidationFailed([FieldError("video_id", "only for video lessons")])
                video = await s.get(Video, changes["video_id"])
                if video is None or video.owner_id != principal.user.id:
                    raise ValidationFailed(
                        [FieldError("video_id", "must be one of your uploaded videos")]
                    )
                if course.status == "published" and video.status != "ready":
                    raise ValidationFailed(
                        [FieldError("video_id", "a published course needs a ready video")]
                    )
                lesson.video_id = video.id
            if "section_id" in changes and changes["section_id"] != lesson.section_id:
                section = await s.get(Section, changes["section_id"])
                if section is None or section.course_id != lesson.course_id:
                    raise ValidationFailed(
                        [FieldError("section_id", "must be a section of the same course")]
                    )
                position = await s.scalar(
                    select(func.coalesce(func.max(Lesson.position) + 1, 0)).where(
                        Lesson.section_id == section.id
                    )
                )
                lesson.section_id = section.id
                lesson.position = int(position or 0)
            if "title" in changes:
                lesson.title = changes["title"]
            if "free_preview" in changes:
                lesson.free_preview = bool(changes["free_preview"])
            course.updated_at = self._clock.now()
        return lesson

    async def delete_lesson(self, principal: Principal, lesson_id: int) -> None:
        """Raises Conflict for the last lesson of a published course."""
        async with self._db.transaction() as s:
            lesson = await s.get(Lesson, lesson_id)
            if lesson is None:
                raise NotFound("No lesson with this id.")
            course = await self._owned(s, principal, lesson.course_id)
            if course.status == "published":
                left = await s.scalar(select(func.count()).where(Lesson.course_id == course.id))
                if (left or 0) <= 1:
                    raise Conflict("A published course keeps at least one lesson.")
            await s.delete(lesson)

    # Reading -------------------------------------------------------------------------------

    async def view(self, viewer: User | None, course_id: int) -> CourseView:
        """A published course for anyone; a draft only for its owner and admins."""
        async with self._db.sessions() as s:
            course = await s.get(Course, course_id)
            visible = course is not None and (
                course.status == "published"
                or (viewer is not None and (viewer.is_admin or viewer.id == course.owner_id))
            )
            if course is None or not visible:
                raise NotFound("No course with this id.")
            sections = list(
                await s.scalars(
                    select(Section).where(Section.course_id == course_id).order_by(Section.position)
                )
            )
            rows = (
                await s.execute(
                    select(Lesson, Video.duration)
                    .outerjoin(Video, Video.id == Lesson.video_id)
                    .where(Lesson.course_id == course_id)
                    .order_by(Lesson.position)
                )
            ).all()
        by_section: dict[int, list[LessonView]] = {sec.id: [] for sec in sections}
        for lesson, duration in rows:
            by_section[lesson.section_id].append(LessonView(lesson, duration))
        return CourseView(course, [SectionView(sec, by_section[sec.id]) for sec in sections])

    async def _owned(self, s: AsyncSession, principal: Principal, course_id: int) -> Course:
        course = await s.get(Course, course_id)
        if course is None or course.owner_id != principal.user.id:
            raise NotFound("No course of yours with this id.")
        return course
