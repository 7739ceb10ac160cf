"""Durable channel messages: sequence numbers assigned in the storing transaction, frames built
once, history and replay by sequence number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.broker import Broker
from hub.db import Database
from hub.realtime.models import ChannelHead, ChannelMessage

EPHEMERAL = b"-"


def message_frame(channel: str, seq: int | None, data: dict[str, Any]) -> bytes:
    """The server → client frame of a channel message; the same bytes for every recipient."""
    return orjson.dumps({"op": "message", "channel": channel, "seq": seq, "data": data})


def wire(seq: int | None, frame: bytes) -> bytes:
    """What travels on the broker: the sequence number (or ``-``) and the frame, so a hub can
    order and de-duplicate without parsing JSON."""
    return (str(seq).encode() if seq is not None else EPHEMERAL) + b"\n" + frame


def unwire(payload: bytes) -> tuple[int | None, bytes]:
    """Raises ValueError for a payload that is not in this format."""
    head, sep, frame = payload.partition(b"\n")
    if not sep:
        raise ValueError("not a gateway payload")
    return (None if head == EPHEMERAL else int(head)), frame


def event_data(payload: bytes) -> dict[str, Any]:
    """The ``data`` of a message as it travels on the broker (tests and tools)."""
    _, frame = unwire(payload)
    data: dict[str, Any] = orjson.loads(frame)["data"]
    return data


async def publish_event(broker: Broker, channel: str, data: dict[str, Any]) -> None:
    """Publish an ephemeral event (no sequence number, not stored) to a gateway channel, for
    code that has the broker but not the gateway (workers)."""
    await broker.publish(channel, wire(None, message_frame(channel, None, data)))


@dataclass(frozen=True, slots=True)
class Stored:
    channel: str
    seq: int
    frame: bytes


class MessageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        s: AsyncSession,
        channel: str,
        data: dict[str, Any],
        *,
        author_id: int | None,
        now: datetime,
    ) -> Stored:
        """Store a message inside the caller's transaction and give it the channel's next
        sequence number. Publish ``wire(stored.seq, stored.frame)`` after the commit."""
        dialect = s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(ChannelHead)
            .values(channel=channel, last_seq=1)
            .on_conflict_do_update(
                index_elements=[ChannelHead.channel],
                set_={"last_seq": ChannelHead.last_seq + 1},
            )
            .returning(ChannelHead.last_seq)
        )
        seq = int((await s.execute(statement)).scalar_one())
        s.add(
            ChannelMessage(channel=channel, seq=seq, author_id=author_id, data=data, created_at=now)
        )
        await s.flush()
        return Stored(channel, seq, message_frame(channel, seq, data))

    async def head(self, channel: str) -> int:
        async with self._db.sessions() as s:
            seq = await s.scalar(select(ChannelHead.last_seq).where(ChannelHead.channel == channel))
        return int(seq or 0)

    async def heads(self, channels: Sequence[str]) -> dict[str, int]:
        async with self._db.sessions() as s:
            rows = (
                await s.execute(
                    select(ChannelHead.channel, ChannelHead.last_seq).where(
                        ChannelHead.channel.in_(list(channels))
                    )
                )
            ).all()
        found = {c: int(n) for c, n in rows}
        return {c: found.get(c, 0) for c in channels}

    async def after(self, channel: str, after: int, upto: int, limit: int = 500) -> list[Stored]:
        """Messages with ``after < seq <= upto``, oldest first, at most ``limit``."""
        async with self._db.sessions() as s:
            rows = (
                await s.execute(
                    select(ChannelMessage.seq, ChannelMessage.data)
                    .where(
                        ChannelMessage.channel == channel,
                        ChannelMessage.seq > after,
                        ChannelMessage.seq <= upto,
                    )
                    .order_by(ChannelMessage.seq)
                    .limit(limit)
                )
            ).all()
        return [Stored(channel, seq, message_frame(channel, seq, data)) for seq, data in rows]

    async def before(
        self, channel: str, before: int | None, limit: int
    ) -> list[tuple[int, dict[str, Any], datetime]]:
        """History, newest first: messages with ``seq < before``."""
        async with self._db.sessions() as s:
            query = (
                select(ChannelMessage.seq, ChannelMessage.data, ChannelMessage.created_at)
                .where(ChannelMessage.channel == channel)
                .order_by(ChannelMessage.seq.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(ChannelMessage.seq < before)
            rows = (await s.execute(query)).all()
        return [(seq, data, created) for seq, data, created in rows]
