"""Chat over the gateway (docs/social.md, "Chat"): community channels, study groups and direct
messages; edits, deletions, reactions, mentions, replies, history, read markers, unread counts,
rate limits, slow mode, authorization per channel family, and recovery with ``since``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Table

from hub.clock import FakeClock
from hub.realtime.store import (
    Budget,
    Companion,
    Guard,
    NotStored,
    Pending,
    Stored,
    move_standing,
)
from hub.services import HUB
from rooms.models import ChatMessage
from tests.catalog.test_communities import create_community, mute
from tests.catalog.test_communities import join as community_join
from tests.catalog.test_groups import create_group, join_by_code
from tests.conftest import Account, log_in, sign_up
from tests.hub.test_realtime import PrivateRedis, Socket, connect, private_redis, two_hubs
from tests.rooms.social import (
    ban,
    befriend,
    block,
    is_reply,
    join,
    make_community,
    make_group,
    stored,
)

Client = TestClient[Any, Any]

__all__ = ["private_redis"]  # a fixture


def app_of(client: Client) -> web.Application:
    return client.app  # type: ignore[no-any-return]


class Chatter:
    """A signed-in user's socket, with the frames a chat client sends."""

    def __init__(self, account: Account, sock: Socket) -> None:
        self.account = account
        self.sock = sock
        self._refs = 0

    def _ref(self) -> str:
        self._refs += 1
        return f"r{self._refs}"

    async def subscribe(self, channel: str, since: int | None = None) -> dict[str, Any]:
        ref = self._ref()
        frame: dict[str, Any] = {"op": "subscribe", "channel": channel, "ref": ref}
        if since is not None:
            frame["since"] = since
        await self.sock.send(frame)
        return (await self.sock.recv_until(lambda f: f.get("ref") == ref))[-1]

    async def publish(self, channel: str, data: dict[str, Any]) -> dict[str, Any]:
        """The ack or error frame answering the publish."""
        ref = self._ref()
        await self.sock.send({"op": "publish", "channel": channel, "data": data, "ref": ref})
        return (await self.sock.recv_until(is_reply(ref)))[-1]

    async def say(self, channel: str, text: str, **extra: Any) -> int:
        answer = await self.publish(channel, {"text": text, **extra})
        assert answer["op"] == "ack", answer
        return int(answer["seq"])

    async def event(self, channel: str, seq: int) -> dict[str, Any]:
        """The ``data`` of the channel's message ``seq`` (skipping anything else)."""
        frames = await self.sock.recv_until(
            lambda f: f.get("op") == "message" and f["channel"] == channel and f["seq"] == seq
        )
        data: dict[str, Any] = frames[-1]["data"]
        return data

    async def notification(self) -> dict[str, Any]:
        channel = f"user:{self.account.id}"
        frames = await self.sock.recv_until(
            lambda f: (
                f.get("op") == "message"
                and f["channel"] == channel
                and f["data"]["type"] == "notification"
            )
        )
        note: dict[str, Any] = frames[-1]["data"]["notification"]
        return note


async def chatter(client: Client, account: Account) -> Chatter:
    return Chatter(account, await connect(client, account))


def person(account: Account) -> dict[str, Any]:
    return {"id": account.id, "display_name": account.display_name, "avatar_color": "#4f46e5"}


