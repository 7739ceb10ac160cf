"""Buying a course with coins: the payment and the enrollment commit together or not at all;
and who may watch a course's videos."""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from catalog.models import Course, Enrollment, Lesson
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, ErrorCode, NotFound
from hub.identity.manager import Principal
from hub.identity.models import User
from media.models import Video
from payments.ledger import REVENUE, Ledger, Posting


class AlreadyEnrolled(Conflict):
    code = ErrorCode.CONFLICT


class Purchases:
    def __init__(self, db: Database, ledger: Ledger, clock: Clock, teacher_share: int) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock
        self._teacher_share = teacher_share  # percent of the price the teacher receives

    async def purchase(self, principal: Principal, course_id: int) -> Enrollment:
        """Pay for a course and enroll, in one transaction.

        Raises:
            NotFound: no published course with this id.
            Conflict: already enrolled, or it is the buyer's own course.
            InsufficientFunds: 402 with the balance and the price; nothing happens.
        """
        buyer = principal.user
        try:
            async with self._db.transaction() as s:
                course = await s.get(Course, course_id)
                if course is None or course.status != "published":
                    raise NotFound("No published course with this id.")
                if course.owner_id == buyer.id:
                    raise Conflict("This is your own course.")
                enrolled = await s.scalar(
                    select(Enrollment.id).where(
                        Enrollment.user_id == buyer.id, Enrollment.course_id == course_id
                    )
                )
                if enrolled is not None:
                    raise AlreadyEnrolled("You are already enrolled in this course.")
                transfer_id = None
                if course.price > 0:
                    wallet = await self._ledger.wallet(s, buyer.id)
                    teacher = await self._ledger.wallet(s, course.owner_id)
                    revenue = await self._ledger.account(s, REVENUE)
                    share = course.price * self._teacher_share // 100
                    postings = [Posting(wallet.id, -course.price)]
                    if share:
                        postings.append(Posting(teacher.id, share))
                    if course.price - share:
                        postings.append(Posting(revenue.id, course.price - share))
                    transfer = await self._ledger.post(
                        s,
                        kind="purchase",
                        postings=postings,
                        memo=f"Bought “{course.title}”",
                        reference={"course_id": course.id},
                    )
                    transfer_id = transfer.id
                enrollment = Enrollment(
                    user_id=buyer.id,
                    course_id=course_id,
                    price_paid=course.price,
                    transfer_id=transfer_id,
                    created_at=self._clock.now(),
                )
                s.add(enrollment)
                await s.flush()
                await s.execute(
                    update(Course)
                    .where(Course.id == course_id)
                    .values(enrollment_count=Course.enrollment_count + 1)
                )
        except IntegrityError:
            # The same purchase raced in from another request and enrolled first; this one's
            # payment rolled back with it.
            raise AlreadyEnrolled("You are already enrolled in this course.") from None
        return enrollment


class CourseEntitlement:
    """Media playback rule from the catalog: a lesson's video plays for the course's enrolled
    students, for anyone when the lesson is a free preview of a published course, and for the
    video's owner and admins."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def can_watch(self, user: User, video: Video) -> bool:
        if user.is_admin or user.id == video.owner_id:
            return True
        async with self._db.sessions() as s:
            enrolled = exists().where(
                Enrollment.course_id == Lesson.course_id, Enrollment.user_id == user.id
            )
            preview = Lesson.free_preview.is_(True) & exists().where(
                Course.id == Lesson.course_id, Course.status == "published"
            )
            found = await s.scalar(
                select(Lesson.id).where(Lesson.video_id == video.id, enrolled | preview).limit(1)
            )
        return found is not None
