"""Buying a course with coins: the payment, the enrollment, the teacher's notification and the
answer kept for the request's Idempotency-Key commit together or not at all; and who may watch
a course's videos.

On PostgreSQL the sales that arrive while others are being written go together into the next
batch: one statement (``SALES``) and one commit for all of them, a group commit. Each sale in it
is decided on its own, exactly as it would be alone: the key's earlier answer, the course, the
buyer's own balance under the lock; one refused changes nothing for the others. It follows the
ledger's rules as ``Ledger.post`` does: accounts locked in id order before anything is written,
every account within its limit or nothing happens, the entries balanced, balances moved in SQL.
A batch holds at most one sale of each buyer (a buyer's sales go one batch after another), so
the only account a sale takes coins from, its buyer's wallet, pays for nothing else in it: the
batch is the same as its sales one after the other, the refused ones first. The embedded SQLite
default runs the same steps as separate statements in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
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

log = logging.getLogger(__name__)

SOLD = "course.purchased"  # the teacher's notification of a sale
# Batches of sales in PostgreSQL at once from one hub, and sales in one batch at most. Two: one
# is written while the hub reads the next one's requests; more would only wait in PostgreSQL
# for the rows the first holds (every batch credits the same few teachers).
BATCHES_AT_ONCE = 2
MAX_BATCH = 64

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
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._keys = keys
        self._notifications = notifications
        self._clock = clock
        self._teacher_share = teacher_share  # percent of the price the teacher receives
        self._batches = _SaleBatches(db, teacher_share)

    @property
    def waiting(self) -> int:
        """Sales waiting for a batch (PostgreSQL), not counting those being written."""
        return len(self._batches.waiting)

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
            # The listings' enrollment counts are left to the listing cache's ttl: emptying
            # it on every sale would leave it empty while courses sell.
            self._notifications.wake()
            return outcome
        assert key is not None
        return replay(key, outcome)

    async def _sell_postgres(
        self, buyer_id: int, course_id: int, key: KeyUse | None, at: datetime
    ) -> StoredResponse | Earlier:
        """The sale in the next batch; the key's earlier answer instead, when it has one."""
        order = _Order(buyer_id, course_id, key, at)
        for _ in range(2):
            try:
                sale = await self._batches.sell(order)
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

