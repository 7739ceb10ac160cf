"""Single-use, short-lived tickets that authenticate a WebSocket upgrade (browsers cannot set
headers on one). Kept in Redis when configured, so a ticket from one hub opens a socket on
another; in memory on the embedded default."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis.asyncio import Redis

from hub.clock import Clock

TICKET_TTL_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Ticket:
    user_id: int
    session_id: str
    doc: str | None = None  # for /yjs/{doc}: the document it opens


class TicketStore(Protocol):
    async def issue(self, ticket: Ticket) -> str: ...

    async def redeem(self, token: str) -> Ticket | None:
        """The ticket, once; None when unknown, used or expired."""
        ...


def _encode(ticket: Ticket) -> bytes:
    return orjson.dumps({"u": ticket.user_id, "s": ticket.session_id, "d": ticket.doc})


def _decode(raw: bytes | str) -> Ticket:
    value = orjson.loads(raw)
    return Ticket(int(value["u"]), str(value["s"]), value.get("d"))


class MemoryTickets:
    def __init__(self, clock: Clock, ttl: float = TICKET_TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl
        self._tickets: dict[str, tuple[float, bytes]] = {}

    async def issue(self, ticket: Ticket) -> str:
        now = self._clock.monotonic()
        if len(self._tickets) > 1000:
            self._tickets = {k: v for k, v in self._tickets.items() if v[0] > now}
        token = secrets.token_urlsafe(24)
        self._tickets[token] = (now + self._ttl, _encode(ticket))
        return token

    async def redeem(self, token: str) -> Ticket | None:
        entry = self._tickets.pop(token, None)
        if entry is None or entry[0] < self._clock.monotonic():
            return None
        return _decode(entry[1])


class RedisTickets:
    def __init__(self, redis: Redis, prefix: str, ttl: int = TICKET_TTL_SECONDS) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:ticket:"
        self._ttl = ttl

    async def issue(self, ticket: Ticket) -> str:
        token = secrets.token_urlsafe(24)
        await self._redis.set(self._prefix + token, _encode(ticket), ex=self._ttl)
        return token

    async def redeem(self, token: str) -> Ticket | None:
        raw = await self._redis.getdel(self._prefix + token)
        if raw is None:
            return None
        return _decode(raw)
