"""The coin ledger on both databases: grants, the race for the last coins, invariants under
random operations, and `cohort ledger verify`."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from catalog.models import Course
from catalog.services import CATALOG
from hub.app import create_app
from hub.clock import SystemClock
from hub.db import Database
from hub.errors import CohortError, Conflict
from hub.identity.models import User
from hub.services import HUB
from payments.handlers import PAYMENTS
from payments.idempotency import KeyUse, StoredResponse, fingerprint
from payments.ledger import (
    ISSUANCE,
    REVENUE,
    SETTLEMENT,
    InsufficientFunds,
    Ledger,
    Posting,
    wallet_code,
)
from tests.conftest import make_settings, sign_up

Client = TestClient[Any, Any]


async def test_new_accounts_get_the_signup_grant(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    wallet = await (await client.get("/api/wallet", headers=ana.auth)).json()
    assert wallet == {"balance": 100, "currency": "coins"}
    history = await (await client.get("/api/wallet/transactions", headers=ana.auth)).json()
    [line] = history["items"]
    assert (line["kind"], line["amount"], line["memo"]) == (
        "signup_grant",
        100,
        "Welcome to Cohort",
    )
    assert history["next_cursor"] is None
    assert (await client.get("/api/wallet")).status == 401
    bad = await client.get("/api/wallet/transactions?limit=0", headers=ana.auth)
    assert bad.status == 422


async def test_the_grant_happens_once_however_often_asked(
    client: Client, app: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    wallets = app[PAYMENTS].wallets
    user = User(id=ana.id)
    await asyncio.gather(*(wallets.open(user) for _ in range(10)))
    assert await wallets.balance(user) == 100
    assert await app[PAYMENTS].ledger.verify() == []


async def _funded(ledger: Ledger, db: Database, coins: int) -> tuple[int, int]:
    """A fresh user id with ``coins`` in their wallet, and the revenue account id."""
    user_id = await _new_user(db)
    assert await ledger.transfer_once(
        kind="grant",
        source=ISSUANCE,
        target=wallet_code(user_id),
        amount=coins,
        dedupe_key=f"fund:{user_id}",
    )
    async with db.sessions() as s:
        revenue = (await ledger.account(s, REVENUE)).id
        await s.commit()
    return user_id, revenue


async def _published_course(db: Database, teacher: int, price: int) -> int:
    now = SystemClock().now()
    async with db.transaction() as s:
        course = Course(
            owner_id=teacher,
            title=f"Course at {price}",
            slug=uuid.uuid4().hex,
            level="beginner",
            language="en",
            price=price,
            status="published",
            created_at=now,
            updated_at=now,
            published_at=now,
        )
        s.add(course)
    return course.id


async def _new_user(db: Database) -> int:
    async with db.transaction() as s:
        user = User(
            email=f"{uuid.uuid4().hex}@example.com",
            password_hash="x",
            display_name="U",
            bio="",
            avatar_color="#000000",
            is_admin=False,
            created_at=SystemClock().now(),
            updated_at=SystemClock().now(),
        )
        s.add(user)
    return user.id


async def test_concurrent_spending_never_overdraws(app: web.Application, client: Client) -> None:
    """100 concurrent payments of 7 from a wallet holding exactly 70: exactly 10 succeed."""
    ledger = app[PAYMENTS].ledger
    db = app[HUB].db
    user_id, revenue = await _funded(ledger, db, 70)

    async def pay() -> bool:
        try:
            async with db.transaction() as s:
                wallet = await ledger.wallet(s, user_id)
                await ledger.post(
                    s, kind="purchase", postings=[Posting(wallet.id, -7), Posting(revenue, 7)]
                )
        except InsufficientFunds as exc:
            if exc.needed != 7:
                raise
            return False
        return True

    results = await asyncio.gather(*(pay() for _ in range(100)))
    assert results.count(True) == 10
    assert await ledger.balance(user_id) == 0
    assert await ledger.verify() == []


async def test_unbalanced_or_empty_postings_are_refused(
    app: web.Application, client: Client
) -> None:
    from payments.ledger import UnbalancedTransfer

    ledger = app[PAYMENTS].ledger
    db = app[HUB].db
    user_id, revenue = await _funded(ledger, db, 10)
    async with db.transaction() as s:
        wallet = await ledger.wallet(s, user_id)
        for postings in (
            [Posting(wallet.id, -5), Posting(revenue, 4)],
            [Posting(wallet.id, 0), Posting(revenue, 0)],
            [Posting(wallet.id, -5)],
        ):
            with pytest.raises(UnbalancedTransfer):
                await ledger.post(s, kind="bad", postings=postings)
    assert await ledger.balance(user_id) == 10


async def test_the_database_refuses_a_negative_wallet(app: web.Application, client: Client) -> None:
    """Even a write that bypasses the ledger code cannot make a wallet negative."""
    from sqlalchemy.exc import IntegrityError

    ledger = app[PAYMENTS].ledger
    db = app[HUB].db
    user_id, _ = await _funded(ledger, db, 10)
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(
                text("UPDATE ledger_accounts SET balance = -1 WHERE code = :c"),
                {"c": wallet_code(user_id)},
            )


def test_cli_verify_names_what_is_wrong(
    database_url: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hub.cli import main

    monkeypatch.setenv("COHORT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COHORT_DATABASE_URL", database_url)

    def run(coro: Any) -> Any:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def setup() -> int:
        db = Database(database_url)
        try:
            ledger = Ledger(db, SystemClock())
            await ledger.ensure_system_accounts()
            user_id, _ = await _funded(ledger, db, 50)
            return user_id
        finally:
            await db.dispose()

    user_id = run(setup())
    assert main(["ledger", "verify"]) == 0
    assert "ledger verified" in capsys.readouterr().out

    async def corrupt() -> None:
        db = Database(database_url)
        try:
            async with db.transaction() as s:
                await s.execute(
                    text("UPDATE ledger_accounts SET balance = 49 WHERE code = :c"),
                    {"c": wallet_code(user_id)},
                )
        finally:
            await db.dispose()

    run(corrupt())
    assert main(["ledger", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"wallet:{user_id}" in err
    assert "cached balance 49 but entries sum to 50" in err


async def test_verify_names_a_transfer_without_entries(
    app: web.Application, client: Client
) -> None:
    """A transfer row with no entries (written past the ledger) is reported by id, beside a
    ledger that is otherwise whole."""
    ledger = app[PAYMENTS].ledger
    db = app[HUB].db
    await _funded(ledger, db, 10)
    assert await ledger.verify() == []
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO ledger_transfers (kind, memo, reference, created_at) "
                "VALUES ('stray', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
        stray = (await s.execute(text("SELECT max(id) FROM ledger_transfers"))).scalar_one()
    assert await ledger.verify() == [f"transfer {stray}: has no entries"]


# Property: the ledger conserves coins and never goes negative, whatever happens. ----------


class LedgerMachine(RuleBasedStateMachine):
    """Random grants, purchases (split teacher/platform), purchases retried under
    Idempotency-Keys, course sales through the catalog (PostgreSQL's one-statement sale) with
    and without keys, top-ups with replayed webhook ids, refunds by correction and replayed grant
    keys; after every step the invariants hold and every balance equals the model's."""

    users = Bundle("users")
    purchases = Bundle("purchases")
    courses = Bundle("courses")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.data_dir = tempfile.TemporaryDirectory()
        self.app = create_app(make_settings(Path(self.data_dir.name), LedgerMachine.url))
        self.db = self.app[HUB].db
        self.ledger = self.app[PAYMENTS].ledger
        self.sales = self.app[CATALOG].purchases
        self.model: dict[int, int] = {}
        self.minted_keys: set[str] = set()
        self.keys = self.app[PAYMENTS].keys
        # (buyer, Idempotency-Key) → (request fingerprint, first answer's status)
        self.key_uses: dict[tuple[int, str], tuple[str, int]] = {}
        self.course_of: dict[int, tuple[int, int]] = {}  # course → (teacher, price)
        self.enrolled: set[tuple[int, int]] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()
        self.data_dir.cleanup()

    @initialize()
    def setup(self) -> None:
        self.run(self.ledger.ensure_system_accounts())

    @rule(target=users)
    def new_user(self) -> int:
        user_id = self.run(_new_user(self.db))
        self.model[user_id] = 0
        return user_id

    @rule(user=users, amount=st.integers(1, 500), replays=st.integers(1, 3))
    def grant(self, user: int, amount: int, replays: int) -> None:
        key = f"grant:{uuid.uuid4().hex}"
        for _ in range(replays):  # the same key delivered again changes nothing
            self.run(
                self.ledger.transfer_once(
                    kind="grant",
                    source=ISSUANCE,
                    target=wallet_code(user),
                    amount=amount,
                    dedupe_key=key,
                )
            )
        self.model[user] += amount

    @rule(user=users, amount=st.integers(1, 1000), event=st.integers(0, 5))
    def top_up(self, user: int, amount: int, event: int) -> None:
        # Webhook events are identified by provider id; a few ids recur on purpose.
        key = f"topup:{user}:{event}:{amount}"
        if self.run(
            self.ledger.transfer_once(
                kind="topup",
                source=SETTLEMENT,
                target=wallet_code(user),
                amount=amount,
                dedupe_key=key,
            )
        ):
            self.model[user] += amount

    @rule(target=purchases, buyer=users, teacher=users, price=st.integers(1, 300))
    def purchase(self, buyer: int, teacher: int, price: int) -> tuple[int, int, int, int] | None:
        async def go() -> int | None:
            async with self.db.transaction() as s:
                wallet = await self.ledger.wallet(s, buyer)
                teacher_wallet = await self.ledger.wallet(s, teacher)
                revenue = await self.ledger.account(s, REVENUE)
                share = price * 70 // 100
                postings = [Posting(wallet.id, -price), Posting(revenue.id, price - share)]
                if share:
                    postings.append(Posting(teacher_wallet.id, share))
                try:
                    transfer = await self.ledger.post(s, kind="purchase", postings=postings)
                except InsufficientFunds:
                    return None
                return transfer.id

        transfer_id = self.run(go())
        if transfer_id is None:
            return None
        share = price * 70 // 100
        self.model[buyer] -= price
        self.model[teacher] += share
        return (transfer_id, buyer, teacher, price)

    @rule(
        buyer=users,
        teacher=users,
        price=st.integers(1, 300),
        key=st.sampled_from(["k1", "k2", "k3"]),
    )
    def keyed_purchase(self, buyer: int, teacher: int, price: int, key: str) -> None:
        """A purchase sent with an Idempotency-Key, as clients retry them: a key reused for the
        same request replays its first answer without moving coins; reused for another request
        it is refused, and nothing moves either."""
        fingerprint = f"purchase:{teacher}:{price}"
        moved: list[int] = []

        async def operation() -> StoredResponse:
            async with self.db.transaction() as s:
                wallet = await self.ledger.wallet(s, buyer)
                teacher_wallet = await self.ledger.wallet(s, teacher)
                revenue = await self.ledger.account(s, REVENUE)
                share = price * 70 // 100
                postings = [Posting(wallet.id, -price), Posting(revenue.id, price - share)]
                if share:
                    postings.append(Posting(teacher_wallet.id, share))
                # A refusal propagates, as in the purchase handler: the keys store it.
                await self.ledger.post(s, kind="purchase", postings=postings)
            moved.append(price)
            return StoredResponse(201, b"{}", "application/json")

        async def go() -> StoredResponse | None:
            try:
                return await self.keys.run(buyer, key, fingerprint, operation)
            except Conflict:
                return None
            except CohortError as refusal:  # the first refusal, or its replay
                return StoredResponse(refusal.status, b"", "application/problem+json")

        response = self.run(go())
        first = self.key_uses.get((buyer, key))
        if first is None:
            assert response is not None
            self.key_uses[(buyer, key)] = (fingerprint, response.status)
            if response.status == 201:
                share = price * 70 // 100
                self.model[buyer] -= price
                self.model[teacher] += share
        elif first[0] == fingerprint:
            assert response is not None
            assert response.status == first[1]  # the first answer, replayed
        else:
            assert response is None  # another request under a used key: refused
        if first is not None:
            assert moved == []

    @rule(target=courses, teacher=users, price=st.integers(0, 300))
    def new_course(self, teacher: int, price: int) -> int:
        course_id = self.run(_published_course(self.db, teacher, price))
        self.course_of[course_id] = (teacher, price)
        return course_id

    @rule(buyer=users, course=courses, key=st.sampled_from([None, "s1", "s2"]))
    def course_sale(self, buyer: int, course: int, key: str | None) -> None:
        """A course bought through the catalog: 201 and paid, or refused (own course, enrolled
        already, coins short) with nothing moved; a key's first answer replayed for the same
        course, a 409 for another."""
        teacher, price = self.course_of[course]
        request = fingerprint("POST", f"/api/courses/{course}/purchase", b"")
        use = KeyUse(buyer, key, request) if key is not None else None

        async def go() -> int:
            try:
                return (await self.sales.purchase(User(id=buyer), course, use)).status
            except CohortError as refusal:
                return refusal.status

        status = self.run(go())
        first = self.key_uses.get((buyer, key)) if key is not None else None
        if first is not None:
            assert status == (first[1] if first[0] == request else 409)
            return
        if buyer == teacher or (buyer, course) in self.enrolled:
            expected = 409
        elif self.model[buyer] < price:
            expected = 402
        else:
            expected = 201
            self.enrolled.add((buyer, course))
            self.model[buyer] -= price
            self.model[teacher] += price * 70 // 100
        assert status == expected
        if key is not None:
            self.key_uses[(buyer, key)] = (request, status)

    @rule(purchase=purchases)
    def refund(self, purchase: tuple[int, int, int, int] | None) -> None:
        """A correction: the reverse transfer, only while the teacher still holds the share."""
        if purchase is None:
            return
        transfer_id, buyer, teacher, price = purchase
        share = price * 70 // 100

        async def go() -> bool:
            async with self.db.transaction() as s:
                # Back through the same accounts: the revenue shard the sale credited too.
                postings = await self.ledger.reversal(s, transfer_id)
                try:
                    await self.ledger.post(
                        s,
                        kind="refund",
                        postings=postings,
                        corrects_id=transfer_id,
                        dedupe_key=f"refund:{transfer_id}",
                    )
                except InsufficientFunds:
                    return False
                return True

        try:
            done = self.run(go())
        except IntegrityError:  # the refund's key exists already: refunded before
            return
        if done:
            self.model[buyer] += price
            self.model[teacher] -= share

    @invariant()
    def balances_match_and_ledger_verifies(self) -> None:
        for user, expected in self.model.items():
            assert self.run(self.ledger.balance(user)) == expected
            assert expected >= 0
        assert self.run(self.ledger.verify()) == []


def test_ledger_invariants_hold_under_random_operations(database_url: str) -> None:
    LedgerMachine.url = database_url  # type: ignore[attr-defined]
    config = settings(
        max_examples=15,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    with ThreadPoolExecutor(1) as pool:  # its own event loops, away from the test's
        pool.submit(run_state_machine_as_test, LedgerMachine, settings=config).result()
