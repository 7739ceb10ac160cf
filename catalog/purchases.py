"""Buying a course with coins: the payment, the enrollment, the teacher's notification and the
answer kept for the request's Idempotency-Key commit together or not at all; and who may watch
a course's videos.

On PostgreSQL a sale is one statement (``SALE``), committed by itself: one round trip, and the
rows it locks (the buyer's and the teacher's wallets, a shard of platform revenue, the course)
are held only while it runs and commits. It follows the ledger's rules as ``Ledger.post`` does:
accounts locked in id order before anything is written, every account within its limit or
nothing happens, the entries balanced, balances moved in SQL. The embedded SQLite default runs
the same steps as separate statements in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import String, bindparam, cast, exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from catalog.models import Course, Enrollment, Lesson
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, ErrorCode, NotFound
from hub.identity.models import User
from hub.notifications.models import PendingNotification
from hub.notifications.service import Notifications
from media.models import Video
from payments.idempotency import Earlier, IdempotencyKeys, KeyUse, StoredResponse, replay
from payments.ledger import (
    REVENUE,
    SHARDS,
    WALLET_PREFIX,
    InsufficientFunds,
    Ledger,
    Posting,
    any_shard,
    shard_code,
    wallet_code,
)
from payments.models import LedgerAccount

SOLD = "course.purchased"  # the teacher's notification of a sale
# Sales in PostgreSQL at once from one hub; the others wait their turn in the hub. Sales queue
# for the same few rows (a teacher's wallet, a revenue shard), and PostgreSQL spends more CPU
# on each the more of them wait there at once: 0.5 ms a sale with 4 to 8 running, 0.85 ms with
# 32, on this machine's two cores (bench/README.md).
SALES_AT_ONCE = 8

# The 201 answer of a sale: the JSON of ``catalog.handlers.EnrollmentEnvelope``, byte for byte.
# Rendered by the sale's statement on PostgreSQL (PostgreSQL's format() and Python's % share
# this template), so the answer a key keeps is stored in the sale's own transaction.
ANSWER = '{"enrollment":{"id":%s,"course_id":%s,"price_paid":%s,"created_at":%s}}'
_DATETIME_JSON = TypeAdapter(datetime)


class AlreadyEnrolled(Conflict):
    code = ErrorCode.CONFLICT


@dataclass(frozen=True, slots=True)
class _ForSale:
    """What a sale needs to know about the course, the buyer and the accounts involved."""

    owner_id: int
    price: int
    status: str
    title: str
    enrolled: bool
    buyer_wallet: int | None
    teacher_wallet: int | None
    revenue: int | None


class Purchases:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        keys: IdempotencyKeys,
        notifications: Notifications,
        clock: Clock,
        teacher_share: int,
        on_sale: Callable[[], None],
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._keys = keys
        self._notifications = notifications
        self._clock = clock
        self._teacher_share = teacher_share  # percent of the price the teacher receives
        # Called after each sale commits (the catalog listings show enrollment counts).
        self._on_sale = on_sale
        self._turns = asyncio.Semaphore(SALES_AT_ONCE)

    async def purchase(
        self, buyer: User, course_id: int, key: KeyUse | None = None
    ) -> StoredResponse:
        """Pay for a course and enroll, in one transaction; returns the 201 answer, or with a
        ``key`` answered before, that answer again (and nothing happens).

        Raises:
            NotFound: no published course with this id.
            Conflict: already enrolled, or it is the buyer's own course; or the key was used
                for another request.
            InsufficientFunds: 402 with the balance and the price; nothing happens.
            ReplayedRefusal: the key's first request was refused; so is this one.
        """
        at = self._clock.now()
        try:
            if self._db.is_sqlite:
                outcome = await self._sell_sqlite(buyer.id, course_id, key, at)
            else:
                outcome = await self._sell_postgres(buyer.id, course_id, key, at)
        except (NotFound, Conflict, InsufficientFunds) as refused:
            # A refusal is the key's answer too, even if a retry would now succeed.
            earlier = await self._keys.refuse(key, refused) if key is not None else None
            if earlier is None:
                raise
            return earlier
        if isinstance(outcome, StoredResponse):
            self._on_sale()
            self._notifications.wake()
            return outcome
        assert key is not None
        return replay(key, outcome)

    async def _sell_postgres(
        self, buyer_id: int, course_id: int, key: KeyUse | None, at: datetime
    ) -> StoredResponse | Earlier:
        """The sale as one statement; the key's earlier answer instead, when it has one."""
        async with self._turns, self._db.driver() as driver:
            for _ in range(2):
                try:
                    sale = await driver.fetchrow(
                        SALE,
                        buyer_id,
                        course_id,
                        wallet_code(buyer_id),
                        any_shard(REVENUE),
                        self._teacher_share,
                        at,
                        _DATETIME_JSON.dump_json(at).decode(),
                        key.key if key is not None else None,
                        key.fingerprint if key is not None else None,
                    )
                except asyncpg.UniqueViolationError:
                    return await self._raced(key)
                if sale["earlier_status"] is not None:
                    return _earlier(sale)
                if sale["body"] is not None:
                    return StoredResponse(201, bytes(sale["body"]), "application/json")
                course = _for_sale(sale)
                self._refuse(buyer_id, course)
                missing = _unopened(buyer_id, course)
                if not missing:  # the only way left for a sale that went ahead to write nothing
                    raise InsufficientFunds(sale["balance"], course.price)
                # Accounts open on first use; the statement needs them to exist.
                await self._ledger.open(missing)
        raise RuntimeError(f"the sale's accounts did not open: {dict(sale)}")

    async def _sell_sqlite(
        self, buyer_id: int, course_id: int, key: KeyUse | None, at: datetime
    ) -> StoredResponse | Earlier:
        """The sale's steps in one transaction that holds SQLite's write lock throughout."""
        try:
            async with self._db.transaction() as s:
                conn = await s.connection()
                if key is not None:
                    earlier = await self._keys.earlier(conn, key)
                    if earlier is not None:
                        return earlier
                found = (
                    await conn.execute(
                        _FOR_SALE,
                        {
                            "course_id": course_id,
                            "buyer_id": buyer_id,
                            "buyer_wallet_code": wallet_code(buyer_id),
                        },
                    )
                ).first()
                if found is None:
                    raise NotFound("No published course with this id.")
                course = _ForSale(*found)
                self._refuse(buyer_id, course)
                transfer_id = None
                if course.price > 0:
                    buyer = course.buyer_wallet or (await self._ledger.wallet(s, buyer_id)).id
                    teacher = (
                        course.teacher_wallet or (await self._ledger.wallet(s, course.owner_id)).id
                    )
                    revenue = (await self._ledger.account(s, REVENUE)).id
                    transfer = await self._ledger.post(
                        s,
                        kind="purchase",
                        postings=self._postings(course.price, buyer, teacher, revenue),
                        memo=f"Bought “{course.title}”",
                        reference={"course_id": course_id},
                    )
                    transfer_id = transfer.id
                enrollment_id = (
                    await conn.execute(
                        _ENROLL,
                        {
                            "user_id": buyer_id,
                            "course_id": course_id,
                            "price_paid": course.price,
                            "transfer_id": transfer_id,
                            "created_at": at,
                        },
                    )
                ).scalar_one()
                await conn.execute(_COUNT_ENROLLMENT, {"course_id": course_id})
                if course.price > 0:
                    await conn.execute(
                        _TELL_TEACHER,
                        Notifications.pending_values(
                            course.owner_id,
                            SOLD,
                            actor_id=buyer_id,
                            data=_sale_data(course_id, course.title, course.price),
                            group_key=f"{SOLD}:{course_id}",
                            at=at,
                        ),
                    )
                body = ANSWER % (
                    enrollment_id,
                    course_id,
                    course.price,
                    _DATETIME_JSON.dump_json(at).decode(),
                )
                answer = StoredResponse(201, body.encode(), "application/json")
                if key is not None:
                    await self._keys.record(conn, key, answer)
        except IntegrityError:
            # Enrolled by a request that committed first (another process on the same file).
            raise AlreadyEnrolled("You are already enrolled in this course.") from None
        return answer

    async def _raced(self, key: KeyUse | None) -> Earlier:
        """A request that committed while this sale ran took its key (replay its answer) or
        enrolled the buyer in the course first (then this one is refused)."""
        earlier = None
        if key is not None:
            async with self._db.connect() as conn:
                earlier = await self._keys.earlier(conn, key)
        if earlier is None:
            raise AlreadyEnrolled("You are already enrolled in this course.")
        return earlier

    def _refuse(self, buyer_id: int, course: _ForSale) -> None:
        """Raises:
        NotFound, Conflict: the course is not for sale to this buyer."""
        if course.status != "published":
            raise NotFound("No published course with this id.")
        if course.owner_id == buyer_id:
            raise Conflict("This is your own course.")
        if course.enrolled:
            raise AlreadyEnrolled("You are already enrolled in this course.")

    def _postings(self, price: int, buyer: int, teacher: int, revenue: int) -> list[Posting]:
        """The buyer pays the price; the teacher gets their share, the platform the rest."""
        share = price * self._teacher_share // 100
        postings = [Posting(buyer, -price)]
        if share:
            postings.append(Posting(teacher, share))
        if price - share:
            postings.append(Posting(revenue, price - share))
        return postings


