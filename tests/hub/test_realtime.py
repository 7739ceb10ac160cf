"""The /ws gateway: tickets, the frame protocol, durable channels with replay by sequence
number, authorization, malformed frames, slow consumers, presence and typing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
from typing import Any, cast

import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from sqlalchemy import Table

from hub.clock import FakeClock
from hub.identity.models import User
from hub.realtime.gateway import BasePolicy, Sender
from hub.realtime.store import Companion, message_frame, wire
from hub.services import HUB
from rooms.models import ChatMessage
from tests.conftest import Account, sign_up


class RoomPolicy(BasePolicy):
    """A test channel family ``room:<name>``: anyone subscribes, durable, with presence;
    ``room:closed`` refuses everyone."""

    durable = True
    presence = True

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return channel != "room:closed"

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        text = data.get("text")
        if not isinstance(text, str):
            from hub.errors import FieldError, ValidationFailed

            raise ValidationFailed([FieldError("data.text", "must be a string")])
        stored = await self._app[HUB].gateway.publish_durable(
            channel, {"text": text, "author": sender.user.id}, author_id=sender.user.id
        )
        return stored.seq


@pytest.fixture
def rooms(app: web.Application) -> web.Application:
    app[HUB].gateway.register("room", RoomPolicy(app))
    return app


class Socket:
    """A raw protocol client over the test client's WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            await self.ws.send_str(orjson.dumps(frame).decode())
        elif isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=wait)
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        return orjson.loads(msg.data)  # type: ignore[no-any-return]

    async def recv_until(self, predicate: Any, wait: float = 5.0) -> list[dict[str, Any]]:
        """Frames up to and including the first that matches."""
        seen = []
        while True:
            frame = await self.recv(wait)
            seen.append(frame)
            if predicate(frame):
                return seen

    async def subscribe(self, channel: str, since: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"op": "subscribe", "channel": channel, "ref": f"s-{channel}"}
        if since is not None:
            frame["since"] = since
        await self.send(frame)
        return await self.recv()


