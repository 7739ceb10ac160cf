"""How a teacher's courses do: enrollments and coins over time, completion per lesson, and
where viewers drop off inside each video."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from catalog.learning import merge
from catalog.models import Course, Enrollment, Lesson, LessonProgress, Section
from catalog.search import CourseCard, cards_for
from hub.db import Database
from hub.errors import Forbidden, NotFound
from hub.identity.models import User
from media.models import Video
from payments.models import Entry, LedgerAccount

BUCKET_SECONDS = 5
MIN_BUCKET_SECONDS = 1.0  # watching at least this much of a bucket counts as being there


@dataclass(frozen=True, slots=True)
class LessonStats:
    id: int
    title: str
    kind: str
    duration: float | None
    viewers: int
    completed: int
    enrolled: int
    dropoff: list[int]

    @property
    def completion_rate(self) -> float:
        """Share of the course's enrolled students who completed this lesson."""
        return round(self.completed / self.enrolled, 4) if self.enrolled else 0.0


@dataclass(frozen=True, slots=True)
class CourseStats:
    course_id: int
    enrollments: int
    enrollments_by_day: list[tuple[date, int]]
    coins_earned: int
    coins_by_day: list[tuple[date, int]]
    lessons: list[LessonStats]


@dataclass(frozen=True, slots=True)
class StudioCourse:
    card: CourseCard
    coins_earned: int


def dropoff(watched: list[list[float]], duration: float) -> list[int]:
    """Per 5-second bucket of the video, 1 where this viewer watched at least a second of it."""
    buckets = [0] * max(1, math.ceil(duration / BUCKET_SECONDS))
    seen = [0.0] * len(buckets)
    for start, end in merge([(float(a), float(b)) for a, b in watched]):
        i = int(start // BUCKET_SECONDS)
        while i < len(buckets) and i * BUCKET_SECONDS < end:
            lo, hi = i * BUCKET_SECONDS, (i + 1) * BUCKET_SECONDS
            seen[i] += max(0.0, min(end, hi) - max(start, lo))
            i += 1
    for i, seconds in enumerate(seen):
        short_last = min(MIN_BUCKET_SECONDS, duration - i * BUCKET_SECONDS)
        if seconds >= short_last - 1e-6 and seconds > 0:
            buckets[i] = 1
    return buckets


class CourseStatsReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def studio(self, user: User) -> list[StudioCourse]:
        """The teacher's courses in every status, with coins earned from each."""
        async with self._db.sessions() as s:
            ids = list(
                await s.scalars(
                    select(Course.id).where(Course.owner_id == user.id).order_by(Course.id.desc())
                )
            )
            cards = await cards_for(s, ids)
            earned = dict(
                (
                    await s.execute(
                        select(Enrollment.course_id, func.coalesce(func.sum(Entry.amount), 0))
                        .join(Entry, Entry.transfer_id == Enrollment.transfer_id)
                        .join(LedgerAccount, LedgerAccount.id == Entry.account_id)
                        .where(Enrollment.course_id.in_(ids), LedgerAccount.owner_id == user.id)
                        .group_by(Enrollment.course_id)
                    )
                ).all()
            )
        return [StudioCourse(card, int(earned.get(card.course.id, 0))) for card in cards]

    async def course(self, viewer: User, course_id: int) -> CourseStats:
        """Raises NotFound for another teacher's course (admins see every course)."""
        async with self._db.sessions() as s:
            course = await s.get(Course, course_id)
            if course is None:
                raise NotFound("No course with this id.")
            if not (viewer.is_admin or viewer.id == course.owner_id):
                raise Forbidden("Only the course's teacher sees its statistics.")
            enrollments = (
                await s.execute(
                    select(Enrollment.created_at).where(Enrollment.course_id == course_id)
                )
            ).all()
            coins = (
                await s.execute(
                    select(Enrollment.created_at, Entry.amount)
                    .join(Entry, Entry.transfer_id == Enrollment.transfer_id)
                    .join(LedgerAccount, LedgerAccount.id == Entry.account_id)
                    .where(
                        Enrollment.course_id == course_id,
                        LedgerAccount.owner_id == course.owner_id,
                    )
                )
            ).all()
            lessons = (
                await s.execute(
                    select(Lesson.id, Lesson.title, Lesson.kind, Video.duration)
                    .join(Section, Section.id == Lesson.section_id)
                    .outerjoin(Video, Video.id == Lesson.video_id)
                    .where(Lesson.course_id == course_id)
                    .order_by(Section.position, Lesson.position)
                )
            ).all()
            # Only enrolled students' progress counts (previews by others are not stored).
            progress = (
                await s.execute(
                    select(
                        LessonProgress.lesson_id,
                        LessonProgress.watched,
                        LessonProgress.watched_seconds,
                        LessonProgress.completed_at,
                    ).where(LessonProgress.course_id == course_id)
                )
            ).all()
        by_day = Counter(created.date() for (created,) in enrollments)
        coins_by_day: Counter[date] = Counter()
        for created, amount in coins:
            coins_by_day[created.date()] += int(amount)
        per_lesson: dict[int, list[tuple[list[list[float]], float, bool]]] = {}
        for lesson_id, watched, seconds, completed_at in progress:
            per_lesson.setdefault(lesson_id, []).append(
                (watched, seconds, completed_at is not None)
            )
        stats = []
        for lesson_id, title, kind, duration in lessons:
            rows = per_lesson.get(lesson_id, [])
            if kind == "video" and duration:
                viewers = [r for r in rows if r[1] > 0]
                curve = [0] * (math.ceil(duration / BUCKET_SECONDS) if duration else 0)
                for watched, _, _ in viewers:
                    for i, hit in enumerate(dropoff(watched, duration)):
                        curve[i] += hit
            else:
                viewers, curve = rows, []
            stats.append(
                LessonStats(
                    id=lesson_id,
                    title=title,
                    kind=kind,
                    duration=duration,
                    viewers=len(viewers),
                    completed=sum(1 for r in rows if r[2]),
                    enrolled=len(enrollments),
                    dropoff=curve,
                )
            )
        return CourseStats(
            course_id=course_id,
            enrollments=len(enrollments),
            enrollments_by_day=sorted(by_day.items()),
            coins_earned=sum(coins_by_day.values()),
            coins_by_day=sorted(coins_by_day.items()),
            lessons=stats,
        )
