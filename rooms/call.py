"""A watch party's video call: signalling relayed on ``call:<id>`` (docs/watch-parties.md, "Call").

Every browser tab in the call is a *peer* with an id it chose (random, 8 to 64 characters): one user
may be in the call from two tabs. A peer first subscribes to its inbox ``call:<id>:<peer>``, which
claims the id for its user (nobody else may subscribe to it, or use it), then to ``call:<id>``,
and publishes ``join``. Offers, answers and ICE candidates name the addressee's peer id in ``to``;
the hub checks both ends are in the call, adds ``from`` and publishes on the addressee's inbox
only, so third parties never see them. The roster (who is in, with what media, mesh or SFU)
lives in a ``CallRoster`` (Redis when configured) so every hub process sees one call.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson

from hub.clock import Clock
from hub.errors import FieldError, Forbidden, NotFound, ValidationFailed
from hub.identity.models import User
from hub.realtime.gateway import Gateway

# Up to this many peers the call is a mesh (each browser sends its video to every other one:
# n-1 uploads); a fifth peer moves everyone to the SFU. The call stays on the SFU until it
# empties, so a call hovering around the threshold does not flap between the two.
MESH_MAX = 4
MAX_SDP = 32_000
MAX_CANDIDATE = 2_000
PEER_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SIGNALS = ("offer", "answer", "ice")


@dataclass(frozen=True, slots=True)
class Participant:
    peer: str
    user_id: int
    display_name: str
    audio: bool
    video: bool
    joined_at: int


@dataclass(frozen=True, slots=True)
class SfuRoom:
    room: int
    secret: str


class CallRoster(Protocol):
    """One call's shared state: peer owners, participants, the SFU room (if any)."""

    async def claim(self, call: int, peer: str, user_id: int) -> bool:
        """Own ``peer`` for ``user_id`` unless another user owns it; True if the user owns it."""
        ...

    async def get(self, call: int) -> dict[str, str]: ...

    async def put(self, call: int, field: str, value: str) -> None: ...

    async def put_new(self, call: int, field: str, value: str) -> bool: ...

    async def drop(self, call: int, *fields: str) -> None: ...


class MemoryRoster:
    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    async def claim(self, call: int, peer: str, user_id: int) -> bool:
        owner = self._calls.setdefault(call, {}).setdefault(f"owner:{peer}", str(user_id))
        return owner == str(user_id)

    async def get(self, call: int) -> dict[str, str]:
        return dict(self._calls.get(call, {}))

    async def put(self, call: int, field: str, value: str) -> None:
        self._calls.setdefault(call, {})[field] = value

    async def put_new(self, call: int, field: str, value: str) -> bool:
        fields = self._calls.setdefault(call, {})
        if field in fields:
            return False
        fields[field] = value
        return True

    async def drop(self, call: int, *fields: str) -> None:
        state = self._calls.get(call, {})
        for name in fields:
            state.pop(name, None)


