"""Buying courses with coins, and who may then watch their videos."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from sqlalchemy import func, select, text

from catalog.handlers import EnrollmentEnvelope
from catalog.services import CATALOG
from hub.notifications.models import PendingNotification
from hub.services import HUB
from payments.handlers import PAYMENTS
from payments.ledger import ISSUANCE, REVENUE, Ledger, wallet_code
from tests.catalog.test_courses import COURSE, a_video
from tests.conftest import Account, log_in, sign_up

# Sales are batched on PostgreSQL only (SQLite runs one writer at a time anyway).
ON_POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


@pytest.fixture
async def teacher(client: Any, app: web.Application) -> Account:
    account = Account("tina@example.com", "teaching all day", "Tina")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, "Tina", admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


async def published(
    client: Any, app: web.Application, teacher: Account, *, price: int, preview: bool = False
) -> tuple[int, str, str]:
    """A published course with one video lesson (and one free-preview video lesson)."""
    course = await (
        await client.post("/api/courses", json={**COURSE, "price": price}, headers=teacher.auth)
    ).json()
    section = await (
        await client.post(
            f"/api/courses/{course['id']}/sections", json={"title": "S"}, headers=teacher.auth
        )
    ).json()
    paid_video = await a_video(app, teacher.id)
    preview_video = await a_video(app, teacher.id)
    for title, video, free in (("Paid", paid_video, False), ("Preview", preview_video, True)):
        resp = await client.post(
            f"/api/sections/{section['id']}/lessons",
            json={"title": title, "kind": "video", "video_id": video, "free_preview": free},
            headers=teacher.auth,
        )
        assert resp.status == 201
    assert (
        await client.post(f"/api/courses/{course['id']}/publish", headers=teacher.auth)
    ).status == 200
    return course["id"], paid_video, preview_video


async def balance(client: Any, account: Account) -> int:
    return (await (await client.get("/api/wallet", headers=account.auth)).json())["balance"]


async def test_buy_a_course_pays_the_teacher_and_unlocks_its_videos(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course_id, paid_video, preview_video = await published(client, app, teacher, price=40)
    student = await sign_up(client, "Sam")
    # Before buying: the free preview plays, the paid lesson does not exist for them.
    assert (await client.get(f"/api/videos/{preview_video}", headers=student.auth)).status == 200
    assert (await client.get(f"/api/videos/{paid_video}", headers=student.auth)).status == 404

    resp = await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    assert resp.status == 201
    enrollment = (await resp.json())["enrollment"]
    assert (enrollment["course_id"], enrollment["price_paid"]) == (course_id, 40)
    assert await balance(client, student) == 60
    assert await balance(client, teacher) == 100 + 28  # 70 % of 40
    assert await app[PAYMENTS].ledger.system_balance(REVENUE) == 12
    video = await (await client.get(f"/api/videos/{paid_video}", headers=student.auth)).json()
    assert video["playback_url"]
    assert await app[PAYMENTS].ledger.verify() == []

    again = await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    assert again.status == 409
    assert await balance(client, student) == 60


async def test_not_enough_coins_is_402_and_changes_nothing(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course_id, paid_video, _ = await published(client, app, teacher, price=150)
    student = await sign_up(client, "Sam")
    resp = await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    assert resp.status == 402
    problem = await resp.json()
    assert (problem["code"], problem["balance"], problem["price"]) == (
        "insufficient_funds",
        100,
        150,
    )
    assert await balance(client, student) == 100
    assert (await client.get(f"/api/videos/{paid_video}", headers=student.auth)).status == 404


async def test_free_courses_enroll_without_a_transfer(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course_id, paid_video, _ = await published(client, app, teacher, price=0)
    student = await sign_up(client, "Sam")
    resp = await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    assert resp.status == 201
    assert await balance(client, student) == 100
    history = await (await client.get("/api/wallet/transactions", headers=student.auth)).json()
    assert [line["kind"] for line in history["items"]] == ["signup_grant"]
    assert (await client.get(f"/api/videos/{paid_video}", headers=student.auth)).status == 200


async def test_idempotency_key_makes_a_retry_safe(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course_id, _, _ = await published(client, app, teacher, price=30)
    student = await sign_up(client, "Sam")
    headers = {**student.auth, "Idempotency-Key": "buy-course-1"}
    first = await client.post(f"/api/courses/{course_id}/purchase", headers=headers)
    second = await client.post(f"/api/courses/{course_id}/purchase", headers=headers)
    assert first.status == second.status == 201
    body = await first.read()
    assert await second.read() == body  # the first answer, byte for byte
    # On PostgreSQL the sale's statement renders the answer: exactly what the model would.
    assert EnrollmentEnvelope.model_validate_json(body).model_dump_json().encode() == body
    assert await balance(client, student) == 70
    other_course, _, _ = await published(client, app, teacher, price=30)
    reuse = await client.post(f"/api/courses/{other_course}/purchase", headers=headers)
    assert reuse.status == 409  # the key belongs to another request


async def test_drafts_and_own_courses_cannot_be_bought(client: Any, teacher: Account) -> None:
    draft = await (await client.post("/api/courses", json=COURSE, headers=teacher.auth)).json()
    student = await sign_up(client, "Sam")
    assert (
        await client.post(f"/api/courses/{draft['id']}/purchase", headers=student.auth)
    ).status == 404
    assert (await client.post("/api/courses/999/purchase", headers=student.auth)).status == 404


async def test_hundred_concurrent_purchases_from_a_wallet_for_ten(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """100 courses at 10 coins, a wallet holding exactly 100: exactly 10 purchases succeed."""
    courses = []
    for _ in range(100):
        course_id, _, _ = await published(client, app, teacher, price=10)
        courses.append(course_id)
    student = await sign_up(client, "Sam")
    assert await balance(client, student) == 100
    statuses = await asyncio.gather(
        *(client.post(f"/api/courses/{cid}/purchase", headers=student.auth) for cid in courses)
    )
    codes = sorted(r.status for r in statuses)
    assert codes.count(201) == 10
    assert codes.count(402) == 90
    assert await balance(client, student) == 0
    ledger: Ledger = app[PAYMENTS].ledger
    assert await ledger.verify() == []
    async with app[HUB].db.sessions() as s:
        teacher_wallet = await ledger.account(s, wallet_code(teacher.id))
        assert teacher_wallet.balance == 10 * 7  # the teacher's share of each sale


async def test_enrolled_students_review_once_and_edit(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course_id, _, _ = await published(client, app, teacher, price=0)
    ana = await sign_up(client, "Ana")
    bo = await sign_up(client, "Bo")
    outsider = await sign_up(client, "Out")
    for student in (ana, bo):
        await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    denied = await client.put(
        f"/api/courses/{course_id}/review", json={"rating": 5}, headers=outsider.auth
    )
    assert denied.status == 403
    first = await client.put(
        f"/api/courses/{course_id}/review",
        json={"rating": 2, "comment": "Too fast"},
        headers=ana.auth,
    )
    assert first.status == 200
    edited = await client.put(
        f"/api/courses/{course_id}/review",
        json={"rating": 4, "comment": "Better on rewatch"},
        headers=ana.auth,
    )
    assert (await edited.json())["id"] == (await first.json())["id"]
    await client.put(f"/api/courses/{course_id}/review", json={"rating": 5}, headers=bo.auth)
    listed = await (await client.get(f"/api/courses/{course_id}/reviews")).json()
    assert [r["rating"] for r in listed["items"]] == [5, 4]
    assert listed["rating"] == {"average": 4.5, "count": 2}
    course = await (await client.get(f"/api/courses/{course_id}")).json()
    assert course["rating"] == {"average": 4.5, "count": 2}
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "five"}, {}):
        resp = await client.put(f"/api/courses/{course_id}/review", json=bad, headers=bo.auth)
        assert resp.status == 422


async def test_a_sale_shows_in_the_listings_within_their_ttl(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """The sale's enrollment count reaches the catalog pages once the kept ones expire
    (docs/courses.md, "Freshness": sales leave the listing cache as it is)."""
    course_id, _, _ = await published(client, app, teacher, price=10)

    async def enrollments() -> int:
        page = await (await client.get("/api/courses?sort=popular")).json()
        [card] = [c for c in page["items"] if c["id"] == course_id]
        return int(card["enrollments"])

    assert await enrollments() == 0  # and kept
    student = await sign_up(client, "Sam")
    assert (
        await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    ).status == 201
    app[CATALOG].search.cache.clear()  # stands for the cache's ttl passing
    assert await enrollments() == 1


async def test_a_refusal_is_the_keys_answer_too(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """A key first refused (402) is refused the same way again, even once the coins are there;
    the same request under a new key goes through."""
    course_id, _, _ = await published(client, app, teacher, price=150)
    student = await sign_up(client, "Sam")
    headers = {**student.auth, "Idempotency-Key": "short-of-coins"}
    first = await client.post(f"/api/courses/{course_id}/purchase", headers=headers)
    assert first.status == 402
    assert await app[PAYMENTS].ledger.transfer_once(
        kind="grant", source=ISSUANCE, target=wallet_code(student.id), amount=100, dedupe_key="g"
    )
    again = await client.post(f"/api/courses/{course_id}/purchase", headers=headers)
    assert again.status == 402
    assert (await again.json())["balance"] == 100  # the first answer, not today's balance
    fresh = {**student.auth, "Idempotency-Key": "now-with-coins"}
    assert (await client.post(f"/api/courses/{course_id}/purchase", headers=fresh)).status == 201
    assert await balance(client, student) == 50


async def test_one_key_sent_many_times_at_once_pays_once(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """Concurrent requests with the same key: one sale; every answer is that sale's."""
    course_id, _, _ = await published(client, app, teacher, price=30)
    student = await sign_up(client, "Sam")
    headers = {**student.auth, "Idempotency-Key": "double-click"}
    answers = await asyncio.gather(
        *(client.post(f"/api/courses/{course_id}/purchase", headers=headers) for _ in range(10))
    )
    assert [r.status for r in answers] == [201] * 10
    assert len({await r.read() for r in answers}) == 1
    assert await balance(client, student) == 70
    assert await app[PAYMENTS].ledger.verify() == []


