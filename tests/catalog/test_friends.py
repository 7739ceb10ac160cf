"""Friends: requests, accepting, declining, removing, blocks, notifications and bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.catalog.test_communities import notifications, problem
from tests.conftest import Account, sign_up
from tests.hub.test_realtime import connect

Client = TestClient[Any, Any]


async def ask(client: Client, me: Account, other: Account | int) -> aiohttp.ClientResponse:
    user_id = other if isinstance(other, int) else other.id
    return await client.post("/api/friends/requests", json={"user_id": user_id}, headers=me.auth)


async def friends(client: Client, me: Account) -> dict[str, Any]:
    resp = await client.get("/api/friends", headers=me.auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["user"]["id"] for item in items]


async def test_request_and_accept(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    sock = await connect(client, ben)
    await sock.subscribe(f"user:{ben.id}")

    resp = await ask(client, ana, ben)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"status": "pending"}
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    live = frames[-1]["data"]["notification"]
    assert (live["type"], [a["id"] for a in live["actors"]]) == ("friend.request", [ana.id])
    await sock.ws.close()
    mine, theirs = await friends(client, ana), await friends(client, ben)
    assert (mine["friends"], mine["incoming"], ids(mine["outgoing"])) == ([], [], [ben.id])
    assert (theirs["friends"], ids(theirs["incoming"]), theirs["outgoing"]) == ([], [ana.id], [])
    assert theirs["incoming"][0]["user"]["display_name"] == "Ana"
    await problem(409)(await ask(client, ana, ben))  # asked already

    resp = await client.post(f"/api/friends/requests/{ana.id}/accept", headers=ben.auth)
    assert resp.status == 200, await resp.text()
    friend = await resp.json()
    low, high = sorted((ana.id, ben.id))
    assert friend["user"]["id"] == ana.id
    assert friend["dm_channel"] == f"dm:{low}:{high}"
    for me, other in ((ana, ben), (ben, ana)):
        listed = await friends(client, me)
        assert ids(listed["friends"]) == [other.id]
        assert listed["friends"][0]["dm_channel"] == f"dm:{low}:{high}"
        assert (listed["incoming"], listed["outgoing"]) == ([], [])
    [accepted] = await notifications(client, ana)
    assert accepted["text"] == "Ben accepted your friend request"
    [asked] = await notifications(client, ben)
    assert asked["text"] == "Ana sent you a friend request"

    await problem(409)(await ask(client, ana, ben))  # friends already
    await problem(409)(await ask(client, ben, ana))
    await problem(404)(
        await client.post(f"/api/friends/requests/{ana.id}/accept", headers=ben.auth)
    )


async def test_asking_someone_who_asked_accepts(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    assert (await (await ask(client, ana, ben)).json())["status"] == "pending"
    resp = await ask(client, ben, ana)
    assert resp.status == 201
    assert await resp.json() == {"status": "accepted"}
    assert ids((await friends(client, ana))["friends"]) == [ben.id]
    assert [n["type"] for n in await notifications(client, ana)] == ["friend.accepted"]


async def test_asking_each_other_at_once_makes_friends(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    answers = await asyncio.gather(ask(client, ana, ben), ask(client, ben, ana))
    assert [r.status for r in answers] == [201, 201]
    assert sorted([(await r.json())["status"] for r in answers]) == ["accepted", "pending"]
    assert ids((await friends(client, ana))["friends"]) == [ben.id]


async def test_requests_from_several_people_are_grouped(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    for name in ("Ben", "Cy", "Dee"):
        assert (await ask(client, await sign_up(client, name), ana)).status == 201
    [grouped] = await notifications(client, ana)
    assert grouped["text"] == "Dee and 2 others sent you a friend request"
    assert len((await friends(client, ana))["incoming"]) == 3


async def test_decline_remove_and_cancel(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    await ask(client, ana, ben)
    # Only the one asked can decline or accept.
    await problem(404)(
        await client.post(f"/api/friends/requests/{ben.id}/decline", headers=ana.auth)
    )
    await problem(404)(
        await client.post(f"/api/friends/requests/{ben.id}/accept", headers=ana.auth)
    )
    resp = await client.post(f"/api/friends/requests/{ana.id}/decline", headers=ben.auth)
    assert resp.status == 204
    assert (await friends(client, ana))["outgoing"] == []
    await problem(404)(
        await client.post(f"/api/friends/requests/{ana.id}/decline", headers=ben.auth)
    )
    # Declined, one may ask again.
    assert (await ask(client, ana, ben)).status == 201

    # Cancelling one's own request.
    assert (await client.delete(f"/api/friends/{ben.id}", headers=ana.auth)).status == 204
    assert (await friends(client, ben))["incoming"] == []

    # Removing a friend, from either side.
    await ask(client, ana, cy)
    await client.post(f"/api/friends/requests/{ana.id}/accept", headers=cy.auth)
    assert (await client.delete(f"/api/friends/{ana.id}", headers=cy.auth)).status == 204
    assert (await friends(client, ana))["friends"] == []
    await problem(404)(await client.delete(f"/api/friends/{ana.id}", headers=cy.auth))
    await problem(404)(await client.delete("/api/friends/999999", headers=cy.auth))


async def test_blocks(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    await ask(client, ana, ben)
    await client.post(f"/api/friends/requests/{ana.id}/accept", headers=ben.auth)

    low, high = sorted((ana.id, ben.id))
    socks = [await connect(client, me) for me in (ana, ben)]
    for sock in socks:
        assert (await sock.subscribe(f"dm:{low}:{high}"))["op"] == "subscribed"
    resp = await client.post("/api/blocks", json={"user_id": ben.id}, headers=ana.auth)
    assert resp.status == 201, await resp.text()
    # Their direct messages end live for both.
    for sock in socks:
        frames = await sock.recv_until(lambda f: f.get("op") == "unsubscribed")
        assert frames[-1]["channel"] == f"dm:{low}:{high}"
        await sock.ws.close()
    blocked = await resp.json()
    assert blocked["user"]["id"] == ben.id
    # The friendship is over, and neither can ask the other.
    for me in (ana, ben):
        assert (await friends(client, me))["friends"] == []
    refused = await problem(403)(await ask(client, ben, ana))
    assert "cannot" in refused["detail"]
    await problem(403)(await ask(client, ana, ben))
    listed = await (await client.get("/api/blocks", headers=ana.auth)).json()
    assert ids(listed["items"]) == [ben.id]
    assert (await (await client.get("/api/blocks", headers=ben.auth)).json())["items"] == []
    await problem(409)(await client.post("/api/blocks", json={"user_id": ben.id}, headers=ana.auth))

    # A pending request ends with a block too.
    cy = await sign_up(client, "Cy")
    await ask(client, cy, ana)
    await client.post("/api/blocks", json={"user_id": cy.id}, headers=ana.auth)
    assert (await friends(client, cy))["outgoing"] == []

    # Unblocking lets them ask again.
    assert (await client.delete(f"/api/blocks/{ben.id}", headers=ana.auth)).status == 204
    await problem(404)(await client.delete(f"/api/blocks/{ben.id}", headers=ana.auth))
    assert (await ask(client, ben, ana)).status == 201


async def test_bad_input_changes_nothing(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    yourself = await problem(422)(await ask(client, ana, ana))
    assert yourself["errors"][0]["field"] == "user_id"
    await problem(404)(await ask(client, ana, 999999))
    for body in (
        {},
        {"user_id": "ben"},
        {"user_id": 0},
        {"user_id": 10**19},
        {"user_id": ben.id, "x": 1},
    ):
        for url in ("/api/friends/requests", "/api/blocks"):
            await problem(422)(await client.post(url, json=body, headers=ana.auth))
    await problem(400)(
        await client.post(
            "/api/friends/requests",
            data=b"{not json",
            headers={**ana.auth, "Content-Type": "application/json"},
        )
    )
    blocked_self = await problem(422)(
        await client.post("/api/blocks", json={"user_id": ana.id}, headers=ana.auth)
    )
    assert blocked_self["errors"][0]["field"] == "user_id"
    await problem(404)(await client.post("/api/blocks", json={"user_id": 999999}, headers=ana.auth))
    await problem(404)(await client.post("/api/friends/requests/999999/accept", headers=ana.auth))
    for method, url in (
        ("GET", "/api/friends"),
        ("POST", "/api/friends/requests"),
        ("GET", "/api/blocks"),
        ("DELETE", f"/api/friends/{ben.id}"),
    ):
        assert (await client.request(method, url)).status == 401
    for me in (ana, ben):
        assert await friends(client, me) == {"friends": [], "incoming": [], "outgoing": []}
        assert (await (await client.get("/api/blocks", headers=me.auth)).json())["items"] == []
    assert await notifications(client, ben) == []