class RedisRoster:
    """A Redis hash per call (``HSETNX`` makes claims and the SFU room race-free)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:call:"

    def _key(self, call: int) -> str:
        return f"{self._prefix}{call}"

    async def claim(self, call: int, peer: str, user_id: int) -> bool:
        await self._redis.hsetnx(self._key(call), f"owner:{peer}", str(user_id))
        owner = await self._redis.hget(self._key(call), f"owner:{peer}")
        return _text(owner) == str(user_id)

    async def get(self, call: int) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key(call))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def put(self, call: int, field: str, value: str) -> None:
        await self._redis.hset(self._key(call), field, value)

    async def put_new(self, call: int, field: str, value: str) -> bool:
        return bool(await self._redis.hsetnx(self._key(call), field, value))

    async def drop(self, call: int, *fields: str) -> None:
        if fields:
            await self._redis.hdel(self._key(call), *fields)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Sfu(Protocol):
    """The media server for calls above the mesh size (rooms/janus.py)."""

    url: str

    async def create_room(self, secret: str, tokens: list[str]) -> int: ...

    async def allow(self, room: int, secret: str, tokens: list[str]) -> None: ...

    async def destroy_room(self, room: int, secret: str) -> None: ...


# May ``user`` be in party ``party_id``'s call? Raises Forbidden / NotFound with the reason.
MayJoin = Callable[[User, int], Awaitable[None]]


def parse_call_channel(channel: str) -> tuple[int, str | None] | None:
    """``call:<id>`` → (id, None); ``call:<id>:<peer>`` → (id, peer); anything else → None."""
    parts = channel.split(":")
    if parts[0] != "call" or len(parts) not in (2, 3) or not parts[1].isdigit():
        return None
    if len(parts) == 3 and not PEER_ID.match(parts[2]):
        return None
    return int(parts[1]), (parts[2] if len(parts) == 3 else None)


def call_channel(call: int) -> str:
    return f"call:{call}"


def inbox_channel(call: int, peer: str) -> str:
    return f"call:{call}:{peer}"


class Calls:
    """The rules of a call: who may be in it, what a signalling frame may say, mesh or SFU."""

    def __init__(
        self,
        gateway: Gateway,
        roster: CallRoster,
        may_join: MayJoin,
        clock: Clock,
        sfu: Sfu | None = None,
        mesh_max: int = MESH_MAX,
    ) -> None:
        self._gateway = gateway
        self._roster = roster
        self._may_join = may_join
        self._clock = clock
        self._sfu = sfu
        self.mesh_max = mesh_max

    async def may_subscribe(self, user: User, channel: str) -> bool:
        parsed = parse_call_channel(channel)
        if parsed is None:
            raise NotFound("No such call channel.")
        call, peer = parsed
        await self._may_join(user, call)
        if peer is not None and not await self._roster.claim(call, peer, user.id):
            raise Forbidden("This peer id belongs to someone else.")
        return True

    async def snapshot(self, user: User, channel: str) -> list[dict[str, Any]]:
        return await self.current(channel)

    async def current(self, channel: str) -> list[dict[str, Any]]:
        """The roster on ``call:<id>``, and a peer's own roster (its Janus token) on its inbox."""
        parsed = parse_call_channel(channel)
        assert parsed is not None
        call, peer = parsed
        state = await self._roster.get(call)
        if peer is None:
            return [self._roster_frame(state, None)]
        if f"peer:{peer}" in state and state.get("mode") == "sfu":
            return [self._roster_frame(state, peer)]
        return []

    async def publish(self, user: User, channel: str, data: dict[str, Any]) -> None:
        """A member's signalling frame on ``call:<id>``.

        Raises:
            ValidationFailed: malformed frame. Forbidden: not this user's peer, or not in the
            call. NotFound: addressee not in the call.
        """
        parsed = parse_call_channel(channel)
        if parsed is None or parsed[1] is not None:
            raise Forbidden("Publish signalling on call:<id>, not on an inbox.")
        call = parsed[0]
        await self._may_join(user, call)
        kind = data.get("type")
        peer = data.get("peer")
        if not isinstance(peer, str) or not PEER_ID.match(peer):
            raise _invalid("peer", "peer must be your peer id (8 to 64 letters, digits, - or _).")
        state = await self._roster.get(call)
        if state.get(f"owner:{peer}") != str(user.id):
            raise Forbidden("Subscribe to your inbox call:<id>:<peer> before using a peer id.")
        if kind == "join":
            await self._join(user, call, peer, data.get("media"))
        elif kind == "leave":
            await self.leave(call, peer)
        elif kind in SIGNALS:
            await self._relay(call, peer, state, kind, data)
        else:
            raise _invalid("type", "type must be join, leave, offer, answer or ice.")

    async def _join(self, user: User, call: int, peer: str, media: Any) -> None:
        if not isinstance(media, dict) or set(media) - {"audio", "video"}:
            raise _invalid("media", "media must be {audio: bool, video: bool}.")
        audio, video = media.get("audio", False), media.get("video", False)
        if not isinstance(audio, bool) or not isinstance(video, bool):
            raise _invalid("media", "media.audio and media.video are booleans.")
        now = int(self._clock.now().timestamp() * 1000)
        who = Participant(peer, user.id, user.display_name, audio, video, now)
        await self._roster.put(call, f"peer:{peer}", orjson.dumps(asdict(who)).decode())
        state = await self._roster.get(call)
        if state.get("mode") != "sfu" and len(_participants(state)) > self.mesh_max:
            state = await self._to_sfu(call, state)
        elif state.get("mode") == "sfu" and f"token:{peer}" not in state:
            state = await self._allow(call, state, [peer])
        await self._announce(call, state)

    async def leave(self, call: int, peer: str) -> None:
        """A peer left (or its inbox subscription ended): drop it; an empty call resets."""
        state = await self._roster.get(call)
        if f"peer:{peer}" not in state:
            return
        await self._roster.drop(call, f"peer:{peer}", f"token:{peer}")
        state = await self._roster.get(call)
        if not _participants(state) and state.get("mode") == "sfu":
            await self._roster.drop(call, "mode", "sfu")
            if self._sfu is not None and "sfu" in state:
                room = SfuRoom(**orjson.loads(state["sfu"]))
                # A media server that is gone took its room with it.
                with contextlib.suppress(Exception):
                    await self._sfu.destroy_room(room.room, room.secret)
            state = await self._roster.get(call)
        await self._announce(call, state)

    async def end(self, call: int, reason: str) -> None:
        """The party ended: the roster and the SFU room go, and every subscriber of the call's
        channels (on any hub) is unsubscribed with ``reason``, so its page hangs up."""
        state = await self._roster.get(call)
        subscribers = await self._gateway.online_ids(call_channel(call))
        inboxes = {
            name.removeprefix("owner:"): int(owner)
            for name, owner in state.items()
            if name.startswith("owner:")
        }
        if state:
            await self._roster.drop(call, *state)
        if self._sfu is not None and "sfu" in state:
            room = SfuRoom(**orjson.loads(state["sfu"]))
            with contextlib.suppress(Exception):
                await self._sfu.destroy_room(room.room, room.secret)
        for peer, owner in inboxes.items():
            await self._gateway.evict(inbox_channel(call, peer), owner, reason)
        for user_id in subscribers:
            await self._gateway.evict(call_channel(call), user_id, reason)

    async def prune(self, call: int) -> None:
        """Drop participants whose inbox nobody is connected to any more: their hub died
        without running its leave hooks. Presence (shared across hubs) outlives a dead hub by
        at most its time to live."""
        state = await self._roster.get(call)
        for peer, who in _participants(state).items():
            if who.user_id not in await self._gateway.online_ids(inbox_channel(call, peer)):
                await self.leave(call, peer)

    async def _relay(
        self, call: int, peer: str, state: dict[str, str], kind: str, data: dict[str, Any]
    ) -> None:
        to = data.get("to")
        if not isinstance(to, str) or not PEER_ID.match(to) or to == peer:
            raise _invalid("to", "to must be another peer's id.")
        if f"peer:{peer}" not in state:
            raise Forbidden("Join the call first.")
        if f"peer:{to}" not in state:
            raise NotFound("That peer is not in the call.")
        out: dict[str, Any] = {"type": kind, "from": peer, "to": to}
        if kind in ("offer", "answer"):
            sdp = data.get("sdp")
            if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP:
                raise _invalid("sdp", f"sdp must be a non-empty string (≤ {MAX_SDP}).")
            out["sdp"] = sdp
        else:
            candidate = data.get("candidate")
            if candidate is not None and not _candidate_ok(candidate):
                raise _invalid(
                    "candidate", "candidate must be {candidate, sdpMid?, sdpMLineIndex?} or null."
                )
            out["candidate"] = candidate
        await self._gateway.publish_ephemeral(inbox_channel(call, to), out)

    async def _to_sfu(self, call: int, state: dict[str, str]) -> dict[str, str]:
        if self._sfu is None:
            raise Forbidden(f"Calls above {self.mesh_max} need a media server (COHORT_JANUS_URL).")
        secret = secrets.token_urlsafe(24)
        tokens = {p: secrets.token_urlsafe(24) for p in _participants(state)}
        room = await self._sfu.create_room(secret, list(tokens.values()))
        if not await self._roster.put_new(
            call, "sfu", orjson.dumps(asdict(SfuRoom(room, secret))).decode()
        ):
            # Another hub switched first: use its room.
            await self._sfu.destroy_room(room, secret)
            return await self._allow(call, await self._roster.get(call), list(tokens))
        for peer, token in tokens.items():
            await self._roster.put(call, f"token:{peer}", token)
        await self._roster.put(call, "mode", "sfu")
        return await self._roster.get(call)

    async def _allow(self, call: int, state: dict[str, str], peers: list[str]) -> dict[str, str]:
        assert self._sfu is not None
        room = SfuRoom(**orjson.loads(state["sfu"]))
        tokens = {p: secrets.token_urlsafe(24) for p in peers}
        await self._sfu.allow(room.room, room.secret, list(tokens.values()))
        for peer, token in tokens.items():
            await self._roster.put(call, f"token:{peer}", token)
        await self._roster.put(call, "mode", "sfu")
        return await self._roster.get(call)

    async def _announce(self, call: int, state: dict[str, str]) -> None:
        await self._gateway.publish_ephemeral(call_channel(call), self._roster_frame(state, None))
        if state.get("mode") == "sfu":
            # Each peer's Janus token goes to its inbox only.
            for peer in _participants(state):
                await self._gateway.publish_ephemeral(
                    inbox_channel(call, peer), self._roster_frame(state, peer)
                )

    def _roster_frame(self, state: dict[str, str], peer: str | None) -> dict[str, Any]:
        mode = state.get("mode", "mesh")
        people = sorted(_participants(state).values(), key=lambda p: (p.joined_at, p.peer))
        frame: dict[str, Any] = {
            "type": "roster",
            "mode": mode,
            "mesh_max": self.mesh_max,
            "participants": [
                {
                    "peer": p.peer,
                    "user": {"id": p.user_id, "display_name": p.display_name},
                    "media": {"audio": p.audio, "video": p.video},
                }
                for p in people
            ],
        }
        if mode == "sfu" and "sfu" in state and self._sfu is not None:
            room = SfuRoom(**orjson.loads(state["sfu"]))
            sfu: dict[str, Any] = {"url": self._sfu.url, "room": room.room}
            if peer is not None and f"token:{peer}" in state:
                sfu["token"] = state[f"token:{peer}"]
            frame["sfu"] = sfu
        return frame


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, message)])


def _participants(state: dict[str, str]) -> dict[str, Participant]:
    return {
        name[5:]: Participant(**orjson.loads(value))
        for name, value in state.items()
        if name.startswith("peer:")
    }


def _candidate_ok(candidate: Any) -> bool:
    if not isinstance(candidate, dict) or set(candidate) - {
        "candidate",
        "sdpMid",
        "sdpMLineIndex",
        "usernameFragment",
    }:
        return False
    text = candidate.get("candidate")
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    return (
        isinstance(text, str)
        and len(text) <= MAX_CANDIDATE
        and (mid is None or (isinstance(mid, str) and len(mid) <= 64))
        and (index is None or (isinstance(index, int) and 0 <= index < 64))
    )