def _sale_data(course_id: int, title: str, price: int) -> dict[str, Any]:
    return {"course_id": course_id, "course_title": title, "price": price}


def _earlier(sale: Any) -> tuple[str, int, bytes, str]:
    """The key's earlier answer, as ``replay`` takes it."""
    return (
        sale["earlier_fingerprint"],
        sale["earlier_status"],
        bytes(sale["earlier_body"]),
        sale["earlier_content_type"],
    )


def _for_sale(sale: Any) -> _ForSale:
    if sale["status"] is None:
        raise NotFound("No published course with this id.")
    return _ForSale(
        sale["owner_id"],
        sale["price"],
        sale["status"],
        sale["title"],
        sale["enrolled"],
        sale["buyer_wallet"],
        sale["teacher_wallet"],
        sale["revenue"],
    )


def _unopened(buyer_id: int, course: _ForSale) -> list[str]:
    """Codes of the accounts a paid sale moves between that are not open yet (for platform
    revenue, every shard)."""
    if course.price <= 0:
        return []
    wanted = {
        wallet_code(buyer_id): course.buyer_wallet,
        wallet_code(course.owner_id): course.teacher_wallet,
    }
    missing = [code for code, found in wanted.items() if found is None]
    if course.revenue is None:
        missing.extend(shard_code(REVENUE, shard) for shard in range(SHARDS))
    return missing


