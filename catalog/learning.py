"""Learning a course: opening lessons, watch-progress heartbeats, completion, and a student's
overview of their courses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Course, Enrollment, Lesson, LessonProgress, Section
from catalog.search import CourseCard, cards_for
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from hub.identity.models import User
from media.models import Video

COMPLETE_RATIO = 0.9  # unique seconds watched / duration that completes a video lesson
# Unique seconds creditable per second since the lesson was first opened (players go up to 2x;
# the rest is slack for clocks and retries), plus a fixed slack.
PLAYBACK_ALLOWANCE = 4.0
ALLOWANCE_SLACK = 30.0
RANGE_TOLERANCE = 1.0  # ranges may end this far past the duration (rounding of players)

Ranges = list[tuple[float, float]]


def merge(ranges: Ranges) -> Ranges:
    """Sorted, disjoint union of [from, to] ranges (touching ranges join)."""
    out: Ranges = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1e-6:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def total(ranges: Ranges) -> float:
    return sum(end - start for start, end in ranges)


def subtract(ranges: Ranges, covered: Ranges) -> Ranges:
    """The parts of ``ranges`` (merged) not inside ``covered`` (merged)."""
    out: Ranges = []
    for start, end in ranges:
        cursor = start
        for c_start, c_end in covered:
            if c_end <= cursor or c_start >= end:
                continue
            if c_start > cursor:
                out.append((cursor, c_start))
            cursor = max(cursor, c_end)
            if cursor >= end:
                break
        if cursor < end:
            out.append((cursor, end))
    return out


def credit(fresh: Ranges, allowance: float) -> Ranges:
    """The first ``allowance`` seconds of ``fresh`` (in time order)."""
    out: Ranges = []
    left = allowance
    for start, end in fresh:
        if left <= 0:
            break
        take = min(end - start, left)
        out.append((start, start + take))
        left -= take
    return out


@dataclass(frozen=True, slots=True)
class ProgressView:
    position: float
    watched_seconds: float
    percent: float
    completed: bool
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class LessonAccess:
    lesson: Lesson
    course: Course
    duration: float | None
    entitled: bool
    enrolled: bool
    progress: ProgressView | None
    prev_lesson_id: int | None
    next_lesson_id: int | None


@dataclass(frozen=True, slots=True)
class LearningItem:
    card: CourseCard
    enrolled_at: datetime
    completed_lessons: int
    total_lessons: int
    next_lesson: tuple[int, str] | None
    last_activity_at: datetime

    @property
    def percent(self) -> float:
        if not self.total_lessons:
            return 0.0
        return round(100.0 * self.completed_lessons / self.total_lessons, 1)


def _view(
    progress: LessonProgress | None, duration: float | None, kind: str
) -> ProgressView | None:
    if progress is None:
        return None
    if kind == "text":
        percent = 100.0 if progress.completed_at else 0.0
    else:
        percent = min(100.0, 100.0 * progress.watched_seconds / duration) if duration else 0.0
    return ProgressView(
        position=progress.position,
        watched_seconds=round(progress.watched_seconds, 3),
        percent=round(percent, 1),
        completed=progress.completed_at is not None,
        completed_at=progress.completed_at,
    )


class Learning:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def open(self, user: User, lesson_id: int) -> LessonAccess:
        """A lesson as this user may see it. Enrolled students' opening is recorded (it starts
        the clock of their progress allowance and marks activity).

        Raises:
            NotFound: no lesson, or its course is a draft the user cannot see.
            Forbidden: not entitled (not enrolled and not a free preview), with the reason.
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            lesson, course, duration = await self._lesson(s, lesson_id)
            enrolled = await self._enrolled(s, user.id, course.id)
            staff = user.is_admin or user.id == course.owner_id
            if course.status != "published" and not (staff or enrolled):
                raise NotFound("No lesson with this id.")
            entitled = staff or enrolled or lesson.free_preview
            if not entitled:
                raise Forbidden("Enroll in this course to open this lesson.")
            progress = None
            if enrolled:
                progress = await s.get(LessonProgress, (user.id, lesson.id))
                if progress is None:
                    progress = LessonProgress(
                        user_id=user.id,
                        lesson_id=lesson.id,
                        course_id=course.id,
                        position=0.0,
                        watched=[],
                        watched_seconds=0.0,
                        opened_at=now,
                        updated_at=now,
                    )
                    s.add(progress)
            order = list(
                await s.scalars(
                    select(Lesson.id)
                    .join(Section, Section.id == Lesson.section_id)
                    .where(Lesson.course_id == course.id)
                    .order_by(Section.position, Lesson.position)
                )
            )
            at = order.index(lesson.id)
            return LessonAccess(
                lesson=lesson,
                course=course,
                duration=duration,
                entitled=entitled,
                enrolled=enrolled,
                progress=_view(progress, duration, lesson.kind),
                prev_lesson_id=order[at - 1] if at > 0 else None,
                next_lesson_id=order[at + 1] if at + 1 < len(order) else None,
            )

    async def heartbeat(
        self, user: User, lesson_id: int, position: float, watched: Ranges
    ) -> ProgressView:
        """Record what the player played since its last heartbeat.

        Raises:
            NotFound / Forbidden: as for ``open``; only enrolled students have progress.
            Conflict: a text lesson (they are marked done instead) or a video not ready.
            ValidationFailed: a range outside the video.
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            lesson, course, duration = await self._lesson(s, lesson_id)
            await self._require_enrolled(s, user.id, course)
            if lesson.kind != "video":
                raise Conflict("Text lessons are completed with POST …/complete.")
            if not duration:
                raise Conflict("This lesson's video is not ready.")
            limit = duration + RANGE_TOLERANCE
            if position > limit:
                raise ValidationFailed([FieldError("position", "is past the end of the video")])
            for i, (_start, end) in enumerate(watched):
                if end > limit:
                    raise ValidationFailed(
                        [FieldError(f"watched.{i}", "ends past the end of the video")]
                    )
            progress = await s.get(LessonProgress, (user.id, lesson.id), with_for_update=True)
            if progress is None:
                progress = LessonProgress(
                    user_id=user.id,
                    lesson_id=lesson.id,
                    course_id=course.id,
                    position=0.0,
                    watched=[],
                    watched_seconds=0.0,
                    opened_at=now,
                    updated_at=now,
                )
                s.add(progress)
                elapsed = 0.0
            else:
                elapsed = max(0.0, (now - progress.updated_at).total_seconds())
            have = merge([(float(a), float(b)) for a, b in progress.watched])
            clipped = merge([(max(0.0, a), min(duration, b)) for a, b in watched if a < duration])
            fresh = credit(subtract(clipped, have), elapsed * PLAYBACK_ALLOWANCE + ALLOWANCE_SLACK)
            union = merge(have + fresh)
            progress.watched = [[round(a, 3), round(b, 3)] for a, b in union]
            progress.watched_seconds = min(duration, total(union))
            progress.position = min(position, duration)
            progress.updated_at = now
            if progress.completed_at is None and (
                progress.watched_seconds >= COMPLETE_RATIO * duration
            ):
                progress.completed_at = now
            view = _view(progress, duration, lesson.kind)
        assert view is not None
        return view

    async def complete(self, user: User, lesson_id: int) -> ProgressView:
        """Mark a text lesson done (idempotent).

        Raises:
            Conflict: a video lesson (watching completes it).
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            lesson, course, duration = await self._lesson(s, lesson_id)
            await self._require_enrolled(s, user.id, course)
            if lesson.kind != "text":
                raise Conflict("Video lessons are completed by watching 90% of them.")
            progress = await s.get(LessonProgress, (user.id, lesson.id))
            if progress is None:
                progress = LessonProgress(
                    user_id=user.id,
                    lesson_id=lesson.id,
                    course_id=course.id,
                    position=0.0,
                    watched=[],
                    watched_seconds=0.0,
                    opened_at=now,
                    updated_at=now,
                )
                s.add(progress)
            progress.completed_at = progress.completed_at or now
            progress.updated_at = now
            view = _view(progress, duration, lesson.kind)
        assert view is not None
        return view

    async def completed_lessons(self, user_id: int, course_id: int) -> set[int]:
        async with self._db.sessions() as s:
            return set(
                await s.scalars(
                    select(LessonProgress.lesson_id).where(
                        LessonProgress.user_id == user_id,
                        LessonProgress.course_id == course_id,
                        LessonProgress.completed_at.is_not(None),
                    )
                )
            )

    async def is_enrolled(self, user_id: int, course_id: int) -> bool:
        async with self._db.sessions() as s:
            return await self._enrolled(s, user_id, course_id)

    async def overview(self, user: User) -> list[LearningItem]:
        """Every course the user is enrolled in, most recently active first."""
        async with self._db.sessions() as s:
            enrollments = list(
                await s.scalars(select(Enrollment).where(Enrollment.user_id == user.id))
            )
            if not enrollments:
                return []
            course_ids = [e.course_id for e in enrollments]
            cards = {c.course.id: c for c in await cards_for(s, course_ids)}
            lessons = (
                await s.execute(
                    select(Lesson.course_id, Lesson.id, Lesson.title)
                    .join(Section, Section.id == Lesson.section_id)
                    .where(Lesson.course_id.in_(course_ids))
                    .order_by(Section.position, Lesson.position)
                )
            ).all()
            progress = (
                await s.execute(
                    select(
                        LessonProgress.lesson_id,
                        LessonProgress.completed_at,
                        LessonProgress.updated_at,
                    ).where(
                        LessonProgress.user_id == user.id,
                        LessonProgress.course_id.in_(course_ids),
                    )
                )
            ).all()
        done = {lesson_id for lesson_id, completed_at, _ in progress if completed_at}
        touched = {lesson_id: updated for lesson_id, _, updated in progress}
        items = []
        for enrollment in enrollments:
            card = cards.get(enrollment.course_id)
            if card is None:
                continue
            mine = [(lid, title) for cid, lid, title in lessons if cid == enrollment.course_id]
            last = max(
                [enrollment.created_at] + [touched[lid] for lid, _ in mine if lid in touched]
            )
            items.append(
                LearningItem(
                    card=card,
                    enrolled_at=enrollment.created_at,
                    completed_lessons=sum(1 for lid, _ in mine if lid in done),
                    total_lessons=len(mine),
                    next_lesson=next(((lid, t) for lid, t in mine if lid not in done), None),
                    last_activity_at=last,
                )
            )
        items.sort(key=lambda item: item.last_activity_at, reverse=True)
        return items

    async def _lesson(self, s: AsyncSession, lesson_id: int) -> tuple[Lesson, Course, float | None]:
        row = (
            await s.execute(
                select(Lesson, Course, Video.duration)
                .join(Course, Course.id == Lesson.course_id)
                .outerjoin(Video, Video.id == Lesson.video_id)
                .where(Lesson.id == lesson_id)
            )
        ).first()
        if row is None:
            raise NotFound("No lesson with this id.")
        lesson, course, duration = row
        if duration is not None and (not math.isfinite(duration) or duration <= 0):
            duration = None
        return lesson, course, duration

    async def _enrolled(self, s: AsyncSession, user_id: int, course_id: int) -> bool:
        found = await s.scalar(
            select(Enrollment.id).where(
                Enrollment.user_id == user_id, Enrollment.course_id == course_id
            )
        )
        return found is not None

    async def _require_enrolled(self, s: AsyncSession, user_id: int, course: Course) -> None:
        if not await self._enrolled(s, user_id, course.id):
            if course.status != "published":
                raise NotFound("No lesson with this id.")
            raise Forbidden("Only enrolled students have progress in this course.")
