"""An aiortc peer that joins a watch party's call through the hub's signalling (``/ws``).

Used by the call tests and bench/call.py. Mesh: for each pair, the peer with the smaller id
offers (no glare); aiortc gathers every candidate before ``setLocalDescription`` returns, so
the SDP carries them and no ``ice`` frames are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)


class CallPeer:
    def __init__(self, ws: ClientWebSocketResponse, party_id: int, mesh: bool = True) -> None:
        self.ws = ws
        self.mesh = mesh
        self.party_id = party_id
        self.peer = secrets.token_hex(8)
        self.channel = f"call:{party_id}"
        self.inbox = f"{self.channel}:{self.peer}"
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.remote: dict[str, MediaStreamTrack] = {}
        self.got_track = asyncio.Event()
        self.roster: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._refs = 0
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._roster_seen = asyncio.Condition()
        self._frame_seen = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CallPeer:
        self._reader = asyncio.create_task(self._read(), name="call-peer-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stop negotiating first, then close every connection made so far (each holds UDP
        # sockets that must not outlive the test).
        pending = [t for t in (self._reader, *self._tasks) if t is not None]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for pc in list(self.pcs.values()):
            await pc.close()
        await self.ws.close()

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a frame; the hub's answer to it (``subscribed``, ``ack`` or ``error``)."""
        self._refs += 1
        ref = f"r{self._refs}"
        answer = asyncio.get_running_loop().create_future()
        self._answers[ref] = answer
        await self.ws.send_str(orjson.dumps({**frame, "ref": ref}).decode())
        return await asyncio.wait_for(answer, 10)

    async def publish(self, **data: Any) -> dict[str, Any]:
        return await self.request({"op": "publish", "channel": self.channel, "data": data})

    async def join(self, audio: bool = False, video: bool = True) -> None:
        for channel in (self.inbox, self.channel):
            answer = await self.request({"op": "subscribe", "channel": channel})
            assert answer["op"] == "subscribed", answer
        answer = await self.publish(
            type="join", peer=self.peer, media={"audio": audio, "video": video}
        )
        assert answer["op"] == "ack", answer

    async def wait_roster(self, predicate: Any, wait: float = 10.0) -> dict[str, Any]:
        async with self._roster_seen:
            await asyncio.wait_for(self._roster_seen.wait_for(lambda: predicate(self.roster)), wait)
        return self.roster

    async def wait_frame(self, predicate: Any, wait: float = 10.0) -> dict[str, Any]:
        """The first frame received (so far or next) that matches."""

        def found() -> dict[str, Any] | None:
            return next((f for f in self.frames if predicate(f)), None)

        async with self._frame_seen:
            await asyncio.wait_for(self._frame_seen.wait_for(lambda: found() is not None), wait)
        frame = found()
        assert frame is not None
        return frame

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            async with self._frame_seen:
                self.frames.append(frame)
                self._frame_seen.notify_all()
            ref = frame.get("ref")
            if ref in self._answers and frame.get("op") in ("subscribed", "ack", "error"):
                self._answers.pop(ref).set_result(frame)
                continue
            if frame.get("op") == "error":
                self.errors.append(frame)
            if frame.get("op") != "message":
                continue
            data = frame["data"]
            if data.get("type") == "roster" and frame["channel"] == self.channel:
                async with self._roster_seen:
                    self.roster = data
                    self._roster_seen.notify_all()
                self._spawn(self._mesh(data))
            elif frame["channel"] == self.inbox and data.get("type") in ("offer", "answer"):
                self._spawn(self._signal(data))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection(self, other: str) -> RTCPeerConnection:
        pc = self.pcs.get(other)
        if pc is None:
            pc = self.pcs[other] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTrack(VideoStreamTrack())

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                self.remote[other] = track
                self.got_track.set()

        return pc

    async def _mesh(self, roster: dict[str, Any]) -> None:
        if roster.get("mode") != "mesh" or not self.mesh:
            return
        others = [p["peer"] for p in roster["participants"] if p["peer"] != self.peer]
        for other in others:
            if other in self.pcs or self.peer > other:
                continue
            pc = self._connection(other)
            await pc.setLocalDescription(await pc.createOffer())
            await self.publish(type="offer", peer=self.peer, to=other, sdp=pc.localDescription.sdp)

    async def _signal(self, data: dict[str, Any]) -> None:
        other = data["from"]
        pc = self._connection(other)
        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], data["type"]))
        if data["type"] == "offer":
            await pc.setLocalDescription(await pc.createAnswer())
            await self.publish(type="answer", peer=self.peer, to=other, sdp=pc.localDescription.sdp)