async def history(client: Client, account: Account, channel: str, **query: Any) -> Any:
    resp = await client.get(f"/api/channels/{channel}/messages", params=query, headers=account.auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_two_users_chat_in_a_community_channel_and_a_dm(
    client: Client, app: web.Application, clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    community = await make_community(app, ana)
    await join(app, community, ben)
    general, help_ = f"chat:community:{community}", f"chat:community:{community}:help"
    a, b = await chatter(client, ana), await chatter(client, ben)
    for channel in (general, help_):
        assert (await a.subscribe(channel))["op"] == "subscribed"
        assert (await b.subscribe(channel))["op"] == "subscribed"

    seq = await a.say(general, "Hello **everyone**")
    assert seq == 1
    assert await b.event(general, 1) == {
        "type": "message",
        "text": "Hello **everyone**",
        "author": person(ana),
        "reply_to": None,
        "mentions": [],
        "sent_at": clock.now().isoformat(),
    }
    assert await b.say(help_, "How do I install it?") == 1
    assert (await a.event(help_, 1))["author"]["id"] == ben.id
    # The stored event and the message row share the sequence number.
    async with app[HUB].db.sessions() as s:
        row = await s.get(ChatMessage, (general, 1))
    assert row is not None
    assert (row.text, row.author_id) == ("Hello **everyone**", ana.id)
    assert await stored(app, general) == (1, 1)

    # Typing is ephemeral on chat channels.
    await b.sock.send({"op": "publish", "channel": general, "data": {"type": "typing"}})
    typing = await a.sock.recv_until(lambda f: f.get("data", {}).get("type") == "typing")
    assert typing[-1]["seq"] is None
    assert typing[-1]["data"]["user"]["id"] == ben.id

    # A direct message between friends.
    dm = await befriend(app, ana, ben)
    assert (await a.subscribe(dm))["op"] == "subscribed"
    assert (await b.subscribe(dm))["op"] == "subscribed"
    assert await b.say(dm, "psst") == 1
    assert (await a.event(dm, 1))["text"] == "psst"
    assert await a.say(dm, "hi!") == 2
    assert (await b.event(dm, 2))["author"] == person(ana)

    # Study groups chat too.
    group = await make_group(app, ana, ben)
    channel = f"chat:group:{group}"
    assert (await b.subscribe(channel))["op"] == "subscribed"
    assert await a.say(channel, "group hello") == 1
    assert (await b.event(channel, 1))["text"] == "group hello"


async def test_history_pages_newest_first(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    community = await make_community(app, ana)
    channel = f"chat:community:{community}"
    a = await chatter(client, ana)
    for i in range(1, 8):
        assert await a.say(channel, f"m{i}") == i

    page = await history(client, ana, channel, limit=3)
    assert [(m["seq"], m["text"]) for m in page["items"]] == [(7, "m7"), (6, "m6"), (5, "m5")]
    assert page["next_before"] == 5
    first = page["items"][0]
    assert first["author"] == person(ana)
    assert (first["reply_to"], first["mentions"], first["reactions"]) == (None, [], {})
    assert (first["edited_at"], first["deleted"]) == (None, False)
    page = await history(client, ana, channel, limit=3, before=5)
    assert [m["seq"] for m in page["items"]] == [4, 3, 2]
    page = await history(client, ana, channel, limit=3, before=2)
    assert ([m["seq"] for m in page["items"]], page["next_before"]) == ([1], None)
    # The channel name may be percent-encoded.
    encoded = channel.replace(":", "%3A")
    assert len((await history(client, ana, encoded))["items"]) == 7

    # Members only; names that are no chat channel are not found.
    resp = await client.get(f"/api/channels/{channel}/messages", headers=ben.auth)
    assert resp.status == 403
    for bad in ("chat:nothing:1", f"chat:community:0{community}", "dm:2:1"):
        resp = await client.get(f"/api/channels/{bad}/messages", headers=ana.auth)
        assert resp.status == 404, bad
    resp = await client.get(f"/api/channels/{channel}/messages?limit=0", headers=ana.auth)
    assert resp.status == 422
    assert (await client.get(f"/api/channels/{channel}/messages")).status == 401


async def test_edits_deletes_and_reactions(
    client: Client, app: web.Application, clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    mod = await sign_up(client, "Mo")
    community = await make_community(app, ana)
    await join(app, community, ben)
    await join(app, community, mod, role="moderator")
    channel = f"chat:community:{community}"
    a, b, m = await chatter(client, ana), await chatter(client, ben), await chatter(client, mod)
    for c in (a, b, m):
        await c.subscribe(channel)

    # Edits: the author, within 15 minutes.
    first = await a.say(channel, "helo")
    clock.advance(60)
    edit = await a.publish(channel, {"type": "edit", "target": first, "text": "hello"})
    assert edit["op"] == "ack"
    assert await b.event(channel, edit["seq"]) == {
        "type": "edit",
        "target": first,
        "text": "hello",
        "edited_at": clock.now().isoformat(),
        "by": person(ana),
    }
    refused = await b.publish(channel, {"type": "edit", "target": first, "text": "mine now"})
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    clock.advance(15 * 60)
    late = await a.publish(channel, {"type": "edit", "target": first, "text": "too late"})
    assert (late["op"], late["code"]) == ("error", "forbidden")
    missing = await a.publish(channel, {"type": "edit", "target": 99, "text": "x"})
    assert missing["code"] == "not_found"
    await log_in(client, ana)  # fresh access tokens after the clock moved
    await log_in(client, ben)
    [item] = (await history(client, ana, channel))["items"]
    assert (item["text"], item["edited_at"] is not None) == ("hello", True)

    # Reactions toggle.
    on = await b.publish(channel, {"type": "react", "target": first, "emoji": "👍"})
    assert on["op"] == "ack"
    assert await a.event(channel, on["seq"]) == {
        "type": "reaction",
        "target": first,
        "emoji": "👍",
        "user": person(ben),
        "on": True,
    }
    await a.publish(channel, {"type": "react", "target": first, "emoji": "👍"})
    await a.publish(channel, {"type": "react", "target": first, "emoji": "🎉"})
    [item] = (await history(client, ana, channel))["items"]
    assert item["reactions"] == {"👍": [ben.id, ana.id], "🎉": [ana.id]}
    off = await b.publish(channel, {"type": "react", "target": first, "emoji": "👍"})
    assert (await a.event(channel, off["seq"]))["on"] is False
    [item] = (await history(client, ana, channel))["items"]
    assert item["reactions"] == {"👍": [ana.id], "🎉": [ana.id]}
    bad = await b.publish(channel, {"type": "react", "target": first, "emoji": "a b"})
    assert bad["code"] == "validation_failed"

    # Deletions: the author, or moderators and up; not other members.
    bens = await b.say(channel, "ben's message")
    refused = await b.publish(channel, {"type": "delete", "target": first})
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    gone = await b.publish(channel, {"type": "delete", "target": bens})
    assert gone["op"] == "ack"
    assert await a.event(channel, gone["seq"]) == {
        "type": "delete",
        "target": bens,
        "by": person(ben),
    }
    moderated = await m.publish(channel, {"type": "delete", "target": first})
    assert moderated["op"] == "ack"
    assert (await a.event(channel, moderated["seq"]))["by"] == person(mod)
    again = await a.publish(channel, {"type": "delete", "target": first})
    assert again["code"] == "conflict"
    react = await a.publish(channel, {"type": "react", "target": first, "emoji": "👍"})
    assert react["code"] == "conflict"
    items = (await history(client, ana, channel))["items"]
    assert [(i["seq"], i["text"], i["deleted"]) for i in items] == [
        (bens, "", True),
        (first, "", True),
    ]
    # A replay does not bring the deleted text back (the message nor its edit).
    late = Chatter(ana, await connect(client, ana))
    await late.subscribe(channel, since=0)
    replayed = [await late.event(channel, seq) for seq in range(1, moderated["seq"] + 1)]
    texts = [d.get("text") for d in replayed if d["type"] in ("message", "edit")]
    assert texts == ["", "", ""]


async def test_mentions_and_replies_notify_live(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    stranger = await sign_up(client, "Stranger")
    community = await make_community(app, ana)
    await join(app, community, ben)
    await join(app, community, cy)
    channel = f"chat:community:{community}"
    a, b, c = await chatter(client, ana), await chatter(client, ben), await chatter(client, cy)
    await a.subscribe(channel)
    await a.subscribe(f"user:{ana.id}")
    await b.subscribe(f"user:{ben.id}")
    await c.subscribe(f"user:{cy.id}")

    seq = await a.say(channel, "@Ben @Cy look", mentions=[ben.id, cy.id, ben.id])
    for who, sock in ((ben, b), (cy, c)):
        note = await sock.notification()
        assert note["type"] == "chat.mention"
        assert [p["id"] for p in note["actors"]] == [ana.id]
        assert note["data"] == {
            "channel": channel,
            "seq": seq,
            "where": "Python #General",
            "excerpt": "@Ben @Cy look",
        }, who
    async with app[HUB].db.sessions() as s:
        row = await s.get(ChatMessage, (channel, seq))
    assert row is not None
    assert row.mentions == [ben.id, cy.id]
    resp = await client.get("/api/notifications", headers=ben.auth)
    assert (await resp.json())["items"][0]["text"] == "Ana mentioned you in Python #General"

    # Only members of the channel can be mentioned; nothing is stored otherwise.
    refused = await a.publish(channel, {"text": "@Stranger", "mentions": [stranger.id]})
    assert (refused["op"], refused["code"]) == ("error", "validation_failed")
    assert str(stranger.id) in refused["message"]
    assert await stored(app, channel) == (1, 1)

    # A reply notifies the replied-to author.
    reply = await b.say(channel, "> look\nnice", reply_to=seq)
    event = await a.event(channel, reply)
    assert event["reply_to"] == seq
    note = await a.notification()
    assert note["type"] == "chat.reply"
    assert note["data"]["reply_to"] == seq
    assert note["actors"][0]["id"] == ben.id
    [item] = (await history(client, ana, channel, limit=1))["items"]
    assert item["reply_to"] == seq
    for bad in (999, 0, "1"):
        answer = await b.publish(channel, {"text": "re", "reply_to": bad})
        assert answer["code"] == "validation_failed", bad
    assert await stored(app, channel) == (2, 2)


async def test_read_markers_and_unread_counts(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    community = await make_community(app, ana)
    await join(app, community, ben)
    group = await make_group(app, ben, cy)
    dm = await befriend(app, ana, ben)
    await befriend(app, ben, cy, status="pending")
    general = f"chat:community:{community}"
    a = await chatter(client, ana)
    for i in range(3):
        await a.say(general, f"m{i}")
    await a.say(dm, "one")
    await a.say(dm, "two")
    own = await chatter(client, ben)
    await own.say(general, "ben's own message")

    resp = await client.get("/api/me/unread", headers=ben.auth)
    assert resp.status == 200
    assert (await resp.json())["channels"] == {
        general: 3,
        f"{general}:help": 0,
        f"chat:group:{group}": 0,
        dm: 2,
    }
    unread = (await (await client.get("/api/me/unread", headers=ana.auth)).json())["channels"]
    assert unread == {general: 1, f"{general}:help": 0, dm: 0}

    async def read(account: Account, channel: str, seq: Any) -> Any:
        return await client.post(
            f"/api/channels/{channel}/read", json={"seq": seq}, headers=account.auth
        )

    resp = await read(ben, general, 2)
    assert (resp.status, await resp.json()) == (200, {"unread": 1})
    # The marker never moves back.
    assert await (await read(ben, general, 1)).json() == {"unread": 1}
    # Nor past the head; a deleted message is no longer unread.
    await a.publish(general, {"type": "delete", "target": 3})
    assert await (await read(ben, dm, 0)).json() == {"unread": 2}
    assert await (await read(ben, general, 10**9)).json() == {"unread": 0}
    await a.say(general, "new")
    unread = (await (await client.get("/api/me/unread", headers=ben.auth)).json())["channels"]
    assert (unread[general], unread[dm]) == (1, 2)

    assert (await read(cy, general, 1)).status == 403
    assert (await read(cy, "dm:0:1", 1)).status == 404
    assert (await read(ben, general, -1)).status == 422
    assert (await read(ben, general, "x")).status == 422


async def test_rate_limit_and_slow_mode(
    client: Client, app: web.Application, clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    community = await make_community(app, ana, channels=(("slow", 30),))
    await join(app, community, ben)
    general, slow = f"chat:community:{community}", f"chat:community:{community}:slow"
    a, b = await chatter(client, ana), await chatter(client, ben)

    for i in range(10):
        await b.say(general, f"fast {i}")
    limited = await b.publish(general, {"text": "one too many"})
    assert (limited["op"], limited["code"]) == ("error", "rate_limited")
    assert "Retry after 10 s" in limited["message"]
    assert await stored(app, general) == (10, 10)
    # Per member: Ana is not slowed by Ben.
    assert await a.say(general, "me too") == 11
    clock.advance(10)
    assert await b.say(general, "again") == 12

    # Slow mode: members wait between messages; moderators and up are exempt.
    assert await b.say(slow, "first") == 1
    waiting = await b.publish(slow, {"text": "second"})
    assert (waiting["code"], "Retry after 30 s" in waiting["message"]) == ("rate_limited", True)
    clock.advance(20)
    waiting = await b.publish(slow, {"text": "second"})
    assert "Retry after 10 s" in waiting["message"]
    assert await a.say(slow, "owner one") == 2
    assert await a.say(slow, "owner two") == 3
    clock.advance(10)
    assert await b.say(slow, "second") == 4
    assert await stored(app, slow) == (4, 4)

    # Edits and reactions have a budget of their own (30 per 10 s); deletions have none.
    for _ in range(30):
        answer = await b.publish(general, {"type": "react", "target": 12, "emoji": "🔁"})
        assert answer["op"] == "ack"
    flood = await b.publish(general, {"type": "react", "target": 12, "emoji": "🔁"})
    assert flood["code"] == "rate_limited"
    assert (await b.publish(general, {"type": "delete", "target": 12}))["op"] == "ack"


async def test_refused_messages_do_not_spend_the_budget(
    client: Client, app: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    community = await make_community(app, ana)
    general = f"chat:community:{community}"
    a = await chatter(client, ana)
    for i in range(9):
        await a.say(general, f"m{i}")
    for _ in range(3):  # refused after the budget was taken: given back
        refused = await a.publish(general, {"text": "@nobody", "mentions": [10**9]})
        assert refused["code"] == "validation_failed"
    assert await a.say(general, "the tenth") == 10
    assert (await a.publish(general, {"text": "the eleventh"}))["code"] == "rate_limited"


async def test_rate_limited_frames_carry_retry_after(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    community = await make_community(app, ana)
    a = await chatter(client, ana)
    for i in range(10):
        await a.say(f"chat:community:{community}", f"m{i}")
    limited = await a.publish(f"chat:community:{community}", {"text": "more"})
    assert limited["retry_after"] == 10


async def test_authorization_for_every_channel_family(
    client: Client, app: web.Application, clock: FakeClock
) -> None:
    """Non-members, banned and muted members, blocked and non-friend DMs, and names that are
    no channel: an error frame each, and nothing stored."""
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    outsider = await sign_up(client, "Olga")
    banned = await sign_up(client, "Bo")
    muted = await sign_up(client, "Mu")
    community = await make_community(app, ana)
    other = await make_community(app, ben, name="Rust")
    await join(app, community, ben)
    await join(app, community, banned)  # a leftover membership does not outweigh the ban
    await ban(app, community, banned)
    await join(app, community, muted, muted_until=clock.now() + timedelta(minutes=5))
    group = await make_group(app, ana, ben)
    friends = await befriend(app, ana, ben)
    pending = await befriend(app, ana, outsider, status="pending")
    blocked = await befriend(app, ben, muted)
    await block(app, muted, ben)
    general = f"chat:community:{community}"

    denied: list[tuple[Account, str]] = [
        (outsider, general),
        (outsider, f"{general}:help"),
        (banned, general),
        (banned, f"{general}:help"),
        (ana, f"chat:community:{other}"),
        (outsider, f"chat:group:{group}"),
        (outsider, friends),
        (ana, pending),
        (outsider, pending),
        (ben, blocked),
        (muted, blocked),
        # Names that are no channel.
        (ana, f"{general}:general"),  # the default channel has no slug
        (ana, f"{general}:nope"),
        (ana, f"chat:community:0{community}"),
        (ana, "chat:community:999999"),
        (ana, f"chat:group:{group}:x"),
        (ana, "chat:group:abc"),
        (ana, "chat:elsewhere:1"),
        (ana, f"dm:{max(ana.id, ben.id)}:{min(ana.id, ben.id)}"),
        (ana, f"dm:{ana.id}:{ana.id}"),
        (ana, f"dm:{friends[3:]}:1"),
        (ana, "dm:0:1"),
    ]
    socks = {}
    for account in (ana, ben, outsider, banned, muted):
        socks[account.id] = await chatter(client, account)
    for account, channel in denied:
        sock = socks[account.id]
        sub = await sock.subscribe(channel)
        assert (sub["op"], sub["code"]) == ("error", "forbidden"), (account.display_name, channel)
        answer = await sock.publish(channel, {"text": "let me in"})
        assert (answer["op"], answer["code"]) == ("error", "forbidden"), (
            account.display_name,
            channel,
        )
        assert await stored(app, channel) == (0, 0), channel

    # Muted members read but do not post, until the mute ends.
    m = socks[muted.id]
    assert (await m.subscribe(general))["op"] == "subscribed"
    refused = await m.publish(general, {"text": "hello?"})
    assert (refused["code"], "muted" in refused["message"]) == ("forbidden", True)
    assert await stored(app, general) == (0, 0)
    # Members of the channel are fine, and the channel families stay distinct.
    assert await socks[ana.id].say(general, "hi") == 1
    seq = await socks[ben.id].say(friends, "hi")
    assert (await socks[ben.id].publish(friends, {"type": "delete", "target": seq}))["op"] == "ack"
    clock.advance(5 * 60)
    assert await m.say(general, "I'm back") == 2


async def test_invalid_messages_are_refused(client: Client, app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    community = await make_community(app, ana)
    channel = f"chat:community:{community}"
    a = await chatter(client, ana)
    for data, field in (
        ({}, "data.text"),
        ({"text": ""}, "data.text"),
        ({"text": "   \n"}, "data.text"),
        ({"text": "x" * 4001}, "data.text"),
        ({"text": 5}, "data.text"),
        ({"text": "hi", "mentions": ["1"]}, "data.mentions"),
        ({"text": "hi", "mentions": list(range(1, 30))}, "data.mentions"),
        ({"text": "hi", "colour": "red"}, "data.colour"),
        ({"type": "shout", "text": "hi"}, "data.type"),
        ({"type": "edit", "text": "hi"}, "data.target"),
        ({"type": "react", "target": True, "emoji": "👍"}, "data.target"),
    ):
        answer = await a.publish(channel, data)
        assert (answer["op"], answer["code"]) == ("error", "validation_failed"), data
        assert field in answer["message"], (data, answer)
    assert await stored(app, channel) == (0, 0)
    assert await a.say(channel, "x" * 4000) == 1


async def test_a_user_offline_resubscribes_with_since_and_sees_what_it_missed(
    client: Client, app: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    dm = await befriend(app, ana, ben)
    a, b = await chatter(client, ana), await chatter(client, ben)
    await a.subscribe(dm)
    await b.subscribe(dm)
    first = await a.say(dm, "are you there?")
    assert (await b.event(dm, first))["text"] == "are you there?"

    await b.sock.ws.close()  # Ben goes offline
    second = await a.say(dm, "I'll leave a note")
    await a.publish(dm, {"type": "edit", "target": second, "text": "I left a note"})
    await a.publish(dm, {"type": "react", "target": first, "emoji": "👋"})

    back = await chatter(client, ben)
    sub = await back.subscribe(dm, since=first)
    assert (sub["seq"], sub["recovered"]) == (4, True)
    missed = [await back.event(dm, seq) for seq in (2, 3, 4)]
    assert [d["type"] for d in missed] == ["message", "edit", "reaction"]
    assert missed[1]["text"] == "I left a note"
    # Then live ones, with nothing in between twice.
    assert await a.say(dm, "welcome back") == 5
    frames = await back.sock.recv_until(lambda f: f.get("seq") == 5)
    assert [f["seq"] for f in frames if f["op"] == "message" and f["seq"] is not None] == [5]


async def test_chat_routes_are_documented(client: Client) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    messages = spec["paths"]["/api/channels/{channel}/messages"]["get"]
    assert messages["parameters"][0] == {
        "name": "channel",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert "post" in spec["paths"]["/api/channels/{channel}/read"]
    assert "get" in spec["paths"]["/api/me/unread"]


@pytest.mark.redis
async def test_moderation_refuses_the_next_publish_on_every_hub(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> None:
    """A hub keeps its members' standing in memory between messages; a mute, a ban or leaving
    a group still refuses the member's very next publish, and an unmute allows it, whichever hub
    the moderator acted on and whichever hub the member's socket is on (the standing version
    moved: the message's transaction refuses what was admitted on the old one, and a refusal
    from memory is checked against it)."""
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    cy = await sign_up(one, "Cy")
    cid = (await create_community(one, ana))["id"]
    await community_join(two, ben, cid)
    await community_join(one, cy, cid)
    general = f"chat:community:{cid}"
    b = Chatter(ben, await connect(two, ben))
    c = Chatter(cy, await connect(one, cy))
    for chat in (b, c):
        assert (await chat.subscribe(general))["op"] == "subscribed"
    assert await b.say(general, "hello") == 1
    assert await c.say(general, "hi") == 2

    # Muted on hub one: refused on hub two at once; unmuted: posting again.
    assert (await mute(one, ana, cid, ben, 30)).status == 200
    refused = await b.publish(general, {"text": "still here?"})
    assert (refused["code"], "muted" in refused["message"]) == ("forbidden", True)
    assert (await mute(two, ana, cid, ben, 0)).status == 200
    assert await b.say(general, "back") == 3

    # Banned on hub two: refused on hub one at once.
    resp = await two.post(f"/api/communities/{cid}/bans", json={"user_id": cy.id}, headers=ana.auth)
    assert resp.status == 201, await resp.text()
    refused = await c.publish(general, {"text": "one more"})
    assert (refused["op"], refused["code"]) == ("error", "forbidden")

    # Left a study group on hub one: refused on hub two at once.
    group = await create_group(one, ana)
    assert (await join_by_code(two, ben, group["invite_code"])).status == 200
    assert (await b.subscribe(group["channel"]))["op"] == "subscribed"
    assert await b.say(group["channel"], "in the group") == 1
    assert (await one.post(f"/api/groups/{group['id']}/leave", headers=ben.auth)).status == 204
    refused = await b.publish(group["channel"], {"text": "gone?"})
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    assert await stored(app_of(one), general) == (3, 3)
    assert await stored(app_of(one), group["channel"]) == (1, 1)


async def test_a_batch_of_messages_keeps_each_budget(client: Client, app: web.Application) -> None:
    """Messages admitted together still count one by one: a member writing from five tabs at
    once gets ten of fifteen messages through, and refused ones take no number."""
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    community = await make_community(app, ana)
    await join(app, community, ben)
    general = f"chat:community:{community}"
    tabs = [await chatter(client, ben) for _ in range(5)]
    others = [await chatter(client, ana) for _ in range(2)]

    async def burst(chat: Chatter, n: int) -> list[dict[str, Any]]:
        return [await chat.publish(general, {"text": f"{chat.account.id} {i}"}) for i in range(n)]

    answers = await asyncio.gather(*(burst(t, 3) for t in tabs), *(burst(o, 3) for o in others))
    bens = [a for tab in answers[:5] for a in tab]
    anas = [a for other in answers[5:] for a in other]
    assert sorted(a["op"] for a in bens) == ["ack"] * 10 + ["error"] * 5
    assert {a["code"] for a in bens if a["op"] == "error"} == {"rate_limited"}
    assert [a["op"] for a in anas] == ["ack"] * 6
    seqs = sorted(a["seq"] for a in bens + anas if a["op"] == "ack")
    assert seqs == list(range(1, 17))
    assert await stored(app, general) == (16, 16)


async def test_the_storing_transaction_judges_guarded_messages(
    client: Client, app: web.Application, clock: FakeClock
) -> None:
    """A guarded message is stored only if members' standing is at the version it was admitted
    on and each of its budgets has room: counted from the budget table's rows and from the
    author's messages before it in the batch. A refused one takes no number and writes no
    row; the others of its batch are stored as if it had not been there."""
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    store = app[HUB].gateway.store
    table = cast(Table, ChatMessage.__table__)
    channel = "chat:group:77"
    now = clock.now()

    def message(author: Account, version: int, *budgets: Budget, at: Any = now) -> Pending:
        row = {
            "channel": channel,
            "author_id": author.id,
            "text": "hi",
            "reply_to": None,
            "mentions": [],
            "reactions": {},
            "created_at": at,
        }
        return Pending(
            channel,
            {"text": "hi"},
            author.id,
            at,
            (Companion(table, row),),
            Guard(version, budgets),
        )

    two = Budget(table, 2, 10.0)
    pace = Budget(table, 1, 30.0)
    first = await store.store_many(
        [
            message(ana, 0, two),
            message(ana, 0, two),
            message(ana, 0, two),  # the batch's two before it spent the budget
            message(ben, 0, two, pace),
            message(ben, 7, two),  # admitted on a version that is not the current one
            Pending(channel, {"text": "unguarded"}, None, now),
        ]
    )
    outcomes = [o.seq if isinstance(o, Stored) else o.budget for o in first]
    assert outcomes == [1, 2, 0, 3, None, 4]
    assert all(isinstance(o, NotStored) for o in (first[2], first[4]))
    assert await stored(app, channel) == (4, 3)

    # Stored rows spend the budgets of later batches, within their windows.
    clock.advance(5)
    later = clock.now()
    second = await store.store_many(
        [message(ana, 0, two, at=later), message(ben, 0, two, pace, at=later)]
    )
    assert [o.budget for o in second if isinstance(o, NotStored)] == [0, 1]
    clock.advance(5)
    third = await store.store_many([message(ana, 0, two, at=clock.now())])
    assert [o.seq for o in third if isinstance(o, Stored)] == [5]

    # Moving the standing version refuses what was admitted on the old one.
    async with app[HUB].db.writing() as conn:
        await move_standing(conn)
    assert await app[HUB].gateway.standing_version() == 1
    clock.advance(30)
    fourth = await store.store_many(
        [message(ben, 0, two, at=clock.now()), message(ben, 1, two, pace, at=clock.now())]
    )
    assert [o.budget if isinstance(o, NotStored) else o.seq for o in fourth] == [None, 6]
    assert await stored(app, channel) == (6, 5)


async def test_a_members_budget_holds_across_hubs(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> None:
    """The budget is counted where messages are stored, so a member writing from sockets on two
    hubs at once gets ten messages through per ten seconds, not ten on each: on PostgreSQL one
    more at most, the message in flight on the other hub at the moment the budget ran out
    (each storing statement sees what was committed when it started)."""
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    cid = (await create_community(one, ana))["id"]
    general = f"chat:community:{cid}"
    here, there = Chatter(ana, await connect(one, ana)), Chatter(ana, await connect(two, ana))

    async def burst(chat: Chatter) -> list[dict[str, Any]]:
        return [await chat.publish(general, {"text": f"{i}"}) for i in range(8)]

    answers = [a for side in await asyncio.gather(burst(here), burst(there)) for a in side]
    acked = sorted(a["seq"] for a in answers if a["op"] == "ack")
    assert acked in (list(range(1, 11)), list(range(1, 12)))
    assert {a["code"] for a in answers if a["op"] == "error"} == {"rate_limited"}
    assert await stored(app_of(one), general) == (len(acked), len(acked))
    for side in (here, there):
        assert (await side.publish(general, {"text": "more"}))["code"] == "rate_limited"
    clock.advance(10)
    assert await there.say(general, "later") == len(acked) + 1
