"""Communities: one per skill or topic, with members in four roles (owner > admin > moderator >
member), mutes, bans, chat channels, and a coin reward for joining the first time.

The chat package reads these tables directly to authorize channels: a member may post in
``chat:community:<id>[:<slug>]`` unless ``community_members.muted_until`` is in the future;
banned users are never members (a ban removes the membership in the same transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, case, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.search import query_words
from catalog.social_models import Community, CommunityBan, CommunityChannel, CommunityMember
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, Forbidden, NotFound
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.notifications.service import Notifications
from hub.realtime.gateway import Gateway
from payments.ledger import REWARDS, Ledger, Posting
from payments.models import Transfer

ROLES = ("member", "moderator", "admin", "owner")
RANK = {role: rank for rank, role in enumerate(ROLES)}
DEFAULT_CHANNEL_SLUG = "general"
DEFAULT_CHANNEL_NAME = "General"
JOIN_REWARD_KIND = "community_join_reward"


def community_channel(community_id: int, slug: str, is_default: bool) -> str:
    """The gateway channel of a community's chat channel."""
    base = f"chat:community:{community_id}"
    return base if is_default else f"{base}:{slug}"


def join_reward_key(community_id: int, user_id: int) -> str:
    """The ledger dedupe key that makes the join reward happen once per user and community."""
    return f"community-join:{community_id}:{user_id}"


def skill_words(skills: list[str]) -> list[str]:
    """Skills as stored: trimmed, lower-cased, without duplicates, in the order given."""
    seen: dict[str, None] = {}
    for skill in skills:
        word = " ".join(skill.split()).lower()
        if word:
            seen.setdefault(word, None)
    return list(seen)


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ``\\`` as the escape character."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class CommunityView:
    community: Community
    owner: User
    channels: list[CommunityChannel]
    my_role: str | None
    muted_until: datetime | None


@dataclass(frozen=True, slots=True)
class CommunityPage:
    items: list[CommunityView]
    total: int


@dataclass(frozen=True, slots=True)
class JoinResult:
    role: str
    reward: int


@dataclass(frozen=True, slots=True)
class MemberView:
    user: User
    role: str
    joined_at: datetime
    muted_until: datetime | None


