"""Who may read and post in a chat channel, read straight from the social tables.

Community channels: members, never banned users; muted members read but do not post; owners,
admins and moderators moderate. Study groups: members; the owner moderates. Direct messages:
the two users, while they are friends and neither blocks the other. Watch parties: whoever
joined the party (its chat stays readable after it ends); the host moderates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.expression import Exists

from catalog.social_models import (
    Block,
    Community,
    CommunityBan,
    CommunityChannel,
    CommunityMember,
    Friendship,
    GroupMember,
    StudyGroup,
)
from rooms.channels import ChannelRef, community_channel, dm_channel, group_channel
from rooms.models import WatchMember, WatchParty

MODERATOR_ROLES = frozenset({"owner", "admin", "moderator"})


@dataclass(frozen=True, slots=True)
class Access:
    """A member's standing in one channel."""

    channel: ChannelRef
    moderator: bool
    muted_until: datetime | None
    slow_mode_seconds: int
    # Where the channel is, for notifications ("Python #general", a group's name).
    title: str


class ChannelAccess:
    """Reads memberships, bans, mutes, friendships and blocks (inside the caller's session)."""

    async def of(self, s: AsyncSession, user_id: int, ref: ChannelRef) -> Access | None:
        """The user's access to the channel, or None when they may not read it (or it does not
        exist)."""
        if ref.kind == "community":
            return await self._community(s, user_id, ref)
        if ref.kind == "group":
            row = (
                await s.execute(
                    select(GroupMember.role, StudyGroup.name)
                    .join(StudyGroup, StudyGroup.id == GroupMember.group_id)
                    .where(GroupMember.group_id == ref.id, GroupMember.user_id == user_id)
                )
            ).first()
            if row is None:
                return None
            role, name = row
            return Access(ref, role == "owner", None, 0, name)
        if ref.kind == "party":
            host = await s.scalar(
                select(WatchParty.host_id)
                .join(WatchMember, WatchMember.party_id == WatchParty.id)
                .where(WatchParty.id == ref.id, WatchMember.user_id == user_id)
            )
            if host is None:
                return None
            return Access(ref, host == user_id, None, 0, "a watch party")
        if user_id not in ref.users or not await self._friends(s, *ref.users):
            return None
        return Access(ref, False, None, 0, "a direct message")

    async def _community(self, s: AsyncSession, user_id: int, ref: ChannelRef) -> Access | None:
        which = (
            CommunityChannel.is_default.is_(True)
            if ref.slug is None
            else and_(CommunityChannel.slug == ref.slug, CommunityChannel.is_default.is_(False))
        )
        row = (
            await s.execute(
                select(
                    CommunityMember.role,
                    CommunityMember.muted_until,
                    CommunityChannel.slow_mode_seconds,
                    CommunityChannel.name,
                    Community.name,
                )
                .join(Community, Community.id == CommunityMember.community_id)
                .join(CommunityChannel, CommunityChannel.community_id == Community.id)
                .where(
                    CommunityMember.community_id == ref.id,
                    CommunityMember.user_id == user_id,
                    which,
                    ~_banned(ref.id, CommunityMember.user_id),
                )
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        role, muted_until, slow, channel_name, community_name = row
        return Access(
            ref, role in MODERATOR_ROLES, muted_until, slow, f"{community_name} #{channel_name}"
        )

    async def _friends(self, s: AsyncSession, low: int, high: int) -> bool:
        friends = await s.scalar(
            select(
                exists().where(
                    Friendship.user_low == low,
                    Friendship.user_high == high,
                    Friendship.status == "accepted",
                )
            )
        )
        blocked = await s.scalar(
            select(
                exists().where(
                    or_(
                        and_(Block.blocker_id == low, Block.blocked_id == high),
                        and_(Block.blocker_id == high, Block.blocked_id == low),
                    )
                )
            )
        )
        return bool(friends) and not blocked

    async def members_among(self, s: AsyncSession, ref: ChannelRef, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` belong to the channel (and may be mentioned in it)."""
        wanted = set(ids)
        if not wanted:
            return set()
        if ref.kind == "dm":
            return wanted & set(ref.users)
        if ref.kind == "group":
            query = select(GroupMember.user_id).where(
                GroupMember.group_id == ref.id, GroupMember.user_id.in_(wanted)
            )
        elif ref.kind == "party":
            query = select(WatchMember.user_id).where(
                WatchMember.party_id == ref.id, WatchMember.user_id.in_(wanted)
            )
        else:
            query = select(CommunityMember.user_id).where(
                CommunityMember.community_id == ref.id,
                CommunityMember.user_id.in_(wanted),
                ~_banned(ref.id, CommunityMember.user_id),
            )
        return set(await s.scalars(query))

    async def channels_of(self, s: AsyncSession, user_id: int) -> list[str]:
        """Every chat channel the user may read: their communities' channels, their groups,
        direct messages with their friends."""
        channels: list[str] = []
        rows = await s.execute(
            select(
                CommunityChannel.community_id, CommunityChannel.slug, CommunityChannel.is_default
            )
            .join(CommunityMember, CommunityMember.community_id == CommunityChannel.community_id)
            .where(
                CommunityMember.user_id == user_id,
                ~_banned(CommunityChannel.community_id, CommunityMember.user_id),
            )
            .order_by(CommunityChannel.community_id, CommunityChannel.id)
        )
        channels += [community_channel(c, slug, default) for c, slug, default in rows]
        groups = await s.scalars(
            select(GroupMember.group_id)
            .where(GroupMember.user_id == user_id)
            .order_by(GroupMember.group_id)
        )
        channels += [group_channel(g) for g in groups]
        pairs = await s.execute(
            select(Friendship.user_low, Friendship.user_high).where(
                Friendship.status == "accepted",
                or_(Friendship.user_low == user_id, Friendship.user_high == user_id),
            )
        )
        blocks = await s.execute(
            select(Block.blocker_id, Block.blocked_id).where(
                or_(Block.blocker_id == user_id, Block.blocked_id == user_id)
            )
        )
        blocked = {a if b == user_id else b for a, b in blocks}
        for low, high in pairs:
            other = high if low == user_id else low
            if other not in blocked:
                channels.append(dm_channel(low, high))
        return channels


def _banned(
    community_id: int | InstrumentedAttribute[int], user_id: InstrumentedAttribute[int]
) -> Exists:
    return exists().where(
        CommunityBan.community_id == community_id, CommunityBan.user_id == user_id
    )
