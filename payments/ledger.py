"""The coin ledger: double-entry, append-only, balances never below zero.

Every movement is one ``Transfer`` whose entries sum to zero, written in one database
transaction together with the cached balances of the accounts it touches. Accounts are locked
in id order (PostgreSQL ``SELECT … FOR NO KEY UPDATE``; SQLite serializes writers with
``BEGIN IMMEDIATE``), so concurrent transfers neither deadlock nor overdraw.

Locks come before the transfer's rows, on purpose: an entry's foreign key takes a KEY SHARE
lock on its account. Written before the lock, the entries of every transfer waiting for a busy
account would share-lock its row at once, and PostgreSQL's bookkeeping of many lockers
(multixacts) cut sales per second by a third or more in a measurement here (bench/README.md).

System accounts are spread over ``SHARDS`` ledger accounts each (``platform_revenue``,
``platform_revenue#1`` … ``#15``): every sale credits platform revenue, and one row credited by
every sale would let only one sale at a time hold it, each until its commit is on disk. Each
shard is an ordinary account (its own entries, cached balance and CHECK), so every invariant
holds shard by shard; the account's balance is the sum of its shards' (``system_balance``).
``account(s, code)`` hands out one shard at random; a correction pays back through the shards
the original transfer used (``reversal``), so a non-negative shard never needs another's coins.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from hub.clock import Clock
from hub.db import Database
from hub.errors import CohortError, ErrorCode
from payments.models import Entry, LedgerAccount, Transfer

log = logging.getLogger(__name__)

ISSUANCE = "issuance"  # coins granted by the platform come from here
SETTLEMENT = "provider_settlement"  # coins bought through a payment provider
REWARDS = "rewards"  # coins earned (joining a community, winning a contest)
REVENUE = "platform_revenue"  # the platform's share of sales
# Source accounts go negative by design: their balance is minus what they put in circulation.
SYSTEM_ACCOUNTS = {ISSUANCE: True, SETTLEMENT: True, REWARDS: True, REVENUE: False}
# Ledger accounts per system account (see the module docstring).
SHARDS = 16
SHARD_SEPARATOR = "#"


def shard_code(code: str, shard: int) -> str:
    """The ledger account code of one shard of system account ``code`` (shard 0 is ``code``)."""
    return code if shard == 0 else f"{code}{SHARD_SEPARATOR}{shard}"


def any_shard(code: str) -> str:
    """A shard of system account ``code``, picked at random to spread its row locks."""
    return shard_code(code, random.randrange(SHARDS))


def _system_account_of(code: str) -> str | None:
    """The system account a ledger account code is a shard of, if it is one."""
    base, _, shard = code.partition(SHARD_SEPARATOR)
    if base not in SYSTEM_ACCOUNTS:
        return None
    if shard and not (shard.isdigit() and 0 < int(shard) < SHARDS and shard[0] != "0"):
        return None
    return base


class InsufficientFunds(CohortError):
    status, title = 402, "Not enough coins"
    code = ErrorCode.INSUFFICIENT_FUNDS

    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(f"This needs {needed} coins; the wallet holds {balance}.")
        self.balance = balance
        self.needed = needed

    def extra(self) -> dict[str, Any]:
        return {"balance": self.balance, "price": self.needed}


class UnbalancedTransfer(ValueError):
    """A programming error: postings that do not sum to zero, or a zero posting."""


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class WalletLine:
    """One transfer as seen from one wallet."""

    transfer_id: int
    kind: str
    memo: str
    reference: dict[str, Any]
    amount: int
    created_at: datetime


class Ledger:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # Accounts ------------------------------------------------------------------------------

    async def ensure_system_accounts(self) -> None:
        async with self._db.transaction() as s:
            for code, allow_negative in SYSTEM_ACCOUNTS.items():
                for shard in range(SHARDS):
                    await self._insert_account(
                        s,
                        kind="system",
                        code=shard_code(code, shard),
                        owner_id=None,
                        allow_negative=allow_negative,
                    )

    async def _insert_account(
        self,
        s: AsyncSession,
        *,
        kind: str,
        code: str,
        owner_id: int | None,
        allow_negative: bool,
    ) -> None:
        values = {
            "kind": kind,
            "code": code,
            "owner_id": owner_id,
            "balance": 0,
            "allow_negative": allow_negative,
            "created_at": self._clock.now(),
        }
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        # Two requests creating the same wallet at once: one inserts, the other does nothing.
        await s.execute(
            insert(LedgerAccount).values(**values).on_conflict_do_nothing(index_elements=["code"])
        )

    async def account(self, s: AsyncSession, code: str) -> LedgerAccount:
        """The ledger account ``code``, opened on first use. For a system account's code
        (``REVENUE``, ...) one of its shards, at random.

        Raises:
            KeyError: a code that names no account and could not be opened.
        """
        if code in SYSTEM_ACCOUNTS:
            code = any_shard(code)
        return await self._open(s, code)

    async def _open(self, s: AsyncSession, code: str) -> LedgerAccount:
        """The ledger account with exactly this code, opened on first use."""
        account = await s.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
        if account is None:
            system = _system_account_of(code)
            if system is not None:
                await self._insert_account(
                    s,
                    kind="system",
                    code=code,
                    owner_id=None,
                    allow_negative=SYSTEM_ACCOUNTS[system],
                )
            elif code.startswith("wallet:"):
                owner = int(code.split(":", 1)[1])
                await self._insert_account(
                    s, kind="wallet", code=code, owner_id=owner, allow_negative=False
                )
            else:
                raise KeyError(code)
            account = await s.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
            assert account is not None
        return account

    async def wallet(self, s: AsyncSession, user_id: int) -> LedgerAccount:
        return await self.account(s, wallet_code(user_id))

    async def open(self, codes: Sequence[str]) -> None:
        """Open the accounts ``codes`` (exact codes: wallets, shards) that do not exist yet."""
        async with self._db.transaction() as s:
            for code in codes:
                await self._open(s, code)

    # Moving coins --------------------------------------------------------------------------

    async def post(
        self,
        s: AsyncSession,
        *,
        kind: str,
        postings: Sequence[Posting],
        memo: str = "",
        reference: dict[str, Any] | None = None,
        dedupe_key: str | None = None,
        corrects_id: int | None = None,
    ) -> Transfer:
        """Write one balanced transfer inside the caller's transaction.

        Raises:
            UnbalancedTransfer: postings that do not sum to zero (a bug, not bad input).
            InsufficientFunds: a non-negative account would go below zero; nothing is written.
        """
        changes = _changes(postings)
        conn = await _connection(s)
        # Locked in id order: two transfers touching the same accounts queue, never deadlock.
        balances = await self._lock(conn, changes)
        transfer = await self._write(
            conn, kind, postings, memo, reference or {}, dedupe_key, corrects_id
        )
        await self._apply(s, conn, changes, balances)
        return transfer

    @staticmethod
    async def _lock(conn: AsyncConnection, changes: dict[int, int]) -> dict[int, int]:
        """Lock the accounts (PostgreSQL ``FOR NO KEY UPDATE`` in id order; SQLite's writer
        already holds the database) and check that none would go below zero. Returns the
        balances read under the lock."""
        ids = list(changes)
        rows = (await conn.execute(_LOCK_ACCOUNTS, {"ids": ids})).all()
        if len(rows) != len(ids):
            raise KeyError(f"unknown ledger account in {ids}")
        for account_id, balance, allow_negative in rows:
            if not allow_negative and balance + changes[account_id] < 0:
                raise InsufficientFunds(balance, -changes[account_id])
        return {account_id: balance for account_id, balance, _ in rows}

    async def _write(
        self,
        conn: AsyncConnection,
        kind: str,
        postings: Sequence[Posting],
        memo: str,
        reference: dict[str, Any],
        dedupe_key: str | None,
        corrects_id: int | None,
    ) -> Transfer:
        created_at = self._clock.now()
        transfer_id = (
            await conn.execute(
                _INSERT_TRANSFER,
                {
                    "kind": kind,
                    "memo": memo,
                    "reference": reference,
                    "dedupe_key": dedupe_key,
                    "corrects_id": corrects_id,
                    "created_at": created_at,
                },
            )
        ).scalar_one()
        await conn.execute(
            _INSERT_ENTRY,
            [
                {"transfer_id": transfer_id, "account_id": p.account_id, "amount": p.amount}
                for p in postings
            ],
        )
        return Transfer(
            id=transfer_id,
            kind=kind,
            memo=memo,
            reference=reference,
            dedupe_key=dedupe_key,
            corrects_id=corrects_id,
            created_at=created_at,
        )

    @staticmethod
    async def _apply(
        s: AsyncSession, conn: AsyncConnection, changes: dict[int, int], balances: dict[int, int]
    ) -> None:
        # Incremented in SQL, not set from the value read: no update can be lost, and the
        # CHECK constraint judges the real result. One round trip for all the accounts.
        await conn.execute(
            _ADD_TO_BALANCE, [{"account_id": a, "change": c} for a, c in changes.items()]
        )
        # Accounts the caller loaded through the session show the new balances too.
        for account_id, change in changes.items():
            loaded = s.identity_map.get(identity_key(LedgerAccount, account_id))
            if loaded is not None:
                set_committed_value(loaded, "balance", balances[account_id] + change)

    async def transfer_once(
        self,
        *,
        kind: str,
        source: str,
        target: str,
        amount: int,
        dedupe_key: str,
        memo: str = "",
        reference: dict[str, Any] | None = None,
    ) -> bool:
        """Move ``amount`` from account ``source`` to ``target`` (codes) exactly once per
        ``dedupe_key``, in its own transaction. Returns False when it had already happened.

        Raises:
            InsufficientFunds
        """
        try:
            async with self._db.transaction() as s:
                done = await s.scalar(select(Transfer.id).where(Transfer.dedupe_key == dedupe_key))
                if done is not None:
                    return False
                src = await self.account(s, source)
                dst = await self.account(s, target)
                await self.post(
                    s,
                    kind=kind,
                    postings=[Posting(src.id, -amount), Posting(dst.id, amount)],
                    memo=memo,
                    reference=reference,
                    dedupe_key=dedupe_key,
                )
        except IntegrityError:
            # The same key raced in from another request and won: it happened once.
            return False
        return True

    # Reading -------------------------------------------------------------------------------

    async def balance(self, user_id: int) -> int:
        async with self._db.sessions() as s:
            balance = await s.scalar(
                select(LedgerAccount.balance).where(LedgerAccount.code == wallet_code(user_id))
            )
        return int(balance or 0)

    async def system_balance(self, code: str) -> int:
        """The balance of system account ``code``: the sum of its shards'."""
        codes = [shard_code(code, shard) for shard in range(SHARDS)]
        async with self._db.sessions() as s:
            total = await s.scalar(
                select(func.sum(LedgerAccount.balance)).where(LedgerAccount.code.in_(codes))
            )
        return int(total or 0)

    async def reversal(self, s: AsyncSession, transfer_id: int) -> list[Posting]:
        """The postings that undo transfer ``transfer_id``, account for account (the shards it
        used included), for its correction."""
        rows = await s.execute(
            select(Entry.account_id, Entry.amount)
            .where(Entry.transfer_id == transfer_id)
            .order_by(Entry.id)
        )
        return [Posting(account_id, -amount) for account_id, amount in rows]

    async def history(self, user_id: int, *, before: int | None, limit: int) -> list[WalletLine]:
        """The wallet's transfers, newest first, paged by transfer id."""
        async with self._db.sessions() as s:
            query = (
                select(Transfer, func.sum(Entry.amount))
                .join(Entry, Entry.transfer_id == Transfer.id)
                .join(LedgerAccount, LedgerAccount.id == Entry.account_id)
                .where(LedgerAccount.code == wallet_code(user_id))
                .group_by(Transfer.id)
                .order_by(Transfer.id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(Transfer.id < before)
            rows = (await s.execute(query)).all()
        return [
            WalletLine(t.id, t.kind, t.memo, dict(t.reference), int(amount), t.created_at)
            for t, amount in rows
        ]

    async def verify(self) -> list[str]:
        """Every invariant of the ledger; returns what is wrong (empty when all holds)."""
        problems: list[str] = []
        async with self._db.sessions() as s:
            unbalanced = await s.execute(
                select(Entry.transfer_id, func.sum(Entry.amount), func.count())
                .group_by(Entry.transfer_id)
                .having((func.sum(Entry.amount) != 0) | (func.count() < 2))
            )
            for transfer_id, total, count in unbalanced:
                problems.append(
                    f"transfer {transfer_id}: entries sum to {total} over {count} entries"
                )
            # NOT EXISTS is an anti-join; NOT IN (subquery) falls back to scanning every entry
            # for every transfer once the entries' ids outgrow work_mem (minutes at 100k sales).
            empty = await s.scalars(
                select(Transfer.id).where(~exists().where(Entry.transfer_id == Transfer.id))
            )
            problems.extend(f"transfer {t}: has no entries" for t in empty)
            sums = (
                select(Entry.account_id, func.sum(Entry.amount).label("total"))
                .group_by(Entry.account_id)
                .subquery()
            )
            mismatched = await s.execute(
                select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.balance, sums.c.total)
                .outerjoin(sums, sums.c.account_id == LedgerAccount.id)
                .where(LedgerAccount.balance != func.coalesce(sums.c.total, 0))
            )
            for account_id, code, balance, total in mismatched:
                problems.append(
                    f"account {account_id} ({code}): cached balance {balance} "
                    f"but entries sum to {total or 0}"
                )
            negative = await s.execute(
                select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.balance).where(
                    LedgerAccount.balance < 0, LedgerAccount.allow_negative.is_(False)
                )
            )
            for account_id, code, balance in negative:
                problems.append(f"account {account_id} ({code}): negative balance {balance}")
            accounts = await s.execute(
                select(
                    LedgerAccount.id,
                    LedgerAccount.kind,
                    LedgerAccount.code,
                    LedgerAccount.allow_negative,
                )
            )
            for account_id, kind, code, allow_negative in accounts:
                problem = _misfiled(kind, code, allow_negative)
                if problem:
                    problems.append(f"account {account_id} ({code}): {problem}")
        return problems


