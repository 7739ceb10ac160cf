"""Calls above the mesh size go through Janus: a fifth peer moves the call to the SFU, the hub
creates the room and hands each peer its own token; an aiortc peer publishes into the room
with its token and another receives its video. A private Janus runs for these tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

from hub.settings import Settings
from rooms.janus import Janus
from tests.conftest import Account, make_settings
from tests.rooms.call_peer import CallPeer
from tests.rooms.janus_server import JanusPeer, JanusServer, run_janus
from tests.rooms.test_call import a_party, peer, setup
from tests.rooms.test_watch_party import teacher

Client = TestClient[Any, Any]
__all__ = ["teacher"]  # the fixture


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusServer]:
    # Fails (not skips) without the binary: scripts/system-deps installs it.
    with run_janus(tmp_path) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, janus: JanusServer) -> Settings:
    return make_settings(
        tmp_path, database_url, janus_url=janus.url, janus_admin_secret=janus.admin_key
    )


def token_of(one: CallPeer) -> dict[str, Any]:
    frames = [
        f["data"]
        for f in one.frames
        if f.get("op") == "message" and f["channel"] == one.inbox and f["data"]["type"] == "roster"
    ]
    assert frames, "no roster on the inbox"
    sfu: dict[str, Any] = frames[-1]["sfu"]
    return sfu


async def test_a_fifth_peer_moves_the_call_to_janus(
    client: Client, app: web.Application, teacher: Account, janus: JanusServer
) -> None:
    people = await setup(client, app, teacher, "Ana", "Ben", "Cleo", "Dora", "Eli")
    party_id = await a_party(client, app, *people)
    peers = [await peer(client, person, party_id, mesh=False) for person in people]
    for one in peers:
        await one.__aenter__()
    try:
        for one in peers[:4]:
            await one.join()
        roster = await peers[0].wait_roster(lambda r: len(r.get("participants", [])) == 4)
        assert roster["mode"] == "mesh"
        await peers[4].join()
        for one in peers:
            roster = await one.wait_roster(lambda r: r.get("mode") == "sfu")
            assert roster["sfu"]["url"] == janus.url
            assert "token" not in roster["sfu"]  # the shared channel carries no token
        tokens = {}
        for one in peers:
            await one.wait_frame(
                lambda f, one=one: (
                    f.get("op") == "message"
                    and f["channel"] == one.inbox
                    and f["data"]["type"] == "roster"
                )
            )
            sfu = token_of(one)
            tokens[one.peer] = sfu["token"]
            room = sfu["room"]
        assert len(set(tokens.values())) == 5

        async with aiohttp.ClientSession() as http:
            # A made-up token is refused by Janus.
            stranger = JanusPeer(http, janus.url)
            await stranger.attach()
            with pytest.raises(RuntimeError, match="refused"):
                await stranger.publish(room, "not-a-token", VideoStreamTrack())
            await stranger.close()

            publisher, subscriber = JanusPeer(http, janus.url), JanusPeer(http, janus.url)
            await publisher.attach()
            await subscriber.attach()
            got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

            @subscriber.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video" and not got.done():
                    got.set_result(track)

            try:
                feed = await publisher.publish(room, tokens[peers[0].peer], VideoStreamTrack())
                await subscriber.subscribe(room, tokens[peers[1].peer], feed)
                track = await asyncio.wait_for(got, 20)
                frame = await asyncio.wait_for(track.recv(), 30)
                assert isinstance(frame, VideoFrame)
                assert frame.width > 0
            finally:
                await publisher.close()
                await subscriber.close()

        # Ending the party ends the call: the hub destroys its Janus room.
        sfu = Janus(janus.url, admin_key=janus.admin_key)
        assert (await sfu.request({"request": "exists", "room": room}))["exists"] is True
        resp = await client.post(f"/api/watch-parties/{party_id}/end", headers=people[0].auth)
        assert resp.status == 200
        assert (await sfu.request({"request": "exists", "room": room}))["exists"] is False
    finally:
        for one in peers:
            await one.__aexit__(None, None, None)
