"""Buying a course with coins: the payment and the enrollment commit together or not at all;
and who may watch a course's videos."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam, cast, exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from catalog.models import Course, Enrollment, Lesson
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, ErrorCode, NotFound
from hub.identity.manager import Principal
from hub.identity.models import User
from media.models import Video
from payments.ledger import REVENUE, WALLET_PREFIX, Ledger, Posting, wallet_code
from payments.models import LedgerAccount


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
                # Core statements on the session's connection: this is the hot path of sales.
                conn = await s.connection()
                course = (
                    await conn.execute(
                        _FOR_SALE,
                        {
                            "course_id": course_id,
                            "buyer_id": buyer.id,
                            "buyer_wallet_code": wallet_code(buyer.id),
                        },
                    )
                ).first()
                if course is None or course.status != "published":
                    raise NotFound("No published course with this id.")
                if course.owner_id == buyer.id:
                    raise Conflict("This is your own course.")
                if course.enrolled:
                    raise AlreadyEnrolled("You are already enrolled in this course.")
                # Counted first: the course's row is locked before the wallets, as by every sale.
                await conn.execute(_COUNT_ENROLLMENT, {"course_id": course_id})
                transfer_id = None
                if course.price > 0:
                    # Wallets open on first use; the lookup above found the ones that exist.
                    wallet = course.buyer_wallet or (await self._ledger.wallet(s, buyer.id)).id
                    teacher = (
                        course.teacher_wallet or (await self._ledger.wallet(s, course.owner_id)).id
                    )
                    revenue = course.revenue or (await self._ledger.account(s, REVENUE)).id
                    share = course.price * self._teacher_share // 100
                    postings = [Posting(wallet, -course.price)]
                    if share:
                        postings.append(Posting(teacher, share))
                    if course.price - share:
                        postings.append(Posting(revenue, course.price - share))
                    transfer = await self._ledger.post(
                        s,
                        kind="purchase",
                        postings=postings,
                        memo=f"Bought “{course.title}”",
                        reference={"course_id": course_id},
                    )
                    transfer_id = transfer.id
                enrollment = Enrollment(
                    user_id=buyer.id,
                    course_id=course_id,
                    price_paid=course.price,
                    transfer_id=transfer_id,
                    created_at=self._clock.now(),
                )
                enrollment.id = (
                    await conn.execute(
                        _ENROLL,
                        {
                            "user_id": enrollment.user_id,
                            "course_id": enrollment.course_id,
                            "price_paid": enrollment.price_paid,
                            "transfer_id": enrollment.transfer_id,
                            "created_at": enrollment.created_at,
                        },
                    )
                ).scalar_one()
        except IntegrityError:
            # The same purchase raced in from another request and enrolled first; this one's
            # payment rolled back with it.
            raise AlreadyEnrolled("You are already enrolled in this course.") from None
        return enrollment


# Statements of every purchase, built once (building and keying a statement costs about as
# much CPU as running it).
_ENROLL = insert(Enrollment).returning(Enrollment.id)
_COUNT_ENROLLMENT = (
    update(Course)
    .where(Course.id == bindparam("course_id"))
    .values(enrollment_count=Course.enrollment_count + 1)
)


def _account_id(code: Any) -> Any:
    return select(LedgerAccount.id).where(LedgerAccount.code == code).scalar_subquery()


# What a purchase needs to know, in one round trip: the course, whether the buyer is enrolled
# already, and the ledger accounts the payment moves between (None for a wallet not opened yet).
_FOR_SALE = select(
    Course.owner_id,
    Course.price,
    Course.status,
    Course.title,
    exists()
    .where(Enrollment.user_id == bindparam("buyer_id"), Enrollment.course_id == Course.id)
    .label("enrolled"),
    _account_id(bindparam("buyer_wallet_code", type_=String)).label("buyer_wallet"),
    _account_id(literal(WALLET_PREFIX) + cast(Course.owner_id, String)).label("teacher_wallet"),
    _account_id(literal(REVENUE)).label("revenue"),
).where(Course.id == bindparam("course_id"))


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
