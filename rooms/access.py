"""Who may read and post in a chat channel, read straight from the social tables.

Community channels: members, never banned users; muted members read but do not post; owners,
admins and moderators moderate. Study groups: members; the owner moderates. Direct messages:
the two users, while they are friends and neither blocks the other. Watch parties: whoever
joined the party (its chat stays readable after it ends); the host moderates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Executable,
    Select,
    String,
    and_,
    bindparam,
    exists,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
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
from hub.db import Database, Prepared
from rooms.channels import ChannelRef, community_channel, dm_channel, group_channel
from rooms.models import WatchMember, WatchParty

MODERATOR_ROLES = frozenset({"owner", "admin", "moderator"})

# Where the reads run: an ORM session (inside a transaction) or a Core connection (hot paths).
Reader = AsyncSession | AsyncConnection


@dataclass(frozen=True, slots=True)
class Access:
    """A member's standing in one channel."""

    channel: ChannelRef
    moderator: bool
    muted_until: datetime | None
    slow_mode_seconds: int
    # Where the channel is, for notifications ("Python #general", a group's name).
    title: str


# The reads behind ``ChannelAccess.of``, built once with bound parameters: run through
# SQLAlchemy in a session or on a connection, or (``ChannelAccess.quickly`` on PostgreSQL)
# compiled once and run on the driver's own connection, a few times cheaper on the publish path.
_USER = bindparam("user_id", type_=BigInteger)
_REF = bindparam("ref_id", type_=BigInteger)
_SLUG = bindparam("slug", type_=String)
_LOW = bindparam("low", type_=BigInteger)
_HIGH = bindparam("high", type_=BigInteger)

# Each read ends with the columns that say whose access a row is (``ChannelAccess.many`` runs
# a batch of them at once and matches rows to requests by these).
_GROUP = (
    select(GroupMember.role, StudyGroup.name, GroupMember.user_id, GroupMember.group_id)
    .join(StudyGroup, StudyGroup.id == GroupMember.group_id)
    .where(GroupMember.group_id == _REF, GroupMember.user_id == _USER)
)
_PARTY = (
    select(WatchParty.host_id, WatchMember.user_id, WatchParty.id)
    .join(WatchMember, WatchMember.party_id == WatchParty.id)
    .where(WatchParty.id == _REF, WatchMember.user_id == _USER)
)


def _community_query(
    which: ColumnElement[bool],
) -> Select[str, datetime | None, int, str, str, int, int, str]:
    return (
        select(
            CommunityMember.role,
            CommunityMember.muted_until,
            CommunityChannel.slow_mode_seconds,
            CommunityChannel.name,
            Community.name,
            CommunityMember.user_id,
            CommunityMember.community_id,
            CommunityChannel.slug,
        )
        .join(Community, Community.id == CommunityMember.community_id)
        .join(CommunityChannel, CommunityChannel.community_id == Community.id)
        .where(
            CommunityMember.community_id == _REF,
            CommunityMember.user_id == _USER,
            which,
            ~exists().where(
                CommunityBan.community_id == _REF, CommunityBan.user_id == CommunityMember.user_id
            ),
        )
        .limit(1)
    )


_COMMUNITY_DEFAULT = _community_query(CommunityChannel.is_default.is_(True))
_COMMUNITY_SLUG = _community_query(
    and_(CommunityChannel.slug == _SLUG, CommunityChannel.is_default.is_(False))
)
# Friends, and not blocked either way.
_FRIENDS = select(
    exists().where(
        Friendship.user_low == _LOW,
        Friendship.user_high == _HIGH,
        Friendship.status == "accepted",
    ),
    exists().where(
        or_(
            and_(Block.blocker_id == _LOW, Block.blocked_id == _HIGH),
            and_(Block.blocker_id == _HIGH, Block.blocked_id == _LOW),
        )
    ),
)
_PREPARED = {
    id(q): Prepared(q) for q in (_GROUP, _PARTY, _COMMUNITY_DEFAULT, _COMMUNITY_SLUG, _FRIENDS)
}

# Runs one of the statements above with its parameters; the first row, or None.
_First = Callable[..., Awaitable[Sequence[Any] | None]]


def _read(user_id: int, ref: ChannelRef) -> tuple[Executable, dict[str, Any]] | None:
    """The statement that reads the user's access to the channel, with its parameters (None:
    no read can grant it)."""
    if ref.kind == "community":
        if ref.slug is None:
            return _COMMUNITY_DEFAULT, {"ref_id": ref.id, "user_id": user_id}
        return _COMMUNITY_SLUG, {"ref_id": ref.id, "user_id": user_id, "slug": ref.slug}
    if ref.kind == "group":
        return _GROUP, {"ref_id": ref.id, "user_id": user_id}
    if ref.kind == "party":
        return _PARTY, {"ref_id": ref.id, "user_id": user_id}
    if user_id not in ref.users:
        return None
    low, high = ref.users
    return _FRIENDS, {"low": low, "high": high}


