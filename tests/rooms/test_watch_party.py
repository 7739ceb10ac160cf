"""Watch parties (docs/watch-parties.md): the REST API and who may join, server-authoritative
playback on ``watch:<id>`` (control, stale versions, the waiting room, start anyway, opting
out, the bound on holds), reactions, the party chat, two hubs sharing the state, and the end
of a party nobody is in."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.clock import FakeClock
from hub.services import HUB
from rooms.watch import HOLD_LIMIT, REACTIONS_PER_WINDOW, START_LEAD_MS
from rooms.watch_handlers import WATCH
from rooms.watch_wiring import LEAVING
from tests.catalog.test_communities import notifications
from tests.catalog.test_courses import a_video
from tests.catalog.test_learning import buy, course_with
from tests.conftest import Account, log_in, sign_up
from tests.hub.test_realtime import PrivateRedis, Socket, connect, private_redis, two_hubs
from tests.rooms.social import is_reply, make_group

Client = TestClient[Any, Any]
__all__ = ["private_redis"]  # the fixture, for the two-hub test


async def verified_teacher(client: Client, app: web.Application) -> Account:
    """Tina, a verified teacher, signed in through ``client``."""
    account = Account("tina@example.com", "teaching all day", "Tina")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, "Tina", admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


@pytest.fixture
async def teacher(client: Client, app: web.Application) -> Account:
    return await verified_teacher(client, app)


async def a_course(client: Client, app: web.Application, teacher: Account) -> tuple[int, list[int]]:
    """A published course: a paid lesson, a free preview, a second paid lesson and a text
    lesson (nothing to watch)."""
    lessons: list[dict[str, Any]] = []
    for title, free in (("One", False), ("Preview", True), ("Two", False)):
        video = await a_video(app, teacher.id)
        lessons.append({"title": title, "kind": "video", "video_id": video, "free_preview": free})
    lessons.append({"title": "Notes", "kind": "text", "body": "Read me."})
    return await course_with(client, teacher, lessons)


class Member:
    """A party member's socket on ``watch:<id>``."""

    def __init__(self, account: Account, sock: Socket, channel: str) -> None:
        self.account = account
        self.sock = sock
        self.channel = channel
        self.refs = 0
        self.state: dict[str, Any] = {}

    async def subscribe(self, state: bool = True) -> dict[str, Any]:
        """The subscription's answer (and, with ``state``, the state that comes first after
        it: a subscriber gets the room's current state before anything else on the channel)."""
        self.refs += 1
        ref = f"s{self.refs}"
        await self.sock.send({"op": "subscribe", "channel": self.channel, "ref": ref})
        answer = (await self.sock.recv_until(lambda f: f.get("ref") == ref))[-1]
        if answer["op"] == "subscribed" and state:
            first = (await self.sock.recv_until(lambda f: f.get("channel") == self.channel))[-1]
            assert first["op"] == "message", first
            assert first["data"]["type"] == "state", first
            self.state = first["data"]
        return answer

    async def send(self, **data: Any) -> dict[str, Any]:
        """The ack or error answering a publish."""
        self.refs += 1
        ref = f"p{self.refs}"
        await self.sock.send({"op": "publish", "channel": self.channel, "data": data, "ref": ref})
        return (await self.sock.recv_until(is_reply(ref)))[-1]

    async def ok(self, **data: Any) -> None:
        answer = await self.send(**data)
        assert answer["op"] == "ack", answer

    async def until(self, predicate: Any, wait: float = 5.0) -> dict[str, Any]:
        """The next state frame (newer than the last seen) that matches."""

        def match(frame: dict[str, Any]) -> bool:
            if frame.get("op") != "message" or frame.get("channel") != self.channel:
                return False
            data = frame["data"]
            if data.get("type") != "state" or data["version"] <= self.state.get("version", 0):
                return False
            self.state = data
            return bool(predicate(data))

        await self.sock.recv_until(match, wait=wait)
        return self.state

    async def frame(self, kind: str, wait: float = 5.0) -> dict[str, Any]:
        frames = await self.sock.recv_until(
            lambda f: f.get("op") == "message" and f["data"].get("type") == kind, wait=wait
        )
        data: dict[str, Any] = frames[-1]["data"]
        return data


async def member(client: Client, account: Account, party: dict[str, Any]) -> Member:
    return Member(account, await connect(client, account), party["channel"])