# Statements of the SQLite steps, built once (building and keying a statement costs about as
# much CPU as running it).
_ENROLL = insert(Enrollment).returning(Enrollment.id)
_COUNT_ENROLLMENT = (
    update(Course)
    .where(Course.id == bindparam("course_id"))
    .values(enrollment_count=Course.enrollment_count + 1)
)
_TELL_TEACHER = insert(PendingNotification)


def _account_id(code: Any) -> Any:
    return select(LedgerAccount.id).where(LedgerAccount.code == code).scalar_subquery()


# What a purchase needs to know, in one round trip: the course, whether the buyer is enrolled
# already, and the wallets the payment moves between (None for a wallet not opened yet).
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
    literal(None).label("revenue"),
).where(Course.id == bindparam("course_id"))

# A whole sale on PostgreSQL (see the module docstring; bench/purchases.py's peer sends it too).
# $1 buyer, $2 course, $3 the buyer's wallet code, $4 the revenue shard's code, $5 the teacher's
# share in percent, $6 now, $7 now as the answer's JSON shows it, $8 the Idempotency-Key and $9
# the request's fingerprint (or NULL). One row comes back: the key's earlier answer
# (`earlier_*`); else what was found (course, accounts, the buyer's balance under the lock)
# and, when the sale happened, the answer. Nothing is written unless the course is for sale to
# the buyer, every account it moves between exists and every one of them stays within its
# limit.
SALE = f"""
WITH earlier AS (
    SELECT fingerprint, status, body, content_type FROM idempotency_records
    WHERE user_id = $1 AND key = $8::varchar
), course AS (
    SELECT c.id, c.owner_id, c.price, c.status, c.title,
        EXISTS (SELECT FROM enrollments e WHERE e.user_id = $1 AND e.course_id = c.id)
            AS enrolled,
        (SELECT id FROM ledger_accounts WHERE code = $3::varchar) AS buyer_wallet,
        (SELECT id FROM ledger_accounts WHERE code = '{WALLET_PREFIX}' || c.owner_id)
            AS teacher_wallet,
        (SELECT id FROM ledger_accounts WHERE code = $4::varchar) AS revenue
    FROM courses c
    WHERE c.id = $2 AND NOT EXISTS (SELECT FROM earlier)
), sale AS (
    SELECT id, owner_id, price, title, buyer_wallet, teacher_wallet, revenue,
        price * $5::int / 100 AS share
    FROM course
    WHERE status = 'published' AND owner_id <> $1 AND NOT enrolled
        AND (price = 0 OR num_nulls(buyer_wallet, teacher_wallet, revenue) = 0)
), postings AS (
    SELECT p.account_id, p.amount
    FROM sale, LATERAL (VALUES (buyer_wallet, -price), (teacher_wallet, share),
        (revenue, price - share)) AS p (account_id, amount)
    WHERE p.amount <> 0
), locked AS (
    SELECT a.id, a.balance, a.allow_negative, p.amount
    FROM ledger_accounts a JOIN postings p ON p.account_id = a.id
    WHERE a.id = ANY (ARRAY(SELECT account_id FROM postings))  -- by the primary key
    ORDER BY a.id
    FOR NO KEY UPDATE OF a
), funded AS (
    SELECT coalesce(bool_and(allow_negative OR balance + amount >= 0), true) AS ok,
        min(balance) FILTER (WHERE amount < 0) AS balance
    FROM locked
), transfer AS (
    INSERT INTO ledger_transfers (kind, memo, reference, created_at)
    SELECT 'purchase', 'Bought “' || title || '”', json_build_object('course_id', id), $6
    FROM sale, funded
    WHERE funded.ok AND sale.price > 0
    RETURNING id
), entries AS (
    INSERT INTO ledger_entries (transfer_id, account_id, amount)
    SELECT transfer.id, locked.id, locked.amount FROM transfer, locked
), balances AS (
    UPDATE ledger_accounts a SET balance = a.balance + locked.amount
    FROM transfer, locked
    WHERE a.id = locked.id AND a.id = ANY (ARRAY(SELECT id FROM locked))
), enrollment AS (
    INSERT INTO enrollments (user_id, course_id, price_paid, transfer_id, created_at)
    SELECT $1, sale.id, sale.price, (SELECT id FROM transfer), $6
    FROM sale, funded
    WHERE funded.ok
    RETURNING id, course_id, price_paid
), counted AS (
    UPDATE courses SET enrollment_count = enrollment_count + 1
    WHERE id = (SELECT course_id FROM enrollment)
), told AS (
    INSERT INTO notification_outbox (user_id, type, actor_id, data, group_key, created_at)
    SELECT sale.owner_id, '{SOLD}', $1,
        json_build_object('course_id', sale.id, 'course_title', sale.title, 'price', sale.price),
        '{SOLD}:' || sale.id, $6
    FROM sale, enrollment
    WHERE sale.price > 0
), answer AS (
    SELECT convert_to(format('{ANSWER}', id, course_id, price_paid, $7::text), 'UTF8') AS body
    FROM enrollment
), recorded AS (
    INSERT INTO idempotency_records
        (user_id, key, fingerprint, status, body, content_type, created_at)
    SELECT $1, $8, $9::varchar, 201, body, 'application/json', $6
    FROM answer
    WHERE $8 IS NOT NULL
)
SELECT earlier.fingerprint AS earlier_fingerprint, earlier.status AS earlier_status,
    earlier.body AS earlier_body, earlier.content_type AS earlier_content_type,
    course.owner_id, course.price, course.status, course.title, course.enrolled,
    course.buyer_wallet, course.teacher_wallet, course.revenue,
    funded.balance, answer.body
FROM (SELECT) AS one
    LEFT JOIN earlier ON true
    LEFT JOIN course ON true
    LEFT JOIN funded ON true
    LEFT JOIN answer ON true
"""


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
