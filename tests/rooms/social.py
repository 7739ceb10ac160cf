"""Memberships for chat tests, written straight into the social tables (the catalog's
endpoints for them are built separately)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

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
from hub.realtime.models import ChannelMessage
from hub.services import HUB
from rooms.models import ChatMessage
from tests.conftest import Account


async def make_community(
    app: web.Application,
    owner: Account,
    *,
    name: str = "Python",
    channels: tuple[tuple[str, int], ...] = (("help", 0),),
) -> int:
    """A community with a default channel ``general`` plus ``channels`` (slug, slow mode)."""
    hub = app[HUB]
    now = hub.clock.now()
    async with hub.db.transaction() as s:
        community = Community(
            slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}",
            name=name,
            description="",
            skills=[],
            owner_id=owner.id,
            member_count=1,
            created_at=now,
        )
        s.add(community)
        await s.flush()
        s.add(
            CommunityChannel(
                community_id=community.id,
                slug="general",
                name="General",
                is_default=True,
                slow_mode_seconds=0,
                created_at=now,
            )
        )
        for slug, slow in channels:
            s.add(
                CommunityChannel(
                    community_id=community.id,
                    slug=slug,
                    name=slug.title(),
                    is_default=False,
                    slow_mode_seconds=slow,
                    created_at=now,
                )
            )
        s.add(
            CommunityMember(
                community_id=community.id, user_id=owner.id, role="owner", joined_at=now
            )
        )
    return community.id


async def join(
    app: web.Application,
    community_id: int,
    account: Account,
    role: str = "member",
    muted_until: datetime | None = None,
) -> None:
    hub = app[HUB]
    async with hub.db.transaction() as s:
        s.add(
            CommunityMember(
                community_id=community_id,
                user_id=account.id,
                role=role,
                muted_until=muted_until,
                joined_at=hub.clock.now(),
            )
        )


async def ban(app: web.Application, community_id: int, account: Account) -> None:
    hub = app[HUB]
    async with hub.db.transaction() as s:
        s.add(
            CommunityBan(
                community_id=community_id, user_id=account.id, reason="", created_at=hub.clock.now()
            )
        )


async def make_group(app: web.Application, owner: Account, *members: Account) -> int:
    hub = app[HUB]
    now = hub.clock.now()
    async with hub.db.transaction() as s:
        group = StudyGroup(
            name="Study",
            description="",
            owner_id=owner.id,
            invite_code=uuid.uuid4().hex[:16],
            member_count=1 + len(members),
            created_at=now,
        )
        s.add(group)
        await s.flush()
        s.add(GroupMember(group_id=group.id, user_id=owner.id, role="owner", joined_at=now))
        for member in members:
            s.add(GroupMember(group_id=group.id, user_id=member.id, role="member", joined_at=now))
    return group.id


async def befriend(app: web.Application, a: Account, b: Account, status: str = "accepted") -> str:
    """Returns their DM channel."""
    hub = app[HUB]
    now = hub.clock.now()
    low, high = sorted((a.id, b.id))
    async with hub.db.transaction() as s:
        s.add(
            Friendship(
                user_low=low,
                user_high=high,
                requested_by=a.id,
                status=status,
                created_at=now,
                accepted_at=now if status == "accepted" else None,
            )
        )
    return f"dm:{low}:{high}"


async def block(app: web.Application, blocker: Account, blocked: Account) -> None:
    hub = app[HUB]
    async with hub.db.transaction() as s:
        s.add(Block(blocker_id=blocker.id, blocked_id=blocked.id, created_at=hub.clock.now()))


async def stored(app: web.Application, channel: str) -> tuple[int, int]:
    """How many events and chat messages the channel holds."""
    async with app[HUB].db.sessions() as s:
        events = await s.scalar(
            select(func.count())
            .select_from(ChannelMessage)
            .where(ChannelMessage.channel == channel)
        )
        messages = await s.scalar(
            select(func.count()).select_from(ChatMessage).where(ChatMessage.channel == channel)
        )
    return int(events or 0), int(messages or 0)


def is_reply(ref: Any) -> Any:
    """A predicate for the ack or error answering ``ref``."""
    return lambda f: f.get("ref") == ref and f["op"] in ("ack", "error")