# Which columns of a read's rows say whose access a row is, and the parameters they match.
_KEYS: dict[int, tuple[tuple[int, str], ...]] = {
    id(_GROUP): ((2, "user_id"), (3, "ref_id")),
    id(_PARTY): ((1, "user_id"), (2, "ref_id")),
    id(_COMMUNITY_DEFAULT): ((5, "user_id"), (6, "ref_id")),
    id(_COMMUNITY_SLUG): ((5, "user_id"), (6, "ref_id"), (7, "slug")),
}


def _access(ref: ChannelRef, user_id: int, row: Sequence[Any]) -> Access | None:
    """The access a read's row gives (rows of ``_FRIENDS`` say whether they are friends)."""
    if ref.kind == "community":
        role, muted_until, slow, channel_name, community_name = row[:5]
        return Access(
            ref,
            role in MODERATOR_ROLES,
            _utc(muted_until),
            slow,
            f"{community_name} #{channel_name}",
        )
    if ref.kind == "group":
        return Access(ref, row[0] == "owner", None, 0, row[1])
    if ref.kind == "party":
        return Access(ref, row[0] == user_id, None, 0, "a watch party")
    if not row[0] or row[1]:
        return None
    return Access(ref, False, None, 0, "a direct message")


class ChannelAccess:
    """Reads memberships, bans, mutes, friendships and blocks (inside the caller's session or
    on its connection)."""

    async def of(self, s: Reader, user_id: int, ref: ChannelRef) -> Access | None:
        """The user's access to the channel, or None when they may not read it (or it does not
        exist)."""

        async def first(statement: Executable, **params: Any) -> Sequence[Any] | None:
            row: Sequence[Any] | None = (await s.execute(statement, params)).first()
            return row

        return await self._of(first, user_id, ref)

    async def quickly(self, db: Database, user_id: int, ref: ChannelRef) -> Access | None:
        """``of`` on a connection of its own, for hot paths: on PostgreSQL the statements run
        on the driver's connection as compiled once."""
        if db.is_sqlite:
            async with db.connect() as conn:
                return await self.of(conn, user_id, ref)
        async with db.driver() as driver:

            async def first(statement: Executable, **params: Any) -> Sequence[Any] | None:
                row: Sequence[Any] | None = await _PREPARED[id(statement)].first(driver, **params)
                return row

            return await self._of(first, user_id, ref)

    async def many(
        self, db: Database, asks: Sequence[tuple[int, ChannelRef]]
    ) -> list[Access | None]:
        """``quickly`` for each ``(user id, channel)``, read at once: on PostgreSQL each kind
        of read runs for all its requests in one round trip (a batch of messages)."""
        if db.is_sqlite:
            return [await self.quickly(db, user_id, ref) for user_id, ref in asks]
        found: list[Access | None] = [None] * len(asks)
        by_read: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for k, (user_id, ref) in enumerate(asks):
            read = _read(user_id, ref)
            if read is not None:
                by_read.setdefault(id(read[0]), []).append((k, read[1]))
        async with db.driver() as driver:
            for statement, wanted in by_read.items():
                prepared = _PREPARED[statement]
                rows = await prepared.many(driver, [params for _, params in wanted])
                if statement == id(_FRIENDS):  # exactly one row per request, in order
                    matched = [(k, row) for (k, _), row in zip(wanted, rows, strict=True)]
                else:
                    keys = _KEYS[statement]
                    by_key = {tuple(row[i] for i, _ in keys): row for row in rows}
                    matched = [
                        (k, by_key.get(tuple(params[name] for _, name in keys)))
                        for k, params in wanted
                    ]
                for k, row in matched:
                    user_id, ref = asks[k]
                    found[k] = None if row is None else _access(ref, user_id, row)
        return found

    async def _of(self, first: _First, user_id: int, ref: ChannelRef) -> Access | None:
        read = _read(user_id, ref)
        if read is None:
            return None
        row = await first(read[0], **read[1])
        return None if row is None else _access(ref, user_id, row)

    async def members_among(self, s: Reader, ref: ChannelRef, ids: Iterable[int]) -> set[int]:
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

    async def channels_of(self, s: Reader, user_id: int) -> list[str]:
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


def _utc(value: datetime | None) -> datetime | None:
    # The driver's own rows carry the server's zone; the ORM's, UTC (hub.db.UTCDateTime).
    return None if value is None else value.astimezone(UTC)


def _banned(
    community_id: int | InstrumentedAttribute[int], user_id: InstrumentedAttribute[int]
) -> Exists:
    return exists().where(
        CommunityBan.community_id == community_id, CommunityBan.user_id == user_id
    )
