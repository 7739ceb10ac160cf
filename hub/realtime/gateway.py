"""The ``/ws`` gateway: one WebSocket per tab, many channels (protocol: docs/realtime.md).

Every hub process holds one broker subscription for the channels its connections use and
routes each broker message to those connections: a frame is serialized once, by whoever
published it, and the same bytes are queued for every recipient. Durable channels carry
per-channel sequence numbers; the router delivers them in order, drops duplicates and fills gaps
from the database, so a Redis hiccup or a lagging subscriber loses nothing. Each connection has
a bounded send queue: a client that cannot keep up is cut off (close code 4008) and recovers by
resubscribing with ``since``, never slowing the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web
from sqlalchemy import select

from hub.broker import Broker, Subscription
from hub.clock import Clock
from hub.db import Database
from hub.errors import CohortError, ErrorCode, Forbidden, NotFound, Unauthenticated
from hub.identity.models import AuthSession, User
from hub.realtime.collector import Collector
from hub.realtime.commit import GroupCommit
from hub.realtime.presence import REFRESH_EVERY, PresenceStore
from hub.realtime.store import (
    Companion,
    Guard,
    MessageStore,
    Pending,
    Stored,
    is_presence,
    message_frame,
    move_standing,
    pack,
    standing_version,
    unpack,
    unwire,
    wire,
    wire_presence,
)
from hub.realtime.tickets import Ticket, TicketStore

log = logging.getLogger(__name__)

CHANNEL_NAME = re.compile(r"^[a-z]+(:[A-Za-z0-9_.-]{1,64}){1,4}$")
CLOSE_SLOW = 4008
CLOSE_GARBAGE = 4400
CLOSE_REVOKED = 4401
MAX_CHANNELS_PER_CONNECTION = 200
MAX_BAD_FRAMES = 10
REPLAY_PAGE = 500
MAX_PENDING = 1024  # messages held for a channel while its replay is being sent
# A reply goes straight to a socket with less than this unsent; beyond, through aiohttp's
# writer, which waits for the socket to drain.
REPLY_DIRECT = 64 * 1024
# A durable message that arrives ahead of a missing one waits this long for it (seconds), and
# at most this many per channel, before the gap is read from the database.
GAP_WAIT = 0.25
MAX_EARLY = 256
# Cards (name, colour) of online users kept for presence lists: how many, and for how long.
PEOPLE_CACHED = 50_000
PEOPLE_TTL = 60.0
# Broker channel of the gateway's own control messages (evictions), heard by every hub.
CONTROL_CHANNEL = "gateway-control"
# Broker channel of the durable messages a hub stored in one batch (group commit), packed into
# one broker message (``pack``) and heard by every hub: one publish per batch, and one message
# to read per batch on each hub, instead of one per message.
BATCH_CHANNEL = "gateway-batch"
# Joins and leaves of a channel's members on this hub within this many seconds go out as one
# presence event: a room of n filling up costs n events per member, not n² in all.
PRESENCE_BATCH = 0.25
# Channels whose presence lists are read per round trip, and users' cards read per query.
PRESENCE_CHUNK = 50
CARDS_PER_READ = 1000


class RealtimeError(CohortError):
    """A refusal sent as an error frame (``code`` is the frame's code)."""

    status, code, title = 409, ErrorCode.CONFLICT, "Refused"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who publishes: the connection's user."""

    user: User
    session_id: str


class ChannelPolicy(Protocol):
    """What a package says about its channels (registered by prefix, e.g. ``chat``)."""

    durable: bool
    presence: bool

    async def can_subscribe(self, user: User, channel: str) -> bool: ...

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        """Handle a client's publish; return the stored sequence number (durable) or None.
        Raise a CohortError to refuse (sent back as an error frame)."""
        ...

    async def snapshot(self, user: User, channel: str) -> list[dict[str, Any]]:
        """Message data sent to a new subscriber right after it subscribed (current state)."""
        ...

    async def current(self, channel: str) -> list[dict[str, Any]]:
        """An ephemeral channel's state as it stands, for all its subscribers (reading it
        changes nothing): sent again to this hub's members after the hub's broker connection
        came back, since what was published meanwhile never reached them."""
        ...


class BasePolicy:
    durable = False
    presence = False

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return False

    async def publish(self, sender: Sender, channel: str, data: dict[str, Any]) -> int | None:
        raise Forbidden("This channel does not take messages from clients.")

    async def snapshot(self, user: User, channel: str) -> list[dict[str, Any]]:
        return []

    async def current(self, channel: str) -> list[dict[str, Any]]:
        return []


class UserChannel(BasePolicy):
    """``user:<id>``: that user's notifications and personal events; only they subscribe."""

    durable = True

    async def can_subscribe(self, user: User, channel: str) -> bool:
        return channel == f"user:{user.id}"


@dataclass
class _ChannelState:
    live: bool = False
    pending: list[tuple[int | None, bytes]] = field(default_factory=list)


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, uncompressed WebSocket text frame (RFC 6455 §5.2): built
    once per message, written as is to every recipient."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class Connection:
    """One client socket. Channel messages are written straight to its transport, framed once
    per message for all recipients (the sockets never compress, and aiohttp writes an
    uncompressed frame in one synchronous call too, so frames cannot interleave): no task or
    queue per connection. A socket with more than ``send_buffer`` bytes unsent when a message
    comes is cut off with 4008 and resubscribes with ``since``; replies and replays wait for
    the socket to drain instead."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        user: User,
        session_id: str,
        send_buffer: int,
    ) -> None:
        self.ws = ws
        self.user = user
        self.session_id = session_id
        self.id = uuid.uuid4().hex
        self.channels: dict[str, _ChannelState] = {}
        self._transport = transport
        self._send_buffer = send_buffer
        self.closing = False
        self.closer: asyncio.Task[Any] | None = None
        self.bad_frames = 0

    def push(self, channel: str, frame: bytes, framed: bytes | None = None) -> None:
        """From the router: a channel message (in order, de-duplicated); ``framed`` is
        ``text_frame(frame)`` when the caller has it."""
        state = self.channels.get(channel)
        if state is None or self.closing:
            return
        if not state.live:
            state.pending.append((None, frame))
            if len(state.pending) > MAX_PENDING:
                self.kill(CLOSE_SLOW, "too slow: resubscribe with since")
            return
        self.offer(frame, framed)

    def offer(self, frame: bytes, framed: bytes | None = None) -> None:
        """Write without waiting; a socket this far behind means the client cannot keep up."""
        transport = self._transport
        if self.closing or self.ws.closed or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._send_buffer:
            self.kill(CLOSE_SLOW, "too slow: resubscribe with since")
            return
        transport.write(framed if framed is not None else text_frame(frame))

    async def send(self, payload: dict[str, Any] | bytes) -> None:
        """A reply or a replayed message, waiting for the socket to drain when it has much
        unsent (replies and replays are paced by the client)."""
        if self.closing or self.ws.closed:
            return
        frame = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        transport = self._transport
        if transport.is_closing():
            self.closing = True
            return
        if transport.get_write_buffer_size() < REPLY_DIRECT:
            # Framed here and written at once, like channel messages: an ack per publish
            # through aiohttp's writer cost more than the write itself.
            transport.write(text_frame(frame))
            return
        try:
            await self.ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.closing = True

    def kill(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        log.info(
            "closing websocket",
            extra={
                "connection": self.id,
                "user_id": self.user.id,
                "code": code,
                "reason": reason,
                "unsent": self._transport.get_write_buffer_size(),
            },
        )
        self.closer = asyncio.get_running_loop().create_task(
            self.ws.close(code=code, message=reason.encode())
        )


class Gateway:
    def __init__(
        self,
        *,
        db: Database,
        broker: Broker,
        tickets: TicketStore,
        presence: PresenceStore,
        clock: Clock,
        send_buffer: int,
        max_frame_bytes: int,
    ) -> None:
        self.store = MessageStore(db)
        # This hub among the others on the broker (its own batches come back to it).
        self._id = uuid.uuid4().hex
        self._commit = GroupCommit(self.store, self._announce_many)
        self.tickets = tickets
        self._db = db
        self._broker = broker
        self._presence = presence
        self._clock = clock
        self._send_buffer = send_buffer
        self._max_frame = max_frame_bytes
        self._policies: dict[str, ChannelPolicy] = {"user": UserChannel()}
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Connections' leaves under way (``open``), which ``close`` waits for.
        self._leaving: set[asyncio.Task[None]] = set()
        self.members: dict[str, set[Connection]] = {}
        self._joining: dict[str, asyncio.Future[None]] = {}
        self._last_seq: dict[str, int] = {}
        self._repairing: dict[str, list[int]] = {}
        # Durable messages that came ahead of a gap (channel -> seq -> frame), each channel's
        # for at most GAP_WAIT seconds (the timer), then the gap is read from the database.
        self._early: dict[str, dict[int, bytes]] = {}
        self._gap_timers: dict[str, asyncio.TimerHandle] = {}
        self.connections: set[Connection] = set()
        # The garbage collector's policy while this hub holds many sockets (collector.py).
        self._collector = Collector()
        # channel -> user id -> local connections (presence counts users, not tabs)
        self._present: dict[str, dict[int, int]] = {}
        # user id -> (their card in presence lists, monotonic time it was read): a big room's
        # subscribers all ask who is online, and reading every member anew for each of them
        # made joining a room of 2,000 quadratic in database work.
        self._people: OrderedDict[int, tuple[dict[str, Any], float]] = OrderedDict()
        # Presence changes not announced yet: channel -> user id -> (joined, card); the last
        # change of a user in the batch window is the one that counts.
        self._presence_out: dict[str, dict[int, tuple[bool, dict[str, Any]]]] = {}
        self._presence_due = asyncio.Event()
        # Who is online in each channel with presence that has members here (user id -> card),
        # as the presence store said when it was loaded and the presence events heard since: a
        # new subscriber's list comes from here, not from a read of the store per subscriber,
        # which made a room of n filling up quadratic again.
        self._online: dict[str, dict[int, dict[str, Any]]] = {}
        self._online_loading: dict[str, asyncio.Future[None]] = {}
        # Presence events heard while a channel's list is being (re)loaded: applied after.
        self._online_heard: dict[str, list[bytes]] = {}
        # Set when every list must be read again (the broker reconnected: events may be lost).
        self._presence_resync = asyncio.Event()
        self._dropped_seen = 0
        self.hooks_on_disconnect: list[Callable[[Connection], Awaitable[None]]] = []
        # After a connection left a channel (unsubscribed, evicted or disconnected).
        self.hooks_on_leave: list[Callable[[User, str], Awaitable[None]]] = []

    # Wiring -------------------------------------------------------------------------------

    def register(self, prefix: str, policy: ChannelPolicy) -> None:
        if prefix in self._policies:
            raise ValueError(f"channel prefix {prefix!r} is taken")
        self._policies[prefix] = policy

    def policy_for(self, channel: str) -> ChannelPolicy | None:
        return self._policies.get(channel.split(":", 1)[0])

    async def start(self) -> None:
        # No channel yet: a hub starts (and says it is not ready) while Redis is down.
        self._sub = await self._broker.subscribe(queue_size=100_000)
        self._broker.on_reconnect.append(self.catch_up)
        # This hub counts in presence before its first member joins (else their entries would
        # not count until the first beat). Redis may be down: the beats go on retrying.
        try:
            await self._presence.heartbeat()
            first_beat = REFRESH_EVERY
        except Exception:
            log.warning("presence heartbeat failed; retrying", exc_info=True)
            first_beat = 0.0
        self._tasks = [
            asyncio.create_task(self._route(), name="gateway-router"),
            asyncio.create_task(self._keep_presence(first_beat), name="gateway-presence"),
            asyncio.create_task(self._announce_presence(), name="gateway-presence-events"),
            asyncio.create_task(self._listen_for_control(), name="gateway-control"),
            asyncio.create_task(self._collector.run(), name="gateway-collector"),
        ]

    async def _listen_for_control(self) -> None:
        assert self._sub is not None
        backoff = 0.2
        while True:
            try:
                await self._sub.add(CONTROL_CHANNEL, BATCH_CHANNEL)
                return
            except Exception:
                log.warning("gateway control channel not subscribed yet; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def shutdown(self) -> None:
        """First thing when the hub stops (``on_shutdown``): tell every client to go elsewhere
        (1001) instead of keeping sockets that no longer hear anything."""
        for conn in list(self.connections):
            conn.kill(1001, "the hub is restarting")

    async def close(self) -> None:
        await self.shutdown()
        while self._leaving:
            await asyncio.gather(*self._leaving, return_exceptions=True)
        await self._commit.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_presence()  # the last leaves
        try:
            await self._presence.retire()
        except Exception:  # Redis is gone: the others see this hub die instead
            log.warning("presence not retired", exc_info=True)
        if self._sub is not None:
            try:
                await self._sub.close()
            except Exception:  # the broker is gone already; nothing left to unsubscribe
                log.warning("gateway subscription not closed cleanly", exc_info=True)

    # Publishing (for packages) ---------------------------------------------------------------

    async def publish_durable(
        self,
        channel: str,
        data: dict[str, Any],
        *,
        author_id: int | None = None,
        now: datetime | None = None,
        companions: Sequence[Companion] = (),
        guard: Guard | None = None,
    ) -> Stored:
        """Store a message (the channel's next sequence number) with its ``companions`` rows in
        one transaction, then fan it out; returns once both are done. Messages published
        meanwhile share the transaction (group commit: hub/realtime/commit.py).

        Raises:
            NotStored: ``guard`` refused it in that transaction; nothing was written."""
        pending = Pending(
            channel, data, author_id, now or self._clock.now(), tuple(companions), guard
        )
        return await self._commit.submit(pending)

    async def _announce_many(self, stored: Sequence[Stored]) -> None:
        # This hub's own members have them at once, not a Redis round trip later (the batch
        # that comes back from the broker is this hub's own, and skipped).
        for s in stored:
            if s.channel in self.members:
                self._sequenced(s.channel, s.seq, s.frame)
        payloads = [(s.channel, wire(s.seq, s.frame)) for s in stored]
        try:
            # Not waiting for Redis's answer: the messages are stored, the publish is on its way
            # (in order with this hub's others), and this hub's next batch of admissions goes
            # down the same connection right behind it.
            await self._broker.post_many([(BATCH_CHANNEL, pack(self._id, payloads))])
        except Exception:
            log.warning(
                "broker publish failed; subscribers repair from storage",
                extra={"messages": len(stored)},
            )

    async def announce(self, stored: Stored) -> None:
        """Fan out a message stored (and committed) by the caller. A broker failure loses
        nothing: subscribers fill the gap from the database."""
        try:
            await self._broker.publish(stored.channel, wire(stored.seq, stored.frame))
        except Exception:
            log.warning(
                "broker publish failed; subscribers repair from storage",
                extra={"channel": stored.channel, "seq": stored.seq},
            )

    async def publish_ephemeral(self, channel: str, data: dict[str, Any]) -> None:
        """Typing, presence, live state: not stored, no sequence number."""
        frame = message_frame(channel, None, data)
        try:
            await self._broker.publish(channel, wire(None, frame))
        except Exception:
            log.warning("broker publish failed (ephemeral)", extra={"channel": channel})

    # Routing --------------------------------------------------------------------------------

    async def standing_changed(self) -> None:
        """After a change to who may post where (a mute, a role, a channel's slow mode) was
        committed: every hub reads its members' standing anew before their next message (the
        messages stored from then on are checked against the new version). One kept past a
        move that failed lasts until it expires (``rooms.chat.STANDING_TTL``)."""
        try:
            async with self._db.writing() as conn:
                await move_standing(conn)
        except Exception:
            log.warning("standing version not moved", exc_info=True)

    async def standing_version(self) -> int:
        """The version of members' standing: read it before reading a member's standing, and
        store their messages guarded by it (``Guard``): a message whose sender's standing
        changed meanwhile is refused (``NotStored``), to be admitted again."""
        async with self._db.connect() as conn:
            return await standing_version(conn)

    async def evict(self, channel: str, user_id: int, reason: str) -> None:
        """End a user's subscriptions to a channel on every hub (banned, left, unfriended):
        their connections get ``{"op":"unsubscribed","channel":C,"reason":…}``, and every hub
        reads members' standing anew (``standing_changed``)."""
        await self.standing_changed()
        payload = orjson.dumps({"evict": channel, "user_id": user_id, "reason": reason})
        try:
            await self._broker.publish(CONTROL_CHANNEL, payload)
        except Exception:
            log.warning("eviction not broadcast", extra={"channel": channel}, exc_info=True)
            await self._evict_here(channel, user_id, reason)

    async def _evict_here(self, channel: str, user_id: int, reason: str) -> None:
        for conn in [c for c in self.members.get(channel, ()) if c.user.id == user_id]:
            if channel in conn.channels:
                await self._unsubscribe(conn, channel)
                conn.offer(
                    orjson.dumps({"op": "unsubscribed", "channel": channel, "reason": reason})
                )

    async def _route(self) -> None:
        assert self._sub is not None
        async for message in self._sub:
            if message.channel == CONTROL_CHANNEL:
                try:
                    control = orjson.loads(message.data)
                    await self._evict_here(
                        str(control["evict"]), int(control["user_id"]), str(control["reason"])
                    )
                except Exception:
                    log.warning("bad gateway control message", exc_info=True)
                continue
            if message.channel == BATCH_CHANNEL:
                try:
                    origin, batch = unpack(message.data)
                except ValueError:
                    log.warning("dropped a malformed broker batch")
                    continue
                if origin != self._id:
                    for channel, payload in batch:
                        self._deliver_heard(channel, payload)
                continue
            self._deliver_heard(message.channel, message.data)

    def _deliver_heard(self, channel: str, payload: bytes) -> None:
        # One message that fails here must not end the router: every later one would be lost.
        try:
            self._dispatch(channel, payload)
        except Exception:
            log.exception("a broker message was not delivered", extra={"channel": channel})

    def _dispatch(self, channel: str, payload: bytes) -> None:
        conns = self.members.get(channel)
        if not conns:
            return
        try:
            seq, frame = unwire(payload)
        except ValueError:
            log.warning("dropped a malformed broker message", extra={"channel": channel})
            return
        if seq is None:
            if is_presence(payload):
                self._presence_heard(channel, frame)
            framed = text_frame(frame)
            for conn in tuple(conns):
                conn.push(channel, frame, framed)
            return
        self._sequenced(channel, seq, frame)

    def _sequenced(self, channel: str, seq: int, frame: bytes) -> None:
        """A durable message for this hub's members of ``channel``: delivered in order, once."""
        if channel in self._repairing:
            self._repairing[channel].append(seq)
            return
        last = self._last_seq.get(channel, 0)
        if seq <= last:
            return
        if seq > last + 1:
            # Usually the missing ones are on their way: another hub stored them just before
            # this one, and its broker message is still in flight. Wait for them a moment
            # before reading the gap from the database.
            early = self._early.setdefault(channel, {})
            early[seq] = frame
            if len(early) > MAX_EARLY:
                self._fill_gap(channel)
            elif channel not in self._gap_timers:
                self._gap_timers[channel] = asyncio.get_running_loop().call_later(
                    GAP_WAIT, self._fill_gap, channel
                )
            return
        self._deliver(channel, seq, frame)
        ahead = self._early.get(channel)
        if ahead is not None:
            while (next_frame := ahead.pop(seq + 1, None)) is not None:
                seq += 1
                self._deliver(channel, seq, next_frame)
            for stale in [n for n in ahead if n <= seq]:
                del ahead[stale]
            if not ahead:
                self._forget_gap(channel)

    def _fill_gap(self, channel: str) -> None:
        """The messages that came ahead of a gap waited long enough: read the gap (and them)
        from the database."""
        early = self._forget_gap(channel)
        if not early or channel not in self.members:
            return
        if channel in self._repairing:
            self._repairing[channel].extend(early)
            return
        self._repairing[channel] = list(early)
        asyncio.get_running_loop().create_task(self._repair(channel))

    def _forget_gap(self, channel: str) -> dict[int, bytes]:
        timer = self._gap_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        return self._early.pop(channel, {})

    def _deliver(self, channel: str, seq: int, frame: bytes) -> None:
        self._last_seq[channel] = seq
        framed = text_frame(frame)
        for conn in tuple(self.members.get(channel, ())):
            conn.push(channel, frame, framed)

    async def _repair(self, channel: str) -> None:
        """Deliver, from the database, everything up to the highest sequence number seen."""
        backoff = 0.2
        try:
            while channel in self.members:
                wanted = self._repairing.get(channel, [])
                last = self._last_seq.get(channel, 0)
                target = max(wanted, default=last)
                if target <= last:
                    break
                try:
                    rows = await self.store.after(channel, last, target, limit=REPLAY_PAGE)
                except Exception:
                    log.exception("gap repair failed; retrying", extra={"channel": channel})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not rows:
                    break
                for row in rows:
                    if row.seq > self._last_seq.get(channel, 0):
                        self._deliver(channel, row.seq, row.frame)
        finally:
            self._repairing.pop(channel, None)

    async def catch_up(self) -> None:
        """After the broker reconnects: fetch whatever was published while it was away, and
        read the presence lists again (their events are not stored)."""
        self._presence_resync.set()
        durable = [c for c in self.members if (p := self.policy_for(c)) and p.durable]
        if durable:
            heads = await self.store.heads(durable)
            for channel, head in heads.items():
                if head > self._last_seq.get(channel, 0) and channel not in self._repairing:
                    self._repairing[channel] = [head]
                    asyncio.get_running_loop().create_task(self._repair(channel))
        # Ephemeral channels have nothing stored to repair from: their members here get the
        # state as it stands now instead (a watch party's playback, a call's roster).
        for channel in list(self.members):
            policy = self.policy_for(channel)
            if policy is None or policy.durable:
                continue
            try:
                for data in await policy.current(channel):
                    self._push_here(channel, data)
            except Exception:
                log.exception("channel state not sent again", extra={"channel": channel})

    def _push_here(self, channel: str, data: dict[str, Any]) -> None:
        """An ephemeral message to this hub's members of ``channel`` only."""
        conns = self.members.get(channel)
        if not conns:
            return
        frame = message_frame(channel, None, data)
        framed = text_frame(frame)
        for conn in tuple(conns):
            conn.push(channel, frame, framed)

    async def _join(self, channel: str, conn: Connection, durable: bool) -> None:
        waiting = self._joining.get(channel)
        if waiting is not None:
            await asyncio.shield(waiting)
        members = self.members.get(channel)
        if members is not None:
            members.add(conn)
            return
        assert self._sub is not None
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joining[channel] = ready
        self.members[channel] = {conn}
        try:
            # Subscribe first, then read the head: anything newer arrives through the broker
            # (or is repaired); anything older is dropped as a duplicate.
            await self._sub.add(channel)
            if durable:
                head = await self.store.head(channel)
                self._last_seq[channel] = max(self._last_seq.get(channel, 0), head)
        finally:
            ready.set_result(None)
            del self._joining[channel]

    async def _leave(self, channel: str, conn: Connection) -> None:
        members = self.members.get(channel)
        if members is None:
            return
        members.discard(conn)
        if not members and channel not in self._joining:
            del self.members[channel]
            self._last_seq.pop(channel, None)
            self._forget_gap(channel)
            self._online.pop(channel, None)
            assert self._sub is not None
            await self._sub.remove(channel)

    # Presence -------------------------------------------------------------------------------

    async def _present_join(self, channel: str, user: User) -> None:
        users = self._present.setdefault(channel, {})
        users[user.id] = users.get(user.id, 0) + 1
        if users[user.id] == 1:
            card = self._remember(user, time.monotonic())
            await self._presence.join(channel, user.id)
            self._presence_changed(channel, user.id, True, card)

    async def _present_leave(self, channel: str, user: User) -> None:
        users = self._present.get(channel)
        if not users or user.id not in users:
            return
        users[user.id] -= 1
        if users[user.id] > 0:
            return
        del users[user.id]
        if not users:
            del self._present[channel]
        if not await self._presence.leave(channel, user.id, last_here=not users):
            self._presence_changed(channel, user.id, False, _person(user))

    def _presence_changed(
        self, channel: str, user_id: int, joined: bool, card: dict[str, Any]
    ) -> None:
        self._presence_out.setdefault(channel, {})[user_id] = (joined, card)
        self._presence_due.set()

    async def _announce_presence(self) -> None:
        """Every ``PRESENCE_BATCH`` seconds at most, one event per channel whose members came
        or went here: ``{"type":"presence","joined":[cards],"left":[cards]}``."""
        while True:
            await self._presence_due.wait()
            await asyncio.sleep(PRESENCE_BATCH)
            await self._flush_presence()

    async def _flush_presence(self) -> None:
        self._presence_due.clear()
        changes, self._presence_out = self._presence_out, {}
        events = []
        for channel, users in changes.items():
            joined = [card for came, card in users.values() if came]
            left = [card for came, card in users.values() if not came]
            data = {"type": "presence", "joined": joined, "left": left}
            events.append((channel, wire_presence(message_frame(channel, None, data))))
        if not events:
            return
        try:
            await self._broker.publish_many(events)
        except Exception:
            log.warning("presence events not published", extra={"channels": len(events)})

    def _presence_heard(self, channel: str, frame: bytes) -> None:
        """A presence event from the broker (this hub's or another's): keep the list."""
        heard = self._online_heard.get(channel)
        if heard is not None:
            heard.append(frame)
        self._apply_presence(channel, frame)

    def _apply_presence(self, channel: str, frame: bytes) -> None:
        online = self._online.get(channel)
        if online is None:
            return
        try:
            data = orjson.loads(frame)["data"]
            for card in data["joined"]:
                online[int(card["id"])] = card
            for card in data["left"]:
                online.pop(int(card["id"]), None)
        except (ValueError, KeyError, TypeError):
            log.warning("dropped a malformed presence event", extra={"channel": channel})

    async def _load_online(self, *channels: str) -> None:
        """(Re)load channels' lists from the presence store (one round trip for them all),
        then apply what was heard meanwhile (an event heard before the read saw its change is
        applied twice: no harm)."""
        heard: dict[str, list[bytes]] = {channel: [] for channel in channels}
        self._online_heard.update(heard)
        try:
            ids = await self._presence.online_many(channels)
            cards = await self._cards({i for found in ids.values() for i in found})
        finally:
            for channel, frames in heard.items():
                if self._online_heard.get(channel) is frames:
                    del self._online_heard[channel]
        for channel in channels:
            if channel not in self.members:
                continue
            self._online[channel] = {i: cards[i] for i in ids[channel] if i in cards}
            for frame in heard[channel]:
                self._apply_presence(channel, frame)

    async def _online_here(self, channel: str) -> list[dict[str, Any]]:
        """Who is online in ``channel`` for a new subscriber: the list kept here, with this
        hub's own changes not announced yet."""
        if channel not in self._online:
            loading = self._online_loading.get(channel)
            if loading is not None:
                await asyncio.shield(loading)
            else:
                loading = asyncio.get_running_loop().create_future()
                self._online_loading[channel] = loading
                try:
                    await self._load_online(channel)
                finally:
                    loading.set_result(None)
                    del self._online_loading[channel]
        online = dict(self._online.get(channel, {}))
        for user_id, (joined, card) in self._presence_out.get(channel, {}).items():
            if joined:
                online[user_id] = card
            else:
                online.pop(user_id, None)
        return [online[user_id] for user_id in sorted(online)]

    async def online_ids(self, channel: str) -> set[int]:
        """Ids of the users connected to a channel with presence, on any hub."""
        return set(await self._presence.online(channel))

    async def online(self, channel: str) -> list[dict[str, Any]]:
        """Cards of the users online in a channel, by id. A card may be up to
        ``PEOPLE_TTL`` seconds old (a renamed user shows under the old name that long)."""
        ids = sorted(set(await self._presence.online(channel)))
        cards = await self._cards(ids)
        return [cards[i] for i in ids if i in cards]

    async def _cards(self, ids: Collection[int]) -> dict[int, dict[str, Any]]:
        """Cards of these users (those that exist), from memory or read at once."""
        now = time.monotonic()
        cards: dict[int, dict[str, Any]] = {}
        for user_id in ids:
            known = self._people.get(user_id)
            if known is not None and known[1] > now - PEOPLE_TTL:
                cards[user_id] = known[0]
        missing = sorted(i for i in ids if i not in cards)
        if missing:
            async with self._db.sessions() as s:
                for at in range(0, len(missing), CARDS_PER_READ):
                    chunk = missing[at : at + CARDS_PER_READ]
                    # Columns, not ORM objects: thousands at each presence refresh.
                    rows = await s.execute(
                        select(User.id, User.display_name, User.avatar_color).where(
                            User.id.in_(chunk)
                        )
                    )
                    for user_id, name, color in rows:
                        card = {"id": user_id, "display_name": name, "avatar_color": color}
                        cards[user_id] = self._keep_card(card, now)
        return cards

    def _remember(self, user: User, now: float) -> dict[str, Any]:
        return self._keep_card(_person(user), now)

    def _keep_card(self, card: dict[str, Any], now: float) -> dict[str, Any]:
        self._people[card["id"]] = (card, now)
        self._people.move_to_end(card["id"])
        while len(self._people) > PEOPLE_CACHED:
            self._people.popitem(last=False)
        return card

    async def _keep_presence(self, wait: float) -> None:
        """Beat every ``REFRESH_EVERY`` seconds (one call however many channels this hub
        serves). The lists kept here change only by presence events, and are read again
        when one may have been missed: a hub died (its members leave without an event), the
        broker reconnected, or this hub's broker queue overflowed. When the store lost this
        hub's entries (Redis restarted), they are written again and announced as joins, so
        that the other hubs' lists, read while they were missing, get them back."""
        resync = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._presence_resync.wait(), wait)
            resync = resync or self._presence_resync.is_set()
            self._presence_resync.clear()
            try:
                beat = await self._presence.heartbeat()
                if beat.lost:
                    await self._restore_presence()
                for hub in beat.dead:
                    await self._presence.forget(hub)
                dropped = self._sub.dropped if self._sub is not None else 0
                if resync or beat.lost or beat.dead or dropped != self._dropped_seen:
                    self._dropped_seen = dropped
                    # A few channels per round trip: one pipeline for thousands would hold
                    # the event loop (and every delivery) for tens of milliseconds.
                    channels = list(self._online)
                    for at in range(0, len(channels), PRESENCE_CHUNK):
                        await self._load_online(*channels[at : at + PRESENCE_CHUNK])
                resync = False
                wait = REFRESH_EVERY
            except Exception:
                log.warning("presence heartbeat failed; retrying", exc_info=True)
                resync = True  # read the lists again once it works
                wait = 1.0

    async def _restore_presence(self) -> None:
        present = {channel: set(users) for channel, users in self._present.items()}
        await self._presence.restore(present)
        cards = await self._cards({u for users in present.values() for u in users})
        for channel, users in present.items():
            for user_id in users:
                if user_id in cards:
                    self._presence_changed(channel, user_id, True, cards[user_id])

    # Connections ------------------------------------------------------------------------------

    async def open(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws?ticket=…``: a missing, used or expired ticket is refused before the
        upgrade (401 problem)."""
        token = request.query.get("ticket", "")
        ticket = await self.tickets.redeem(token) if token else None
        if ticket is None or ticket.doc is not None:
            raise Unauthenticated(
                "This WebSocket ticket is missing, used or expired: "
                "get a new one from POST /api/realtime/ticket."
            )
        user = await self._user_of(ticket)
        # No permessage-deflate: a zlib context per socket costs more memory than the rest of
        # the connection, and compressing each frame per recipient undoes serializing once.
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=self._max_frame, compress=False)
        await ws.prepare(request)
        transport = request.transport
        if transport is None:  # gone during the upgrade
            return ws
        conn = Connection(ws, transport, user, ticket.session_id, self._send_buffer)
        self.connections.add(conn)
        self._collector.opened()
        try:
            await self._read_loop(conn)
        finally:
            conn.closing = True
            self.connections.discard(conn)
            self._collector.closed()
            # To its end even when the handler is cancelled meanwhile (the client went away, or
            # the hub stops): a half-done leave would keep the user online, and the channel
            # subscribed, for as long as the hub runs.
            leaving = asyncio.get_running_loop().create_task(self._disconnected(conn))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)
            await asyncio.shield(leaving)
            if not ws.closed:
                await ws.close()
        return ws

    async def _disconnected(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            try:
                await self._unsubscribe(conn, channel)
            except Exception:
                log.exception("leaving a channel failed", extra={"channel": channel})
        for hook in self.hooks_on_disconnect:
            with contextlib.suppress(Exception):
                await hook(conn)
        if conn.closer is not None:  # the close code it chose goes out first
            with contextlib.suppress(Exception):
                await conn.closer

    async def _user_of(self, ticket: Ticket) -> User:
        now = self._clock.now()
        async with self._db.sessions() as s:
            row = (
                await s.execute(
                    select(User, AuthSession)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(User.id == ticket.user_id, AuthSession.id == ticket.session_id)
                )
            ).first()
        if row is None:
            raise Unauthenticated("This session has ended; sign in again.")
        user, session = row
        if session.revoked_at is not None or session.expires_at <= now:
            raise Unauthenticated("This session has ended; sign in again.")
        return user

    async def _read_loop(self, conn: Connection) -> None:
        async for msg in conn.ws:
            if conn.closing:
                break
            if msg.type == WSMsgType.TEXT:
                await self._handle_text(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await self._bad_frame(conn, None, "binary frames are not part of the protocol")
            elif msg.type == WSMsgType.ERROR:
                break

    async def _bad_frame(self, conn: Connection, ref: Any, message: str) -> None:
        conn.bad_frames += 1
        await self._error(conn, ref, "bad_frame", message)
        if conn.bad_frames >= MAX_BAD_FRAMES:
            conn.kill(CLOSE_GARBAGE, "too many malformed frames")

    async def _error(
        self,
        conn: Connection,
        ref: Any,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """An error frame; ``extra`` adds the refusal's details (``retry_after``, field
        ``errors``), as problem+json does over HTTP."""
        await conn.send(
            {**(extra or {}), "op": "error", "ref": ref, "code": code, "message": message}
        )

    async def _handle_text(self, conn: Connection, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self._bad_frame(conn, None, "not JSON")
            return
        if not isinstance(frame, dict):
            await self._bad_frame(conn, None, "a frame is a JSON object")
            return
        ref = frame.get("ref")
        if ref is not None and not (
            isinstance(ref, (str, int)) and not isinstance(ref, bool) and len(str(ref)) <= 64
        ):
            await self._bad_frame(conn, None, "ref must be a string or integer (≤ 64 characters)")
            return
        op = frame.get("op")
        try:
            if op == "ping":
                await conn.send({"op": "pong", "ref": ref, "server_time": int(time.time() * 1000)})
            elif op == "subscribe":
                await self._op_subscribe(conn, frame, ref)
            elif op == "unsubscribe":
                channel = self._channel_of(frame)
                if channel not in conn.channels:
                    raise RealtimeError(
                        "Not subscribed to this channel.", code=ErrorCode.NOT_SUBSCRIBED
                    )
                await self._unsubscribe(conn, channel)
                await conn.send({"op": "unsubscribed", "ref": ref, "channel": channel})
            elif op == "publish":
                await self._op_publish(conn, frame, ref)
            else:
                await self._bad_frame(
                    conn, ref, "op must be subscribe, unsubscribe, publish or ping"
                )
        except _BadFrame as exc:
            await self._bad_frame(conn, ref, str(exc))
        except CohortError as exc:
            await self._error(conn, ref, str(exc.code), exc.detail, exc.extra())
        except Exception:
            # The database or the broker failed: this frame is refused, the connection lives.
            log.exception("websocket frame failed", extra={"connection": conn.id})
            await self._error(conn, ref, "unavailable", "Try again in a moment.")

    def _channel_of(self, frame: dict[str, Any]) -> str:
        channel = frame.get("channel")
        if not isinstance(channel, str) or len(channel) > 200 or not CHANNEL_NAME.match(channel):
            raise _BadFrame("channel must be a channel name like chat:community:12")
        return channel

    async def _op_subscribe(self, conn: Connection, frame: dict[str, Any], ref: Any) -> None:
        channel = self._channel_of(frame)
        since = frame.get("since")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            raise _BadFrame("since must be a sequence number (an integer ≥ 0)")
        policy = self.policy_for(channel)
        if policy is None:
            raise NotFound("No such channel.")
        if channel in conn.channels:
            raise RealtimeError(
                "Already subscribed to this channel.", code=ErrorCode.ALREADY_SUBSCRIBED
            )
        if len(conn.channels) >= MAX_CHANNELS_PER_CONNECTION:
            raise RealtimeError(
                "Too many channels on one connection.", code=ErrorCode.TOO_MANY_CHANNELS
            )
        if not await policy.can_subscribe(conn.user, channel):
            raise Forbidden("You may not subscribe to this channel.")
        state = _ChannelState()
        conn.channels[channel] = state
        try:
            await self._join(channel, conn, policy.durable)
        except BaseException:
            conn.channels.pop(channel, None)
            with contextlib.suppress(Exception):
                await self._leave(channel, conn)
            raise
        if conn.closing or channel not in conn.channels:
            return
        # No await between taking `upto` and buffering: every later message is pending.
        upto = self._last_seq.get(channel, 0) if policy.durable else 0
        recovered = False
        replay: list[Stored] = []
        if policy.durable and since is not None:
            recovered = since <= upto
            after = since
            while recovered and after < upto:
                page = await self.store.after(channel, after, upto, limit=REPLAY_PAGE)
                if not page:
                    break
                replay.extend(page)
                after = page[-1].seq
                if len(replay) >= 10 * REPLAY_PAGE:
                    break
        await conn.send(
            {
                "op": "subscribed",
                "ref": ref,
                "channel": channel,
                "seq": upto,
                "recovered": recovered,
            }
        )
        for row in replay:
            await conn.send(row.frame)
        if replay and replay[-1].seq < upto:
            # A very long absence: the rest streams page by page without holding the socket.
            after = replay[-1].seq
            while after < upto and not conn.closing:
                page = await self.store.after(channel, after, upto, limit=REPLAY_PAGE)
                if not page:
                    break
                for row in page:
                    await conn.send(row.frame)
                after = page[-1].seq
        for data in await policy.snapshot(conn.user, channel):
            await conn.send(message_frame(channel, None, data))
        if policy.presence:
            await self._present_join(channel, conn.user)
            await conn.send(
                {"op": "presence", "channel": channel, "online": await self._online_here(channel)}
            )
        state.live = True
        for _seq, pending in state.pending:
            conn.offer(pending)
        state.pending.clear()

    async def _unsubscribe(self, conn: Connection, channel: str) -> None:
        conn.channels.pop(channel, None)
        await self._leave(channel, conn)
        policy = self.policy_for(channel)
        if policy is not None and policy.presence:
            await self._present_leave(channel, conn.user)
        for hook in self.hooks_on_leave:
            try:
                await hook(conn.user, channel)
            except Exception:
                log.exception("leave hook failed", extra={"channel": channel})

    async def _op_publish(self, conn: Connection, frame: dict[str, Any], ref: Any) -> None:
        channel = self._channel_of(frame)
        data = frame.get("data")
        if not isinstance(data, dict):
            raise _BadFrame("data must be a JSON object")
        policy = self.policy_for(channel)
        if policy is None:
            raise NotFound("No such channel.")
        if data.get("type") == "typing" and policy.presence:
            if channel not in conn.channels:
                raise Forbidden("Subscribe to this channel first.")
            await self.publish_ephemeral(channel, {"type": "typing", "user": _person(conn.user)})
            await conn.send({"op": "ack", "ref": ref, "seq": None})
            return
        seq = await policy.publish(Sender(conn.user, conn.session_id), channel, data)
        await conn.send({"op": "ack", "ref": ref, "seq": seq})


class _BadFrame(Exception):
    pass


def _person(user: User) -> dict[str, Any]:
    return {"id": user.id, "display_name": user.display_name, "avatar_color": user.avatar_color}