async def create(client: Client, account: Account, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/watch-parties", json=body, headers=account.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def join(client: Client, account: Account, party: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(
        "/api/watch-parties/join", json={"code": party["invite_code"]}, headers=account.auth
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def students(client: Client, course_id: int, *names: str) -> list[Account]:
    accounts = []
    for name in names:
        account = await sign_up(client, name)
        await buy(client, account, course_id)
        accounts.append(account)
    return accounts


async def test_create_join_and_who_may(
    client: Client, app: web.Application, teacher: Account
) -> None:
    course_id, (one, preview, _two, soon) = await a_course(client, app, teacher)
    ana, ben = await students(client, course_id, "Ana", "Ben")
    stranger = await sign_up(client, "Cleo")

    party = await create(client, ana, lesson_id=one, control="host")
    assert party["lesson"]["id"] == one
    assert party["lesson"]["duration"] == 125.5
    assert party["course_id"] == course_id
    assert party["status"] == "live"
    assert party["host"]["id"] == ana.id
    assert party["controller"]["id"] == ana.id
    assert party["channel"] == f"watch:{party['id']}"
    assert party["chat_channel"] == f"chat:party:{party['id']}"
    assert party["call_channel"] == f"call:{party['id']}"
    assert party["invite_url"] == f"/watch/join/{party['invite_code']}"
    assert [m["id"] for m in party["members"]] == [ana.id]

    # Not entitled: a 403 with the reason, and nothing joined.
    resp = await client.post(
        "/api/watch-parties/join", json={"code": party["invite_code"]}, headers=stranger.auth
    )
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    assert "not enrolled" in (await resp.json())["detail"]
    assert (
        await client.get(f"/api/watch-parties/{party['id']}", headers=stranger.auth)
    ).status == 404
    resp = await client.post("/api/watch-parties", json={"lesson_id": one}, headers=stranger.auth)
    assert resp.status == 403
    # A free preview is open to anyone; the course's owner may watch everything.
    free = await create(client, stranger, lesson_id=preview)
    assert teacher.id in [m["id"] for m in (await join(client, teacher, free))["members"]]

    joined = await join(client, ben, party)
    assert [m["id"] for m in joined["members"]] == sorted([ana.id, ben.id])
    assert (await join(client, ben, party))["id"] == party["id"]  # idempotent
    got = await client.get(f"/api/watch-parties/{party['id']}", headers=ben.auth)
    assert (await got.json())["invite_code"] == party["invite_code"]

    # Bad input: problem+json, nothing created.
    for body, status in (
        ({"lesson_id": soon}, 409),
        ({"lesson_id": 999_999}, 404),
        ({"lesson_id": one, "control": "anyone"}, 422),
        ({"lesson_id": "one"}, 422),
        ({"lesson_id": one, "extra": 1}, 422),
        ({"lesson_id": one, "group_id": 12345}, 403),
    ):
        resp = await client.post("/api/watch-parties", json=body, headers=ana.auth)
        assert resp.status == status, (body, await resp.text())
        assert resp.content_type == "application/problem+json"
    resp = await client.post("/api/watch-parties/join", json={"code": "nope"}, headers=ben.auth)
    assert resp.status == 404

    # Subscribing: members only, with the reason.
    s = await member(client, stranger, party)
    refused = await s.subscribe()
    assert refused["op"] == "error"
    assert refused["code"] == "forbidden"
    assert "invite" in refused["message"]


async def test_a_study_groups_party(client: Client, app: web.Application, teacher: Account) -> None:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    ana, ben, cleo = await students(client, course_id, "Ana", "Ben", "Cleo")
    dan = await sign_up(client, "Dan")  # in the group, not enrolled
    group = await make_group(app, ana, ben, dan)
    resp = await client.post(
        "/api/watch-parties", json={"lesson_id": one, "group_id": group}, headers=cleo.auth
    )
    assert resp.status == 403  # not in the group
    inbox = await connect(client, ben)
    await inbox.subscribe(f"user:{ben.id}")
    party = await create(client, ana, lesson_id=one, group_id=group)
    assert party["group_id"] == group
    # The group's members who may watch the lesson are told, live and in their list, with
    # where to go; the host and members who may not watch it are not.
    frames = await inbox.recv_until(lambda f: f.get("op") == "message")
    live = frames[-1]["data"]["notification"]
    assert live["type"] == "watch_party.started"
    assert live["actors"][0]["id"] == ana.id
    assert live["data"]["url"] == f"/watch/{party['id']}"
    assert live["data"]["lesson_title"] == "One"
    assert live["data"]["group_name"] == "Study"
    (told,) = await notifications(client, ben)
    assert told["text"] == "Ana started a watch party in Study: One"
    assert await notifications(client, ana) == []
    assert await notifications(client, dan) == []
    # The group's members see it (and its invite); others do not.
    seen = await client.get(f"/api/watch-parties/{party['id']}", headers=ben.auth)
    assert (await seen.json())["invite_code"] == party["invite_code"]
    hidden = await client.get(f"/api/watch-parties/{party['id']}", headers=cleo.auth)
    assert hidden.status == 404


async def test_control_rules_and_stale_versions(
    client: Client, app: web.Application, teacher: Account
) -> None:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    ana, ben = await students(client, course_id, "Ana", "Ben")
    party = await create(client, ana, lesson_id=one)
    await join(client, ben, party)
    a, b = await member(client, ana, party), await member(client, ben, party)
    await a.subscribe()
    await b.subscribe()
    await a.until(lambda s: ben.id in [m["id"] for m in s["members"]])
    await a.ok(cmd="ready", ready=True)
    await b.ok(cmd="ready", ready=True)
    state = await b.until(lambda s: s["waiting_for"] == [])
    assert state["controller"] == ana.id
    assert state["host"] == ana.id

    # Ben has no control: an error frame, and the state does not move.
    refused = await b.send(cmd="play", version=state["version"])
    assert refused["op"] == "error"
    assert refused["code"] == "forbidden"
    await a.ok(cmd="play", version=state["version"])
    playing = await b.until(lambda s: s["playing"])
    assert playing["resume"]
    assert playing["version"] == state["version"] + 1  # the refusal changed nothing

    # A command based on a state another command replaced cannot rewind the room.
    await a.ok(cmd="seek", position=30, version=playing["version"])
    sought = await b.until(lambda s: s["position"] == 30)
    stale = await a.send(cmd="seek", position=5, version=playing["version"])
    assert (stale["op"], stale["code"]) == ("error", "stale"), stale
    future = await a.send(cmd="pause", version=sought["version"] + 50)
    assert future["code"] == "stale"
    # Readiness reports do not make a command stale (only another command does).
    await a.ok(cmd="ready", ready=True)
    await b.ok(cmd="ready", ready=True)
    ready = await b.until(lambda s: s["waiting_for"] == [] and s["playing"])
    await a.ok(cmd="rate", rate=1.5, version=sought["version"])
    assert (await b.until(lambda s: s["rate"] == 1.5))["position"] >= 30
    assert ready["version"] > sought["version"]

    # The host hands control to Ben: now he plays and pauses (the host still may).
    resp = await client.post(
        f"/api/watch-parties/{party['id']}/control", json={"user_id": ben.id}, headers=ben.auth
    )
    assert resp.status == 403
    resp = await client.post(
        f"/api/watch-parties/{party['id']}/control", json={"user_id": 999}, headers=ana.auth
    )
    assert resp.status == 422
    resp = await client.post(
        f"/api/watch-parties/{party['id']}/control", json={"user_id": ben.id}, headers=ana.auth
    )
    assert (await resp.json())["controller"]["id"] == ben.id
    handed = await b.until(lambda s: s["controller"] == ben.id)
    await b.ok(cmd="pause", version=handed["version"])
    paused = await a.until(lambda s: not s["playing"] and not s["resume"])
    assert paused["position"] >= 30

    # Control for everyone: any member commands.
    free_for_all = await create(client, ana, lesson_id=one, control="everyone")
    await join(client, ben, free_for_all)
    b2 = await member(client, ben, free_for_all)
    await b2.subscribe()
    await b2.ok(cmd="seek", position=12, version=b2.state["version"])
    assert (await b2.until(lambda s: s["position"] == 12))["waiting_for"] == [ben.id]


async def test_the_room_waits_for_everyone_and_bounds_holds(
    client: Client, app: web.Application, teacher: Account, clock: FakeClock
) -> None:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    ana, ben, cleo = await students(client, course_id, "Ana", "Ben", "Cleo")
    party = await create(client, ana, lesson_id=one)
    await join(client, ben, party)
    await join(client, cleo, party)
    a, b = await member(client, ana, party), await member(client, ben, party)
    first = await a.subscribe()
    assert first["op"] == "subscribed"
    assert a.state["waiting_for"] == [ana.id]
    assert not a.state["playing"]

    # Play with nobody ready: the intent is held, the room waits.
    await a.ok(cmd="play", version=a.state["version"])
    held = await a.until(lambda s: s["resume"])
    assert not held["playing"]
    assert held["waiting_for"] == [ana.id]
    await a.ok(cmd="ready", ready=True)
    started = await a.until(lambda s: s["playing"])
    now = int(clock.now().timestamp() * 1000)
    assert started["waiting_for"] == []
    assert started["at"] == now + START_LEAD_MS

    # A join holds the room until the newcomer's player is ready.
    await b.subscribe()
    joined = await a.until(lambda s: s["waiting_for"] == [ben.id])
    assert not joined["playing"]
    assert joined["resume"]
    clock.advance(1)
    await b.ok(cmd="ready", ready=True)
    assert (await a.until(lambda s: s["playing"]))["waiting_for"] == []

    # A seek waits for everyone again; the host may start anyway.
    await a.ok(cmd="seek", position=60, version=a.state["version"])
    sought = await a.until(lambda s: s["position"] == 60)
    assert sought["waiting_for"] == sorted([ana.id, ben.id])
    assert not sought["playing"]
    await a.ok(cmd="ready", ready=True)
    await a.until(lambda s: s["waiting_for"] == [ben.id])
    refused = await b.send(cmd="start_anyway")
    assert refused["code"] == "forbidden"
    await a.ok(cmd="start_anyway")
    anyway = await a.until(lambda s: s["playing"])
    assert anyway["waiting_for"] == []
    assert next(m for m in anyway["members"] if m["id"] == ben.id)["ready"] is False
    await b.ok(cmd="ready", ready=True)

    # Opting out: Ben's buffering no longer holds anyone.
    await b.ok(cmd="no_wait", value=True)
    await a.until(lambda s: next(m for m in s["members"] if m["id"] == ben.id)["no_wait"])
    await b.ok(cmd="ready", ready=False)
    assert (await a.until(lambda s: True))["playing"]
    await b.ok(cmd="no_wait", value=False)
    await b.ok(cmd="ready", ready=True)
    await a.until(lambda s: s["playing"] and s["waiting_for"] == [])

    # A flaky member holds the room HOLD_LIMIT times; after that it plays on without them.
    for _ in range(HOLD_LIMIT):
        await b.ok(cmd="ready", ready=False)
        assert (await a.until(lambda s: s["waiting_for"] == [ben.id]))["playing"] is False
        clock.advance(1)
        await b.ok(cmd="ready", ready=True)
        await a.until(lambda s: s["playing"])
    await b.ok(cmd="ready", ready=False)
    again = await a.until(lambda s: True)
    assert again["playing"]
    assert again["waiting_for"] == []
    assert next(m for m in again["members"] if m["id"] == ben.id)["exempt"]
    # Five minutes later Ben is waited for again.
    clock.advance(301)
    await b.ok(cmd="ready", ready=True)
    await b.ok(cmd="ready", ready=False)
    assert (await a.until(lambda s: s["waiting_for"] == [ben.id]))["playing"] is False

    # Leaving lets the room play on without them.
    await b.sock.ws.close()
    left = await a.until(lambda s: s["waiting_for"] == [])
    assert left["playing"]
    assert [m["id"] for m in left["members"]] == [ana.id]


async def test_reactions_and_bad_frames_change_nothing(
    client: Client, app: web.Application, teacher: Account
) -> None:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    ana, ben = await students(client, course_id, "Ana", "Ben")
    party = await create(client, ana, lesson_id=one)
    await join(client, ben, party)
    a, b = await member(client, ana, party), await member(client, ben, party)
    await a.subscribe()
    await b.subscribe()
    await b.ok(cmd="react", emoji="🎉")
    reaction = await a.frame("reaction")
    assert reaction["emoji"] == "🎉"
    assert reaction["user"]["id"] == ben.id
    for _ in range(REACTIONS_PER_WINDOW - 1):
        await b.ok(cmd="react", emoji="👍")
    limited = await b.send(cmd="react", emoji="👍")
    assert limited["code"] == "rate_limited"

    version = a.state["version"]
    for bad in (
        {"cmd": "dance"},
        {},
        {"cmd": "react", "emoji": "💩"},
        {"cmd": "play"},
        {"cmd": "play", "version": "3"},
        {"cmd": "play", "version": True},
        {"cmd": "seek", "version": version},
        {"cmd": "seek", "position": -1, "version": version},
        {"cmd": "seek", "position": float("inf"), "version": version},
        {"cmd": "rate", "rate": 16, "version": version},
        {"cmd": "ready", "ready": "yes"},
        {"cmd": "no_wait"},
    ):
        answer = await a.send(**bad)
        assert (answer["op"], answer["code"]) == ("error", "validation_failed"), bad
    await a.ok(cmd="seek", position=10, version=version)
    # The first state after all that is the seek's.
    assert (await b.until(lambda s: True))["position"] == 10


async def test_lesson_switch_end_and_party_chat(
    client: Client, app: web.Application, teacher: Account
) -> None:
    course_id, (_one, preview, two, _soon) = await a_course(client, app, teacher)
    (ana,) = await students(client, course_id, "Ana")
    guest = await sign_up(client, "Gus")
    party = await create(client, ana, lesson_id=preview)
    await join(client, guest, party)
    a, g = await member(client, ana, party), await member(client, guest, party)
    await a.subscribe()
    await g.subscribe()
    await a.until(lambda s: len(s["members"]) == 2)

    # The guest only has the free preview: switching to a paid lesson is refused, naming them.
    url = f"/api/watch-parties/{party['id']}"
    resp = await client.post(f"{url}/lesson", json={"lesson_id": two}, headers=ana.auth)
    assert resp.status == 409
    assert "Gus" in (await resp.json())["detail"]
    resp = await client.post(f"{url}/lesson", json={"lesson_id": two}, headers=guest.auth)
    assert resp.status == 403
    await g.sock.ws.close()
    await a.until(lambda s: len(s["members"]) == 1)
    resp = await client.post(f"{url}/lesson", json={"lesson_id": two}, headers=ana.auth)
    assert resp.status == 200
    assert (await resp.json())["lesson"]["id"] == two
    switched = await a.until(lambda s: s["lesson"] == two)
    assert switched["position"] == 0
    assert switched["waiting_for"] == [ana.id]

    # The party's chat: members talk; others may not read it.
    chat = party["chat_channel"]
    c = Member(ana, a.sock, chat)
    assert (await c.subscribe(state=False))["op"] == "subscribed"
    said = await c.send(text="did you see that?")
    assert said["op"] == "ack"
    outsider = await sign_up(client, "Olga")
    resp = await client.get(f"/api/channels/{chat}/messages", headers=outsider.auth)
    assert resp.status == 403

    resp = await client.post(f"{url}/end", headers=ana.auth)
    assert (await resp.json())["status"] == "ended"
    assert (await a.frame("ended"))["reason"]
    evicted = await a.sock.recv_until(lambda f: f.get("op") == "unsubscribed")
    assert evicted[-1]["channel"] == party["channel"]
    assert (await client.post(f"{url}/end", headers=ana.auth)).status == 409
    resp = await client.post(
        "/api/watch-parties/join", json={"code": party["invite_code"]}, headers=guest.auth
    )
    assert resp.status == 409
    # Its chat history stays.
    resp = await client.get(f"/api/channels/{chat}/messages", headers=ana.auth)
    assert [m["text"] for m in (await resp.json())["items"]] == ["did you see that?"]


async def test_a_party_nobody_is_in_ends_after_the_delay(
    client: Client, app: web.Application, teacher: Account, clock: FakeClock
) -> None:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    (ana,) = await students(client, course_id, "Ana")
    party = await create(client, ana, lesson_id=one)
    parties = app[WATCH]
    a = await member(client, ana, party)
    await a.subscribe()
    chat = Member(ana, a.sock, party["chat_channel"])
    assert (await chat.subscribe(state=False))["op"] == "subscribed"
    assert (await chat.send(text="brb"))["op"] == "ack"
    clock.advance(parties.idle_end + 5)
    assert await parties.sweep() == []  # someone is there
    await a.sock.ws.close()
    await a.sock.ws.receive()
    # The hub settles the room after the socket closes (a task of its own): wait for it.
    for _ in range(250):
        gone = not await app[HUB].gateway.online_ids(party["channel"])
        if gone and not app[LEAVING]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the hub did not settle the room within 5 s of the socket closing")
    clock.advance(parties.idle_end - 1)
    assert await parties.sweep() == []
    clock.advance(2)
    assert await parties.sweep() == [party["id"]]
    got = await client.get(f"/api/watch-parties/{party['id']}", headers=ana.auth)
    body = await got.json()
    assert body["status"] == "ended"
    assert body["ended_at"] is not None
    # Its chat history stays.
    resp = await client.get(f"/api/channels/{party['chat_channel']}/messages", headers=ana.auth)
    assert [m["text"] for m in (await resp.json())["items"]] == ["brb"]


@dataclasses.dataclass
class TwoHubs:
    """A party with Ana on hub one and Ben on hub two, both subscribed and waited for."""

    one: Client
    two: Client
    ana: Account
    ben: Account
    a: Member
    b: Member


@pytest.fixture
async def party_on_two_hubs(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> TwoHubs:
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    account = await verified_teacher(one, one.app)
    course_id, (lesson, *_rest) = await a_course(one, one.app, account)
    (ana,) = await students(one, course_id, "Ana")
    (ben,) = await students(two, course_id, "Ben")
    party = await create(one, ana, lesson_id=lesson, control="everyone")
    await join(two, ben, party)
    a, b = await member(one, ana, party), await member(two, ben, party)
    await a.subscribe()
    await b.subscribe()
    await a.until(lambda s: s["waiting_for"] == sorted([ana.id, ben.id]))
    return TwoHubs(one, two, ana, ben, a, b)


@pytest.mark.redis
async def test_two_hubs_share_one_state(party_on_two_hubs: TwoHubs) -> None:
    ana, a, b = party_on_two_hubs.ana, party_on_two_hubs.a, party_on_two_hubs.b
    await a.ok(cmd="ready", ready=True)
    await b.ok(cmd="ready", ready=True)
    ready = await a.until(lambda s: s["waiting_for"] == [])
    # Both hubs race on the same version: one command wins, the other is stale.
    await a.sock.send(
        {
            "op": "publish",
            "channel": a.channel,
            "ref": "x",
            "data": {"cmd": "play", "version": ready["version"]},
        }
    )
    await b.sock.send(
        {
            "op": "publish",
            "channel": b.channel,
            "ref": "y",
            "data": {"cmd": "seek", "position": 40, "version": ready["version"]},
        }
    )
    answer_a = (await a.sock.recv_until(is_reply("x")))[-1]
    answer_b = (await b.sock.recv_until(is_reply("y")))[-1]
    codes = sorted(x["op"] if x["op"] == "ack" else x["code"] for x in (answer_a, answer_b))
    assert codes == ["ack", "stale"], (answer_a, answer_b)
    # One more change, made on hub one: both hubs' members see the same state.
    await a.ok(cmd="no_wait", value=True)

    def opted_out(state: dict[str, Any]) -> bool:
        return any(m["id"] == ana.id and m["no_wait"] for m in state["members"])

    final_a = await a.until(opted_out)
    final_b = await b.until(opted_out)
    assert final_a == final_b
    assert final_a["version"] == ready["version"] + 2
    won = answer_a if answer_a["op"] == "ack" else answer_b
    assert final_a["resume"] if won is answer_a else final_a["position"] == 40


class _HeldAddress:
    """A subscriber's Redis address whose next connection waits until ``release``."""

    def __init__(self, address: Any) -> None:
        self._address = address
        self.released = asyncio.Event()

    async def connect(self, factory: Any) -> Any:
        await self.released.wait()
        return await self._address.connect(factory)

    def hello(self, select: bool = True) -> Any:
        return self._address.hello(select=select)


@pytest.mark.redis
async def test_a_hub_that_lost_the_broker_sends_the_state_again(
    party_on_two_hubs: TwoHubs,
) -> None:
    """A change made while hub two's broker connection was down never reaches hub two (pub/sub
    keeps nothing): once it is back, hub two sends its members the state as it stands."""
    two, ana, a, b = (
        party_on_two_hubs.two,
        party_on_two_hubs.ana,
        party_on_two_hubs.a,
        party_on_two_hubs.b,
    )

    subscriber = two.app[HUB].broker._subscriber
    held = _HeldAddress(subscriber._address)
    subscriber._address = held
    subscriber._protocol.abort()  # lost: it reconnects, and waits for `release`
    async with asyncio.timeout(5):
        while subscriber.connected:  # noqa: ASYNC110 (reported by the transport)
            await asyncio.sleep(0.01)
    await a.ok(cmd="no_wait", value=True)

    def opted_out(state: dict[str, Any]) -> bool:
        return any(m["id"] == ana.id and m["no_wait"] for m in state["members"])

    changed = await a.until(opted_out)
    held.released.set()
    again = await b.until(opted_out)
    assert again["version"] == changed["version"]
    assert again["members"] == changed["members"]
