"""HTTP edge of the profile shop (contract: docs/courses.md, "Profile shop")."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel, authenticate
from hub.identity.manager import Principal
from payments.handlers import PAYMENTS, idempotent
from payments.idempotency import StoredResponse
from payments.shop import KINDS, Appearance, ShopItem


class ShopItemOut(BaseModel):
    id: str
    kind: Literal["theme", "badge", "frame"]
    name: str
    description: str
    price: int = Field(description="coins")
    style: dict[str, str]
    owned: bool


class ShopItems(BaseModel):
    items: list[ShopItemOut]


class PurchasedItem(BaseModel):
    item: ShopItemOut
    balance: int


class ShownItem(BaseModel):
    id: str
    name: str
    style: dict[str, str]


class AppearanceOut(BaseModel):
    theme: ShownItem | None
    badge: ShownItem | None
    frame: ShownItem | None


class AppearanceEnvelope(BaseModel):
    appearance: AppearanceOut


class AppearanceBody(RequestModel):
    theme: str | None = Field(default=None, max_length=40)
    badge: str | None = Field(default=None, max_length=40)
    frame: str | None = Field(default=None, max_length=40)


def _item_out(item: ShopItem, owned: bool) -> ShopItemOut:
    return ShopItemOut(
        id=item.id,
        kind=item.kind,
        name=item.name,
        description=item.description,
        price=item.price,
        style=dict(item.style),
        owned=owned,
    )


def _shown(item: ShopItem | None) -> ShownItem | None:
    return ShownItem(id=item.id, name=item.name, style=dict(item.style)) if item else None


def _appearance_out(a: Appearance) -> AppearanceOut:
    return AppearanceOut(theme=_shown(a.theme), badge=_shown(a.badge), frame=_shown(a.frame))


def register_shop_routes(api: Api) -> None:
    tags = ("shop",)

    @api.route(
        "GET",
        "/api/shop/items",
        summary="Profile shop items",
        response=ShopItems,
        auth=False,
        tags=tags,
    )
    async def list_items(request: web.Request) -> ShopItems:
        """Themes, badges and avatar frames; `owned` is filled in when signed in."""
        shop = request.app[PAYMENTS].shop
        owned: set[str] = set()
        if "Authorization" in request.headers:
            owned = await shop.owned((await authenticate(request)).user.id)
        return ShopItems(items=[_item_out(i, i.id in owned) for i in shop.items()])

    @api.route(
        "POST",
        r"/api/shop/items/{item_id:[a-z0-9-]+}/purchase",
        summary="Buy a profile item with coins",
        response=PurchasedItem,
        status=201,
        errors=[402, 404, 409],
        tags=tags,
    )
    async def buy_item(request: web.Request, principal: Principal) -> web.Response:
        """Coins go to the platform through the ledger. 402 with `balance` and `price` when
        short; 409 when already owned. Send an `Idempotency-Key` to make retries safe."""
        services = request.app[PAYMENTS]
        item_id = request.match_info["item_id"]

        async def buy() -> StoredResponse:
            item, balance = await services.shop.buy(principal.user, item_id)
            out = PurchasedItem(item=_item_out(item, True), balance=balance)
            return StoredResponse(201, out.model_dump_json().encode(), "application/json")

        return await idempotent(request, services.keys, principal, b"", buy)

    @api.route(
        "PUT",
        "/api/me/appearance",
        summary="Show owned items on my profile",
        body=AppearanceBody,
        response=AppearanceEnvelope,
        tags=tags,
    )
    async def put_appearance(
        request: web.Request, principal: Principal, body: AppearanceBody
    ) -> AppearanceEnvelope:
        """One item id per kind, or null to take that kind off; each must be owned."""
        choice = {kind: getattr(body, kind) for kind in KINDS}
        shown = await request.app[PAYMENTS].shop.apply(principal.user, choice)
        return AppearanceEnvelope(appearance=_appearance_out(shown))
