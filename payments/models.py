"""Ledger tables: accounts with cached balances, append-only transfers and their entries, and
idempotency records of money-moving requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigId, UTCDateTime


class LedgerAccount(Base):
    """A wallet (one per user) or a system account (issuance, revenue, settlement, rewards)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # The database itself refuses a negative wallet, whatever the code above it does.
        CheckConstraint("allow_negative OR balance >= 0", name="balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # wallet | system
    code: Mapped[str] = mapped_column(String(64), unique=True)  # wallet:<user> | issuance | …
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True, default=None
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Transfer(Base):
    """One movement of coins: a balanced set of entries, never edited (corrections are new
    transfers)."""

    __tablename__ = "ledger_transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(Text, default="")
    # Business reference: what the transfer was for ({"course_id": 3}, {"topup": "…"}).
    reference: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Unique business key making the transfer happen at most once ("signup:42", "evt_…").
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Entry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_account_transfer", "account_id", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    # Positive credits the account, negative debits it; a transfer's amounts sum to zero.
    amount: Mapped[int] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    """The first response to a money-moving request, replayed for the same key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # 0 while the first request is still running.
    status: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    content_type: Mapped[str] = mapped_column(String(100), default="application/json")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TopUp(Base):
    """A purchase of coins through the payment provider."""

    __tablename__ = "topups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    pack: Mapped[str] = mapped_column(String(32))
    coins: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending | paid | declined
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PaymentEvent(Base):
    """Provider webhook events already handled, by the provider's event id."""

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShopOwnership(Base):
    """A profile item a user bought; the transfer that paid for it."""

    __tablename__ = "shop_ownerships"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProfileAppearance(Base):
    """The owned items a user shows on their profile, one per kind."""

    __tablename__ = "profile_appearances"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    theme: Mapped[str | None] = mapped_column(String(40), default=None)
    badge: Mapped[str | None] = mapped_column(String(40), default=None)
    frame: Mapped[str | None] = mapped_column(String(40), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
