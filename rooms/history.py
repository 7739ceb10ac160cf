"""Reading chat: history pages of messages as they read now, read markers and unread counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import Clock
from hub.db import Database
from hub.errors import Forbidden, NotFound
from hub.identity.models import User
from hub.realtime.models import ChannelHead
from rooms.access import Access, ChannelAccess
from rooms.channels import parse_channel
from rooms.models import ChatMessage, ReadMarker

# Channels per IN (…) list when counting unread messages.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class MessageView:
    message: ChatMessage
    author: User | None


class ChatHistory:
    def __init__(self, db: Database, clock: Clock, access: ChannelAccess) -> None:
        self._db = db
        self._clock = clock
        self._access = access

    async def _member(self, s: AsyncSession, user_id: int, channel: str) -> Access:
        ref = parse_channel(channel)
        if ref is None:
            raise NotFound("No such chat channel.")
        access = await self._access.of(s, user_id, ref)
        if access is None:
            raise Forbidden("You are not a member of this channel.")
        return access

    async def page(
        self, user_id: int, channel: str, *, before: int | None, limit: int
    ) -> list[MessageView]:
        """Messages with ``seq < before``, newest first, at most ``limit``.

        Raises:
            NotFound: not a chat channel name. Forbidden: not a member.
        """
        async with self._db.sessions() as s:
            await self._member(s, user_id, channel)
            query = (
                select(ChatMessage, User)
                .outerjoin(User, User.id == ChatMessage.author_id)
                .where(ChatMessage.channel == channel)
                .order_by(ChatMessage.seq.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(ChatMessage.seq < before)
            rows = (await s.execute(query)).all()
        return [MessageView(message, author) for message, author in rows]

    async def mark_read(self, user_id: int, channel: str, seq: int) -> int:
        """Move the user's read marker up to ``seq`` (never back, never past the channel's
        head); returns the channel's unread count."""
        now = self._clock.now()
        async with self._db.transaction() as s:
            await self._member(s, user_id, channel)
            head = await s.scalar(
                select(ChannelHead.last_seq).where(ChannelHead.channel == channel)
            )
            seq = min(seq, int(head or 0))
            insert = (
                postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
            )
            statement = insert(ReadMarker).values(
                user_id=user_id, channel=channel, last_read_seq=seq, updated_at=now
            )
            await s.execute(
                statement.on_conflict_do_update(
                    index_elements=[ReadMarker.user_id, ReadMarker.channel],
                    set_={
                        "last_read_seq": case(
                            (
                                statement.excluded.last_read_seq > ReadMarker.last_read_seq,
                                statement.excluded.last_read_seq,
                            ),
                            else_=ReadMarker.last_read_seq,
                        ),
                        "updated_at": now,
                    },
                )
            )
            counts = await _unread(s, user_id, [channel])
        return counts[channel]

    async def unread(self, user_id: int) -> dict[str, int]:
        """Messages by others after the user's marker, for every channel they belong to."""
        async with self._db.sessions() as s:
            channels = await self._access.channels_of(s, user_id)
            return await _unread(s, user_id, channels)


async def _unread(s: AsyncSession, user_id: int, channels: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(channels, 0)
    for start in range(0, len(channels), _CHUNK):
        chunk = list(channels[start : start + _CHUNK])
        rows = await s.execute(
            select(ChatMessage.channel, func.count())
            .select_from(ChatMessage)
            .outerjoin(
                ReadMarker,
                and_(ReadMarker.channel == ChatMessage.channel, ReadMarker.user_id == user_id),
            )
            .where(
                ChatMessage.channel.in_(chunk),
                ChatMessage.seq > func.coalesce(ReadMarker.last_read_seq, 0),
                ChatMessage.deleted_at.is_(None),
                or_(ChatMessage.author_id.is_(None), ChatMessage.author_id != user_id),
            )
            .group_by(ChatMessage.channel)
        )
        for channel, count in rows:
            counts[channel] = int(count)
    return counts