async def test_the_teachers_notification_waits_in_the_outbox_with_the_sale(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """A sale writes its notification in its own transaction (a refused one writes none); it
    becomes the teacher's notification when the outbox is delivered, by this hub or the next."""
    course_id, _, _ = await published(client, app, teacher, price=150)
    student = await sign_up(client, "Sam")
    db = app[HUB].db

    async def waiting() -> int:
        async with db.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(PendingNotification)))

    assert (
        await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    ).status == 402
    assert await waiting() == 0
    await app[PAYMENTS].ledger.transfer_once(
        kind="grant", source=ISSUANCE, target=wallet_code(student.id), amount=50, dedupe_key="g"
    )
    assert (
        await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    ).status == 201
    notifications = app[HUB].notifications
    if await waiting() == 1:  # else this hub's background delivery was quicker
        assert await notifications.deliver_pending() == 1
    assert await waiting() == 0
    [sale], _ = await notifications.recent(teacher.id, before=None, limit=10)
    assert sale.as_json()["text"] == "Sam bought Python for Data Journalism"


async def buy(
    client: Any, buyer: Account, course_id: int, key: str | None = None
) -> tuple[int, bytes]:
    """POST the purchase; returns (status, body)."""
    headers = {**buyer.auth, **({"Idempotency-Key": key} if key else {})}
    resp = await client.post(f"/api/courses/{course_id}/purchase", headers=headers)
    return resp.status, await resp.read()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait (at most 10 s) until ``condition`` holds: it polls, since what it watches is
    PostgreSQL's (which statements wait for a lock) or the hub's queue, with no event to await."""
    async with asyncio.timeout(10):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.01)


def lock_waiters(app: web.Application, count: int) -> Callable[[], Awaitable[bool]]:
    """Whether ``count`` statements of this database wait for a row lock."""

    async def waiting() -> bool:
        async with app[HUB].db.connect() as conn:
            found = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(found == count)

    return waiting


def queued(app: web.Application, count: int) -> Callable[[], Awaitable[bool]]:
    async def waiting() -> bool:
        return app[CATALOG].purchases.waiting == count

    return waiting


async def hold_wallet(app: web.Application, owner: Account) -> Any:
    """A transaction of its own that holds ``owner``'s wallet row, as a long sale would."""
    await app[PAYMENTS].ledger.open([wallet_code(owner.id)])
    conn = await app[HUB].db.engine.connect()
    await conn.begin()
    await conn.execute(
        text("SELECT 1 FROM ledger_accounts WHERE code = :code FOR UPDATE"),
        {"code": wallet_code(owner.id)},
    )
    return conn


