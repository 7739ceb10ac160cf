"""Buying coins through the sandbox provider and its signed webhook."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from hub.services import HUB
from payments.handlers import PAYMENTS
from payments.topups import SIGNATURE_HEADER, event_body, sign
from tests.conftest import Account, sign_up


async def balance(client: Any, account: Account) -> int:
    return (await (await client.get("/api/wallet", headers=account.auth)).json())["balance"]


async def start(client: Any, account: Account, pack: str = "plus", **headers: str) -> Any:
    return await client.post(
        "/api/wallet/topups", json={"pack": pack}, headers={**account.auth, **headers}
    )


async def test_sandbox_checkout_approves_and_the_webhook_mints(client: Any) -> None:
    ana = await sign_up(client, "Ana")
    resp = await start(client, ana)
    assert resp.status == 201
    topup = await resp.json()
    assert (topup["pack"], topup["coins"], topup["status"]) == ("plus", 550, "pending")
    page = await client.get(topup["checkout_url"])
    assert "550 coins" in await page.text()
    # The buyer approves on the provider's page; the provider calls the webhook over HTTP.
    done = await client.post(
        topup["checkout_url"], data={"decision": "approve"}, allow_redirects=False
    )
    assert done.status == 303
    assert await balance(client, ana) == 100 + 550
    state = await (await client.get(f"/api/wallet/topups/{topup['id']}", headers=ana.auth)).json()
    assert state["status"] == "paid"
    history = await (await client.get("/api/wallet/transactions", headers=ana.auth)).json()
    assert history["items"][0]["kind"] == "topup"
    assert history["items"][0]["reference"]["topup_id"] == topup["id"]


async def test_a_webhook_delivered_five_times_mints_once(client: Any, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    topup = await (await start(client, ana, "starter")).json()
    secret = app[PAYMENTS].topups.webhook_secret
    body = event_body("checkout.completed", topup["id"])
    results = []
    for _ in range(5):
        resp = await client.post(
            "/api/payments/webhook",
            data=body,
            headers={SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"},
        )
        assert resp.status == 200
        results.append((await resp.json())["result"])
    assert results == ["paid"] + ["duplicate"] * 4
    # A different event for the same payment does not mint again either.
    other = event_body("checkout.completed", topup["id"])
    await client.post(
        "/api/payments/webhook", data=other, headers={SIGNATURE_HEADER: sign(secret, other)}
    )
    assert await balance(client, ana) == 100 + 100
    assert await app[PAYMENTS].ledger.verify() == []


@pytest.mark.parametrize("problem", ["missing", "forged", "other-secret", "stale", "garbled"])
async def test_bad_signatures_are_400_and_change_nothing(
    client: Any, app: web.Application, problem: str
) -> None:
    ana = await sign_up(client, "Ana")
    topup = await (await start(client, ana)).json()
    secret = app[PAYMENTS].topups.webhook_secret
    body = event_body("checkout.completed", topup["id"])
    headers = {
        "missing": {},
        "forged": {SIGNATURE_HEADER: sign(secret, body).replace("v1=", "v1=00")},
        "other-secret": {SIGNATURE_HEADER: sign(b"not-the-secret", body)},
        # 301 s before the hub's own clock (the test clock stands still; wall time moves on).
        "stale": {
            SIGNATURE_HEADER: sign(secret, body, int(app[HUB].clock.now().timestamp()) - 301)
        },
        "garbled": {SIGNATURE_HEADER: "t=abc,v1="},
    }[problem]
    resp = await client.post("/api/payments/webhook", data=body, headers=headers)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert await balance(client, ana) == 100
    state = await (await client.get(f"/api/wallet/topups/{topup['id']}", headers=ana.auth)).json()
    assert state["status"] == "pending"
    # The genuine event still works afterwards (nothing was recorded as handled).
    ok = await client.post(
        "/api/payments/webhook", data=body, headers={SIGNATURE_HEADER: sign(secret, body)}
    )
    assert (await ok.json())["result"] == "paid"


async def test_declined_checkout_mints_nothing(client: Any) -> None:
    ana = await sign_up(client, "Ana")
    topup = await (await start(client, ana)).json()
    await client.post(topup["checkout_url"], data={"decision": "decline"}, allow_redirects=False)
    state = await (await client.get(f"/api/wallet/topups/{topup['id']}", headers=ana.auth)).json()
    assert state["status"] == "declined"
    assert await balance(client, ana) == 100


async def test_unknown_pack_and_foreign_topups(client: Any) -> None:
    ana = await sign_up(client, "Ana")
    bad = await start(client, ana, "mega")
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "pack"
    topup = await (await start(client, ana)).json()
    bo = await sign_up(client, "Bo")
    assert (await client.get(f"/api/wallet/topups/{topup['id']}", headers=bo.auth)).status == 404


async def test_idempotency_key_returns_the_same_checkout(client: Any) -> None:
    ana = await sign_up(client, "Ana")
    first = await (await start(client, ana, **{"Idempotency-Key": "buy-1"})).json()
    again = await (await start(client, ana, **{"Idempotency-Key": "buy-1"})).json()
    assert again == first
    other = await start(client, ana, "pro", **{"Idempotency-Key": "buy-1"})
    assert other.status == 409