@dataclass(frozen=True, slots=True)
class MemberPage:
    items: list[MemberView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class BanView:
    ban: CommunityBan
    user: User
    banned_by: User | None


member_rank = case(RANK, value=CommunityMember.role, else_=0)


class Communities:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        ledger: Ledger,
        notifications: Notifications,
        gateway: Gateway,
        join_reward: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self._ledger = ledger
        self._notifications = notifications
        self._gateway = gateway
        self._join_reward = join_reward

    # Communities ---------------------------------------------------------------------------

    async def create(
        self, principal: Principal, *, name: str, slug: str, skills: list[str], description: str
    ) -> CommunityView:
        """Create a community owned by the caller, with its default channel.

        Raises:
            Conflict: the slug is taken.
        """
        now = self._clock.now()
        user = principal.user
        try:
            async with self._db.transaction() as s:
                if await s.scalar(select(Community.id).where(Community.slug == slug)):
                    raise Conflict(f"The address “{slug}” is taken by another community.")
                community = Community(
                    slug=slug,
                    name=name,
                    description=description,
                    skills=skill_words(skills),
                    owner_id=user.id,
                    member_count=1,
                    created_at=now,
                )
                s.add(community)
                await s.flush()
                s.add(
                    CommunityMember(
                        community_id=community.id, user_id=user.id, role="owner", joined_at=now
                    )
                )
                channel = CommunityChannel(
                    community_id=community.id,
                    slug=DEFAULT_CHANNEL_SLUG,
                    name=DEFAULT_CHANNEL_NAME,
                    is_default=True,
                    slow_mode_seconds=0,
                    created_at=now,
                )
                s.add(channel)
        except IntegrityError:
            raise Conflict(f"The address “{slug}” is taken by another community.") from None
        return CommunityView(community, user, [channel], "owner", None)

    async def search(
        self, viewer: User | None, *, q: str, skill: str | None, page: int, page_size: int
    ) -> CommunityPage:
        """Communities whose name, skills or description contain every word of ``q`` (anywhere
        in a word), optionally with one whole skill; most members first."""
        query = select(Community.id)
        skills_text = func.lower(cast(Community.skills, Text))
        for word in query_words(q):
            pattern = f"%{like_escape(word)}%"
            query = query.where(
                or_(
                    func.lower(Community.name).like(pattern, escape="\\"),
                    func.lower(Community.description).like(pattern, escape="\\"),
                    skills_text.like(pattern, escape="\\"),
                )
            )
        wanted = skill_words([skill or ""])
        if wanted:
            # Skills are stored as a JSON list of lower-cased strings: match one element whole.
            element = like_escape(json.dumps(wanted[0]))
            query = query.where(skills_text.like(f"%{element}%", escape="\\"))
        async with self._db.sessions() as s:
            total = await s.scalar(select(func.count()).select_from(query.subquery()))
            ids = list(
                await s.scalars(
                    query.order_by(Community.member_count.desc(), Community.id)
                    .limit(page_size)
                    .offset((page - 1) * page_size)
                )
            )
            views = await self._views(s, ids, viewer)
        return CommunityPage(views, int(total or 0))

    async def get(self, viewer: User | None, community_id: int) -> CommunityView:
        """Raises: NotFound."""
        async with self._db.sessions() as s:
            views = await self._views(s, [community_id], viewer)
        if not views:
            raise NotFound("No community with this id.")
        return views[0]

    async def by_slug(self, viewer: User | None, slug: str) -> CommunityView:
        """Raises: NotFound."""
        async with self._db.sessions() as s:
            found = await s.scalar(select(Community.id).where(Community.slug == slug))
            views = await self._views(s, [found], viewer) if found is not None else []
        if not views:
            raise NotFound("No community with this address.")
        return views[0]

    async def _views(
        self, s: AsyncSession, ids: list[int], viewer: User | None
    ) -> list[CommunityView]:
        """Views of these communities, in the order given (missing ones left out)."""
        if not ids:
            return []
        rows = (
            await s.execute(
                select(Community, User)
                .join(User, User.id == Community.owner_id)
                .where(Community.id.in_(ids))
            )
        ).all()
        found = {c.id: (c, u) for c, u in rows}
        channels: dict[int, list[CommunityChannel]] = {}
        for channel in await s.scalars(
            select(CommunityChannel)
            .where(CommunityChannel.community_id.in_(ids))
            .order_by(CommunityChannel.is_default.desc(), CommunityChannel.id)
        ):
            channels.setdefault(channel.community_id, []).append(channel)
        mine: dict[int, CommunityMember] = {}
        if viewer is not None:
            mine = {
                m.community_id: m
                for m in await s.scalars(
                    select(CommunityMember).where(
                        CommunityMember.user_id == viewer.id,
                        CommunityMember.community_id.in_(ids),
                    )
                )
            }
        now = self._clock.now()
        views = []
        for community_id in ids:
            if community_id not in found:
                continue
            community, owner = found[community_id]
            member = mine.get(community_id)
            views.append(
                CommunityView(
                    community,
                    owner,
                    channels.get(community_id, []),
                    member.role if member else None,
                    _active_mute(member.muted_until, now) if member else None,
                )
            )
        return views

    # Joining and leaving -------------------------------------------------------------------

    async def join(self, principal: Principal, community_id: int) -> JoinResult:
        """Join as a member; the first join ever earns the join reward. The owner hears of it.

        Raises:
            NotFound: no such community.
            Forbidden: the caller is banned from it.
            Conflict: already a member.
        """
        user = principal.user
        now = self._clock.now()
        try:
            async with self._db.transaction() as s:
                community = await self._community(s, community_id, lock=True)
                if await s.get(CommunityBan, (community_id, user.id)) is not None:
                    raise Forbidden("You are banned from this community.")
                if await s.get(CommunityMember, (community_id, user.id)) is not None:
                    raise Conflict("You are already a member of this community.")
                s.add(
                    CommunityMember(
                        community_id=community_id, user_id=user.id, role="member", joined_at=now
                    )
                )
                await _count_members(s, community_id, +1)
                reward = await self._reward(s, community, user)
        except IntegrityError:
            # The same user joining twice at once: the other request won.
            raise Conflict("You are already a member of this community.") from None
        await self._notifications.notify(
            community.owner_id,
            "community.joined",
            actor=user,
            data={
                "community_id": community.id,
                "community_name": community.name,
                "community_slug": community.slug,
            },
            group_key=f"community.joined:{community.id}",
        )
        return JoinResult("member", reward)

    async def _reward(self, s: AsyncSession, community: Community, user: User) -> int:
        """Pay the join reward, in the joining transaction, unless this user ever had it for
        this community (the ledger's dedupe key remembers)."""
        amount = self._join_reward
        key = join_reward_key(community.id, user.id)
        if amount <= 0 or await s.scalar(select(Transfer.id).where(Transfer.dedupe_key == key)):
            return 0
        rewards = await self._ledger.account(s, REWARDS)
        wallet = await self._ledger.wallet(s, user.id)
        await self._ledger.post(
            s,
            kind=JOIN_REWARD_KIND,
            postings=[Posting(rewards.id, -amount), Posting(wallet.id, amount)],
            memo=f"Joined “{community.name}”",
            reference={"community_id": community.id},
            dedupe_key=key,
        )
        return amount

    async def leave(self, principal: Principal, community_id: int) -> None:
        """Raises: NotFound; Conflict: not a member, or the owner."""
        user_id = principal.user.id
        async with self._db.transaction() as s:
            await self._community(s, community_id, lock=True)
            member = await s.get(CommunityMember, (community_id, user_id))
            if member is None:
                raise Conflict("You are not a member of this community.")
            if member.role == "owner":
                raise Conflict("The owner cannot leave their community.")
            await s.delete(member)
            await _count_members(s, community_id, -1)
            channels = await _channels_of(s, community_id)
        await self._evict(channels, user_id, "you left this community")

    # Members and roles ---------------------------------------------------------------------

    async def members(self, community_id: int, *, cursor: str | None, limit: int) -> MemberPage:
        """Members by role (owner first), then by user id; ``cursor`` is the previous page's
        ``next_cursor``.

        Raises: NotFound.
        """
        query = (
            select(CommunityMember, User)
            .join(User, User.id == CommunityMember.user_id)
            .where(CommunityMember.community_id == community_id)
            .order_by(member_rank.desc(), CommunityMember.user_id)
            .limit(limit)
        )
        if cursor is not None:
            rank_text, _, user_text = cursor.partition(".")
            rank, after = int(rank_text), int(user_text)
            query = query.where(
                or_(member_rank < rank, and_(member_rank == rank, CommunityMember.user_id > after))
            )
        async with self._db.sessions() as s:
            await self._community(s, community_id)
            rows = (await s.execute(query)).all()
        now = self._clock.now()
        items = [_member_view(m, u, now) for m, u in rows]
        next_cursor = None
        if len(items) == limit:
            last = items[-1]
            next_cursor = f"{RANK[last.role]}.{last.user.id}"
        return MemberPage(items, next_cursor)

    async def set_role(
        self, principal: Principal, community_id: int, user_id: int, role: str
    ) -> MemberView:
        """The owner sets any role but owner; admins set moderator or member on members below
        admin. The member is notified of a change.

        Raises:
            NotFound: no such community, or the user is not a member.
            Forbidden: the caller may not make this change.
        """
        async with self._db.transaction() as s:
            community = await self._community(s, community_id, lock=True)
            actor = await self._require_role(s, community_id, principal.user.id, "admin")
            target, user = await self._member(s, community_id, user_id)
            if target.user_id == actor.user_id:
                raise Forbidden("You cannot change your own role.")
            if target.role == "owner":
                raise Forbidden("The owner's role cannot be changed.")
            if actor.role != "owner":
                if role == "admin":
                    raise Forbidden("Only the owner makes admins.")
                if RANK[target.role] >= RANK["admin"]:
                    raise Forbidden("Admins change the roles of moderators and members only.")
            changed = target.role != role
            target.role = role
            view = _member_view(target, user, self._clock.now())
        if changed:
            await self._gateway.standing_changed()  # moderators skip slow mode
            await self._notifications.notify(
                user_id,
                "community.role",
                actor=principal.user,
                data={
                    "community_id": community.id,
                    "community_name": community.name,
                    "community_slug": community.slug,
                    "role": role,
                },
            )
        return view

    async def mute(
        self, principal: Principal, community_id: int, user_id: int, minutes: int
    ) -> MemberView:
        """Mute a member below the caller for ``minutes`` (0 unmutes): they cannot post in the
        community's channels until then.

        Raises:
            NotFound: no such community, or the user is not a member.
            Forbidden: the caller is below moderator, or the member is not below them.
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            await self._community(s, community_id, lock=True)
            actor = await self._require_role(s, community_id, principal.user.id, "moderator")
            target, user = await self._member(s, community_id, user_id)
            if RANK[target.role] >= RANK[actor.role]:
                raise Forbidden("You can only mute members whose role is below yours.")
            target.muted_until = now + timedelta(minutes=minutes) if minutes else None
            view = _member_view(target, user, now)
        await self._gateway.standing_changed()
        return view

    # Bans ----------------------------------------------------------------------------------

    async def ban(
        self, principal: Principal, community_id: int, user_id: int, reason: str
    ) -> BanView:
        """Ban a user (a member below the caller, or anyone not a member) and remove them.

        Raises:
            NotFound: no such community or user.
            Forbidden: the caller is below admin, or the member is not below them.
            Conflict: already banned.
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            await self._community(s, community_id, lock=True)
            actor = await self._require_role(s, community_id, principal.user.id, "admin")
            user = await s.get(User, user_id)
            if user is None:
                raise NotFound("No user with this id.")
            if user_id == actor.user_id:
                raise Forbidden("You cannot ban yourself.")
            member = await s.get(CommunityMember, (community_id, user_id))
            if member is not None and RANK[member.role] >= RANK[actor.role]:
                raise Forbidden("You can only ban members whose role is below yours.")
            if await s.get(CommunityBan, (community_id, user_id)) is not None:
                raise Conflict("This user is already banned from this community.")
            channels: list[str] = []
            if member is not None:
                await s.delete(member)
                await _count_members(s, community_id, -1)
                channels = await _channels_of(s, community_id)
            ban = CommunityBan(
                community_id=community_id,
                user_id=user_id,
                banned_by=actor.user_id,
                reason=reason.strip(),
                created_at=now,
            )
            s.add(ban)
        await self._evict(channels, user_id, "you are banned from this community")
        return BanView(ban, user, principal.user)

    async def unban(self, principal: Principal, community_id: int, user_id: int) -> None:
        """Raises: NotFound (no such community or ban); Forbidden (below admin)."""
        async with self._db.transaction() as s:
            await self._community(s, community_id, lock=True)
            await self._require_role(s, community_id, principal.user.id, "admin")
            ban = await s.get(CommunityBan, (community_id, user_id))
            if ban is None:
                raise NotFound("This user is not banned from this community.")
            await s.delete(ban)

    async def bans(self, principal: Principal, community_id: int) -> list[BanView]:
        """Newest first. Raises: NotFound; Forbidden (below admin)."""
        async with self._db.sessions() as s:
            await self._community(s, community_id)
            await self._require_role(s, community_id, principal.user.id, "admin")
            rows = (
                await s.execute(
                    select(CommunityBan, User)
                    .join(User, User.id == CommunityBan.user_id)
                    .where(CommunityBan.community_id == community_id)
                    .order_by(CommunityBan.created_at.desc(), CommunityBan.user_id)
                )
            ).all()
            by_ids = {b.banned_by for b, _ in rows if b.banned_by is not None}
            banners = {u.id: u for u in await s.scalars(select(User).where(User.id.in_(by_ids)))}
        return [BanView(b, u, banners.get(b.banned_by) if b.banned_by else None) for b, u in rows]

    # Channels ------------------------------------------------------------------------------

    async def add_channel(
        self, principal: Principal, community_id: int, *, name: str, slug: str, slow_mode: int
    ) -> CommunityChannel:
        """Raises: NotFound; Forbidden (below admin); Conflict (slug taken)."""
        try:
            async with self._db.transaction() as s:
                await self._community(s, community_id, lock=True)
                await self._require_role(s, community_id, principal.user.id, "admin")
                taken = await s.scalar(
                    select(CommunityChannel.id).where(
                        CommunityChannel.community_id == community_id,
                        CommunityChannel.slug == slug,
                    )
                )
                if taken is not None:
                    raise Conflict(f"This community already has a channel “{slug}”.")
                channel = CommunityChannel(
                    community_id=community_id,
                    slug=slug,
                    name=name,
                    is_default=False,
                    slow_mode_seconds=slow_mode,
                    created_at=self._clock.now(),
                )
                s.add(channel)
        except IntegrityError:
            raise Conflict(f"This community already has a channel “{slug}”.") from None
        return channel

    async def edit_channel(
        self, principal: Principal, community_id: int, slug: str, changes: dict[str, Any]
    ) -> CommunityChannel:
        """Rename a channel or change its slow mode.

        Raises: NotFound (no such community or channel); Forbidden (below admin).
        """
        async with self._db.transaction() as s:
            await self._community(s, community_id, lock=True)
            await self._require_role(s, community_id, principal.user.id, "admin")
            channel = await s.scalar(
                select(CommunityChannel).where(
                    CommunityChannel.community_id == community_id, CommunityChannel.slug == slug
                )
            )
            if channel is None:
                raise NotFound(f"This community has no channel “{slug}”.")
            if "name" in changes:
                channel.name = changes["name"]
            if "slow_mode_seconds" in changes:
                channel.slow_mode_seconds = changes["slow_mode_seconds"]
        await self._gateway.standing_changed()
        return channel

    # Helpers -------------------------------------------------------------------------------

    async def _evict(self, channels: list[str], user_id: int, reason: str) -> None:
        """End the user's live subscriptions to these channels on every hub (after commit: a
        resubscription is then refused by the chat's own membership check)."""
        for channel in channels:
            await self._gateway.evict(channel, user_id, reason)

    async def _community(
        self, s: AsyncSession, community_id: int, *, lock: bool = False
    ) -> Community:
        """The community; with ``lock``, its row stays locked until commit, so membership
        changes of one community queue (PostgreSQL; SQLite writers queue anyway)."""
        query = select(Community).where(Community.id == community_id)
        if lock:
            # NO KEY UPDATE: rows that reference the community (a new study group) still insert.
            query = query.with_for_update(key_share=True)
        community = await s.scalar(query)
        if community is None:
            raise NotFound("No community with this id.")
        return community

    async def _require_role(
        self, s: AsyncSession, community_id: int, user_id: int, at_least: str
    ) -> CommunityMember:
        member = await s.get(CommunityMember, (community_id, user_id))
        if member is None or RANK[member.role] < RANK[at_least]:
            needed = {"admin": "the owner and admins", "moderator": "moderators and up"}
            raise Forbidden(f"Only {needed.get(at_least, at_least + 's')} can do this.")
        return member

    async def _member(
        self, s: AsyncSession, community_id: int, user_id: int
    ) -> tuple[CommunityMember, User]:
        row = (
            await s.execute(
                select(CommunityMember, User)
                .join(User, User.id == CommunityMember.user_id)
                .where(
                    CommunityMember.community_id == community_id,
                    CommunityMember.user_id == user_id,
                )
            )
        ).first()
        if row is None:
            raise NotFound("This user is not a member of this community.")
        return row[0], row[1]


async def _count_members(s: AsyncSession, community_id: int, delta: int) -> None:
    await s.execute(
        update(Community)
        .where(Community.id == community_id)
        .values(member_count=Community.member_count + delta)
    )


async def _channels_of(s: AsyncSession, community_id: int) -> list[str]:
    rows = await s.execute(
        select(CommunityChannel.slug, CommunityChannel.is_default).where(
            CommunityChannel.community_id == community_id
        )
    )
    return [community_channel(community_id, slug, default) for slug, default in rows]


def _active_mute(muted_until: datetime | None, now: datetime) -> datetime | None:
    return muted_until if muted_until is not None and muted_until > now else None


def _member_view(member: CommunityMember, user: User, now: datetime) -> MemberView:
    return MemberView(user, member.role, member.joined_at, _active_mute(member.muted_until, now))


async def membership(s: AsyncSession, community_id: int, user_id: int) -> CommunityMember | None:
    """A user's membership of a community, for the other social modules."""
    return await s.get(CommunityMember, (community_id, user_id))


async def is_banned(s: AsyncSession, community_id: int, user_id: int) -> bool:
    return await s.get(CommunityBan, (community_id, user_id)) is not None
