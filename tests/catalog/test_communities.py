"""Communities: creating and finding them, joining (with the one-time coin reward) and
leaving, roles, mutes, bans, channels, and the owner's grouped notifications. Also the
notifications of the earlier issues' events that this layer wires up (course sales, videos)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from catalog.communities import join_reward_key
from hub.services import HUB
from media.handlers import MEDIA
from media.jobs import Job
from payments.handlers import PAYMENTS
from payments.models import Transfer
from tests.catalog.test_courses import a_video
from tests.catalog.test_learning import course_with, text_lesson
from tests.conftest import Account, log_in, sign_up
from tests.hub.test_realtime import connect
from tests.media.clips import make_clip

Client = TestClient[Any, Any]

PYTHON = {
    "name": "Python",
    "slug": "python",
    "skills": ["Python", "programming"],
    "description": "Learning Python together.",
}


async def create_community(client: Client, owner: Account, **changes: Any) -> dict[str, Any]:
    resp = await client.post("/api/communities", json={**PYTHON, **changes}, headers=owner.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def join(client: Client, account: Account, community_id: int) -> dict[str, Any]:
    resp = await client.post(f"/api/communities/{community_id}/join", headers=account.auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def community(client: Client, community_id: int, account: Account | None = None) -> Any:
    headers = account.auth if account else {}
    resp = await client.get(f"/api/communities/{community_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def members(client: Client, account: Account, community_id: int) -> dict[int, Any]:
    resp = await client.get(f"/api/communities/{community_id}/members", headers=account.auth)
    assert resp.status == 200, await resp.text()
    return {m["user"]["id"]: m for m in (await resp.json())["items"]}


async def balance(client: Client, account: Account) -> int:
    resp = await client.get("/api/wallet", headers=account.auth)
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["balance"])


async def notifications(client: Client, account: Account) -> list[dict[str, Any]]:
    resp = await client.get("/api/notifications", headers=account.auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]  # type: ignore[no-any-return]


async def set_role(
    client: Client, actor: Account, community_id: int, user: Account, role: str
) -> aiohttp.ClientResponse:
    return await client.put(
        f"/api/communities/{community_id}/members/{user.id}/role",
        json={"role": role},
        headers=actor.auth,
    )


async def mute(
    client: Client, actor: Account, community_id: int, user: Account, minutes: int
) -> aiohttp.ClientResponse:
    return await client.post(
        f"/api/communities/{community_id}/members/{user.id}/mute",
        json={"minutes": minutes},
        headers=actor.auth,
    )


@pytest.fixture
async def teacher(client: Client, app: web.Application) -> Account:
    account = Account("tina@example.com", "teaching all day", "Tina")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, "Tina", admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


def problem(status: int) -> Any:
    async def check(resp: aiohttp.ClientResponse) -> dict[str, Any]:
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/problem+json"
        return await resp.json()  # type: ignore[no-any-return]

    return check


# Creating and finding --------------------------------------------------------------------


async def test_create_read_and_find_communities(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    python = await create_community(client, ana)
    assert python["name"] == "Python"
    assert python["skills"] == ["python", "programming"]
    assert python["owner"] == {"id": ana.id, "display_name": "Ana"}
    assert python["member_count"] == 1
    assert python["my_role"] == "owner"
    assert python["muted_until"] is None
    assert python["channels"] == [
        {
            "name": "General",
            "slug": "general",
            "channel": f"chat:community:{python['id']}",
            "slow_mode_seconds": 0,
        }
    ]
    # Anyone may read it; the viewer's role is theirs.
    assert (await community(client, python["id"]))["my_role"] is None
    assert (await community(client, python["id"], ben))["my_role"] is None
    by_slug = await client.get("/api/communities/by-slug/python", headers=ana.auth)
    assert (await by_slug.json())["id"] == python["id"]
    assert (await client.get("/api/communities/by-slug/nope")).status == 404
    assert (await client.get("/api/communities/999999")).status == 404

    cooking = await create_community(
        client,
        ben,
        name="Cooking",
        slug="cooking",
        skills=["knife skills"],
        description="No code, only soup.",
    )
    data = await create_community(
        client,
        ben,
        name="Data science",
        slug="data-science",
        skills=["python", "statistics"],
        description="Pandas, plots and numbers.",
    )
    await join(client, ana, data["id"])  # the most members now: first in every list

    async def find(**params: Any) -> list[int]:
        resp = await client.get("/api/communities", params=params, headers=ana.auth)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["total"] == len(body["items"]) or "page_size" in params
        return [c["id"] for c in body["items"]]

    assert await find() == [data["id"], python["id"], cooking["id"]]
    assert await find(q="pyth") == [data["id"], python["id"]]  # skills match too
    assert await find(q="soup") == [cooking["id"]]  # description
    assert await find(q="PYTHON together") == [python["id"]]  # every word
    assert await find(skill="Python") == [data["id"], python["id"]]  # one whole skill
    assert await find(skill="pyth") == []
    assert await find(skill="knife skills") == [cooking["id"]]
    assert await find(q="100%_") == []  # wildcards are plain characters
    paged = await client.get("/api/communities", params={"page": 2, "page_size": 2})
    body = await paged.json()
    assert (body["page"], body["page_size"], body["total"]) == (2, 2, 3)
    assert [c["id"] for c in body["items"]] == [cooking["id"]]
    assert body["items"][0]["my_role"] is None  # anonymous
    mine = await (await client.get("/api/communities", headers=ana.auth)).json()
    assert [c["my_role"] for c in mine["items"]] == ["member", "owner", None]


async def test_bad_community_input_changes_nothing(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    await create_community(client, ana)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**PYTHON, "slug": "other", "name": " "}, "name"),
        ({**PYTHON, "slug": "Not A Slug"}, "slug"),
        ({**PYTHON, "slug": "-edge"}, "slug"),
        ({**PYTHON, "slug": "x"}, "slug"),
        ({**PYTHON, "slug": "ok-slug", "skills": ["x" * 41]}, "skills.0"),
        ({**PYTHON, "slug": "ok-slug", "skills": [f"s{n}" for n in range(13)]}, "skills"),
        ({**PYTHON, "slug": "ok-slug", "skills": "python"}, "skills"),
        ({**PYTHON, "slug": "ok-slug", "description": "d" * 5001}, "description"),
        ({**PYTHON, "slug": "ok-slug", "owner_id": 1}, "owner_id"),
        ({"slug": "ok-slug"}, "name"),
    ]
    for body, field in cases:
        resp = await client.post("/api/communities", json=body, headers=ana.auth)
        found = await problem(422)(resp)
        assert field in [e["field"] for e in found["errors"]], (body, found)
    taken = await problem(409)(await client.post("/api/communities", json=PYTHON, headers=ana.auth))
    assert "python" in taken["detail"]
    assert (await client.post("/api/communities", json={**PYTHON, "slug": "p2"})).status == 401
    listed = await (await client.get("/api/communities")).json()
    assert listed["total"] == 1
    for params in ({"page": "0"}, {"page_size": "101"}, {"sort": "new"}, {"q": "q" * 201}):
        await problem(422)(await client.get("/api/communities", params=params))


# Joining and the reward ------------------------------------------------------------------


async def test_join_reward_is_paid_once_per_user_and_community(
    client: Client, app: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    python = await create_community(client, ana)
    cid = python["id"]
    start = await balance(client, ben)

    assert await join(client, ben, cid) == {"role": "member", "reward": 10}
    assert await balance(client, ben) == start + 10
    after = await community(client, cid, ben)
    assert (after["member_count"], after["my_role"]) == (2, "member")
    again = await problem(409)(await client.post(f"/api/communities/{cid}/join", headers=ben.auth))
    assert "already a member" in again["detail"]

    sock = await connect(client, ben)
    assert (await sock.subscribe(f"chat:community:{cid}"))["op"] == "subscribed"
    assert (await client.post(f"/api/communities/{cid}/leave", headers=ben.auth)).status == 204
    frames = await sock.recv_until(lambda f: f.get("op") == "unsubscribed")
    assert frames[-1]["reason"] == "you left this community"
    await sock.ws.close()
    left = await community(client, cid, ben)
    assert (left["member_count"], left["my_role"]) == (1, None)
    await problem(409)(await client.post(f"/api/communities/{cid}/leave", headers=ben.auth))
    # Rejoining earns nothing.
    assert await join(client, ben, cid) == {"role": "member", "reward": 0}
    assert await balance(client, ben) == start + 10
    history = await (await client.get("/api/wallet/transactions", headers=ben.auth)).json()
    rewards = [line for line in history["items"] if line["kind"] == "community_join_reward"]
    assert [(r["amount"], r["reference"]) for r in rewards] == [(10, {"community_id": cid})]
    async with app[HUB].db.sessions() as s:
        count = await s.scalar(
            select(func.count()).where(Transfer.dedupe_key == join_reward_key(cid, ben.id))
        )
    assert count == 1
    assert await app[PAYMENTS].ledger.verify() == []

    # The owner cannot leave; unknown communities are 404.
    owner_leaves = await problem(409)(
        await client.post(f"/api/communities/{cid}/leave", headers=ana.auth)
    )
    assert "owner" in owner_leaves["detail"]
    await problem(404)(await client.post("/api/communities/424242/join", headers=ben.auth))
    assert (await client.post(f"/api/communities/{cid}/join")).status == 401
    assert (await community(client, cid))["member_count"] == 2


async def test_concurrent_joins_count_and_pay_once(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    cid = (await create_community(client, ana))["id"]
    ben = await sign_up(client, "Ben")
    others = [await sign_up(client, f"P{n}") for n in range(4)]
    url = f"/api/communities/{cid}/join"
    same = await asyncio.gather(*(client.post(url, headers=ben.auth) for _ in range(4)))
    assert sorted(r.status for r in same) == [200, 409, 409, 409]
    assert [(await r.json())["reward"] for r in same if r.status == 200] == [10]
    many = await asyncio.gather(*(client.post(url, headers=p.auth) for p in others))
    assert [r.status for r in many] == [200] * 4
    assert (await community(client, cid))["member_count"] == 6
    assert len(await members(client, ana, cid)) == 6
    async with app[HUB].db.sessions() as s:
        rewards = await s.scalar(
            select(func.count()).where(Transfer.kind == "community_join_reward")
        )
    assert rewards == 5
    assert await app[PAYMENTS].ledger.verify() == []


async def test_joins_are_grouped_in_the_owners_notifications(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    python = await create_community(client, ana)
    sock = await connect(client, ana)
    assert (await sock.subscribe(f"user:{ana.id}"))["op"] == "subscribed"
    ben = await sign_up(client, "Ben")
    await join(client, ben, python["id"])
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    live = frames[-1]["data"]["notification"]
    assert live["type"] == "community.joined"
    assert [a["id"] for a in live["actors"]] == [ben.id]
    assert live["data"]["community_name"] == "Python"

    cy = await sign_up(client, "Cy")
    await join(client, cy, python["id"])
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    assert frames[-1]["data"]["notification"]["actor_count"] == 2
    await sock.ws.close()

    [grouped] = await notifications(client, ana)
    assert grouped["text"] == "Cy and 1 other joined Python"
    assert [a["display_name"] for a in grouped["actors"]] == ["Cy", "Ben"]
    # Once read, the next join starts a new notification.
    await client.post(f"/api/notifications/{grouped['id']}/read", headers=ana.auth)
    dee = await sign_up(client, "Dee")
    await join(client, dee, python["id"])
    latest = await notifications(client, ana)
    assert [n["text"] for n in latest] == ["Dee joined Python", "Cy and 1 other joined Python"]


async def test_muted_notification_types_are_not_stored(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    python = await create_community(client, ana)
    resp = await client.put(
        "/api/notifications/preferences",
        json={"muted": {"community.joined": True}},
        headers=ana.auth,
    )
    assert resp.status == 200
    ben = await sign_up(client, "Ben")
    assert (await join(client, ben, python["id"]))["reward"] == 10
    assert await notifications(client, ana) == []
    count = await (await client.get("/api/notifications/unread-count", headers=ana.auth)).json()
    assert count == {"unread": 0}


# Roles -----------------------------------------------------------------------------------


async def test_who_may_change_whose_role(client: Client) -> None:
    owner = await sign_up(client, "Olga")
    admin = await sign_up(client, "Adam")
    admin2 = await sign_up(client, "Abe")
    mod = await sign_up(client, "Mo")
    member = await sign_up(client, "Mel")
    other = await sign_up(client, "Ola")
    outsider = await sign_up(client, "Out")
    cid = (await create_community(client, owner))["id"]
    for account in (admin, admin2, mod, member, other):
        await join(client, account, cid)

    # The owner sets any role but owner.
    for account, role in ((admin, "admin"), (admin2, "admin"), (mod, "moderator")):
        resp = await set_role(client, owner, cid, account, role)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["role"] == role
    roles = {uid: m["role"] for uid, m in (await members(client, owner, cid)).items()}
    assert roles == {
        owner.id: "owner",
        admin.id: "admin",
        admin2.id: "admin",
        mod.id: "moderator",
        member.id: "member",
        other.id: "member",
    }

    # Admins set moderator or member on members below admin only.
    assert (await set_role(client, admin, cid, other, "moderator")).status == 200
    assert (await set_role(client, admin, cid, other, "member")).status == 200
    refused = [
        (admin, member, "admin", "Only the owner makes admins"),
        (admin, admin2, "member", "moderators and members only"),
        (admin, owner, "member", "owner's role cannot be changed"),
        (admin, admin, "moderator", "your own role"),
        (owner, owner, "admin", "your own role"),
        (mod, member, "moderator", "the owner and admins"),
        (member, other, "moderator", "the owner and admins"),
        (outsider, member, "moderator", "the owner and admins"),
    ]
    for actor, target, role, reason in refused:
        found = await problem(403)(await set_role(client, actor, cid, target, role))
        assert reason in found["detail"], (actor.display_name, target.display_name, found)
    await problem(404)(await set_role(client, owner, cid, outsider, "member"))
    await problem(404)(
        await client.put(
            "/api/communities/999999/members/1/role", json={"role": "member"}, headers=owner.auth
        )
    )
    for body in ({"role": "owner"}, {"role": "king"}, {}, {"role": "member", "x": 1}):
        await problem(422)(
            await client.put(
                f"/api/communities/{cid}/members/{member.id}/role", json=body, headers=owner.auth
            )
        )
    roles_after = {uid: m["role"] for uid, m in (await members(client, owner, cid)).items()}
    assert roles_after == roles

    # The member hears about a change (and only about a change).
    texts = [n["text"] for n in await notifications(client, mod)]
    assert texts == ["You are now moderator of Python"]
    assert (await set_role(client, owner, cid, mod, "moderator")).status == 200
    assert len(await notifications(client, mod)) == 1
    texts = [n["text"] for n in await notifications(client, other)]
    assert texts == ["You are now member of Python", "You are now moderator of Python"]


async def test_members_are_listed_by_role_in_pages(client: Client) -> None:
    owner = await sign_up(client, "Olga")
    cid = (await create_community(client, owner))["id"]
    people = [await sign_up(client, f"P{n}") for n in range(4)]
    for person in people:
        await join(client, person, cid)
    assert (await set_role(client, owner, cid, people[3], "admin")).status == 200
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get(
            f"/api/communities/{cid}/members", params=params, headers=owner.auth
        )
        body = await resp.json()
        seen += [(m["user"]["id"], m["role"]) for m in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [(owner.id, "owner"), (people[3].id, "admin")]
    expected += [(p.id, "member") for p in people[:3]]
    assert seen == expected
    for params in ({"cursor": "nope"}, {"limit": "0"}, {"limit": "201"}):
        await problem(422)(
            await client.get(f"/api/communities/{cid}/members", params=params, headers=owner.auth)
        )
    await problem(404)(await client.get("/api/communities/999999/members", headers=owner.auth))
    assert (await client.get(f"/api/communities/{cid}/members")).status == 401


# Mutes and bans --------------------------------------------------------------------------


async def test_mutes(client: Client, clock: Any) -> None:
    owner = await sign_up(client, "Olga")
    admin = await sign_up(client, "Adam")
    mod = await sign_up(client, "Mo")
    mod2 = await sign_up(client, "Max")
    member = await sign_up(client, "Mel")
    cid = (await create_community(client, owner))["id"]
    for account in (admin, mod, mod2, member):
        await join(client, account, cid)
    await set_role(client, owner, cid, admin, "admin")
    await set_role(client, owner, cid, mod, "moderator")
    await set_role(client, owner, cid, mod2, "moderator")

    resp = await mute(client, mod, cid, member, 30)
    assert resp.status == 200, await resp.text()
    muted = await resp.json()
    assert muted["user"]["id"] == member.id
    expected = clock.now().timestamp() + 30 * 60
    assert muted["muted_until"] is not None
    listed = (await members(client, owner, cid))[member.id]
    assert listed["muted_until"] == muted["muted_until"]
    mine = await community(client, cid, member)
    assert mine["muted_until"] == muted["muted_until"]
    assert datetime.fromisoformat(mine["muted_until"]).timestamp() == expected

    # Moderators mute members below them only; members mute nobody.
    for actor, target in ((mod, mod2), (mod, admin), (mod, owner), (admin, owner), (mod, mod)):
        found = await problem(403)(await mute(client, actor, cid, target, 10))
        assert "below yours" in found["detail"]
    await problem(403)(await mute(client, member, cid, mod, 10))
    assert (await mute(client, admin, cid, mod, 5)).status == 200
    assert (await mute(client, owner, cid, admin, 5)).status == 200
    outsider = await sign_up(client, "Out")
    await problem(404)(await mute(client, mod, cid, outsider, 10))
    for minutes in (-1, 30 * 24 * 60 + 1, "soon", None):
        await problem(422)(
            await client.post(
                f"/api/communities/{cid}/members/{member.id}/mute",
                json={"minutes": minutes},
                headers=mod.auth,
            )
        )
    assert (await members(client, owner, cid))[member.id]["muted_until"] == muted["muted_until"]

    # A mute ends by itself, or with 0 minutes.
    clock.advance(31 * 60)
    for account in (owner, member, mod):
        await log_in(client, account)  # access tokens last 15 minutes
    assert (await members(client, owner, cid))[member.id]["muted_until"] is None
    assert (await community(client, cid, member))["muted_until"] is None
    await mute(client, mod, cid, member, 60)
    unmuted = await (await mute(client, mod, cid, member, 0)).json()
    assert unmuted["muted_until"] is None


async def test_bans(client: Client, app: web.Application) -> None:
    owner = await sign_up(client, "Olga")
    admin = await sign_up(client, "Adam")
    admin2 = await sign_up(client, "Abe")
    mod = await sign_up(client, "Mo")
    member = await sign_up(client, "Mel")
    stranger = await sign_up(client, "Stan")
    cid = (await create_community(client, owner))["id"]
    for account in (admin, admin2, mod, member):
        await join(client, account, cid)
    await set_role(client, owner, cid, admin, "admin")
    await set_role(client, owner, cid, admin2, "admin")
    await set_role(client, owner, cid, mod, "moderator")
    coins = await balance(client, member)

    async def ban(actor: Account, user_id: int, reason: str = "spam") -> aiohttp.ClientResponse:
        return await client.post(
            f"/api/communities/{cid}/bans",
            json={"user_id": user_id, "reason": reason},
            headers=actor.auth,
        )

    # A live chat subscription ends with the ban, on every hub.
    sock = await connect(client, member)
    channel = f"chat:community:{cid}"
    assert (await sock.subscribe(channel))["op"] == "subscribed"
    resp = await ban(admin, member.id, "  spam links  ")
    assert resp.status == 201, await resp.text()
    banned = await resp.json()
    assert banned["user"]["id"] == member.id
    assert banned["reason"] == "spam links"
    assert banned["banned_by"]["id"] == admin.id
    frames = await sock.recv_until(lambda f: f.get("op") == "unsubscribed")
    assert frames[-1] == {
        "op": "unsubscribed",
        "channel": channel,
        "reason": "you are banned from this community",
    }
    assert (await sock.subscribe(channel))["op"] == "error"
    await sock.ws.close()
    # Removed, counted, and kept out.
    after = await community(client, cid, member)
    assert (after["member_count"], after["my_role"]) == (4, None)
    assert member.id not in await members(client, owner, cid)
    refused = await problem(403)(
        await client.post(f"/api/communities/{cid}/join", headers=member.auth)
    )
    assert "banned" in refused["detail"]
    assert (await community(client, cid))["member_count"] == 4

    # Non-members can be banned ahead; nobody bans up, sideways, or themselves.
    assert (await ban(owner, stranger.id)).status == 201
    await problem(409)(await ban(owner, stranger.id))
    for actor, target in ((admin, admin2.id), (admin, owner.id), (owner, owner.id)):
        await problem(403)(await ban(actor, target))
    for actor in (mod, member):
        await problem(403)(await ban(actor, stranger.id))
    await problem(404)(await ban(owner, 999999))
    for body in ({}, {"user_id": "x"}, {"user_id": 0}, {"user_id": mod.id, "reason": "r" * 501}):
        await problem(422)(
            await client.post(f"/api/communities/{cid}/bans", json=body, headers=owner.auth)
        )

    listed = await (await client.get(f"/api/communities/{cid}/bans", headers=admin2.auth)).json()
    # Newest first (the test clock stands still: then by user id).
    assert [b["user"]["id"] for b in listed["items"]] == [member.id, stranger.id]
    await problem(403)(await client.get(f"/api/communities/{cid}/bans", headers=mod.auth))

    # Lifting a ban lets them join again, without a second reward.
    await problem(403)(
        await client.delete(f"/api/communities/{cid}/bans/{member.id}", headers=mod.auth)
    )
    lifted = await client.delete(f"/api/communities/{cid}/bans/{member.id}", headers=admin.auth)
    assert lifted.status == 204
    await problem(404)(
        await client.delete(f"/api/communities/{cid}/bans/{member.id}", headers=admin.auth)
    )
    assert await join(client, member, cid) == {"role": "member", "reward": 0}
    assert await balance(client, member) == coins
    assert (await community(client, cid))["member_count"] == 5
    assert await app[PAYMENTS].ledger.verify() == []


# Channels --------------------------------------------------------------------------------


async def test_channels(client: Client) -> None:
    owner = await sign_up(client, "Olga")
    admin = await sign_up(client, "Adam")
    mod = await sign_up(client, "Mo")
    cid = (await create_community(client, owner))["id"]
    for account in (admin, mod):
        await join(client, account, cid)
    await set_role(client, owner, cid, admin, "admin")
    await set_role(client, owner, cid, mod, "moderator")
    url = f"/api/communities/{cid}/channels"

    resp = await client.post(
        url, json={"name": "Help", "slug": "help", "slow_mode_seconds": 30}, headers=admin.auth
    )
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {
        "name": "Help",
        "slug": "help",
        "channel": f"chat:community:{cid}:help",
        "slow_mode_seconds": 30,
    }
    await client.post(url, json={"name": "Off topic", "slug": "off-topic"}, headers=owner.auth)
    listed = (await community(client, cid))["channels"]
    assert [c["slug"] for c in listed] == ["general", "help", "off-topic"]

    await problem(409)(
        await client.post(url, json={"name": "G", "slug": "general"}, headers=owner.auth)
    )
    await problem(403)(await client.post(url, json={"name": "M", "slug": "mods"}, headers=mod.auth))
    for body in (
        {"name": "", "slug": "x1"},
        {"name": "Bad", "slug": "Bad Slug"},
        {"name": "Slow", "slug": "slow", "slow_mode_seconds": -1},
        {"name": "Slow", "slug": "slow", "slow_mode_seconds": 6 * 3600 + 1},
        {"name": "Extra", "slug": "extra", "topic": "x"},
    ):
        await problem(422)(await client.post(url, json=body, headers=owner.auth))

    patched = await client.patch(
        f"{url}/help", json={"slow_mode_seconds": 0, "name": "Help desk"}, headers=admin.auth
    )
    assert patched.status == 200, await patched.text()
    assert (await patched.json())["name"] == "Help desk"
    renamed = await client.patch(f"{url}/general", json={"name": "Lobby"}, headers=owner.auth)
    assert (await renamed.json())["channel"] == f"chat:community:{cid}"
    await problem(404)(await client.patch(f"{url}/nope", json={"name": "X"}, headers=owner.auth))
    await problem(403)(await client.patch(f"{url}/help", json={"name": "X"}, headers=mod.auth))
    for body in ({}, {"name": None}, {"slow_mode_seconds": "fast"}):
        await problem(422)(await client.patch(f"{url}/help", json=body, headers=owner.auth))
    listed = (await community(client, cid))["channels"]
    assert [(c["name"], c["slow_mode_seconds"]) for c in listed] == [
        ("Lobby", 0),
        ("Help desk", 0),
        ("Off topic", 0),
    ]


# Notifications of the earlier issues' events ---------------------------------------------


async def test_course_sales_notify_the_teacher_once_per_sale(
    client: Client, app: web.Application, teacher: Account
) -> None:
    """Sales tell the teacher through the notification outbox, written in the sale's own
    transaction and delivered in the background (here: at once)."""
    outbox = app[HUB].notifications
    paid, _ = await course_with(client, teacher, [text_lesson()], title="Paid Python", price=20)
    free, _ = await course_with(client, teacher, [text_lesson()], title="Free Python", price=0)
    bo = await sign_up(client, "Bo")
    key = {"Idempotency-Key": "buy-paid-1"}
    for _ in range(2):  # the replay moves nothing and tells nobody
        resp = await client.post(f"/api/courses/{paid}/purchase", headers={**bo.auth, **key})
        assert resp.status == 201, await resp.text()
    await outbox.deliver_pending()
    [sale] = await notifications(client, teacher)
    assert sale["type"] == "course.purchased"
    assert sale["text"] == "Bo bought Paid Python"
    assert sale["data"] == {"course_id": paid, "course_title": "Paid Python", "price": 20}
    cy = await sign_up(client, "Cy")
    assert (await client.post(f"/api/courses/{paid}/purchase", headers=cy.auth)).status == 201
    assert (await client.post(f"/api/courses/{free}/purchase", headers=cy.auth)).status == 201
    # A refused purchase (already enrolled) tells nobody either.
    assert (await client.post(f"/api/courses/{paid}/purchase", headers=cy.auth)).status == 409
    await outbox.deliver_pending()
    [grouped] = await notifications(client, teacher)
    assert grouped["text"] == "Cy and 1 other bought Paid Python"


async def test_video_outcomes_notify_the_uploader(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    video_id = await a_video(app, teacher.id, status="processing")
    await app[MEDIA].videos.fail(Job(video_id), "Not a readable video file")
    [failed] = await notifications(client, teacher)
    assert failed["type"] == "video.failed"
    assert failed["text"] == "Your video Lesson could not be processed"
    assert failed["data"] == {
        "video_id": video_id,
        "title": "Lesson",
        "error": "Not a readable video file",
    }

    clip = make_clip(tmp_path / "Tiny.mp4", width=160, height=96, seconds=1, audio=False)
    sock = await connect(client, teacher)
    await sock.subscribe(f"user:{teacher.id}")
    form = aiohttp.FormData()
    form.add_field("file", clip.open("rb"), filename=clip.name, content_type="video/mp4")
    resp = await client.post("/api/videos", data=form, headers=teacher.auth)
    assert resp.status == 202, await resp.text()
    uploaded = (await resp.json())["id"]

    def stored_ready(frame: dict[str, Any]) -> bool:
        note = frame.get("data", {}).get("notification") or {}
        return bool(note.get("type") == "video.ready")

    frames = await sock.recv_until(stored_ready, wait=60)
    ready = frames[-1]
    assert ready["seq"] is not None  # stored, not just a live event
    assert ready["data"]["notification"]["data"] == {"video_id": uploaded, "title": "Tiny"}
    # The live progress events still flow as before, unstored.
    assert any(f.get("data", {}).get("type") == "video.progress" for f in frames)
    await sock.ws.close()
    texts = [n["text"] for n in await notifications(client, teacher)]
    assert texts == ["Your video Tiny is ready", "Your video Lesson could not be processed"]
