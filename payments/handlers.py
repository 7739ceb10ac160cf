"""HTTP edge of payments: the wallet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import ClientSession, web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel
from hub.identity.manager import Principal
from payments.idempotency import (
    IdempotencyKeys,
    KeyUse,
    StoredResponse,
    fingerprint,
    key_use,
)
from payments.ledger import Ledger
from payments.shop import Shop
from payments.topups import COIN_PACKS, SIGNATURE_HEADER, TopUps, event_body, sign
from payments.wallet import Wallets


@dataclass(frozen=True, slots=True)
class PaymentServices:
    ledger: Ledger
    wallets: Wallets
    topups: TopUps
    keys: IdempotencyKeys
    shop: Shop


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


class TopUpBody(RequestModel):
    pack: str = Field(description=f"one of: {', '.join(COIN_PACKS)}")


class TopUpOut(BaseModel):
    id: str
    pack: str
    coins: int
    price_cents: int
    currency: str
    status: str = Field(description="pending | paid | declined")
    checkout_url: str | None = None


class WebhookOut(BaseModel):
    result: str


def idempotency_key(request: web.Request, principal: Principal, body: bytes) -> KeyUse | None:
    """The request's `Idempotency-Key`, if it sent one, for an operation that records its
    answer itself (``IdempotencyKeys.record``).

    Raises:
        ValidationFailed: a malformed key.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    return key_use(principal.user.id, key, fingerprint(request.method, request.path, body))


async def idempotent(
    request: web.Request,
    keys: IdempotencyKeys,
    principal: Principal,
    body: bytes,
    operation: Callable[[], Awaitable[StoredResponse]],
) -> web.Response:
    """Run a money-moving operation under the request's `Idempotency-Key`, if it sent one."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        response = await operation()
    else:
        request_id = fingerprint(request.method, request.path, body)
        response = await keys.run(principal.user.id, key, request_id, operation)
    return web.Response(
        status=response.status, body=response.body, content_type=response.content_type
    )


def register_routes(api: Api) -> None:
    tags = ("wallet",)

    @api.route(
        "POST",
        "/api/wallet/topups",
        summary="Buy coins: start a checkout",
        body=TopUpBody,
        response=TopUpOut,
        status=201,
        errors=[409],
        tags=tags,
    )
    async def start_topup(
        request: web.Request, principal: Principal, body: TopUpBody
    ) -> web.Response:
        """Returns the provider's checkout URL; coins arrive when the provider's webhook says
        the payment went through. With an `Idempotency-Key` header a retried request gets the
        same checkout."""
        services = request.app[PAYMENTS]

        async def start() -> StoredResponse:
            topup, url = await services.topups.start(principal.user.id, body.pack)
            out = TopUpOut(
                id=topup.id,
                pack=topup.pack,
                coins=topup.coins,
                price_cents=topup.price_cents,
                currency=topup.currency,
                status=topup.status,
                checkout_url=url,
            )
            return StoredResponse(201, out.model_dump_json().encode(), "application/json")

        return await idempotent(
            request, services.keys, principal, body.model_dump_json().encode(), start
        )

    @api.route(
        "GET",
        "/api/wallet/topups/{topup_id}",
        summary="A top-up's state",
        response=TopUpOut,
        errors=[404],
        tags=tags,
    )
    async def get_topup(request: web.Request, principal: Principal) -> TopUpOut:
        topup = await request.app[PAYMENTS].topups.get(
            request.match_info["topup_id"], user_id=principal.user.id
        )
        return TopUpOut(
            id=topup.id,
            pack=topup.pack,
            coins=topup.coins,
            price_cents=topup.price_cents,
            currency=topup.currency,
            status=topup.status,
        )

    @api.route(
        "POST",
        "/api/payments/webhook",
        summary="Payment provider events",
        response=WebhookOut,
        auth=False,
        errors=[400],
        tags=("payments",),
        request_body={
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    )
    async def payment_webhook(request: web.Request) -> WebhookOut:
        """Signed with `Cohort-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">`; a bad or old
        signature is a 400 and changes nothing; each event is handled once, each top-up mints
        once."""
        body = await request.content.read(1 << 16)
        result = await request.app[PAYMENTS].topups.handle_webhook(
            request.headers.get(SIGNATURE_HEADER), body
        )
        return WebhookOut(result=result)

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


async def sandbox_checkout(request: web.Request) -> web.Response:
    """The sandbox provider's checkout page: approve or decline a pending top-up."""
    topup = await request.app[PAYMENTS].topups.get(request.match_info["topup_id"])
    price = f"{topup.price_cents / 100:.2f} {topup.currency}"
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sandbox checkout</title><meta name="viewport" content="width=device-width">
<style>body{{font-family:system-ui;max-width:28rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}</style></head><body>
<h1>Sandbox checkout</h1><p>No real money moves here.</p>
<p><strong>{topup.coins} coins</strong> ({topup.pack} pack) for <strong>{price}</strong>.</p>
<p>Status: <span data-testid="sandbox-status">{topup.status}</span></p>
<form method="post"><button name="decision" value="approve" data-testid="sandbox-approve">
Approve payment</button><button name="decision" value="decline" data-testid="sandbox-decline">
Decline</button></form></body></html>"""
    return web.Response(text=page, content_type="text/html")


async def sandbox_decide(request: web.Request) -> web.Response:
    """Approve or decline, then notify the hub the way a real provider does: a signed webhook
    over HTTP."""
    services = request.app[PAYMENTS]
    topup = await services.topups.get(request.match_info["topup_id"])
    form = await request.post()
    kind = "checkout.completed" if form.get("decision") == "approve" else "checkout.declined"
    body = event_body(kind, topup.id)
    headers = {SIGNATURE_HEADER: sign(services.topups.webhook_secret, body)}
    url = request.url.origin().with_path("/api/payments/webhook")
    async with (
        ClientSession() as http,
        http.post(url, data=body, headers={**headers, "Content-Type": "application/json"}) as resp,
    ):
        if resp.status != 200:
            raise web.HTTPBadGateway(text=f"webhook answered {resp.status}")
    raise web.HTTPSeeOther(f"/wallet?topup={topup.id}")


def add_sandbox_routes(app: web.Application) -> None:
    app.router.add_get("/sandbox/checkout/{topup_id:[0-9a-f]{32}}", sandbox_checkout)
    app.router.add_post("/sandbox/checkout/{topup_id:[0-9a-f]{32}}", sandbox_decide)
