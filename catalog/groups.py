"""Study groups: created by anyone (inside a community or not), joined by invite link or by
invitation, each with its chat channel ``chat:group:<id>``.

The chat package reads ``group_members`` directly to authorize that channel.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.communities import is_banned, membership
from catalog.friends import blocked_between
from catalog.social_models import Community, GroupInvitation, GroupMember, StudyGroup
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, Forbidden, NotFound
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.notifications.service import Notifications
from hub.realtime.gateway import Gateway

INVITE_CODE_BYTES = 12  # 16 URL-safe characters


def group_channel(group_id: int) -> str:
    return f"chat:group:{group_id}"


@dataclass(frozen=True, slots=True)
class GroupView:
    group: StudyGroup
    owner: User
    my_role: str | None  # owner | member | None (not a member)


@dataclass(frozen=True, slots=True)
class GroupMemberView:
    user: User
    role: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class InvitationView:
    invitation: GroupInvitation
    group: StudyGroup
    invited_by: User


class StudyGroups:
    def __init__(
        self, db: Database, clock: Clock, notifications: Notifications, gateway: Gateway
    ) -> None:
        self._db = db
        self._clock = clock
        self._notifications = notifications
        self._gateway = gateway

    async def create(
        self, principal: Principal, *, name: str, description: str, community_id: int | None
    ) -> GroupView:
        """A new group owned by the caller.

        Raises:
            NotFound: no such community.
            Forbidden: the caller is not a member of that community.
        """
        user = principal.user
        now = self._clock.now()
        async with self._db.transaction() as s:
            if community_id is not None:
                if await s.get(Community, community_id) is None:
                    raise NotFound("No community with this id.")
                if await membership(s, community_id, user.id) is None:
                    raise Forbidden("Only members of a community create study groups in it.")
            group = StudyGroup(
                name=name,
                description=description,
                community_id=community_id,
                owner_id=user.id,
                invite_code=secrets.token_urlsafe(INVITE_CODE_BYTES),
                member_count=1,
                created_at=now,
            )
            s.add(group)
            await s.flush()
            s.add(GroupMember(group_id=group.id, user_id=user.id, role="owner", joined_at=now))
        return GroupView(group, user, "owner")

    async def get(self, user: User, group_id: int) -> GroupView:
        """A group the user belongs to. Raises: NotFound (also for non-members)."""
        async with self._db.sessions() as s:
            views = await self._views(s, [group_id], user)
        if not views or views[0].my_role is None:
            raise NotFound("No study group of yours with this id.")
        return views[0]

    async def mine(self, user: User) -> list[GroupView]:
        """The user's groups, most recently joined first."""
        async with self._db.sessions() as s:
            ids = list(
                await s.scalars(
                    select(GroupMember.group_id)
                    .where(GroupMember.user_id == user.id)
                    .order_by(GroupMember.joined_at.desc(), GroupMember.group_id.desc())
                )
            )
            return await self._views(s, ids, user)

    async def in_community(self, user: User, community_id: int) -> list[GroupView]:
        """A community's groups, largest first. Raises: NotFound."""
        async with self._db.sessions() as s:
            if await s.get(Community, community_id) is None:
                raise NotFound("No community with this id.")
            ids = list(
                await s.scalars(
                    select(StudyGroup.id)
                    .where(StudyGroup.community_id == community_id)
                    .order_by(StudyGroup.member_count.desc(), StudyGroup.id)
                )
            )
            return await self._views(s, ids, user)

    async def members(self, user: User, group_id: int) -> list[GroupMemberView]:
        """Owner first, then by joining. Raises: NotFound (also for non-members)."""
        async with self._db.sessions() as s:
            if await s.get(GroupMember, (group_id, user.id)) is None:
                raise NotFound("No study group of yours with this id.")
            rows = (
                await s.execute(
                    select(GroupMember, User)
                    .join(User, User.id == GroupMember.user_id)
                    .where(GroupMember.group_id == group_id)
                    .order_by(
                        (GroupMember.role == "owner").desc(),
                        GroupMember.joined_at,
                        GroupMember.user_id,
                    )
                )
            ).all()
        return [GroupMemberView(u, m.role, m.joined_at) for m, u in rows]

    # Joining -------------------------------------------------------------------------------

    async def join_by_code(self, principal: Principal, code: str) -> GroupView:
        """Join through an invite link; a member joining again just gets the group.

        Raises:
            NotFound: no group with this code.
            Forbidden: banned from the group's community.
        """
        user = principal.user
        async with self._db.transaction() as s:
            group_id = await s.scalar(select(StudyGroup.id).where(StudyGroup.invite_code == code))
            if group_id is None:
                raise NotFound("This invite link is not valid (any more).")
            group = await self._lock(s, group_id)
            await self._add_member(s, group, user)
            views = await self._views(s, [group.id], user)
        return views[0]

    async def invite(self, principal: Principal, group_id: int, user_id: int) -> InvitationView:
        """A member invites someone; they are notified.

        Raises:
            NotFound: no group of the caller's with this id, or no such user.
            Conflict: already a member, or already invited.
            Forbidden: one of the two blocked the other, or the user is banned from the
                group's community.
        """
        inviter = principal.user
        now = self._clock.now()
        async with self._db.transaction() as s:
            group = await self._lock(s, group_id)
            if await s.get(GroupMember, (group_id, inviter.id)) is None:
                raise NotFound("No study group of yours with this id.")
            invitee = await s.get(User, user_id)
            if invitee is None:
                raise NotFound("No user with this id.")
            if await s.get(GroupMember, (group_id, user_id)) is not None:
                raise Conflict(f"{invitee.display_name} is already a member of this group.")
            if await blocked_between(s, inviter.id, user_id):
                raise Forbidden("You cannot invite this user.")
            if group.community_id is not None and await is_banned(s, group.community_id, user_id):
                raise Forbidden(f"{invitee.display_name} is banned from this group's community.")
            invitation = await s.scalar(
                select(GroupInvitation)
                .where(GroupInvitation.group_id == group_id, GroupInvitation.user_id == user_id)
                .with_for_update()
            )
            if invitation is not None and invitation.status == "pending":
                raise Conflict(f"{invitee.display_name} is already invited to this group.")
            if invitation is None:
                invitation = GroupInvitation(group_id=group_id, user_id=user_id)
                s.add(invitation)
            # An old answered invitation (declined, or accepted and left since) is renewed.
            invitation.invited_by = inviter.id
            invitation.status = "pending"
            invitation.created_at = now
            await s.flush()
        await self._notifications.notify(
            user_id,
            "group.invitation",
            actor=inviter,
            data={"group_id": group.id, "group_name": group.name, "invitation_id": invitation.id},
            group_key=f"group.invitation:{group.id}",
        )
        return InvitationView(invitation, group, inviter)

    async def invitations(self, user: User) -> list[InvitationView]:
        """The user's pending invitations, newest first."""
        async with self._db.sessions() as s:
            rows = (
                await s.execute(
                    select(GroupInvitation, StudyGroup, User)
                    .join(StudyGroup, StudyGroup.id == GroupInvitation.group_id)
                    .join(User, User.id == GroupInvitation.invited_by)
                    .where(GroupInvitation.user_id == user.id, GroupInvitation.status == "pending")
                    .order_by(GroupInvitation.created_at.desc(), GroupInvitation.id.desc())
                )
            ).all()
        return [InvitationView(i, g, u) for i, g, u in rows]

    async def accept(self, principal: Principal, invitation_id: int) -> GroupView:
        """Raises: NotFound (not the caller's invitation); Conflict (already answered);
        Forbidden (banned from the group's community)."""
        user = principal.user
        async with self._db.transaction() as s:
            invitation = await self._pending(s, invitation_id, user.id)
            group = await self._lock(s, invitation.group_id)
            await self._add_member(s, group, user)
            views = await self._views(s, [group.id], user)
        return views[0]

    async def decline(self, principal: Principal, invitation_id: int) -> None:
        """Raises: NotFound (not the caller's invitation); Conflict (already answered)."""
        async with self._db.transaction() as s:
            invitation = await self._pending(s, invitation_id, principal.user.id)
            invitation.status = "declined"

    async def leave(self, principal: Principal, group_id: int) -> None:
        """Leave a group. An owner leaving hands the group to the member who joined longest
        ago, or deletes it when nobody is left.

        Raises: NotFound (not a member).
        """
        user_id = principal.user.id
        async with self._db.transaction() as s:
            group = await self._lock(s, group_id)
            member = await s.get(GroupMember, (group_id, user_id))
            if member is None:
                raise NotFound("No study group of yours with this id.")
            await s.delete(member)
            await s.flush()
            if member.role == "owner":
                successor = await s.scalar(
                    select(GroupMember)
                    .where(GroupMember.group_id == group_id)
                    .order_by(GroupMember.joined_at, GroupMember.user_id)
                    .limit(1)
                )
                if successor is None:
                    # Invitations and memberships go with it (ON DELETE CASCADE).
                    await s.execute(delete(StudyGroup).where(StudyGroup.id == group_id))
                else:
                    successor.role = "owner"
                    group.owner_id = successor.user_id
            await _count_members(s, group_id, -1)
        await self._gateway.evict(group_channel(group_id), user_id, "you left this study group")

    # Helpers -------------------------------------------------------------------------------

    async def _lock(self, s: AsyncSession, group_id: int) -> StudyGroup:
        """The group, its row locked until commit: joins, leaves and handovers queue."""
        group = await s.scalar(
            select(StudyGroup).where(StudyGroup.id == group_id).with_for_update(key_share=True)
        )
        if group is None:
            raise NotFound("No study group of yours with this id.")
        return group

    async def _add_member(self, s: AsyncSession, group: StudyGroup, user: User) -> None:
        """Make the user a member (nothing when they are one) and close their invitation."""
        if group.community_id is not None and await is_banned(s, group.community_id, user.id):
            raise Forbidden("You are banned from this group's community.")
        if await s.get(GroupMember, (group.id, user.id)) is None:
            s.add(
                GroupMember(
                    group_id=group.id, user_id=user.id, role="member", joined_at=self._clock.now()
                )
            )
            await _count_members(s, group.id, +1)
        await s.execute(
            update(GroupInvitation)
            .where(
                GroupInvitation.group_id == group.id,
                GroupInvitation.user_id == user.id,
                GroupInvitation.status == "pending",
            )
            .values(status="accepted")
        )

    async def _pending(self, s: AsyncSession, invitation_id: int, user_id: int) -> GroupInvitation:
        invitation = await s.scalar(
            select(GroupInvitation).where(GroupInvitation.id == invitation_id).with_for_update()
        )
        if invitation is None or invitation.user_id != user_id:
            raise NotFound("No invitation of yours with this id.")
        if invitation.status != "pending":
            raise Conflict(f"This invitation was already {invitation.status}.")
        return invitation

    async def _views(self, s: AsyncSession, ids: list[int], viewer: User) -> list[GroupView]:
        if not ids:
            return []
        rows = (
            await s.execute(
                select(StudyGroup, User)
                .join(User, User.id == StudyGroup.owner_id)
                .where(StudyGroup.id.in_(ids))
                .execution_options(populate_existing=True)
            )
        ).all()
        found = {g.id: (g, u) for g, u in rows}
        roles = {
            m.group_id: m.role
            for m in await s.scalars(
                select(GroupMember)
                .where(GroupMember.user_id == viewer.id, GroupMember.group_id.in_(ids))
                .execution_options(populate_existing=True)
            )
        }
        return [GroupView(found[i][0], found[i][1], roles.get(i)) for i in ids if i in found]


async def _count_members(s: AsyncSession, group_id: int, delta: int) -> None:
    await s.execute(
        update(StudyGroup)
        .where(StudyGroup.id == group_id)
        .values(member_count=StudyGroup.member_count + delta)
    )