# Sales on PostgreSQL, a batch in one statement (see the module docstring). $1 buyers, $2
# courses, $3 the buyers' wallet codes, $6 when each was asked for and $7 the same as the
# answer's JSON shows it, $8 their Idempotency-Keys and $9 the requests' fingerprints (or
# NULLs), one element per sale and at most one sale per buyer; $4 the revenue shard's code, $5
# the teacher's share in percent. One row per sale, in order: the key's earlier answer
# (`earlier_*`); else what was found (course, accounts, the buyer's balance under the lock)
# and, when the sale happened, the answer. A sale writes nothing unless the course is for sale
# to its buyer, every account it moves between exists and every one of them stays within its
# limit (the buyer's wallet is the only one it takes from and pays for nothing else here).
# Subqueries with LIMIT look each sale's rows up by index, whatever the planner guesses of the
# arrays' length. bench/purchases.py's peer sends it too (through ``_SaleBatches``).
SALES = f"""
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::varchar[], $6::timestamptz[],
        $7::text[], $8::varchar[], $9::varchar[])
        WITH ORDINALITY AS i (buyer_id, course_id, buyer_code, at, at_json, key, fingerprint, n)
), earlier AS (
    SELECT i.n, r.fingerprint, r.status, r.body, r.content_type
    FROM input i, LATERAL (
        SELECT fingerprint, status, body, content_type FROM idempotency_records
        WHERE user_id = i.buyer_id AND key = i.key LIMIT 1
    ) AS r
), course AS (
    SELECT i.n, i.buyer_id, i.at, i.at_json, i.key, i.fingerprint,
        c.id, c.owner_id, c.price, c.status, c.title,
        EXISTS (SELECT FROM enrollments e WHERE e.user_id = i.buyer_id AND e.course_id = c.id)
            AS enrolled,
        (SELECT id FROM ledger_accounts WHERE code = i.buyer_code) AS buyer_wallet,
        (SELECT id FROM ledger_accounts WHERE code = '{WALLET_PREFIX}' || c.owner_id)
            AS teacher_wallet,
        (SELECT id FROM ledger_accounts WHERE code = $4::varchar) AS revenue
    FROM input i, LATERAL (
        SELECT id, owner_id, price, status, title FROM courses WHERE id = i.course_id LIMIT 1
    ) AS c
    WHERE NOT EXISTS (SELECT FROM earlier e WHERE e.n = i.n)
), sale AS (
    SELECT *, price * $5::int / 100 AS share
    FROM course
    WHERE status = 'published' AND owner_id <> buyer_id AND NOT enrolled
        AND (price = 0 OR num_nulls(buyer_wallet, teacher_wallet, revenue) = 0)
), postings AS (
    SELECT s.n, p.account_id, p.amount
    FROM sale s, LATERAL (VALUES (s.buyer_wallet, -s.price), (s.teacher_wallet, s.share),
        (s.revenue, s.price - s.share)) AS p (account_id, amount)
    WHERE p.amount <> 0
), locked AS (
    SELECT a.id, a.balance, a.allow_negative
    FROM ledger_accounts a
    WHERE a.id = ANY (ARRAY(SELECT account_id FROM postings))  -- by the primary key
    ORDER BY a.id
    FOR NO KEY UPDATE OF a
), checked AS (
    SELECT p.n, bool_and(l.allow_negative OR l.balance + p.amount >= 0) AS ok,
        min(l.balance) FILTER (WHERE p.amount < 0) AS balance
    FROM postings p JOIN locked l ON l.id = p.account_id
    GROUP BY p.n
), done AS (
    SELECT sale.* FROM sale LEFT JOIN checked ON checked.n = sale.n
    WHERE coalesce(checked.ok, true)
), transfer_ids AS (
    SELECT n, nextval('ledger_transfers_id_seq') AS id FROM done WHERE price > 0
), transfer AS (
    INSERT INTO ledger_transfers (id, kind, memo, reference, created_at)
    SELECT t.id, 'purchase', 'Bought “' || d.title || '”', json_build_object('course_id', d.id),
        d.at
    FROM done d JOIN transfer_ids t ON t.n = d.n
), entries AS (
    INSERT INTO ledger_entries (transfer_id, account_id, amount)
    SELECT t.id, p.account_id, p.amount FROM postings p JOIN transfer_ids t ON t.n = p.n
), moved AS (
    SELECT p.account_id, sum(p.amount)::bigint AS amount
    FROM postings p JOIN transfer_ids t ON t.n = p.n
    GROUP BY p.account_id
), balances AS (  -- one scan of the accounts, whatever the planner guesses of their number
    UPDATE ledger_accounts a
    SET balance = a.balance + (SELECT amount FROM moved WHERE moved.account_id = a.id)
    WHERE a.id = ANY (ARRAY(SELECT account_id FROM moved))
), enrollment AS (
    INSERT INTO enrollments (user_id, course_id, price_paid, transfer_id, created_at)
    SELECT d.buyer_id, d.id, d.price, t.id, d.at
    FROM done d LEFT JOIN transfer_ids t ON t.n = d.n
    RETURNING id, user_id, course_id, price_paid
), courses_locked AS (  -- in id order, as the accounts: batches that sell the same free
    SELECT id FROM courses  -- courses never wait for each other both ways
    WHERE id = ANY (ARRAY(SELECT id FROM done))
    ORDER BY id
    FOR NO KEY UPDATE
), counted AS (
    UPDATE courses c SET enrollment_count = c.enrollment_count + sold.sales
    FROM (SELECT course_id, count(*)::int AS sales FROM enrollment GROUP BY course_id) AS sold
    WHERE c.id = sold.course_id AND c.id = ANY (ARRAY(SELECT id FROM courses_locked))
), told AS (
    INSERT INTO notification_outbox (user_id, type, actor_id, data, group_key, created_at)
    SELECT d.owner_id, '{SOLD}', d.buyer_id,
        json_build_object('course_id', d.id, 'course_title', d.title, 'price', d.price),
        '{SOLD}:' || d.id, d.at
    FROM done d
    WHERE d.price > 0
), answer AS (
    SELECT d.n, d.buyer_id, d.key, d.fingerprint, d.at,
        convert_to(format('{ANSWER}', e.id, e.course_id, e.price_paid, d.at_json), 'UTF8')
            AS body
    FROM done d JOIN enrollment e ON e.user_id = d.buyer_id AND e.course_id = d.id
), recorded AS (
    INSERT INTO idempotency_records
        (user_id, key, fingerprint, status, body, content_type, created_at)
    SELECT buyer_id, key, fingerprint, 201, body, 'application/json', at
    FROM answer
    WHERE key IS NOT NULL
)
SELECT earlier.fingerprint AS earlier_fingerprint, earlier.status AS earlier_status,
    earlier.body AS earlier_body, earlier.content_type AS earlier_content_type,
    course.owner_id, course.price, course.status, course.title, course.enrolled,
    course.buyer_wallet, course.teacher_wallet, course.revenue,
    checked.balance, answer.body
FROM input
    LEFT JOIN earlier ON earlier.n = input.n
    LEFT JOIN course ON course.n = input.n
    LEFT JOIN checked ON checked.n = input.n
    LEFT JOIN answer ON answer.n = input.n
ORDER BY input.n
"""