async def ticket(client: TestClient[Any, Any], account: Account, **body: Any) -> str:
    resp = await client.post(
        "/api/realtime/ticket", json=body if body else None, headers=account.auth
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["ticket"]  # type: ignore[no-any-return]


async def connect(client: TestClient[Any, Any], account: Account) -> Socket:
    ws = await client.ws_connect(f"/ws?ticket={await ticket(client, account)}")
    return Socket(ws)


async def test_tickets_are_single_use_and_expire(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    token = await ticket(client, ana)
    ws = await client.ws_connect(f"/ws?ticket={token}")
    await ws.close()
    for bad in (token, "", "made-up"):
        resp = await client.get(f"/ws?ticket={bad}", headers={"Upgrade": "websocket"})
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
    resp = await client.get("/ws")
    assert resp.status == 401
    late = await ticket(client, ana)
    clock.advance(31)
    assert (await client.get(f"/ws?ticket={late}")).status == 401
    # A document ticket does not open /ws, and tickets need a signed-in user.
    doc = await ticket(client, ana, doc="project-1")
    assert (await client.get(f"/ws?ticket={doc}")).status == 401
    assert (await client.post("/api/realtime/ticket")).status == 401
    bad = await client.post("/api/realtime/ticket", json={"doc": "no spaces"}, headers=ana.auth)
    assert bad.status == 422


async def test_user_channel_is_private(client: TestClient[Any, Any], rooms: Any) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    sock = await connect(client, ana)
    ok = await sock.subscribe(f"user:{ana.id}")
    assert ok == {
        "op": "subscribed",
        "ref": f"s-user:{ana.id}",
        "channel": f"user:{ana.id}",
        "seq": 0,
        "recovered": False,
    }
    denied = await sock.subscribe(f"user:{ben.id}")
    assert (denied["op"], denied["code"]) == ("error", "forbidden")
    await sock.send({"op": "publish", "channel": f"user:{ana.id}", "data": {"x": 1}, "ref": 7})
    refused = await sock.recv()
    assert (refused["op"], refused["ref"], refused["code"]) == ("error", 7, "forbidden")
    # Nothing else arrives for the denied subscription: the next frame answers the ping.
    await sock.send({"op": "ping", "ref": "p"})
    pong = await sock.recv()
    assert pong["op"] == "pong"
    assert pong["ref"] == "p"
    assert isinstance(pong["server_time"], int)
    closed = await sock.subscribe("room:closed")
    assert closed["code"] == "forbidden"
    unknown = await sock.subscribe("nope:1")
    assert unknown["code"] == "not_found"


async def test_durable_messages_replay_in_order_then_stream_live(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    writer = await connect(client, ana)
    assert (await writer.subscribe("room:math"))["seq"] == 0
    for i in range(5):
        await writer.send(
            {"op": "publish", "channel": "room:math", "data": {"text": f"m{i}"}, "ref": i}
        )
    frames = await writer.recv_until(lambda f: f.get("op") == "ack" and f["ref"] == 4)
    acks = [f["seq"] for f in frames if f["op"] == "ack"]
    assert acks == [1, 2, 3, 4, 5]

    # Ben was away after seq 2: he gets 3..5 from storage, then live ones, without gaps.
    reader = await connect(client, ben)
    sub = await reader.subscribe("room:math", since=2)
    assert (sub["seq"], sub["recovered"]) == (5, True)
    replayed = [await reader.recv() for _ in range(3)]
    assert [(f["seq"], f["data"]["text"]) for f in replayed] == [(3, "m2"), (4, "m3"), (5, "m4")]
    await writer.send({"op": "publish", "channel": "room:math", "data": {"text": "live"}})
    live = await reader.recv_until(lambda f: f.get("seq") == 6)
    assert live[-1]["data"] == {"text": "live", "author": ana.id}
    # Presence and joins are ephemeral frames (no sequence number) around them.
    assert all(f["seq"] is None for f in live[:-1] if f["op"] == "message")

    # A subscriber without `since` starts at the head; one from the future is not recovered.
    late = await connect(client, ben)
    assert (await late.subscribe("room:math"))["seq"] == 6
    ahead = await connect(client, ben)
    assert (await ahead.subscribe("room:math", since=99)) | {"ref": None} == {
        "op": "subscribed",
        "ref": None,
        "channel": "room:math",
        "seq": 6,
        "recovered": False,
    }

    # History is in the database, in order.
    rows = await rooms[HUB].gateway.store.before("room:math", None, 10)
    assert [seq for seq, _, _ in rows] == [6, 5, 4, 3, 2, 1]


async def test_a_gap_on_the_broker_is_filled_from_storage(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    """Messages stored but never announced (a broker hiccup) still reach subscribers, in order,
    as soon as a later one shows the gap."""
    gateway = rooms[HUB].gateway
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe("room:gap")
    async with rooms[HUB].db.transaction() as s:
        for text in ("lost-1", "lost-2"):
            await gateway.store.append(
                s, "room:gap", {"text": text}, author_id=None, now=rooms[HUB].clock.now()
            )
    await gateway.publish_durable("room:gap", {"text": "third"})
    frames = await sock.recv_until(lambda f: f.get("seq") == 3)
    messages = [f for f in frames if f["op"] == "message" and f["seq"] is not None]
    assert [(f["seq"], f["data"]["text"]) for f in messages] == [
        (1, "lost-1"),
        (2, "lost-2"),
        (3, "third"),
    ]


async def test_a_message_that_cannot_be_delivered_does_not_stop_the_next(
    client: TestClient[Any, Any], rooms: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One broker message whose delivery fails (a bug's exception) is logged and skipped:
    the hub's router goes on with the next, instead of ending and leaving the hub deaf."""
    gateway = rooms[HUB].gateway
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe("room:router")
    dispatch = gateway._dispatch
    failed: list[str] = []

    def fails_once(channel: str, payload: bytes) -> None:
        if not failed:
            failed.append(channel)
            raise RuntimeError("a bug in delivery")
        dispatch(channel, payload)

    monkeypatch.setattr(gateway, "_dispatch", fails_once)
    await gateway.publish_ephemeral("room:router", {"n": 1})
    await gateway.publish_ephemeral("room:router", {"n": 2})
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    assert failed == ["room:router"]
    assert frames[-1]["data"] == {"n": 2}


async def test_a_message_ahead_of_a_gap_waits_for_the_missing_one(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    """A durable message that arrives before the one it follows (another hub stored that one
    first; its broker message is still in flight) waits for it and both go out in order, from
    the broker: these two are not even in the database."""
    gateway = rooms[HUB].gateway
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe("room:race")
    broker = rooms[HUB].broker
    for seq in (2, 1):
        frame = message_frame("room:race", seq, {"text": f"in flight {seq}"})
        await broker.publish("room:race", wire(seq, frame))
    frames = await sock.recv_until(lambda f: f.get("seq") == 2)
    messages = [f for f in frames if f["op"] == "message" and f["seq"] is not None]
    assert [(f["seq"], f["data"]["text"]) for f in messages] == [
        (1, "in flight 1"),
        (2, "in flight 2"),
    ]
    assert await gateway.store.heads(["room:race"]) == {"room:race": 0}


async def test_concurrent_publishes_share_transactions_without_gaps(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    """Group commit: messages published at once into several channels are stored a batch at a
    time, each channel's numbers contiguous in the order they were published; one that cannot
    be stored fails alone and takes no number."""
    gateway = rooms[HUB].gateway
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe("room:c0")
    broken = Companion(
        cast(Table, ChatMessage.__table__),
        {
            "channel": "room:c1",
            "author_id": 10**9,
            "text": "?",
            "created_at": rooms[HUB].clock.now(),
        },
    )

    async def publish(k: int) -> int:
        channel = f"room:c{k % 3}"
        companions = [broken] if k == 31 else []
        stored = await gateway.publish_durable(channel, {"text": f"{k}"}, companions=companions)
        return stored.seq

    outcomes = await asyncio.gather(*(publish(k) for k in range(60)), return_exceptions=True)
    assert isinstance(outcomes[31], Exception)  # a user that does not exist
    for c in range(3):
        seqs = [o for k, o in enumerate(outcomes) if k % 3 == c and k != 31]
        assert seqs == list(range(1, len(seqs) + 1))
    frames = await sock.recv_until(lambda f: f.get("seq") == 20)
    live = [f for f in frames if f["op"] == "message" and f["seq"] is not None]
    assert [(f["seq"], f["data"]["text"]) for f in live] == [(n + 1, str(3 * n)) for n in range(20)]
    assert await gateway.store.heads(["room:c0", "room:c1", "room:c2"]) == {
        "room:c0": 20,
        "room:c1": 19,
        "room:c2": 20,
    }


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"op": "dance"}', "op must be"),
        ('{"op": "subscribe"}', "channel must be"),
        ('{"op": "subscribe", "channel": "UPPER:case"}', "channel must be"),
        ('{"op": "subscribe", "channel": "room:a", "since": -1}', "since must be"),
        ('{"op": "subscribe", "channel": "room:a", "since": "3"}', "since must be"),
        ('{"op": "publish", "channel": "room:a", "data": [1]}', "data must be"),
        ('{"op": "ping", "ref": {"x": 1}}', "ref must be"),
        (b"\x00\x01", "binary"),
    ],
)
async def test_malformed_frames_get_error_frames(
    client: TestClient[Any, Any], rooms: Any, frame: str | bytes, fragment: str
) -> None:
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.send(frame)
    error = await sock.recv()
    assert (error["op"], error["code"]) == ("error", "bad_frame")
    assert fragment in error["message"]
    # The connection still works.
    await sock.send({"op": "ping", "ref": 1})
    assert (await sock.recv())["op"] == "pong"


async def test_refused_publish_changes_nothing(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe("room:x")
    await sock.send({"op": "publish", "channel": "room:x", "data": {"text": 5}, "ref": "r"})
    error = (await sock.recv_until(lambda f: f["op"] == "error"))[-1]
    assert (error["op"], error["ref"], error["code"]) == ("error", "r", "validation_failed")
    assert await rooms[HUB].gateway.store.head("room:x") == 0
    await sock.send({"op": "subscribe", "channel": "room:x"})
    assert (await sock.recv_until(lambda f: f["op"] == "error"))[-1]["code"] == "already_subscribed"
    await sock.send({"op": "unsubscribe", "channel": "room:y", "ref": 2})
    assert (await sock.recv())["code"] == "not_subscribed"
    await sock.send({"op": "unsubscribe", "channel": "room:x", "ref": 3})
    frames = await sock.recv_until(lambda f: f["op"] == "unsubscribed")
    assert frames[-1] == {"op": "unsubscribed", "ref": 3, "channel": "room:x"}


async def test_repeated_garbage_closes_only_that_connection(
    client: TestClient[Any, Any], rooms: Any
) -> None:
    ana = await sign_up(client, "Ana")
    bad = await connect(client, ana)
    good = await connect(client, ana)
    await good.subscribe("room:calm")
    for _ in range(10):
        await bad.send("garbage")
    while True:
        msg = await bad.ws.receive(timeout=5)
        if msg.type != WSMsgType.TEXT:
            break
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert bad.ws.close_code == 4400
    await good.send({"op": "ping", "ref": "still"})
    frames = await good.recv_until(lambda f: f.get("op") == "pong")
    assert frames[-1]["ref"] == "still"


async def test_oversized_frames_close_the_connection(
    client: TestClient[Any, Any], rooms: Any
) -> None:
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.send("x" * (70 * 1024))
    msg = await sock.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert sock.ws.close_code == 1009


async def test_presence_and_typing(client: TestClient[Any, Any], rooms: Any) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    a = await connect(client, ana)
    await a.subscribe("room:study")
    online = await a.recv()
    assert online["op"] == "presence"
    assert [u["id"] for u in online["online"]] == [ana.id]
    b = await connect(client, ben)
    await b.subscribe("room:study")
    frames = await a.recv_until(
        lambda f: (
            f.get("data", {}).get("type") == "presence"
            and ben.id in [u["id"] for u in f["data"]["joined"]]
        )
    )
    assert frames[-1]["seq"] is None
    assert frames[-1]["data"]["left"] == []
    seen_by_b = await b.recv_until(lambda f: f.get("op") == "presence")
    assert sorted(u["id"] for u in seen_by_b[-1]["online"]) == sorted([ana.id, ben.id])

    await b.send({"op": "publish", "channel": "room:study", "data": {"type": "typing"}})
    typing = await a.recv_until(lambda f: f.get("data", {}).get("type") == "typing")
    assert typing[-1]["data"]["user"]["id"] == ben.id
    assert typing[-1]["seq"] is None

    await b.ws.close()
    left = await a.recv_until(
        lambda f: f.get("data", {}).get("type") == "presence" and f["data"]["left"]
    )
    assert [u["id"] for u in left[-1]["data"]["left"]] == [ben.id]


async def test_presence_changes_coalesce_into_one_event(
    client: TestClient[Any, Any], rooms: Any
) -> None:
    """Members who come within the batch window are announced together, in one frame that
    lists them all (a room filling up costs each member a few frames, not one per member)."""
    ana = await sign_up(client, "Ana")
    others = [await sign_up(client, name) for name in ("Ben", "Cy", "Dee", "Eve")]
    a = await connect(client, ana)
    await a.subscribe("room:busy")
    await a.recv()  # the presence list
    await a.recv_until(lambda f: f.get("data", {}).get("type") == "presence")  # her own join
    socks = [await connect(client, other) for other in others]

    async def changes(wanted: set[int], key: str) -> int:
        """Presence events until every one of ``wanted`` is under ``key``; how many."""
        seen: set[int] = set()
        events = 0
        while seen != wanted:
            frame = await a.recv()
            if frame.get("data", {}).get("type") == "presence":
                events += 1
                seen |= {u["id"] for u in frame["data"][key]}
        return events

    await asyncio.gather(*(sock.subscribe("room:busy") for sock in socks))
    # One event as a rule; two when the window closed between two of the joins.
    assert await changes({o.id for o in others}, "joined") <= 2
    await asyncio.gather(*(sock.ws.close() for sock in socks))
    assert await changes({o.id for o in others}, "left") <= 2


async def test_presence_heard_while_the_list_loads_is_kept(
    client: TestClient[Any, Any], rooms: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub reads a room's presence list once, when its first member there subscribes; a
    presence event heard while that read is under way still counts."""
    gateway = rooms[HUB].gateway
    read = gateway._cards
    cy = {"id": 10**6, "display_name": "Cy", "avatar_color": "#000000"}
    channel = "room:loading"

    async def cards_while_cy_joins(ids: Any) -> dict[int, dict[str, Any]]:
        cards = await read(ids)
        data = {"type": "presence", "joined": [cy], "left": []}
        gateway._presence_heard(channel, message_frame(channel, None, data))
        return cards

    monkeypatch.setattr(gateway, "_cards", cards_while_cy_joins)
    ana = await sign_up(client, "Ana")
    sock = await connect(client, ana)
    await sock.subscribe(channel)
    online = await sock.recv()
    assert [u["id"] for u in online["online"]] == [ana.id, cy["id"]]


def _raw_websocket(host: str, port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads: a frozen tab."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_a_frozen_client_is_cut_off_and_does_not_slow_the_room(
    aiohttp_client: Any, settings: Any, clock: FakeClock, fast_hashing: Any
) -> None:
    from hub.app import create_app

    app = create_app(
        settings.model_copy(update={"ws_send_buffer": 256 * 1024}),
        clock=clock,
        hashing=fast_hashing,
    )
    app[HUB].gateway.register("room", RoomPolicy(app))
    client = await aiohttp_client(app)
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    frozen = await asyncio.to_thread(
        _raw_websocket, client.host, client.port, f"/ws?ticket={await ticket(client, ben)}"
    )
    try:
        frozen.sendall(_masked_text(b'{"op":"subscribe","channel":"room:big"}'))
        healthy = await connect(client, ana)
        await healthy.subscribe("room:big")
        gateway = app[HUB].gateway

        async def read_all() -> list[int]:
            got: list[int] = []
            while len(got) < 400:
                frame = await healthy.recv()
                if frame["op"] == "message" and frame["seq"] is not None:
                    got.append(frame["seq"])
            return got

        reading = asyncio.create_task(read_all())
        text = "y" * 16_000
        for i in range(400):
            await gateway.publish_durable("room:big", {"text": text, "i": i})
        # The healthy reader gets every message, in order.
        assert await reading == list(range(1, 401))
        # The frozen one was cut off once its unsent bytes passed the limit (its socket closes
        # when the close handshake times out; it is not buffered for meanwhile).
        cut = [c for c in gateway.connections if c.user.id == ben.id]
        assert len(cut) == 1
        assert cut[0].closing
    finally:
        frozen.close()


# Several hub processes on one Redis ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, so it can be killed and restarted without touching
    the Redis other tests share."""

    def __init__(self, tmp: Any) -> None:
        self.port = _free_port()
        self._dir = tmp
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server; the first start takes another port while the one picked was
        taken meanwhile (``_free_port`` only finds one that was free a moment ago: another
        worker's server or client may have it now), a restart keeps its port."""
        restart = self._proc is not None
        for _ in range(1 if restart else 5):
            if await self._started():
                return
            if self._proc is not None and self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()
            if not restart:
                self.port = _free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    async def _started(self) -> bool:
        """Whether the server started here is the one answering on ``port``."""
        proc = self._proc = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._dir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            if proc.returncode is not None:
                return False  # it could not listen there
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            try:
                writer.write(b"INFO server\r\n")
                await writer.drain()
                async with asyncio.timeout(5):
                    header = await reader.readline()  # $<length>: a bulk string
                    info = await reader.readexactly(int(header[1:]))
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
                return False
            finally:
                writer.close()
            return f"process_id:{proc.pid}\r\n".encode() in info
        return False

    async def kill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        await self._proc.wait()

    def pause(self, paused: bool = True) -> None:
        """Stop (SIGSTOP) or continue the server: stopped, it answers nothing and keeps its
        connections open, like a server gone from the network without a reset."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


@pytest.fixture
async def private_redis(tmp_path: Any) -> Any:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (scripts/system-deps installs it)")
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    with contextlib.suppress(ProcessLookupError, AssertionError):
        await server.kill()


async def two_hubs(
    aiohttp_client: Any, settings: Any, redis_url: str, clock: FakeClock, fast_hashing: Any
) -> tuple[Any, Any]:
    from hub.app import create_app

    clients = []
    for _ in range(2):
        app = create_app(
            settings.model_copy(update={"redis_url": redis_url, "redis_prefix": f"t{os.getpid()}"}),
            clock=clock,
            hashing=fast_hashing,
        )
        app[HUB].gateway.register("room", RoomPolicy(app))
        clients.append(await aiohttp_client(app))
    return clients[0], clients[1]


@pytest.mark.redis
async def test_two_hubs_share_channels_and_presence(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    a = await connect(one, ana)
    b = await connect(two, ben)  # a ticket from hub two, redeemed on hub two
    await a.subscribe("room:shared")
    await b.subscribe("room:shared")
    seen = await b.recv_until(lambda f: f.get("op") == "presence")
    assert sorted(u["id"] for u in seen[-1]["online"]) == sorted([ana.id, ben.id])
    await b.send({"op": "publish", "channel": "room:shared", "data": {"text": "from two"}})
    got = await a.recv_until(lambda f: f.get("seq") == 1)
    assert got[-1]["data"]["text"] == "from two"
    await a.send({"op": "publish", "channel": "room:shared", "data": {"text": "from one"}})
    got = await b.recv_until(lambda f: f.get("seq") == 2)
    assert got[-1]["data"]["text"] == "from one"
    # A ticket issued by one hub opens a socket on the other.
    crossed = Socket(await two.ws_connect(f"/ws?ticket={await ticket(one, ana)}"))
    await crossed.send({"op": "ping", "ref": 1})
    assert (await crossed.recv())["op"] == "pong"

    # Hub one keeps the room's list from the presence events of both hubs: once Ana has
    # heard that Ben left (on hub two) and Cy came (on hub one), a newcomer on hub one is told
    # exactly who is online.
    cy = await sign_up(one, "Cy")
    c = await connect(one, cy)
    await c.subscribe("room:shared")
    await b.ws.close()
    seen_by_a: set[int] = {ana.id, ben.id}
    while seen_by_a != {ana.id, cy.id}:
        frame = await a.recv()
        if frame.get("data", {}).get("type") == "presence":
            seen_by_a |= {u["id"] for u in frame["data"]["joined"]}
            seen_by_a -= {u["id"] for u in frame["data"]["left"]}
    dee = await sign_up(one, "Dee")
    d = await connect(one, dee)
    await d.subscribe("room:shared")
    online = await d.recv_until(lambda f: f.get("op") == "presence")
    assert sorted(u["id"] for u in online[-1]["online"]) == sorted([ana.id, cy.id, dee.id])


@pytest.mark.redis
async def test_redis_restart_mid_conversation_loses_nothing(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    a = await connect(one, ana)
    b = await connect(two, ben)
    await a.subscribe("room:live")
    await b.subscribe("room:live")
    await b.send({"op": "publish", "channel": "room:live", "data": {"text": "before"}})
    await a.recv_until(lambda f: f.get("seq") == 1)

    await private_redis.kill()
    # Ben keeps talking while Redis is down: stored, acknowledged, not fanned out.
    for i in range(3):
        await b.send(
            {"op": "publish", "channel": "room:live", "data": {"text": f"during {i}"}, "ref": i}
        )
    acks = await b.recv_until(lambda f: f.get("op") == "ack" and f["ref"] == 2)
    assert [f["seq"] for f in acks if f["op"] == "ack" and f["ref"] is not None] == [2, 3, 4]

    await private_redis.start()
    # Hub one notices the broker came back and catches its subscribers up from storage.
    got = await a.recv_until(lambda f: f.get("seq") == 4, wait=15)
    assert [f["seq"] for f in got if f["op"] == "message" and f["seq"]] == [2, 3, 4], got
    # And a client that reconnects with `since` gets exactly what it missed.
    again = await connect(one, ana)
    sub = await again.subscribe("room:live", since=1)
    assert (sub["seq"], sub["recovered"]) == (4, True)
    assert [(await again.recv())["seq"] for _ in range(3)] == [2, 3, 4]
    await b.send({"op": "publish", "channel": "room:live", "data": {"text": "after"}})
    got = await again.recv_until(lambda f: f.get("seq") == 5)
    assert got[-1]["data"]["text"] == "after"

    # Redis came back empty: each hub writes its members' presence again and announces them,
    # so a newcomer on hub two soon sees Ana (on hub one) online, and Ben.
    cy = await sign_up(two, "Cy")
    c = await connect(two, cy)
    await c.subscribe("room:live")
    online: set[int] = set()
    while not {ana.id, ben.id, cy.id} <= online:
        frame = await c.recv(wait=15)
        if frame.get("op") == "presence":
            online = {u["id"] for u in frame["online"]}
        elif frame.get("data", {}).get("type") == "presence":
            online |= {u["id"] for u in frame["data"]["joined"]}
            online -= {u["id"] for u in frame["data"]["left"]}


async def test_evicted_users_stop_receiving(
    client: TestClient[Any, Any], rooms: web.Application
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    a = await connect(client, ana)
    b = await connect(client, ben)
    await a.subscribe("room:club")
    await b.subscribe("room:club")
    gateway = rooms[HUB].gateway
    await gateway.evict("room:club", ben.id, "You were banned from this community.")
    frames = await b.recv_until(lambda f: f.get("op") == "unsubscribed")
    assert frames[-1] == {
        "op": "unsubscribed",
        "channel": "room:club",
        "reason": "You were banned from this community.",
    }
    await gateway.publish_durable("room:club", {"text": "after"})
    got = await a.recv_until(lambda f: f.get("seq") == 1)
    assert got[-1]["data"]["text"] == "after"
    await b.send({"op": "ping", "ref": "x"})
    rest = await b.recv_until(lambda f: f.get("op") == "pong")
    assert not any(f.get("seq") == 1 for f in rest)


@pytest.fixture
async def hubs(
    aiohttp_client: Any,
    settings: Any,
    private_redis: PrivateRedis,
    clock: FakeClock,
    fast_hashing: Any,
) -> tuple[Any, Any]:
    """Two hub apps on a Redis of this test's own."""
    return await two_hubs(aiohttp_client, settings, private_redis.url, clock, fast_hashing)


@pytest.mark.redis
async def test_a_user_with_tabs_on_two_hubs_is_not_announced_gone_while_one_is_open(
    hubs: tuple[Any, Any],
) -> None:
    one, two = hubs
    ana = await sign_up(one, "Ana")
    ben = await sign_up(one, "Ben")
    cy = await sign_up(two, "Cy")
    b = await connect(one, ben)
    await b.subscribe("room:both")
    a_one = await connect(one, ana)
    a_two = await connect(two, ana)
    await a_one.subscribe("room:both")
    await a_two.subscribe("room:both")
    # Ana's tab on hub two closes; her tab on hub one stays.
    gone = asyncio.Event()

    async def on_leave(user: Any, channel: str) -> None:
        if (user.id, channel) == (ana.id, "room:both"):
            gone.set()

    two.server.app[HUB].gateway.hooks_on_leave.append(on_leave)
    await a_two.ws.close()
    await asyncio.wait_for(gone.wait(), 5)
    # Cy comes on hub two: hub two's events reach Ben in order, so a leave of Ana's would
    # have come no later than Cy's join.
    c = await connect(two, cy)
    await c.subscribe("room:both")
    frames = await b.recv_until(
        lambda f: cy.id in {u["id"] for u in f.get("data", {}).get("joined", [])}, wait=10
    )
    left = [u["id"] for f in frames if f.get("op") == "message" for u in f["data"]["left"]]
    assert ana.id not in left, frames
    assert ana.id in await one.server.app[HUB].gateway.online_ids("room:both")
    # Her last tab closes: now she is gone.
    await a_one.ws.close()
    await b.recv_until(lambda f: ana.id in {u["id"] for u in f.get("data", {}).get("left", [])})
