"""Live Yjs documents behind ``/yjs/{doc}``: the y-websocket protocol over aiohttp, documents
in pycrdt, persisted in the database and shared with the other hub processes through the broker
(protocol: docs/documents.md).

One ``DocumentServer`` per hub process holds, per loaded document, a ``DocumentRoom``: the
document, its awareness states and its local connections.

* Every update goes through ``DocumentState.integrate`` (pending updates kept and merged, see
  ``ide.updates``); updates of read-only members are dropped, malformed ones are refused without
  touching the document.
* An accepted update is forwarded as it came to the room's other connections: one frame built
  once, offered to each connection's bounded queue (no task, no re-encoding per recipient, no
  echo to its author). Awareness frames go to every connection, the sender's included (a lone
  y-websocket client counts them as proof the socket is alive).
* Each update a client sends is queued for the database (batched, one row per document per
  batch) and relayed to the other hubs as sent.
* A joining client gets sync step 1 and the awareness states already known; a client that goes
  away has its states removed at once (here and on the other hubs).
* Rooms are opened under a per-document lock and unloaded after a while without clients, after
  their last updates are saved and the log compacted.

pycrdt-websocket's ``YRoom`` did this job at first; it re-encodes every document change and
starts one task per recipient per update, which cost four times the CPU of the Node servers and
let deliveries fall behind at 50 clients (bench/crdt.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from pycrdt import Awareness, Doc, merge_updates

from hub.broker import Broker, Subscription
from hub.clock import Clock
from ide.protocol import (
    FrameKind,
    ProtocolError,
    awareness_message,
    parse_awareness,
    parse_frame,
    permission_denied,
    sync_step1,
    sync_step2,
    sync_update,
)
from ide.relay import EVERY_HUB, Envelope, RelayKind, channel_of, doc_of
from ide.store import DocumentStore
from ide.updates import EMPTY_UPDATE, BadUpdate, DocumentState

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013  # y-websocket reconnects on any code outside 4400-4499
CLOSE_GARBAGE = 4400  # permanent: y-websocket stops reconnecting
MAX_BAD_FRAMES = 10


@dataclass(frozen=True, slots=True)
class DocumentTuning:
    """Timings and bounds of the document server (seconds, frames, bytes)."""

    unload_after: float = 60.0  # a room without clients for this long is unloaded
    sweep_every: float = 5.0
    # Updates arriving within this window are saved in one row. A hub that dies loses at most
    # this much from the database, and its clients send it again when they resync with
    # another hub (Hocuspocus debounces stores by 2 s). Shorter costs CPU: at 0.05 s the
    # writes were a tenth of the hub's CPU under 20 typists (bench/crdt.py).
    save_delay: float = 0.5
    compact_after_rows: int = 200  # rows a loaded document may gather before compaction
    resync_every: float = 30.0  # anti-entropy between hubs (pub/sub may drop messages)
    # Bytes a connection's socket may hold unsent before it counts as too slow (checked
    # before each write, so one large first sync always goes out).
    send_buffer: int = 4 * 1024 * 1024
    max_frame_bytes: int = 32 * 1024 * 1024  # a first sync can carry a whole document
    heartbeat: float = 30.0


def binary_frame(message: bytes) -> bytes:
    """``message`` as one unmasked, uncompressed WebSocket binary frame (RFC 6455 §5.2), the
    form a server sends: built once per broadcast, written as is to every recipient."""
    length = len(message)
    if length < 126:
        header = bytes((0x82, length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x82, 126, length)
    else:
        header = struct.pack("!BBQ", 0x82, 127, length)
    return header + message


class YjsConnection:
    """One client of one room over an aiohttp WebSocket.

    Frames are written straight to the socket's transport, already framed (the sockets never
    compress, and aiohttp writes an uncompressed frame in one synchronous call too, so frames
    cannot interleave): no task or queue per connection, and a broadcast frames its message
    once. ``send`` never waits and never raises, so one slow or dead socket cannot stall or
    crash a room: a socket whose unsent bytes pass ``send_buffer`` is closed (1013) and its
    client reconnects and resyncs.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        room: DocumentRoom,
        server: DocumentServer,
        *,
        user_id: int,
        writable: bool,
        send_buffer: int,
    ) -> None:
        self.ws = ws
        self.room = room
        self.user_id = user_id
        self.writable = writable
        self.id = uuid.uuid4().hex[:12]
        self.awareness_ids: set[int] = set()
        self.closing = False
        self.bad_frames = 0
        self.denied_sent = False
        self._transport = transport
        self._send_buffer = send_buffer
        self._server = server

    async def read_loop(self) -> None:
        """Handle the client's frames until the socket closes (after ``kill``, frames are
        read and ignored until the close handshake ends)."""
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if not self.closing:
                    self._server.inbound(self, msg.data)
            elif msg.type == WSMsgType.TEXT:
                if not self.closing:
                    self.bad_frame("text frames are not part of the y-websocket protocol")
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    # Sending --------------------------------------------------------------------------------

    def offer(self, message: bytes) -> None:
        """Send one y-websocket message."""
        self.send(binary_frame(message))

    def send(self, frame: bytes) -> None:
        """Write a frame made by ``binary_frame``."""
        transport = self._transport
        if self.closing or self.ws.closed or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._send_buffer:
            self.kill(CLOSE_TRY_AGAIN, "too slow: reconnect")
            return
        transport.write(frame)

    def kill(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        log.info(
            "closing document socket",
            extra={"doc": self.room.name, "connection": self.id, "code": code, "reason": reason},
        )
        self._server.spawn(self.ws.close(code=code, message=reason.encode()))

    def bad_frame(self, why: str) -> None:
        self.bad_frames += 1
        log.info("bad document frame", extra={"doc": self.room.name, "why": why})
        if self.bad_frames >= MAX_BAD_FRAMES:
            self.kill(CLOSE_GARBAGE, "too many malformed frames")


@dataclass(eq=False)
class DocumentRoom:
    name: str
    state: DocumentState
    # The clients' states (the server has none of its own); None until the room is loaded.
    awareness: Awareness | None = None
    # Connections admitted (counted from before the upgrade, so a sweep cannot unload a room a
    # client is about to join).
    holds: int = 0
    idle_since: float | None = None
    unsaved: list[bytes] = field(default_factory=list)
    rows: int = 0  # stored rows, as far as this hub knows (compaction trigger)
    connections: set[YjsConnection] = field(default_factory=set)
    vacant: asyncio.Event = field(default_factory=lambda: _event(is_set=True))  # holds == 0

    @property
    def doc(self) -> Doc[Any]:
        return self.state.doc

    def local_clients(self) -> list[YjsConnection]:
        return list(self.connections)

    def awareness_update(self, client_ids: list[int]) -> bytes | None:
        if self.awareness is None or not client_ids:
            return None
        return self.awareness.encode_awareness_update(client_ids)

    def known_awareness(self) -> list[int]:
        """Client ids with an awareness state here, the server's own excepted."""
        if self.awareness is None:
            return []
        awareness = self.awareness
        return [cid for cid in awareness.states if cid != awareness.client_id]

    def broadcast(self, message: bytes, *, skip: YjsConnection | None = None) -> None:
        """Send a y-websocket message to every local connection but ``skip``."""
        frame = binary_frame(message)
        for conn in self.connections:
            if conn is not skip:
                conn.send(frame)


class DocumentServer:
    """The documents one hub process serves; an async context manager owning its tasks."""

    def __init__(
        self,
        *,
        store: DocumentStore,
        broker: Broker | None,
        clock: Clock,
        tuning: DocumentTuning | None = None,
    ) -> None:
        self.store = store
        self.tuning = tuning or DocumentTuning()
        self.hub_id = uuid.uuid4().bytes
        self.rooms: dict[str, DocumentRoom] = {}
        self._broker = broker
        self._clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._save_lock = asyncio.Lock()
        self._dirty: set[DocumentRoom] = set()
        self._dirty_event = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(100_000)
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopping = False

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("document server already started")
        self._started = True
        if self._broker is not None:
            self._sub = await self._broker.subscribe(queue_size=100_000)
            self._broker.on_reconnect.append(self._resync_all)
            self._tasks += [
                asyncio.create_task(self._route(), name="yjs-relay-in"),
                asyncio.create_task(self._publish_loop(), name="yjs-relay-out"),
                asyncio.create_task(self._resync_loop(), name="yjs-resync"),
            ]
        self._tasks += [
            asyncio.create_task(self._persist_loop(), name="yjs-persist"),
            asyncio.create_task(self._sweep_loop(), name="yjs-sweep"),
        ]

    async def disconnect_all(self, grace: float = 5.0) -> None:
        """Close every client with 1001 (they reconnect, to another hub if there is one) and
        wait a little for their sockets to close. For the app's ``on_shutdown``: once aiohttp
        starts shutting down it ignores what clients send, their close frames included, so a
        socket the server does not close itself stays open until the shutdown timeout."""
        for room in list(self.rooms.values()):
            for conn in room.local_clients():
                conn.kill(CLOSE_GOING_AWAY, "the hub is restarting")
        if self._spawned:
            await asyncio.wait(list(self._spawned), timeout=grace)

    async def close(self) -> None:
        """Close every client, save what is unsaved and stop the rooms."""
        await self.disconnect_all()
        self._stopping = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        background = list(self._tasks)
        for task in background:
            task.cancel()
        # redis-py can swallow a cancellation that lands inside a command; the loops also stop
        # on their own (the flag, the outbox sentinel), and nothing waits for one forever.
        _, stuck = await asyncio.wait(background, timeout=5)
        for task in stuck:
            log.warning("a document task did not stop", extra={"task": task.get_name()})
        try:
            await self.flush()
        except Exception:
            log.exception("could not save documents on shutdown")
        # What this hub only relayed (from a hub that died before saving) is in no log yet:
        # compacting with the live document stores it, as unloading does.
        for room in list(self.rooms.values()):
            try:
                await self.store.compact(room.name, live=room.state)
            except Exception:
                log.exception("could not compact a document on shutdown", extra={"doc": room.name})
        self.rooms.clear()
        if self._sub is not None:
            await self._sub.close()
        for task in list(self._spawned):
            task.cancel()

    async def __aenter__(self) -> DocumentServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def spawn(self, coro: Any) -> None:
        """Run a short side job (closing a socket) held by the server until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # Rooms ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[None]:
        entry = self._locks.get(name)
        if entry is None:
            entry = self._locks[name] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                del self._locks[name]

    async def admit(self, name: str) -> DocumentRoom:
        """The loaded room of ``name``, held for one connection (release with ``release``)."""
        async with self._locked(name):
            room = self.rooms.get(name)
            if room is None:
                room = await self._load(name)
            room.holds += 1
            room.idle_since = None
            room.vacant.clear()
            return room

    def release(self, room: DocumentRoom) -> None:
        room.holds -= 1
        if room.holds == 0:
            room.idle_since = self._clock.monotonic()
            room.vacant.set()

    async def _load(self, name: str) -> DocumentRoom:
        room = DocumentRoom(name, DocumentState())
        # Listen before reading storage: whatever is published from now on arrives here, and
        # anything older is in the database or comes back with the sync request.
        self.rooms[name] = room
        try:
            if self._sub is not None:
                await self._sub.add(channel_of(name))
            rows = await self.store.load(name)
            room.rows = len(rows)
            if rows:
                self._integrate_log(room, rows)
            # The server takes no part in awareness: it only keeps and relays the clients'.
            room.awareness = Awareness(room.doc)
            room.awareness.set_local_state(None)
        except BaseException:
            self.rooms.pop(name, None)
            if self._sub is not None:
                with contextlib.suppress(Exception):
                    await self._sub.remove(channel_of(name))
            raise
        self._relay(room, RelayKind.SYNC_REQUEST, room.state.state_vector)
        log.info("document loaded", extra={"doc": name, "rows": room.rows})
        return room

    def _integrate_log(self, room: DocumentRoom, rows: list[bytes]) -> None:
        try:
            room.state.integrate(merge_updates(*rows))
            return
        except (ValueError, BadUpdate):
            pass
        for row in rows:
            try:
                room.state.integrate(row)
            except BadUpdate:
                log.error("skipped an unreadable stored update", extra={"doc": room.name})

    async def sweep(self) -> list[str]:
        """Unload every room idle for ``unload_after``; returns their names."""
        now = self._clock.monotonic()
        gone = []
        for name, room in list(self.rooms.items()):
            if (
                room.holds == 0
                and room.idle_since is not None
                and now - room.idle_since >= self.tuning.unload_after
                and await self.unload(name)
            ):
                gone.append(name)
        return gone

    async def unload(self, name: str) -> bool:
        """Save, compact and drop a room without clients; False when it has clients (or its
        updates could not be saved: it stays loaded and is tried again later)."""
        async with self._locked(name):
            room = self.rooms.get(name)
            if room is None or room.holds:
                return False
            try:
                await self._save([room])
            except Exception:
                log.exception("could not save a document before unloading", extra={"doc": name})
                return False
            try:
                room.rows = await self.store.compact(name, live=room.state)
            except Exception:
                log.exception("compaction failed", extra={"doc": name})
            del self.rooms[name]
            if self._sub is not None:
                with contextlib.suppress(Exception):
                    await self._sub.remove(channel_of(name))
            log.info("document unloaded", extra={"doc": name})
            return True

    # Clients ---------------------------------------------------------------------------------

    async def serve(
        self, request: web.Request, room: DocumentRoom, *, user_id: int, writable: bool
    ) -> web.WebSocketResponse:
        """Upgrade and serve one client of an admitted room until it leaves."""
        try:
            # No permessage-deflate: a zlib context per socket costs about 300 KB and compressing
            # every frame for every recipient cost more CPU than all the rest (bench/crdt.py);
            # updates are small and mostly incompressible.
            ws = web.WebSocketResponse(
                max_msg_size=self.tuning.max_frame_bytes,
                heartbeat=self.tuning.heartbeat,
                compress=False,
            )
            await ws.prepare(request)
            transport = request.transport
            if transport is None:  # the client went away during the upgrade
                return ws
            conn = YjsConnection(
                ws,
                transport,
                room,
                self,
                user_id=user_id,
                writable=writable,
                send_buffer=self.tuning.send_buffer,
            )
            room.connections.add(conn)
            try:
                conn.offer(sync_step1(room.state.state_vector))
                states = room.awareness_update(room.known_awareness())
                if states is not None:
                    conn.offer(awareness_message(states))
                await conn.read_loop()
            finally:
                room.connections.discard(conn)
                conn.closing = True
                self._forget_awareness(room, conn)
                if not ws.closed:
                    await ws.close()
        finally:
            self.release(room)
        return ws

    def inbound(self, conn: YjsConnection, data: bytes) -> None:
        """Handle one frame a client sent."""
        room = conn.room
        try:
            frame = parse_frame(data)
        except ProtocolError as exc:
            conn.bad_frame(str(exc))
            return
        kind = frame.kind
        if kind is FrameKind.SYNC_STEP1:
            try:
                conn.offer(sync_step2(room.state.missing_for(frame.payload)))
            except BadUpdate:
                conn.bad_frame("sync step 1 without a state vector")
            return
        if kind in (FrameKind.SYNC_STEP2, FrameKind.SYNC_UPDATE):
            if frame.payload == EMPTY_UPDATE:
                return
            if not conn.writable:
                if not conn.denied_sent:
                    conn.denied_sent = True
                    conn.offer(permission_denied("read-only: this document is view-only for you"))
                return
            try:
                room.state.integrate(frame.payload)
            except BadUpdate as exc:
                conn.bad_frame(str(exc))
                return
            # As an update even when it came as sync step 2 (that one marks a y-websocket
            # client "synced"); clients keep what they cannot integrate yet, as Yjs does.
            room.broadcast(
                data if kind is FrameKind.SYNC_UPDATE else sync_update(frame.payload), skip=conn
            )
            self._local_update(room, frame.payload)
            return
        if kind is FrameKind.AWARENESS:
            try:
                entries = parse_awareness(frame.payload)
            except ProtocolError as exc:
                conn.bad_frame(str(exc))
                return
            for entry in entries:
                if entry.removed:
                    conn.awareness_ids.discard(entry.client_id)
                else:
                    conn.awareness_ids.add(entry.client_id)
            if room.awareness is not None:
                room.awareness.apply_awareness_update(frame.payload, conn.id)
            room.broadcast(data)
            self._relay(room, RelayKind.AWARENESS, frame.payload)
            return
        if kind is FrameKind.QUERY_AWARENESS:
            states = room.awareness_update(room.known_awareness())
            if states is not None:
                conn.offer(awareness_message(states))
        # auth frames from clients mean nothing to the server

    def _forget_awareness(self, room: DocumentRoom, conn: YjsConnection) -> None:
        """Remove the states a departed client announced, everywhere, now (the clients would
        otherwise show its cursor for another 30 seconds)."""
        awareness = room.awareness
        if awareness is None:
            return
        ids = [cid for cid in conn.awareness_ids if cid in awareness.states]
        if not ids:
            return
        awareness.remove_awareness_states(ids, "disconnect")
        update = awareness.encode_awareness_update(ids)
        room.broadcast(awareness_message(update))
        self._relay(room, RelayKind.AWARENESS, update)

    def kick(self, name: str, user_id: int, reason: str) -> None:
        """Close ``user_id``'s connections to document ``name`` on every hub (1013): they
        reconnect with a fresh ticket, so a changed role applies at once."""
        room = self.rooms.get(name)
        if room is not None:
            self._kick_here(room, user_id, reason)
        self._relay_named(name, RelayKind.KICK, user_id.to_bytes(8, "big"))

    def _kick_here(self, room: DocumentRoom, user_id: int, reason: str) -> None:
        for conn in room.local_clients():
            if conn.user_id == user_id:
                conn.kill(CLOSE_TRY_AGAIN, reason)

    # Persistence -----------------------------------------------------------------------------

    def _local_update(self, room: DocumentRoom, update: bytes) -> None:
        room.unsaved.append(update)
        self._dirty.add(room)
        self._dirty_event.set()
        self._relay(room, RelayKind.UPDATE, update)

    async def _persist_loop(self) -> None:
        backoff = 0.2
        while True:
            await self._dirty_event.wait()
            await asyncio.sleep(self.tuning.save_delay)
            self._dirty_event.clear()
            rooms = list(self._dirty)
            self._dirty.clear()
            try:
                await self._save(rooms)
                backoff = 0.2
            except Exception:
                log.exception("saving document updates failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for room in rooms:
                if room.rows >= self.tuning.compact_after_rows and room.name in self.rooms:
                    try:
                        room.rows = await self.store.compact(room.name, live=room.state)
                    except Exception:
                        log.exception("compaction failed", extra={"doc": room.name})

    async def _save(self, rooms: list[DocumentRoom]) -> None:
        """Write each room's unsaved updates as one row; on failure they stay unsaved."""
        async with self._save_lock:
            batch: dict[str, bytes] = {}
            taken: dict[DocumentRoom, list[bytes]] = {}
            for room in rooms:
                if not room.unsaved:
                    continue
                updates, room.unsaved = room.unsaved, []
                taken[room] = updates
                batch[room.name] = updates[0] if len(updates) == 1 else merge_updates(*updates)
            try:
                await self.store.append(batch)
            except BaseException:
                for room, updates in taken.items():
                    room.unsaved[:0] = updates
                    self._dirty.add(room)
                self._dirty_event.set()
                raise
            for room in taken:
                room.rows += 1

    async def flush(self) -> None:
        """Save every unsaved update now."""
        await self._save(list(self.rooms.values()))

    # Relay between hubs ----------------------------------------------------------------------

    def _relay(
        self, room: DocumentRoom, kind: RelayKind, payload: bytes, target: bytes = EVERY_HUB
    ) -> None:
        self._relay_named(room.name, kind, payload, target)

    def _relay_named(
        self, name: str, kind: RelayKind, payload: bytes, target: bytes = EVERY_HUB
    ) -> None:
        if self._sub is None:
            return
        envelope = Envelope(kind, self.hub_id, target, payload).encode()
        try:
            self._outbox.put_nowait((channel_of(name), envelope))
        except asyncio.QueueFull:
            # Anti-entropy (SYNC_OFFER every resync_every) repairs what is dropped here.
            log.warning("relay queue full; dropped a message", extra={"doc": name})

    async def _publish_loop(self) -> None:
        assert self._broker is not None
        while not self._stopping:
            item = await self._outbox.get()
            if item is None:
                return
            channel, data = item
            try:
                await self._broker.publish(channel, data)
            except Exception:
                log.warning("broker publish failed", extra={"channel": channel})

    async def _route(self) -> None:
        assert self._sub is not None
        async for message in self._sub:
            name = doc_of(message.channel)
            room = self.rooms.get(name) if name is not None else None
            if room is None:
                continue
            try:
                envelope = Envelope.decode(message.data)
            except ValueError:
                log.warning("dropped a malformed relay message", extra={"doc": name})
                continue
            if envelope.sender == self.hub_id or envelope.target not in (EVERY_HUB, self.hub_id):
                continue
            try:
                self._on_relay(room, envelope)
            except (BadUpdate, ProtocolError) as exc:
                log.warning("bad relay message", extra={"doc": name, "error": str(exc)})

    def _on_relay(self, room: DocumentRoom, envelope: Envelope) -> None:
        kind, payload, sender = envelope.kind, envelope.payload, envelope.sender
        if kind in (RelayKind.UPDATE, RelayKind.SYNC_REPLY):
            room.state.integrate(payload)
            room.broadcast(sync_update(payload))
        elif kind is RelayKind.AWARENESS:
            parse_awareness(payload)
            if room.awareness is not None:
                room.awareness.apply_awareness_update(payload, "relay")
            room.broadcast(awareness_message(payload))
        elif kind is RelayKind.KICK:
            if len(payload) != 8:
                raise ProtocolError("a kick names one user id")
            self._kick_here(room, int.from_bytes(payload, "big"), "your access changed")
        elif kind in (RelayKind.SYNC_REQUEST, RelayKind.SYNC_OFFER):
            missing = room.state.missing_for(payload)
            if missing != EMPTY_UPDATE:
                self._relay(room, RelayKind.SYNC_REPLY, missing, sender)
            if kind is RelayKind.SYNC_REQUEST:
                self._relay(room, RelayKind.SYNC_OFFER, room.state.state_vector, sender)
                mine = [cid for conn in room.local_clients() for cid in conn.awareness_ids]
                known = room.awareness.states if room.awareness is not None else {}
                states = room.awareness_update([cid for cid in mine if cid in known])
                if states is not None:
                    self._relay(room, RelayKind.AWARENESS, states, sender)

    async def _resync_all(self) -> None:
        for room in list(self.rooms.values()):
            self._relay(room, RelayKind.SYNC_REQUEST, room.state.state_vector)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.resync_every)
            for room in list(self.rooms.values()):
                if room.awareness is not None:  # loaded
                    self._relay(room, RelayKind.SYNC_OFFER, room.state.state_vector)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.sweep_every)
            try:
                await self.sweep()
            except Exception:
                log.exception("document sweep failed")


def _event(*, is_set: bool) -> asyncio.Event:
    event = asyncio.Event()
    if is_set:
        event.set()
    return event