@dataclass(frozen=True, slots=True)
class _Order:
    """One sale asked for: who buys which course, under which key, when."""

    buyer_id: int
    course_id: int
    key: KeyUse | None
    at: datetime


@dataclass(slots=True)
class _Batch:
    orders: list[_Order] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)

    def answer(self, rows: list[Any]) -> None:
        for future, row in zip(self.futures, rows, strict=True):
            if not future.done():
                future.set_result(row)

    def fail(self, exc: BaseException) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(exc)


class _SaleBatches:
    """PostgreSQL's sales, a batch at a time (``SALES``; see the module docstring): the sales
    asked for while batches are being written go together into the next one. The first sale of
    a quiet moment is written at once; under load the batches grow by themselves, and with them
    the sales per commit."""

    def __init__(self, db: Database, teacher_share: int) -> None:
        self._db = db
        self._teacher_share = teacher_share
        self.waiting: list[tuple[_Order, asyncio.Future[Any]]] = []
        self._buyers: set[int] = set()  # buyers with a sale in a batch being written
        self._writers: set[asyncio.Task[None]] = set()

    async def sell(self, order: _Order) -> Any:
        """The sale's row of ``SALES`` (as ``Purchases._sell_postgres`` reads it).

        Raises:
            asyncpg.UniqueViolationError: a request that committed first enrolled the buyer in
                the course or took the key.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Retrieved even when the buyer is gone (see the shield below).
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.waiting.append((order, future))
        if len(self._writers) < BATCHES_AT_ONCE and self._takeable():
            writer = asyncio.get_running_loop().create_task(self._write_all(), name="sales")
            self._writers.add(writer)
        # A buyer who goes away (the connection closed) takes neither the sale nor its batch.
        return await asyncio.shield(future)

    def _takeable(self) -> bool:
        return any(order.buyer_id not in self._buyers for order, _ in self.waiting)

    def _take(self) -> _Batch:
        """The next batch: waiting sales in order, one per buyer (a buyer's next sale waits
        until the batch with their last one is written)."""
        batch, rest = _Batch(), []
        for order, future in self.waiting:
            if len(batch.orders) < MAX_BATCH and order.buyer_id not in self._buyers:
                self._buyers.add(order.buyer_id)
                batch.orders.append(order)
                batch.futures.append(future)
            else:
                rest.append((order, future))
        self.waiting = rest
        return batch

    async def _write_all(self) -> None:
        try:
            while (batch := self._take()).orders:
                try:
                    await self._write(batch)
                finally:
                    self._buyers.difference_update(order.buyer_id for order in batch.orders)
        except asyncio.CancelledError:
            if len(self._writers) == 1:  # nobody is left to write what waits
                for _, future in self.waiting:
                    future.cancel()
                self.waiting.clear()
            raise
        finally:
            # At once: a sale asked for from now on must start a writer.
            self._writers.discard(asyncio.current_task())

    async def _write(self, batch: _Batch) -> None:
        try:
            async with self._db.driver() as driver:
                try:
                    rows = await driver.fetch(SALES, *self._arguments(batch.orders))
                except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
                    rows, failed = [], exc  # the connection stays good
                else:
                    failed = None
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as exc:
            batch.fail(exc)
            return
        if failed is None:
            batch.answer(rows)
        elif len(batch.orders) == 1:
            batch.fail(failed)
        else:
            # A row another transaction wrote first (the same buyer's sale from another hub):
            # one by one, each sale gets its own answer.
            log.info("a batch of sales met another transaction; writing them one by one")
            for order, future in zip(batch.orders, batch.futures, strict=True):
                await self._write(_Batch([order], [future]))

    def _arguments(self, orders: list[_Order]) -> list[Any]:
        """``SALES``'s arguments. One revenue shard for the whole batch: one row to update."""
        return [
            [order.buyer_id for order in orders],
            [order.course_id for order in orders],
            [wallet_code(order.buyer_id) for order in orders],
            any_shard(REVENUE),
            self._teacher_share,
            [order.at for order in orders],
            [_DATETIME_JSON.dump_json(order.at).decode() for order in orders],
            [order.key.key if order.key is not None else None for order in orders],
            [order.key.fingerprint if order.key is not None else None for order in orders],
        ]


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
