"""Watch-party calls (docs/watch-parties.md, "Call"): two aiortc peers meet through the hub's
signalling on ``call:<id>`` and receive each other's video (mesh); who may subscribe and
publish; addressed frames reach only their addressee; malformed frames change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from av import VideoFrame

from hub.clock import FakeClock
from hub.identity.models import User
from hub.services import HUB
from rooms.call_wiring import CALLS
from rooms.watch_handlers import WATCH
from tests.conftest import Account, sign_up
from tests.hub.test_realtime import PrivateRedis, private_redis, ticket, two_hubs
from tests.rooms.call_peer import CallPeer
from tests.rooms.test_watch_party import (
    a_course,
    create,
    join,
    students,
    teacher,
    verified_teacher,
)

Client = TestClient[Any, Any]
__all__ = ["private_redis", "teacher"]  # the fixtures


def refused(answer: dict[str, Any]) -> str | None:
    """The error code of a refusal, None for anything else."""
    return str(answer["code"]) if answer.get("op") == "error" else None


async def a_party(client: Client, app: web.Application, host: Account, *others: Account) -> int:
    party = await create(client, host, lesson_id=_lesson[0], control="host")
    for other in others:
        await join(client, other, party)
    assert party["call_channel"] == f"call:{party['id']}"
    return int(party["id"])


_lesson: list[int] = []


async def setup(
    client: Client, app: web.Application, teacher: Account, *names: str
) -> list[Account]:
    course_id, (one, *_rest) = await a_course(client, app, teacher)
    _lesson[:] = [one]
    return await students(client, course_id, *names)


async def peer(client: Client, account: Account, party_id: int, mesh: bool = True) -> CallPeer:
    ws = await client.ws_connect(f"/ws?ticket={await ticket(client, account)}")
    return CallPeer(ws, party_id, mesh=mesh)


async def test_two_aiortc_peers_see_each_other_through_the_mesh(
    client: Client, app: web.Application, teacher: Account
) -> None:
    ana, ben = await setup(client, app, teacher, "Ana", "Ben")
    party_id = await a_party(client, app, ana, ben)
    async with await peer(client, ana, party_id) as a, await peer(client, ben, party_id) as b:
        await a.join()
        await b.join()
        roster = await a.wait_roster(lambda r: len(r.get("participants", [])) == 2)
        assert roster["mode"] == "mesh"
        assert {p["peer"] for p in roster["participants"]} == {a.peer, b.peer}
        assert {p["user"]["id"] for p in roster["participants"]} == {ana.id, ben.id}
        assert "sfu" not in roster
        for one, other in ((a, b), (b, a)):
            await asyncio.wait_for(one.got_track.wait(), 20)
            frame = await asyncio.wait_for(one.remote[other.peer].recv(), 20)
            assert isinstance(frame, VideoFrame)
            assert frame.width > 0
            assert frame.height > 0

        # Leaving updates everyone's roster.
        assert (await b.publish(type="leave", peer=b.peer))["op"] == "ack"
        roster = await a.wait_roster(lambda r: len(r["participants"]) == 1)
        assert [p["peer"] for p in roster["participants"]] == [a.peer]


async def test_who_may_take_part_and_where_addressed_frames_go(
    client: Client, app: web.Application, teacher: Account
) -> None:
    ana, ben, cleo = await setup(client, app, teacher, "Ana", "Ben", "Cleo")
    stranger = await sign_up(client, "Dora")
    party_id = await a_party(client, app, ana, ben, cleo)
    async with (
        await peer(client, ana, party_id) as a,
        await peer(client, ben, party_id) as b,
        await peer(client, cleo, party_id) as c,
        await peer(client, stranger, party_id) as s,
    ):
        # A non-member can neither subscribe nor publish.
        for channel in (s.channel, s.inbox):
            answer = await s.request({"op": "subscribe", "channel": channel})
            assert refused(answer) == "forbidden", answer
        answer = await s.publish(type="join", peer=s.peer, media={"audio": True, "video": True})
        assert refused(answer) == "forbidden", answer

        await a.join()
        await b.join()
        # Cleo subscribes to the call but does not join: she sees the roster, not signals.
        assert (await c.request({"op": "subscribe", "channel": c.channel}))["op"] == "subscribed"
        # Nobody may take another's peer id or read another's inbox.
        answer = await c.request({"op": "subscribe", "channel": a.inbox})
        assert refused(answer) == "forbidden", answer
        answer = await c.publish(type="join", peer=a.peer, media={"audio": True, "video": False})
        assert refused(answer) == "forbidden", answer
        # ... nor signal before joining.
        await c.request({"op": "subscribe", "channel": c.inbox})
        answer = await c.publish(type="offer", peer=c.peer, to=a.peer, sdp="v=0")
        assert refused(answer) == "forbidden", answer

        # Malformed frames: error frames, nothing changes.
        before = await c.wait_roster(lambda r: len(r.get("participants", [])) == 2)
        bad: list[dict[str, Any]] = [
            {"type": "offer", "peer": a.peer, "to": b.peer},  # no sdp
            {"type": "offer", "peer": a.peer, "to": b.peer, "sdp": "x" * 40_000},
            {"type": "offer", "peer": a.peer, "to": "nobody-here", "sdp": "v=0"},
            {"type": "offer", "peer": a.peer, "to": a.peer, "sdp": "v=0"},
            {"type": "ice", "peer": a.peer, "to": b.peer, "candidate": {"candidate": 5}},
            {"type": "ice", "peer": a.peer, "to": b.peer, "candidate": "a string"},
            {"type": "join", "peer": a.peer, "media": {"audio": "yes"}},
            {"type": "join", "peer": a.peer, "media": {"screen": True}},
            {"type": "dance", "peer": a.peer},
            {"type": "join", "peer": "x", "media": {}},
            {"type": "answer", "peer": a.peer, "to": 7, "sdp": "v=0"},
        ]
        for data in bad:
            answer = await a.publish(**data)
            assert answer["op"] == "error", (data, answer)
            assert answer["code"] in ("validation_failed", "not_found"), answer
        answer = await a.request({"op": "publish", "channel": a.inbox, "data": {"type": "leave"}})
        assert refused(answer) == "forbidden", answer
        assert c.roster == before

        # An addressed frame reaches its addressee only, with `from` set by the hub.
        ice = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}
        answer = await a.publish(type="ice", peer=a.peer, to=b.peer, candidate=ice)
        assert answer["op"] == "ack", answer
        got = await b.wait_frame(
            lambda f: (
                f.get("op") == "message" and f["channel"] == b.inbox and f["data"]["type"] == "ice"
            )
        )
        assert got["data"] == {"type": "ice", "from": a.peer, "to": b.peer, "candidate": ice}
        # A roster change after the signal proves Cleo's socket had every earlier frame.
        await c.publish(type="join", peer=c.peer, media={"audio": True, "video": False})
        await c.wait_roster(lambda r: len(r["participants"]) == 3)
        await a.wait_roster(lambda r: len(r["participants"]) == 3)
        # The peers negotiate on their own meanwhile; every addressed frame anyone received
        # was addressed to them.
        for one in (a, b, c):
            addressed = [
                f["data"] for f in one.frames if f.get("op") == "message" and "to" in f["data"]
            ]
            assert all(d["to"] == one.peer for d in addressed)
        assert not [f for f in c.frames if f.get("channel") in (a.inbox, b.inbox)]
        cleo_entry = next(p for p in c.roster["participants"] if p["peer"] == c.peer)
        assert cleo_entry["media"] == {"audio": True, "video": False}

        # A dropped tab leaves the call.
        await b.ws.close()
        await a.wait_roster(lambda r: b.peer not in {p["peer"] for p in r["participants"]})


async def test_a_new_subscriber_gets_the_roster_first(
    client: Client, app: web.Application, teacher: Account
) -> None:
    ana, ben = await setup(client, app, teacher, "Ana", "Ben")
    party_id = await a_party(client, app, ana, ben)
    async with await peer(client, ana, party_id) as a, await peer(client, ben, party_id) as b:
        await a.join(audio=True, video=True)
        assert (await b.request({"op": "subscribe", "channel": b.channel}))["op"] == "subscribed"
        roster = await b.wait_roster(lambda r: bool(r))
        assert roster["mode"] == "mesh"
        assert roster["mesh_max"] == 4
        assert [p["peer"] for p in roster["participants"]] == [a.peer]


async def test_an_ended_party_ends_its_call(
    client: Client, app: web.Application, teacher: Account
) -> None:
    ana, ben, cleo = await setup(client, app, teacher, "Ana", "Ben", "Cleo")
    party_id = await a_party(client, app, ana, ben, cleo)
    async with (
        await peer(client, ana, party_id) as a,
        await peer(client, ben, party_id) as b,
        await peer(client, cleo, party_id) as c,
    ):
        await a.join()
        await b.join()
        # Cleo only watches the roster.
        assert (await c.request({"op": "subscribe", "channel": c.channel}))["op"] == "subscribed"
        await c.wait_roster(lambda r: len(r.get("participants", [])) == 2)

        resp = await client.post(f"/api/watch-parties/{party_id}/end", headers=ana.auth)
        assert resp.status == 200
        # Every channel of the call is ended for everyone, with the reason: pages hang up.
        for one, channels in (
            (a, (a.channel, a.inbox)),
            (b, (b.channel, b.inbox)),
            (c, (c.channel,)),
        ):
            for channel in channels:
                gone = await one.wait_frame(
                    lambda f, channel=channel: (
                        f.get("op") == "unsubscribed" and f["channel"] == channel
                    )
                )
                assert "ended" in gone["reason"]
        roster = await app[CALLS].snapshot(await user_of(app, ana), f"call:{party_id}")
        assert roster[0]["participants"] == []
        # Nobody gets back in.
        answer = await a.request({"op": "subscribe", "channel": a.channel})
        assert refused(answer) == "forbidden", answer


async def test_a_peer_its_hub_lost_leaves_on_the_sweep(
    client: Client, app: web.Application, teacher: Account
) -> None:
    ana, ben = await setup(client, app, teacher, "Ana", "Ben")
    party_id = await a_party(client, app, ana, ben)
    gateway = app[HUB].gateway
    hooks = list(gateway.hooks_on_leave)
    async with await peer(client, ana, party_id) as a, await peer(client, ben, party_id) as b:
        await a.join()
        await b.join()
        await a.wait_roster(lambda r: len(r.get("participants", [])) == 2)
        # Ben's hub dies: his presence goes (its time to live), but nothing settles the call.
        gateway.hooks_on_leave.clear()
        try:
            await b.ws.close()
            await a.wait_frame(
                lambda f: (
                    f.get("op") == "message"
                    and f["channel"] == a.channel
                    and f["data"].get("type") == "presence"
                    and ben.id in [u["id"] for u in f["data"]["left"]]
                )
            )
        finally:
            gateway.hooks_on_leave[:] = hooks
        assert {p["peer"] for p in a.roster["participants"]} == {a.peer, b.peer}
        # The hubs' sweep drops him from the roster; Ana stays.
        await app[WATCH].sweep()
        roster = await a.wait_roster(lambda r: len(r["participants"]) == 1)
        assert [p["peer"] for p in roster["participants"]] == [a.peer]


async def user_of(app: web.Application, account: Account) -> User:
    async with app[HUB].db.sessions() as s:
        user = await s.get(User, account.id)
    assert user is not None
    return user


@pytest.mark.redis
async def test_two_hubs_share_one_call(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    tina = await verified_teacher(one, one.app)
    course_id, (lesson, *_rest) = await a_course(one, one.app, tina)
    (ana,) = await students(one, course_id, "Ana")
    (ben,) = await students(two, course_id, "Ben")
    party = await create(one, ana, lesson_id=lesson, control="host")
    await join(two, ben, party)
    party_id = int(party["id"])
    async with await peer(one, ana, party_id) as a, await peer(two, ben, party_id) as b:
        await a.join()
        await b.join()
        # One roster across both hubs, and signals cross them: the peers' video arrives.
        for one_peer in (a, b):
            roster = await one_peer.wait_roster(lambda r: len(r.get("participants", [])) == 2)
            assert {p["peer"] for p in roster["participants"]} == {a.peer, b.peer}
        for one_peer, other in ((a, b), (b, a)):
            await asyncio.wait_for(one_peer.got_track.wait(), 20)
            frame = await asyncio.wait_for(one_peer.remote[other.peer].recv(), 20)
            assert isinstance(frame, VideoFrame)
            assert frame.width > 0
        # A peer id claimed on one hub is refused on the other.
        answer = await b.request({"op": "subscribe", "channel": a.inbox})
        assert refused(answer) == "forbidden", answer
