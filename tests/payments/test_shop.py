"""The profile shop: items bought through the ledger, applied to the profile, shown to others."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from payments.handlers import PAYMENTS
from tests.conftest import sign_up


async def test_buy_apply_and_show_items(client: Any, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    listing = await (await client.get("/api/shop/items")).json()
    kinds = {item["kind"] for item in listing["items"]}
    assert kinds == {"theme", "badge", "frame"}
    assert not any(item["owned"] for item in listing["items"])

    resp = await client.post(
        "/api/shop/items/theme-midnight/purchase",
        headers={**ana.auth, "Idempotency-Key": "buy-midnight"},
    )
    assert resp.status == 201, await resp.text()
    bought = await resp.json()
    assert (bought["item"]["owned"], bought["balance"]) == (True, 100 - 40)
    # A retry with the same key replays; a second purchase without it is a 409.
    again = await client.post(
        "/api/shop/items/theme-midnight/purchase",
        headers={**ana.auth, "Idempotency-Key": "buy-midnight"},
    )
    assert (again.status, await again.json()) == (201, bought)
    twice = await client.post("/api/shop/items/theme-midnight/purchase", headers=ana.auth)
    assert twice.status == 409

    history = await (await client.get("/api/wallet/transactions", headers=ana.auth)).json()
    assert history["items"][0]["amount"] == -40
    assert history["items"][0]["reference"] == {"shop_item": "theme-midnight"}
    assert await app[PAYMENTS].ledger.verify() == []

    # Applying needs ownership and the right kind; a refusal changes nothing.
    for body in ({"theme": "theme-forest"}, {"badge": "theme-midnight"}, {"frame": "nope"}):
        resp = await client.put("/api/me/appearance", json=body, headers=ana.auth)
        assert resp.status == 422, body
    resp = await client.put(
        "/api/me/appearance", json={"theme": "theme-midnight"}, headers=ana.auth
    )
    assert resp.status == 200
    shown = (await resp.json())["appearance"]
    assert shown["theme"]["id"] == "theme-midnight"
    assert shown["badge"] is None

    me = await (await client.get("/api/me", headers=ana.auth)).json()
    assert me["user"]["appearance"]["theme"]["style"]["background"] == "#0f172a"
    # Others see it on the public profile, without the email.
    public = await (await client.get(f"/api/users/{ana.id}")).json()
    assert public["user"]["appearance"]["theme"]["name"] == "Midnight"
    assert "email" not in public["user"]
    assert (await client.get("/api/users/999999")).status == 404

    owned = await (await client.get("/api/shop/items", headers=ana.auth)).json()
    assert [i["id"] for i in owned["items"] if i["owned"]] == ["theme-midnight"]
    # Taking it off again.
    resp = await client.put("/api/me/appearance", json={"theme": None}, headers=ana.auth)
    assert (await resp.json())["appearance"]["theme"] is None


async def test_short_of_coins_is_402_and_unknown_items_404(client: Any) -> None:
    ana = await sign_up(client, "Ana")
    resp = await client.post("/api/shop/items/frame-gold/purchase", headers=ana.auth)
    assert resp.status == 201  # 100 coins: exactly the grant
    resp = await client.post("/api/shop/items/badge-early-bird/purchase", headers=ana.auth)
    assert resp.status == 402
    problem = await resp.json()
    assert (problem["balance"], problem["price"]) == (0, 20)
    assert (await client.post("/api/shop/items/no-such/purchase", headers=ana.auth)).status == 404
    assert (await client.post("/api/shop/items/frame-gold/purchase")).status == 401
    wallet = await (await client.get("/api/wallet", headers=ana.auth)).json()
    assert wallet["balance"] == 0
