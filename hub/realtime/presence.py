"""Who is online in a channel, across hub processes.

Each hub records its own members (``join``, ``leave``) and says every ``REFRESH_EVERY``
seconds that it is alive (``heartbeat``). A member counts while their hub does: a hub that has
not beaten for ``HUB_TTL`` seconds is dead, its members no longer count, and the next hub to
notice removes them (``forget``). So keeping a hub's members alive costs one call per interval
however many channels it serves, instead of rewriting every channel's entries (thousands of
commands, and a pause of the event loop, every interval)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis

HUB_TTL = 60.0
REFRESH_EVERY = 20.0
# Channels read or written per round trip when a hub's entries are restored or removed.
CHANNELS_PER_CALL = 200


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat found. ``lost``: the store had no live record of this hub (Redis lost
    its data, or the hub went unheard for longer than ``HUB_TTL``), so this hub's entries must be
    written again (``restore``). ``dead``: other hubs that stopped beating."""

    lost: bool = False
    dead: list[str] = field(default_factory=list)


class PresenceStore(Protocol):
    async def join(self, channel: str, user_id: int) -> None: ...

    async def leave(self, channel: str, user_id: int, *, last_here: bool) -> bool:
        """This hub's entry for the user goes; ``last_here`` when none of this hub's users is
        left in the channel. True when the user is still online there through another hub
        (so that nobody is told they left)."""
        ...

    async def online(self, channel: str) -> list[int]: ...

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        """``online`` of each channel, in one round trip where it can."""
        ...

    async def heartbeat(self) -> Beat:
        """Say this hub is alive; every ``REFRESH_EVERY`` seconds."""
        ...

    async def restore(self, members: dict[str, set[int]]) -> None:
        """Write this hub's entries again (channel → users connected here), after a heartbeat
        found them lost."""
        ...

    async def forget(self, hub: str) -> None:
        """Remove the entries of a hub that died (it no longer counts meanwhile)."""
        ...

    async def retire(self) -> None:
        """This hub stops: its entries go, and it no longer counts."""
        ...


class MemoryPresence:
    """One process: no other hub to be online through, none to die."""

    def __init__(self) -> None:
        self._online: dict[str, set[int]] = defaultdict(set)

    async def join(self, channel: str, user_id: int) -> None:
        self._online[channel].add(user_id)

    async def leave(self, channel: str, user_id: int, *, last_here: bool) -> bool:
        users = self._online.get(channel)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._online[channel]
        return False

    async def online(self, channel: str) -> list[int]:
        return sorted(self._online.get(channel, ()))

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        return {channel: await self.online(channel) for channel in channels}

    async def heartbeat(self) -> Beat:
        return Beat()

    async def restore(self, members: dict[str, set[int]]) -> None:
        for channel, users in members.items():
            self._online[channel] |= users

    async def forget(self, hub: str) -> None:
        return None

    async def retire(self) -> None:
        return None


class RedisPresence:
    """Keys under ``<prefix>:``: ``online:<channel>``, a sorted set of ``<user>:<hub>`` scored by
    the user's id (a leave reads that user's entries alone, not the whole room);
    ``presence-hubs``, a sorted set of the hubs, scored by when each stops counting;
    ``presence-hub:<hub>``, the set of channels where that hub has entries (for ``forget``)."""

    def __init__(self, redis: Redis, prefix: str, hub_id: str, *, ttl: float = HUB_TTL) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hub = hub_id
        self._ttl = ttl
        self._hubs = f"{prefix}:presence-hubs"

    def _channel_key(self, channel: str) -> str:
        return f"{self._prefix}:online:{channel}"

    def _hub_key(self, hub: str) -> str:
        return f"{self._prefix}:presence-hub:{hub}"

    async def join(self, channel: str, user_id: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._channel_key(channel), {f"{user_id}:{self._hub}": user_id})
            pipe.sadd(self._hub_key(self._hub), channel)
            await pipe.execute()

    async def leave(self, channel: str, user_id: int, *, last_here: bool) -> bool:
        key = self._channel_key(channel)
        # One transaction: of two hubs whose last tabs of a user close at once, exactly one
        # sees the other's entry gone and says the user left.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(key, f"{user_id}:{self._hub}")
            if last_here:
                pipe.srem(self._hub_key(self._hub), channel)
            pipe.zrangebyscore(key, user_id, user_id)
            pipe.zrangebyscore(self._hubs, time.time(), "+inf")
            *_, entries, hubs = await pipe.execute()
        live = {_text(h) for h in hubs}
        return any(_text(e).partition(":")[2] in live for e in entries)

    async def online(self, channel: str) -> list[int]:
        return (await self.online_many([channel]))[channel]

    async def online_many(self, channels: Sequence[str]) -> dict[str, list[int]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self._hubs, time.time(), "+inf")
            for channel in channels:
                pipe.zrange(self._channel_key(channel), 0, -1)
            hubs, *replies = await pipe.execute()
        live = {_text(h) for h in hubs}
        found: dict[str, list[int]] = {}
        for channel, members in zip(channels, replies, strict=True):
            users = set()
            for member in map(_text, members):
                user, _, hub = member.partition(":")
                if hub in live:
                    users.add(int(user))
            found[channel] = sorted(users)
        return found

    async def heartbeat(self) -> Beat:
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zscore(self._hubs, self._hub)
            pipe.zadd(self._hubs, {self._hub: now + self._ttl})
            pipe.zrangebyscore(self._hubs, "-inf", now)
            score, _, dead = await pipe.execute()
        return Beat(
            lost=score is None or float(score) < now,
            dead=[h for h in map(_text, dead) if h != self._hub],
        )

    async def restore(self, members: dict[str, set[int]]) -> None:
        channels = [c for c, users in members.items() if users]
        for at in range(0, len(channels), CHANNELS_PER_CALL):
            chunk = channels[at : at + CHANNELS_PER_CALL]
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel in chunk:
                    entries = {f"{u}:{self._hub}": u for u in members[channel]}
                    pipe.zadd(self._channel_key(channel), entries)
                pipe.sadd(self._hub_key(self._hub), *chunk)
                await pipe.execute()

    async def forget(self, hub: str) -> None:
        # One hub cleans up after a dead one; the others go on (its members no longer count).
        if not await self._redis.set(f"{self._prefix}:presence-forget:{hub}", 1, nx=True, ex=60):
            return
        suffix = f":{hub}"
        channels = sorted(_text(c) for c in await self._redis.smembers(self._hub_key(hub)))
        for at in range(0, len(channels), CHANNELS_PER_CALL):
            chunk = channels[at : at + CHANNELS_PER_CALL]
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel in chunk:
                    pipe.zrange(self._channel_key(channel), 0, -1)
                replies = await pipe.execute()
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, members in zip(chunk, replies, strict=True):
                    gone = [m for m in map(_text, members) if m.endswith(suffix)]
                    if gone:
                        pipe.zrem(self._channel_key(channel), *gone)
                await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._hub_key(hub))
            pipe.zrem(self._hubs, hub)
            await pipe.execute()

    async def retire(self) -> None:
        await self._redis.zrem(self._hubs, self._hub)
        await self.forget(self._hub)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
