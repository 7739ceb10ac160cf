"""HTTP edge of payments: the wallet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel
from hub.identity.manager import Principal
from payments.ledger import Ledger
from payments.wallet import Wallets


@dataclass(frozen=True, slots=True)
class PaymentServices:
    ledger: Ledger
    wallets: Wallets


PAYMENTS = web.AppKey("payments", PaymentServices)


class WalletOut(BaseModel):
    balance: int = Field(description="coins")
    currency: str = "coins"


class WalletLineOut(BaseModel):
    id: int
    kind: str
    amount: int = Field(description="coins in (positive) or out (negative) of this wallet")
    memo: str
    reference: dict[str, Any]
    created_at: datetime


class WalletHistory(BaseModel):
    items: list[WalletLineOut]
    next_cursor: int | None = Field(description="pass as `cursor` for older entries")


class HistoryQuery(RequestModel):
    cursor: int | None = Field(default=None, ge=1)
    limit: int = Field(default=50, ge=1, le=200)


def register_routes(api: Api) -> None:
    tags = ("wallet",)

    @api.route("GET", "/api/wallet", summary="My coin balance", response=WalletOut, tags=tags)
    async def get_wallet(request: web.Request, principal: Principal) -> WalletOut:
        balance = await request.app[PAYMENTS].wallets.balance(principal.user)
        return WalletOut(balance=balance)

    @api.route(
        "GET",
        "/api/wallet/transactions",
        summary="My coin history",
        query=HistoryQuery,
        response=WalletHistory,
        tags=tags,
    )
    async def wallet_history(
        request: web.Request, principal: Principal, query: HistoryQuery
    ) -> WalletHistory:
        """Newest first, with what each movement was for; page with `cursor`."""
        lines = await request.app[PAYMENTS].wallets.history(
            principal.user, before=query.cursor, limit=query.limit
        )
        items = [
            WalletLineOut(
                id=line.transfer_id,
                kind=line.kind,
                amount=line.amount,
                memo=line.memo,
                reference=line.reference,
                created_at=line.created_at,
            )
            for line in lines
        ]
        next_cursor = items[-1].id if len(items) == query.limit else None
        return WalletHistory(items=items, next_cursor=next_cursor)
