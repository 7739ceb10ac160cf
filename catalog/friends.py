"""Friends: requests, accepting, declining, removing, and blocks.

One ``friendships`` row per pair (``user_low`` < ``user_high``), pending or accepted. A block
ends any friendship or request between the two, and while it lasts neither can request the
other. The chat package reads these tables directly to authorize ``dm:<low>:<high>``: the two
users, while friends and neither blocks the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Delete, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.social_models import Block, Friendship
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.notifications.service import Notifications
from hub.realtime.gateway import Gateway


def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def dm_channel(a: int, b: int) -> str:
    """The direct-message channel of two users: ``dm:<low id>:<high id>``."""
    low, high = pair(a, b)
    return f"dm:{low}:{high}"


async def blocked_between(s: AsyncSession, a: int, b: int) -> bool:
    """Whether either of two users blocks the other."""
    found = await s.scalar(
        select(Block.blocker_id)
        .where(
            or_(
                and_(Block.blocker_id == a, Block.blocked_id == b),
                and_(Block.blocker_id == b, Block.blocked_id == a),
            )
        )
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True, slots=True)
class FriendView:
    user: User
    since: datetime


@dataclass(frozen=True, slots=True)
class RequestView:
    user: User
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FriendsOverview:
    friends: list[FriendView]
    incoming: list[RequestView]
    outgoing: list[RequestView]


@dataclass(frozen=True, slots=True)
class BlockView:
    user: User
    created_at: datetime


class Friends:
    def __init__(
        self, db: Database, clock: Clock, notifications: Notifications, gateway: Gateway
    ) -> None:
        self._db = db
        self._clock = clock
        self._notifications = notifications
        self._gateway = gateway

    async def request(self, principal: Principal, user_id: int) -> Literal["pending", "accepted"]:
        """Ask a user to be friends; when they had already asked, this accepts. They are
        notified either way.

        Raises:
            ValidationFailed: the caller themselves.
            NotFound: no such user.
            Forbidden: one of the two blocks the other.
            Conflict: already friends, or already asked.
        """
        me = principal.user
        if user_id == me.id:
            raise ValidationFailed([FieldError("user_id", "You cannot befriend yourself.")])
        now = self._clock.now()
        low, high = pair(me.id, user_id)
        for _attempt in range(2):  # both asking at the same moment: the second one accepts
            try:
                async with self._db.transaction() as s:
                    other = await self._lock_pair(s, me.id, user_id)
                    if await blocked_between(s, me.id, user_id):
                        raise Forbidden("You cannot send this user a friend request.")
                    row = await s.get(Friendship, (low, high))
                    if row is None:
                        s.add(
                            Friendship(
                                user_low=low,
                                user_high=high,
                                requested_by=me.id,
                                status="pending",
                                created_at=now,
                            )
                        )
                        status: Literal["pending", "accepted"] = "pending"
                    elif row.status == "accepted":
                        raise Conflict(f"You are already friends with {other.display_name}.")
                    elif row.requested_by == me.id:
                        raise Conflict(f"You already asked {other.display_name}.")
                    else:
                        row.status = "accepted"
                        row.accepted_at = now
                        status = "accepted"
                break
            except IntegrityError:
                continue
        else:
            raise Conflict("A friend request between you two is being answered; try again.")
        if status == "pending":
            await self._notifications.notify(
                user_id, "friend.request", actor=me, group_key="friend.request"
            )
        else:
            await self._notifications.notify(
                user_id, "friend.accepted", actor=me, group_key="friend.accepted"
            )
        return status

    async def overview(self, user: User) -> FriendsOverview:
        """Friends (by name), incoming and outgoing requests (newest first)."""
        async with self._db.sessions() as s:
            rows = list(
                await s.scalars(
                    select(Friendship).where(
                        or_(Friendship.user_low == user.id, Friendship.user_high == user.id)
                    )
                )
            )
            others = {r.user_high if r.user_low == user.id else r.user_low for r in rows}
            people = {u.id: u for u in await s.scalars(select(User).where(User.id.in_(others)))}
        friends, incoming, outgoing = [], [], []
        for row in rows:
            other = people[row.user_high if row.user_low == user.id else row.user_low]
            if row.status == "accepted":
                friends.append(FriendView(other, row.accepted_at or row.created_at))
            elif row.requested_by == user.id:
                outgoing.append(RequestView(other, row.created_at))
            else:
                incoming.append(RequestView(other, row.created_at))
        friends.sort(key=lambda f: (f.user.display_name.lower(), f.user.id))
        incoming.sort(key=lambda r: (r.created_at, r.user.id), reverse=True)
        outgoing.sort(key=lambda r: (r.created_at, r.user.id), reverse=True)
        return FriendsOverview(friends, incoming, outgoing)

    async def accept(self, principal: Principal, user_id: int) -> FriendView:
        """Accept a user's request; they are notified.

        Raises: NotFound (no pending request from this user).
        """
        me = principal.user
        now = self._clock.now()
        async with self._db.transaction() as s:
            other = await self._incoming(s, me.id, user_id)
            row = await s.get(Friendship, pair(me.id, user_id))
            assert row is not None
            row.status = "accepted"
            row.accepted_at = now
        await self._notifications.notify(
            user_id, "friend.accepted", actor=me, group_key="friend.accepted"
        )
        return FriendView(other, now)

    async def decline(self, principal: Principal, user_id: int) -> None:
        """Raises: NotFound (no pending request from this user)."""
        me = principal.user
        async with self._db.transaction() as s:
            await self._incoming(s, me.id, user_id)
            await s.execute(_pair_rows(me.id, user_id))

    async def remove(self, principal: Principal, user_id: int) -> None:
        """End a friendship, or withdraw (or turn down) a request.

        Raises: NotFound (nothing between the two).
        """
        async with self._db.transaction() as s:
            row = await s.get(Friendship, pair(principal.user.id, user_id))
            if row is None:
                raise NotFound("You are not friends with this user and no request is pending.")
            were_friends = row.status == "accepted"
            await s.execute(_pair_rows(principal.user.id, user_id))
        if were_friends:
            await self._end_dm(principal.user.id, user_id, "you are no longer friends")

    async def block(self, principal: Principal, user_id: int) -> BlockView:
        """Block a user: any friendship or request between the two ends.

        Raises: ValidationFailed (the caller themselves); NotFound; Conflict (already).
        """
        me = principal.user
        if user_id == me.id:
            raise ValidationFailed([FieldError("user_id", "You cannot block yourself.")])
        now = self._clock.now()
        try:
            async with self._db.transaction() as s:
                other = await self._lock_pair(s, me.id, user_id)
                if await s.get(Block, (me.id, user_id)) is not None:
                    raise Conflict(f"You already blocked {other.display_name}.")
                row = await s.get(Friendship, pair(me.id, user_id))
                were_friends = row is not None and row.status == "accepted"
                await s.execute(_pair_rows(me.id, user_id))
                s.add(Block(blocker_id=me.id, blocked_id=user_id, created_at=now))
        except IntegrityError:
            raise Conflict("You already blocked this user.") from None
        if were_friends:
            await self._end_dm(me.id, user_id, "you are no longer friends")
        return BlockView(other, now)

    async def unblock(self, principal: Principal, user_id: int) -> None:
        """Raises: NotFound (not blocked)."""
        async with self._db.transaction() as s:
            block = await s.get(Block, (principal.user.id, user_id))
            if block is None:
                raise NotFound("You have not blocked this user.")
            await s.delete(block)

    async def blocks(self, user: User) -> list[BlockView]:
        """Whom the user blocks, newest first."""
        async with self._db.sessions() as s:
            rows = (
                await s.execute(
                    select(Block, User)
                    .join(User, User.id == Block.blocked_id)
                    .where(Block.blocker_id == user.id)
                    .order_by(Block.created_at.desc(), Block.blocked_id)
                )
            ).all()
        return [BlockView(u, b.created_at) for b, u in rows]

    # Helpers -------------------------------------------------------------------------------

    async def _end_dm(self, a: int, b: int, reason: str) -> None:
        """End both users' live subscriptions to their direct messages, on every hub."""
        channel = dm_channel(a, b)
        for user_id in (a, b):
            await self._gateway.evict(channel, user_id, reason)

    async def _lock_pair(self, s: AsyncSession, me: int, other_id: int) -> User:
        """Lock both users' rows in id order, so requests, answers and blocks between the
        same two people queue (PostgreSQL; SQLite writers queue anyway); returns the other.

        Raises: NotFound (no such user).
        """
        users = {
            u.id: u
            for u in await s.scalars(
                select(User)
                .where(User.id.in_(pair(me, other_id)))
                .order_by(User.id)
                .with_for_update(key_share=True)
            )
        }
        if other_id not in users:
            raise NotFound("No user with this id.")
        return users[other_id]

    async def _incoming(self, s: AsyncSession, me: int, requester_id: int) -> User:
        await self._lock_pair(s, me, requester_id)
        row = await s.get(Friendship, pair(me, requester_id))
        if row is None or row.status != "pending" or row.requested_by != requester_id:
            raise NotFound("No pending friend request from this user.")
        other = await s.get(User, requester_id)
        assert other is not None
        return other


def _pair_rows(a: int, b: int) -> Delete:
    low, high = pair(a, b)
    return delete(Friendship).where(Friendship.user_low == low, Friendship.user_high == high)