# Statements of every transfer, built once (building and keying a statement costs about as
# much CPU as running it).
_LOCK_ACCOUNTS = (
    select(LedgerAccount.id, LedgerAccount.balance, LedgerAccount.allow_negative)
    .where(LedgerAccount.id.in_(bindparam("ids", expanding=True)))
    .order_by(LedgerAccount.id)
    # FOR NO KEY UPDATE (a balance is no key): the foreign-key checks of other transactions'
    # rows (KEY SHARE) need not wait for it, as with the plain UPDATE that follows.
    .with_for_update(key_share=True)
)
_INSERT_TRANSFER = insert(Transfer).returning(Transfer.id)
_INSERT_ENTRY = insert(Entry)
_ADD_TO_BALANCE = (
    update(LedgerAccount)
    .where(LedgerAccount.id == bindparam("account_id"))
    .values(balance=LedgerAccount.balance + bindparam("change", type_=BigInteger))
)


def _changes(postings: Sequence[Posting]) -> dict[int, int]:
    """The net change per account, in account id order (the order locks are taken in)."""
    if len(postings) < 2 or sum(p.amount for p in postings) != 0:
        raise UnbalancedTransfer(f"postings must balance: {postings}")
    if any(p.amount == 0 for p in postings):
        raise UnbalancedTransfer("a posting of zero")
    changes: dict[int, int] = {}
    for posting in sorted(postings, key=lambda p: p.account_id):
        changes[posting.account_id] = changes.get(posting.account_id, 0) + posting.amount
    return changes


async def _connection(s: AsyncSession) -> AsyncConnection:
    """The session's connection, for Core statements in its transaction. Pending ORM changes
    are flushed first, as the ORM's own queries would have (autoflush)."""
    await s.flush()
    return await s.connection()


def _misfiled(kind: str, code: str, allow_negative: bool) -> str | None:
    """What is wrong with an account's kind, code and limit, if anything: a wallet may never
    go below zero; a system account's shards all take its limit."""
    if kind == "wallet":
        if not code.startswith(WALLET_PREFIX):
            return "a wallet whose code is not wallet:<user>"
        return "a wallet allowed to go below zero" if allow_negative else None
    system = _system_account_of(code) if kind == "system" else None
    if system is None:
        return f"an account of kind {kind!r} that is no wallet and no system account shard"
    if allow_negative != SYSTEM_ACCOUNTS[system]:
        return f"a shard of {system} with another limit than {system}'s"
    return None


WALLET_PREFIX = "wallet:"


def wallet_code(user_id: int) -> str:
    return f"{WALLET_PREFIX}{user_id}"
