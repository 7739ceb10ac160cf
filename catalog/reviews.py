"""Course reviews: enrolled students rate 1 to 5 with a comment, one review each, editable."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from catalog.models import Course, Enrollment, Review
from hub.clock import Clock
from hub.db import Database
from hub.errors import Forbidden, NotFound
from hub.identity.manager import Principal
from hub.identity.models import User


@dataclass(frozen=True, slots=True)
class ReviewView:
    review: Review
    author: User


@dataclass(frozen=True, slots=True)
class RatingSummary:
    average: float | None
    count: int


class Reviews:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def write(
        self, principal: Principal, course_id: int, rating: int, comment: str
    ) -> ReviewView:
        """Create or replace the student's review of a course they are enrolled in.

        Raises:
            NotFound: no published course with this id.
            Forbidden: not enrolled.
        """
        now = self._clock.now()
        for _attempt in range(2):  # a concurrent first review by the same student: update it
            try:
                async with self._db.transaction() as s:
                    course = await s.get(Course, course_id)
                    if course is None or course.status != "published":
                        raise NotFound("No published course with this id.")
                    enrolled = await s.scalar(
                        select(Enrollment.id).where(
                            Enrollment.course_id == course_id,
                            Enrollment.user_id == principal.user.id,
                        )
                    )
                    if enrolled is None:
                        raise Forbidden("Only students enrolled in this course can review it.")
                    review = await s.scalar(
                        select(Review).where(
                            Review.course_id == course_id, Review.user_id == principal.user.id
                        )
                    )
                    added, delta = 0, rating
                    if review is None:
                        review = Review(
                            user_id=principal.user.id, course_id=course_id, created_at=now
                        )
                        s.add(review)
                        added = 1
                    else:
                        delta = rating - review.rating
                    review.rating = rating
                    review.comment = comment.strip()
                    review.updated_at = now
                    await s.execute(
                        update(Course)
                        .where(Course.id == course_id)
                        .values(
                            rating_count=Course.rating_count + added,
                            rating_total=Course.rating_total + delta,
                        )
                    )
                return ReviewView(review, principal.user)
            except IntegrityError:
                continue
        raise NotFound("No published course with this id.")

    async def list(
        self, course_id: int, *, before: int | None, limit: int
    ) -> tuple[list[ReviewView], RatingSummary]:
        async with self._db.sessions() as s:
            query = (
                select(Review, User)
                .join(User, User.id == Review.user_id)
                .where(Review.course_id == course_id)
                .order_by(Review.id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(Review.id < before)
            rows = (await s.execute(query)).all()
        summary = await self.summary(course_id)
        return [ReviewView(r, u) for r, u in rows], summary

    async def summary(self, course_id: int) -> RatingSummary:
        async with self._db.sessions() as s:
            average, count = (
                await s.execute(
                    select(func.avg(Review.rating), func.count(Review.id)).where(
                        Review.course_id == course_id
                    )
                )
            ).one()
        return RatingSummary(round(float(average), 2) if average is not None else None, int(count))