async def two_batches_waiting(
    client: Any, app: web.Application, teacher: Account
) -> tuple[Any, list[asyncio.Task[Any]]]:
    """Both of the hub's batch writers stopped in PostgreSQL behind a held wallet: a sale asked
    for now waits for the next batch. Returns the holding connection and the two sales."""
    other = Account("olga@example.com", "teaching all night", "Olga")
    other.id = (
        await app[HUB].identity.ensure_account(
            other.email, other.password, "Olga", admin=False, teacher=True
        )
    ).id
    await log_in(client, other)
    course_id, _, _ = await published(client, app, other, price=10)
    buyers = [await sign_up(client, name) for name in ("Gus", "Hal")]
    holder = await hold_wallet(app, other)
    sales = [asyncio.create_task(buy(client, b, course_id)) for b in buyers]
    await until(lock_waiters(app, 2))
    return holder, sales


@ON_POSTGRES
async def test_a_batch_decides_each_sale_on_its_own(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """Sales asked for while others are written go together in one transaction, and each gets
    the answer it would get alone: a refused one (short of coins, enrolled already, own course,
    no such course) changes nothing for the others, a replayed key gets its first answer, and a
    buyer's second sale waits for the batch after the one with their first."""
    cheap, _, _ = await published(client, app, teacher, price=30)
    dear, _, _ = await published(client, app, teacher, price=150)
    free, _, _ = await published(client, app, teacher, price=0)
    sixty, _, _ = await published(client, app, teacher, price=60)
    names = ("Ann", "Bea", "Cy", "Dan", "Eve", "Fay", "Ivy")
    ann, bea, cy, dan, eve, fay, ivy = [await sign_up(client, n) for n in names]
    assert (await buy(client, dan, cheap))[0] == 201
    first_answer = await buy(client, eve, cheap, key="eve-1")
    assert first_answer[0] == 201

    holder, blocked = await two_batches_waiting(client, app, teacher)
    asked = [
        (ann, cheap, None),
        (bea, cheap, "bea-1"),
        (cy, dear, None),
        (dan, cheap, None),
        (eve, cheap, "eve-1"),
        (fay, free, None),
        (teacher, cheap, None),
        (ivy, 999_999, None),
        (ann, sixty, None),  # Ann's second: the next batch
        (cy, sixty, None),  # Cy's second, after a refusal
    ]
    sales = []
    for n, (buyer, course_id, key) in enumerate(asked, 1):
        sales.append(asyncio.create_task(buy(client, buyer, course_id, key)))
        await until(queued(app, n))  # in this order
    await holder.rollback()
    await holder.close()
    answers = await asyncio.gather(*sales)
    assert [a[0] for a in await asyncio.gather(*blocked)] == [201, 201]

    assert [status for status, _ in answers] == [201, 201, 402, 409, 201, 201, 409, 404, 201, 201]
    assert answers[4][1] == first_answer[1]  # the key's first answer, byte for byte
    assert orjson.loads(answers[2][1])["balance"] == 100
    assert await buy(client, bea, cheap, key="bea-1") == answers[1]
    balances = [await balance(client, a) for a in (ann, bea, cy, dan, eve, fay, teacher)]
    assert balances == [10, 70, 40, 70, 70, 100, 100 + 4 * 21 + 2 * 42]
    assert await app[PAYMENTS].ledger.verify() == []
    async with app[HUB].db.connect() as conn:
        transactions = await conn.scalar(
            text(
                "SELECT count(DISTINCT xmin::text) FROM enrollments "
                "WHERE (user_id, course_id) IN ((:ann, :cheap), (:bea, :cheap), (:fay, :free))"
            ),
            {"ann": ann.id, "bea": bea.id, "fay": fay.id, "cheap": cheap, "free": free},
        )
    assert transactions == 1  # one batch


@ON_POSTGRES
async def test_a_batch_that_meets_another_transaction_sells_one_by_one(
    client: Any, app: web.Application, teacher: Account
) -> None:
    """Another hub enrolls a buyer while a batch with that buyer's sale waits for a lock: the
    batch fails as a whole, then each of its sales is decided alone."""
    cheap, _, _ = await published(client, app, teacher, price=30)
    ann, bea = await sign_up(client, "Ann"), await sign_up(client, "Bea")
    holder, blocked = await two_batches_waiting(client, app, teacher)
    sales = [asyncio.create_task(buy(client, b, cheap)) for b in (ann, bea)]
    await until(queued(app, 2))
    other_hub = await hold_wallet(app, teacher)
    await holder.rollback()  # the two blocked sales go; the next batch waits for other_hub
    await until(queued(app, 0))
    await until(lock_waiters(app, 1))
    await other_hub.execute(
        text(
            "INSERT INTO enrollments (user_id, course_id, price_paid, created_at) "
            "VALUES (:user, :course, 0, now())"
        ),
        {"user": ann.id, "course": cheap},
    )
    await other_hub.commit()
    await other_hub.close()
    await holder.close()
    assert [status for status, _ in await asyncio.gather(*sales)] == [409, 201]
    assert [a[0] for a in await asyncio.gather(*blocked)] == [201, 201]
    assert [await balance(client, a) for a in (ann, bea)] == [100, 70]
    assert await app[PAYMENTS].ledger.verify() == []
