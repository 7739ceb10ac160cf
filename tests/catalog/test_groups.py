"""Study groups: creating (inside a community or not), the invite link, invitations, members,
leaving with the owner's handover, and bad input."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.catalog.test_communities import create_community, join, notifications, problem
from tests.conftest import Account, sign_up
from tests.hub.test_realtime import connect

Client = TestClient[Any, Any]


async def create_group(client: Client, owner: Account, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/groups", json={"name": "Algorithms", **body}, headers=owner.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def join_by_code(client: Client, account: Account, code: str) -> aiohttp.ClientResponse:
    return await client.post("/api/groups/join", json={"code": code}, headers=account.auth)


async def invite(
    client: Client, inviter: Account, group_id: int, user_id: int
) -> aiohttp.ClientResponse:
    return await client.post(
        f"/api/groups/{group_id}/invitations", json={"user_id": user_id}, headers=inviter.auth
    )


async def group_members(client: Client, account: Account, group_id: int) -> list[tuple[int, str]]:
    resp = await client.get(f"/api/groups/{group_id}/members", headers=account.auth)
    assert resp.status == 200, await resp.text()
    return [(m["user"]["id"], m["role"]) for m in (await resp.json())["items"]]


async def test_create_and_join_by_invite_link(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    group = await create_group(client, ana, description="  Graphs on Tuesdays ")
    gid = group["id"]
    assert group["description"] == "Graphs on Tuesdays"
    assert group["community_id"] is None
    assert group["owner"] == {"id": ana.id, "display_name": "Ana"}
    assert (group["member_count"], group["my_role"]) == (1, "owner")
    assert group["channel"] == f"chat:group:{gid}"
    code = group["invite_code"]
    assert len(code) == 16

    # Non-members see nothing, not even that it exists.
    await problem(404)(await client.get(f"/api/groups/{gid}", headers=ben.auth))
    await problem(404)(await client.get(f"/api/groups/{gid}/members", headers=ben.auth))
    assert (await client.get(f"/api/groups/{gid}")).status == 401

    resp = await join_by_code(client, ben, code)
    assert resp.status == 200, await resp.text()
    joined = await resp.json()
    assert (joined["id"], joined["my_role"], joined["member_count"]) == (gid, "member", 2)
    assert joined["invite_code"] == code
    again = await join_by_code(client, ben, code)  # the link clicked twice: nothing changes
    assert (await again.json())["member_count"] == 2
    assert await group_members(client, ben, gid) == [(ana.id, "owner"), (ben.id, "member")]
    mine = await (await client.get("/api/me/groups", headers=ben.auth)).json()
    assert [g["id"] for g in mine["items"]] == [gid]

    await problem(404)(await join_by_code(client, ben, "not-a-real-code"))
    for body in ({}, {"code": ""}, {"code": "spaces are bad"}, {"code": "x" * 33}, {"c": 1}):
        await problem(422)(await client.post("/api/groups/join", json=body, headers=ben.auth))
    for body in ({}, {"name": " "}, {"name": "x" * 101}, {"name": "G", "community_id": 0}):
        await problem(422)(await client.post("/api/groups", json=body, headers=ana.auth))
    await problem(422)(
        await client.post("/api/groups", json={"name": "G", "private": True}, headers=ana.auth)
    )
    mine = await (await client.get("/api/me/groups", headers=ana.auth)).json()
    assert [g["id"] for g in mine["items"]] == [gid]


async def test_groups_inside_a_community(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    cid = (await create_community(client, ana))["id"]
    refused = await problem(403)(
        await client.post(
            "/api/groups", json={"name": "Study", "community_id": cid}, headers=ben.auth
        )
    )
    assert "members" in refused["detail"]
    await problem(404)(
        await client.post(
            "/api/groups", json={"name": "Study", "community_id": 999999}, headers=ben.auth
        )
    )
    await join(client, ben, cid)
    small = await create_group(client, ben, name="Small", community_id=cid)
    big = await create_group(client, ana, name="Big", community_id=cid)
    await create_group(client, ana, name="Elsewhere")
    await join_by_code(client, cy, big["invite_code"])

    listed = await (await client.get(f"/api/communities/{cid}/groups", headers=cy.auth)).json()
    assert [(g["name"], g["member_count"]) for g in listed["items"]] == [("Big", 2), ("Small", 1)]
    # The invite code only shows on one's own groups.
    assert [g["invite_code"] is not None for g in listed["items"]] == [True, False]
    await problem(404)(await client.get("/api/communities/999999/groups", headers=cy.auth))

    # Someone banned from the community cannot join its groups, by link or invitation.
    resp = await client.post(
        f"/api/communities/{cid}/bans", json={"user_id": cy.id}, headers=ana.auth
    )
    assert resp.status == 201
    dee = await sign_up(client, "Dee")
    await client.post(f"/api/communities/{cid}/bans", json={"user_id": dee.id}, headers=ana.auth)
    await problem(403)(await join_by_code(client, dee, small["invite_code"]))
    await problem(403)(await invite(client, ben, small["id"], dee.id))
    assert await group_members(client, ben, small["id"]) == [(ben.id, "owner")]


async def test_invitations(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    created = await create_group(client, ana, name="Rustaceans")
    gid = created["id"]
    assert (await join_by_code(client, ben, created["invite_code"])).status == 200
    sock = await connect(client, cy)
    await sock.subscribe(f"user:{cy.id}")

    resp = await invite(client, ana, gid, cy.id)
    assert resp.status == 201, await resp.text()
    invitation = await resp.json()
    assert invitation["status"] == "pending"
    assert invitation["invited_by"] == {"id": ana.id, "display_name": "Ana"}
    assert invitation["group"]["id"] == gid
    assert invitation["group"]["name"] == "Rustaceans"
    assert "invite_code" not in invitation["group"]
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    live = frames[-1]["data"]["notification"]
    assert live["type"] == "group.invitation"
    assert live["data"]["group_name"] == "Rustaceans"
    await sock.ws.close()

    # A second member asking too: refused as a duplicate, the notification unchanged.
    dup = await problem(409)(await invite(client, ben, gid, cy.id))
    assert "already invited" in dup["detail"]
    pending = await (await client.get("/api/me/group-invitations", headers=cy.auth)).json()
    assert [i["id"] for i in pending["items"]] == [invitation["id"]]

    # Nobody else answers it.
    await problem(404)(
        await client.post(f"/api/group-invitations/{invitation['id']}/accept", headers=ben.auth)
    )
    resp = await client.post(f"/api/group-invitations/{invitation['id']}/accept", headers=cy.auth)
    assert resp.status == 200, await resp.text()
    group = await resp.json()
    assert (group["my_role"], group["member_count"]) == ("member", 3)
    await problem(409)(
        await client.post(f"/api/group-invitations/{invitation['id']}/accept", headers=cy.auth)
    )
    await problem(409)(
        await client.post(f"/api/group-invitations/{invitation['id']}/decline", headers=cy.auth)
    )
    assert (await client.get("/api/me/group-invitations", headers=cy.auth)).status == 200
    await problem(409)(await invite(client, ana, gid, cy.id))  # already a member

    # Declining; bad input; strangers cannot invite; unknown users and groups.
    dee = await sign_up(client, "Dee")
    declined = await (await invite(client, ben, gid, dee.id)).json()
    assert (
        await client.post(f"/api/group-invitations/{declined['id']}/decline", headers=dee.auth)
    ).status == 204
    assert (await (await client.get("/api/me/group-invitations", headers=dee.auth)).json())[
        "items"
    ] == []
    # Invited again later, the same invitation is pending again.
    again = await (await invite(client, ana, gid, dee.id)).json()
    assert (again["id"], again["status"]) == (declined["id"], "pending")
    eve = await sign_up(client, "Eve")
    await problem(404)(await invite(client, eve, gid, dee.id))
    await problem(404)(await invite(client, ana, gid, 999999))
    await problem(404)(await invite(client, ana, 999999, dee.id))
    for body in ({}, {"user_id": "ben"}, {"user_id": -1}, {"user_id": dee.id, "note": "hi"}):
        await problem(422)(
            await client.post(f"/api/groups/{gid}/invitations", json=body, headers=ana.auth)
        )
    await problem(404)(await client.post("/api/group-invitations/999999/accept", headers=dee.auth))

    # Blocks: neither side can invite the other.
    assert (
        await client.post("/api/blocks", json={"user_id": ana.id}, headers=eve.auth)
    ).status == 201
    await problem(403)(await invite(client, ana, gid, eve.id))

    # Invitations to one group are grouped into one notification while it is unread.
    fay = await sign_up(client, "Fay")
    first = await (await invite(client, ana, gid, fay.id)).json()
    other_gid = (await create_group(client, ben, name="Other"))["id"]
    await invite(client, ben, other_gid, fay.id)
    url = f"/api/group-invitations/{first['id']}/decline"
    assert (await client.post(url, headers=fay.auth)).status == 204
    await invite(client, cy, gid, fay.id)
    texts = {n["text"] for n in await notifications(client, fay)}
    assert texts == {"Cy and 1 other invited you to Rustaceans", "Ben invited you to Other"}


async def test_leaving_hands_the_group_over_then_deletes_it(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    group = await create_group(client, ana)
    gid, code = group["id"], group["invite_code"]
    for account in (ben, cy):
        assert (await join_by_code(client, account, code)).status == 200

    await problem(404)(await client.post("/api/groups/999999/leave", headers=ana.auth))
    sock = await connect(client, ana)
    assert (await sock.subscribe(f"chat:group:{gid}"))["op"] == "subscribed"
    assert (await client.post(f"/api/groups/{gid}/leave", headers=ana.auth)).status == 204
    frames = await sock.recv_until(lambda f: f.get("op") == "unsubscribed")
    assert frames[-1]["reason"] == "you left this study group"
    await sock.ws.close()
    await problem(404)(await client.post(f"/api/groups/{gid}/leave", headers=ana.auth))
    handed = await (await client.get(f"/api/groups/{gid}", headers=ben.auth)).json()
    assert handed["owner"]["id"] == ben.id
    assert (handed["my_role"], handed["member_count"]) == ("owner", 2)
    assert await group_members(client, cy, gid) == [(ben.id, "owner"), (cy.id, "member")]

    # The owner may rejoin by link, as a member now.
    rejoined = await (await join_by_code(client, ana, code)).json()
    assert (rejoined["my_role"], rejoined["member_count"]) == ("member", 3)
    pending = await (await invite(client, cy, gid, (await sign_up(client, "Dee")).id)).json()
    for account in (ben, cy, ana):
        assert (await client.post(f"/api/groups/{gid}/leave", headers=account.auth)).status == 204
    # The last one out deletes it: the link and the invitation go with it.
    await problem(404)(await join_by_code(client, ben, code))
    await problem(404)(await client.get(f"/api/groups/{gid}", headers=ana.auth))
    assert (await (await client.get("/api/me/groups", headers=ana.auth)).json())["items"] == []
    assert pending["status"] == "pending"
