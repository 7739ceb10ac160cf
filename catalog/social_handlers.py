"""HTTP edge of the social layer: communities, study groups, friends and blocks
(docs/social.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from catalog.communities import BanView, CommunityView, MemberView, community_channel
from catalog.friends import BlockView, FriendView, RequestView, dm_channel
from catalog.groups import GroupMemberView, GroupView, InvitationView, group_channel
from catalog.services import CATALOG
from catalog.social_models import CommunityChannel, StudyGroup
from hub.api import Api, RequestModel, authenticate, path_int
from hub.identity.manager import Principal
from hub.identity.models import User

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Slug = Annotated[
    str,
    Field(
        min_length=2,
        max_length=64,
        pattern=SLUG_PATTERN,
        description="lower-case letters, digits and single hyphens",
    ),
]
Skill = Annotated[str, Field(min_length=1, max_length=40)]
Id = Annotated[int, Field(ge=1, le=10**18 - 1)]
MAX_MUTE_MINUTES = 30 * 24 * 60
MAX_SLOW_MODE = 6 * 3600


def _named(value: str) -> str:
    """Names are trimmed and must keep a visible character."""
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be blank")
    return value


# Shared shapes ------------------------------------------------------------------------------


class SocialUser(BaseModel):
    id: int
    display_name: str
    avatar_color: str

    @classmethod
    def of(cls, user: User) -> SocialUser:
        return cls(id=user.id, display_name=user.display_name, avatar_color=user.avatar_color)


class SocialOwner(BaseModel):
    id: int
    display_name: str

    @classmethod
    def of(cls, user: User) -> SocialOwner:
        return cls(id=user.id, display_name=user.display_name)


# Communities --------------------------------------------------------------------------------


class CommunityBody(RequestModel):
    name: str = Field(min_length=2, max_length=100)
    slug: Slug
    skills: list[Skill] = Field(default_factory=list, max_length=12)
    description: str = Field(default="", max_length=5000)

    _name = field_validator("name")(_named)


class CommunityQuery(RequestModel):
    q: str = Field(default="", max_length=200, description="words of the name, skills or text")
    skill: str | None = Field(default=None, max_length=40, description="one skill, exactly")
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class ChannelOut(BaseModel):
    name: str
    slug: str
    channel: str = Field(description="the gateway channel: chat:community:<id>[:<slug>]")
    slow_mode_seconds: int

    @classmethod
    def of(cls, channel: CommunityChannel) -> ChannelOut:
        return cls(
            name=channel.name,
            slug=channel.slug,
            channel=community_channel(channel.community_id, channel.slug, channel.is_default),
            slow_mode_seconds=channel.slow_mode_seconds,
        )


CommunityRole = Literal["owner", "admin", "moderator", "member"]


class CommunityOut(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    skills: list[str]
    owner: SocialOwner
    member_count: int
    channels: list[ChannelOut] = Field(description="the default channel first")
    my_role: CommunityRole | None = Field(description="null when the viewer is not a member")
    muted_until: datetime | None = Field(description="the viewer's mute, while it lasts")

    @classmethod
    def of(cls, view: CommunityView) -> CommunityOut:
        c = view.community
        return cls(
            id=c.id,
            slug=c.slug,
            name=c.name,
            description=c.description,
            skills=list(c.skills),
            owner=SocialOwner.of(view.owner),
            member_count=c.member_count,
            channels=[ChannelOut.of(ch) for ch in view.channels],
            my_role=view.my_role,
            muted_until=view.muted_until,
        )


class CommunityList(BaseModel):
    items: list[CommunityOut]
    page: int
    page_size: int
    total: int


class JoinOut(BaseModel):
    role: CommunityRole
    reward: int = Field(description="coins earned: only the first time ever")


class MemberQuery(RequestModel):
    cursor: str | None = Field(
        default=None, pattern=r"^[0-3]\.\d{1,18}$", description="next_cursor of the last page"
    )
    limit: int = Field(default=50, ge=1, le=200)


class MemberOut(BaseModel):
    user: SocialUser
    role: CommunityRole
    joined_at: datetime
    muted_until: datetime | None

    @classmethod
    def of(cls, view: MemberView) -> MemberOut:
        return cls(
            user=SocialUser.of(view.user),
            role=view.role,
            joined_at=view.joined_at,
            muted_until=view.muted_until,
        )


class MemberList(BaseModel):
    items: list[MemberOut] = Field(description="owner, admins, moderators, then members")
    next_cursor: str | None


class RoleBody(RequestModel):
    role: Literal["admin", "moderator", "member"]


class MuteBody(RequestModel):
    minutes: int = Field(ge=0, le=MAX_MUTE_MINUTES, description="0 unmutes")


class BanBody(RequestModel):
    user_id: Id
    reason: str = Field(default="", max_length=500)


class BanOut(BaseModel):
    user: SocialUser
    reason: str
    banned_by: SocialUser | None
    created_at: datetime

    @classmethod
    def of(cls, view: BanView) -> BanOut:
        return cls(
            user=SocialUser.of(view.user),
            reason=view.ban.reason,
            banned_by=SocialUser.of(view.banned_by) if view.banned_by else None,
            created_at=view.ban.created_at,
        )


class BanList(BaseModel):
    items: list[BanOut]


class ChannelBody(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    slug: Slug
    slow_mode_seconds: int = Field(default=0, ge=0, le=MAX_SLOW_MODE)

    _name = field_validator("name")(_named)


class ChannelPatch(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    slow_mode_seconds: int | None = Field(default=None, ge=0, le=MAX_SLOW_MODE)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _named(value)

    @model_validator(mode="after")
    def _not_empty(self) -> ChannelPatch:
        if not self.model_fields_set or any(
            getattr(self, f) is None for f in self.model_fields_set
        ):
            raise ValueError("send name and/or slow_mode_seconds, none of them null")
        return self


# Study groups -------------------------------------------------------------------------------


class GroupBody(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=5000)
    community_id: Id | None = None

    _name = field_validator("name")(_named)


class GroupOut(BaseModel):
    id: int
    name: str
    description: str
    community_id: int | None
    owner: SocialOwner
    member_count: int
    channel: str = Field(description="chat:group:<id>")
    my_role: Literal["owner", "member"] | None
    invite_code: str | None = Field(
        description="members only; the invite link is /groups/join/<invite_code>"
    )

    @classmethod
    def of(cls, view: GroupView) -> GroupOut:
        g = view.group
        return cls(
            id=g.id,
            name=g.name,
            description=g.description,
            community_id=g.community_id,
            owner=SocialOwner.of(view.owner),
            member_count=g.member_count,
            channel=group_channel(g.id),
            my_role=view.my_role,
            invite_code=g.invite_code if view.my_role is not None else None,
        )


class GroupList(BaseModel):
    items: list[GroupOut]


class GroupMemberOut(BaseModel):
    user: SocialUser
    role: Literal["owner", "member"]
    joined_at: datetime

    @classmethod
    def of(cls, view: GroupMemberView) -> GroupMemberOut:
        return cls(
            user=SocialUser.of(view.user),
            role=view.role,
            joined_at=view.joined_at,
        )


class GroupMemberList(BaseModel):
    items: list[GroupMemberOut]


class JoinCodeBody(RequestModel):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class InviteBody(RequestModel):
    user_id: Id


class GroupSummary(BaseModel):
    id: int
    name: str
    description: str
    community_id: int | None
    member_count: int

    @classmethod
    def of(cls, group: StudyGroup) -> GroupSummary:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            community_id=group.community_id,
            member_count=group.member_count,
        )


class InvitationOut(BaseModel):
    id: int
    group: GroupSummary
    invited_by: SocialOwner
    status: Literal["pending", "accepted", "declined"]
    created_at: datetime

    @classmethod
    def of(cls, view: InvitationView) -> InvitationOut:
        return cls(
            id=view.invitation.id,
            group=GroupSummary.of(view.group),
            invited_by=SocialOwner.of(view.invited_by),
            status=view.invitation.status,
            created_at=view.invitation.created_at,
        )


class InvitationList(BaseModel):
    items: list[InvitationOut]


# Friends ------------------------------------------------------------------------------------


class UserIdBody(RequestModel):
    user_id: Id


class FriendRequestOut(BaseModel):
    status: Literal["pending", "accepted"] = Field(
        description="accepted when the other had already asked"
    )


class FriendOut(BaseModel):
    user: SocialUser
    since: datetime
    dm_channel: str = Field(description="dm:<low id>:<high id>")

    @classmethod
    def of(cls, me: int, view: FriendView) -> FriendOut:
        return cls(
            user=SocialUser.of(view.user), since=view.since, dm_channel=dm_channel(me, view.user.id)
        )


class FriendRequestItem(BaseModel):
    user: SocialUser
    created_at: datetime

    @classmethod
    def of(cls, view: RequestView) -> FriendRequestItem:
        return cls(user=SocialUser.of(view.user), created_at=view.created_at)


class FriendsOut(BaseModel):
    friends: list[FriendOut]
    incoming: list[FriendRequestItem] = Field(description="requests to me, newest first")
    outgoing: list[FriendRequestItem] = Field(description="my requests, newest first")


class BlockOut(BaseModel):
    user: SocialUser
    created_at: datetime

    @classmethod
    def of(cls, view: BlockView) -> BlockOut:
        return cls(user=SocialUser.of(view.user), created_at=view.created_at)


class BlockList(BaseModel):
    items: list[BlockOut]


# Routes -------------------------------------------------------------------------------------


async def _viewer(request: web.Request) -> User | None:
    """The signed-in user, for pages that anyone may read."""
    if "Authorization" not in request.headers:
        return None
    return (await authenticate(request)).user


def register_social_routes(api: Api) -> None:
    _community_routes(api)
    _moderation_routes(api)
    _group_routes(api)
    _friend_routes(api)


def _community_routes(api: Api) -> None:
    tags = ("communities",)

    @api.route(
        "POST",
        "/api/communities",
        summary="Create a community",
        body=CommunityBody,
        response=CommunityOut,
        status=201,
        errors=[409],
        tags=tags,
    )
    async def create_community(
        request: web.Request, principal: Principal, body: CommunityBody
    ) -> CommunityOut:
        """The creator is its owner; a default channel `general` is created. 409 when the
        slug is taken."""
        view = await request.app[CATALOG].communities.create(
            principal,
            name=body.name,
            slug=body.slug,
            skills=body.skills,
            description=body.description.strip(),
        )
        return CommunityOut.of(view)

    @api.route(
        "GET",
        "/api/communities",
        summary="Find communities",
        query=CommunityQuery,
        response=CommunityList,
        auth=False,
        tags=tags,
    )
    async def list_communities(request: web.Request, query: CommunityQuery) -> CommunityList:
        """Search over name, skills and description; most members first. Signed in, each
        carries the viewer's role."""
        page = await request.app[CATALOG].communities.search(
            await _viewer(request),
            q=query.q,
            skill=query.skill,
            page=query.page,
            page_size=query.page_size,
        )
        return CommunityList(
            items=[CommunityOut.of(v) for v in page.items],
            page=query.page,
            page_size=query.page_size,
            total=page.total,
        )

    @api.route(
        "GET",
        r"/api/communities/{community_id:\d+}",
        summary="A community",
        response=CommunityOut,
        auth=False,
        errors=[404],
        tags=tags,
    )
    async def get_community(request: web.Request) -> CommunityOut:
        view = await request.app[CATALOG].communities.get(
            await _viewer(request), path_int(request, "community_id")
        )
        return CommunityOut.of(view)

    @api.route(
        "GET",
        "/api/communities/by-slug/{slug}",
        summary="A community by its address",
        response=CommunityOut,
        auth=False,
        errors=[404],
        tags=tags,
    )
    async def get_community_by_slug(request: web.Request) -> CommunityOut:
        view = await request.app[CATALOG].communities.by_slug(
            await _viewer(request), request.match_info["slug"]
        )
        return CommunityOut.of(view)

    @api.route(
        "POST",
        r"/api/communities/{community_id:\d+}/join",
        summary="Join a community",
        response=JoinOut,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def join_community(request: web.Request, principal: Principal) -> JoinOut:
        """The first join ever earns `COHORT_COMMUNITY_JOIN_REWARD` coins; rejoining earns
        nothing. 403 when banned, 409 when already a member."""
        result = await request.app[CATALOG].communities.join(
            principal, path_int(request, "community_id")
        )
        return JoinOut(role=result.role, reward=result.reward)

    @api.route(
        "POST",
        r"/api/communities/{community_id:\d+}/leave",
        summary="Leave a community",
        status=204,
        errors=[404, 409],
        tags=tags,
    )
    async def leave_community(request: web.Request, principal: Principal) -> None:
        """409 for the owner, and for non-members."""
        await request.app[CATALOG].communities.leave(principal, path_int(request, "community_id"))

    @api.route(
        "GET",
        r"/api/communities/{community_id:\d+}/members",
        summary="A community's members",
        query=MemberQuery,
        response=MemberList,
        errors=[404],
        tags=tags,
    )
    async def list_community_members(
        request: web.Request, principal: Principal, query: MemberQuery
    ) -> MemberList:
        page = await request.app[CATALOG].communities.members(
            path_int(request, "community_id"), cursor=query.cursor, limit=query.limit
        )
        return MemberList(items=[MemberOut.of(m) for m in page.items], next_cursor=page.next_cursor)

    @api.route(
        "POST",
        r"/api/communities/{community_id:\d+}/channels",
        summary="Add a chat channel (admins and up)",
        body=ChannelBody,
        response=ChannelOut,
        status=201,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def add_community_channel(
        request: web.Request, principal: Principal, body: ChannelBody
    ) -> ChannelOut:
        channel = await request.app[CATALOG].communities.add_channel(
            principal,
            path_int(request, "community_id"),
            name=body.name,
            slug=body.slug,
            slow_mode=body.slow_mode_seconds,
        )
        return ChannelOut.of(channel)

    @api.route(
        "PATCH",
        r"/api/communities/{community_id:\d+}/channels/{channel_slug}",
        summary="Rename a channel or set its slow mode (admins and up)",
        body=ChannelPatch,
        response=ChannelOut,
        errors=[403, 404],
        tags=tags,
    )
    async def edit_community_channel(
        request: web.Request, principal: Principal, body: ChannelPatch
    ) -> ChannelOut:
        channel = await request.app[CATALOG].communities.edit_channel(
            principal,
            path_int(request, "community_id"),
            request.match_info["channel_slug"],
            {name: getattr(body, name) for name in body.model_fields_set},
        )
        return ChannelOut.of(channel)


def _moderation_routes(api: Api) -> None:
    tags = ("communities",)

    @api.route(
        "PUT",
        r"/api/communities/{community_id:\d+}/members/{user_id:\d+}/role",
        summary="Change a member's role",
        body=RoleBody,
        response=MemberOut,
        errors=[403, 404],
        tags=tags,
    )
    async def set_member_role(
        request: web.Request, principal: Principal, body: RoleBody
    ) -> MemberOut:
        """The owner sets any role; admins set moderator or member on members below admin.
        The member is notified (`community.role`)."""
        view = await request.app[CATALOG].communities.set_role(
            principal,
            path_int(request, "community_id"),
            path_int(request, "user_id"),
            body.role,
        )
        return MemberOut.of(view)

    @api.route(
        "POST",
        r"/api/communities/{community_id:\d+}/members/{user_id:\d+}/mute",
        summary="Mute a member for a time (moderators and up)",
        body=MuteBody,
        response=MemberOut,
        errors=[403, 404],
        tags=tags,
    )
    async def mute_member(request: web.Request, principal: Principal, body: MuteBody) -> MemberOut:
        """On members below the caller; `minutes: 0` unmutes. A muted member cannot post in
        the community's channels until `muted_until`."""
        view = await request.app[CATALOG].communities.mute(
            principal,
            path_int(request, "community_id"),
            path_int(request, "user_id"),
            body.minutes,
        )
        return MemberOut.of(view)

    @api.route(
        "POST",
        r"/api/communities/{community_id:\d+}/bans",
        summary="Ban a user (admins and up)",
        body=BanBody,
        response=BanOut,
        status=201,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def ban_user(request: web.Request, principal: Principal, body: BanBody) -> BanOut:
        """Removes them if they are a member (only members below the caller can be
        banned); they cannot join again until the ban is lifted."""
        view = await request.app[CATALOG].communities.ban(
            principal, path_int(request, "community_id"), body.user_id, body.reason
        )
        return BanOut.of(view)

    @api.route(
        "DELETE",
        r"/api/communities/{community_id:\d+}/bans/{user_id:\d+}",
        summary="Lift a ban (admins and up)",
        status=204,
        errors=[403, 404],
        tags=tags,
    )
    async def lift_ban(request: web.Request, principal: Principal) -> None:
        await request.app[CATALOG].communities.unban(
            principal, path_int(request, "community_id"), path_int(request, "user_id")
        )

    @api.route(
        "GET",
        r"/api/communities/{community_id:\d+}/bans",
        summary="A community's bans (admins and up)",
        response=BanList,
        errors=[403, 404],
        tags=tags,
    )
    async def list_bans(request: web.Request, principal: Principal) -> BanList:
        views = await request.app[CATALOG].communities.bans(
            principal, path_int(request, "community_id")
        )
        return BanList(items=[BanOut.of(v) for v in views])


def _group_routes(api: Api) -> None:
    tags = ("groups",)

    @api.route(
        "POST",
        "/api/groups",
        summary="Create a study group",
        body=GroupBody,
        response=GroupOut,
        status=201,
        errors=[403, 404],
        tags=tags,
    )
    async def create_group(request: web.Request, principal: Principal, body: GroupBody) -> GroupOut:
        """Inside a community only its members create groups (403)."""
        view = await request.app[CATALOG].groups.create(
            principal,
            name=body.name,
            description=body.description.strip(),
            community_id=body.community_id,
        )
        return GroupOut.of(view)

    @api.route(
        "GET",
        r"/api/groups/{group_id:\d+}",
        summary="A study group (members)",
        response=GroupOut,
        errors=[404],
        tags=tags,
    )
    async def get_group(request: web.Request, principal: Principal) -> GroupOut:
        """404 for those who are not members."""
        view = await request.app[CATALOG].groups.get(principal.user, path_int(request, "group_id"))
        return GroupOut.of(view)

    @api.route("GET", "/api/me/groups", summary="My study groups", response=GroupList, tags=tags)
    async def my_groups(request: web.Request, principal: Principal) -> GroupList:
        views = await request.app[CATALOG].groups.mine(principal.user)
        return GroupList(items=[GroupOut.of(v) for v in views])

    @api.route(
        "GET",
        r"/api/communities/{community_id:\d+}/groups",
        summary="A community's study groups",
        response=GroupList,
        errors=[404],
        tags=tags,
    )
    async def community_groups(request: web.Request, principal: Principal) -> GroupList:
        """Largest first; `invite_code` only on the viewer's own groups."""
        views = await request.app[CATALOG].groups.in_community(
            principal.user, path_int(request, "community_id")
        )
        return GroupList(items=[GroupOut.of(v) for v in views])

    @api.route(
        "GET",
        r"/api/groups/{group_id:\d+}/members",
        summary="A study group's members (members)",
        response=GroupMemberList,
        errors=[404],
        tags=tags,
    )
    async def list_group_members(request: web.Request, principal: Principal) -> GroupMemberList:
        views = await request.app[CATALOG].groups.members(
            principal.user, path_int(request, "group_id")
        )
        return GroupMemberList(items=[GroupMemberOut.of(v) for v in views])

    @api.route(
        "POST",
        "/api/groups/join",
        summary="Join a study group by its invite link",
        body=JoinCodeBody,
        response=GroupOut,
        errors=[403, 404],
        tags=tags,
    )
    async def join_group(
        request: web.Request, principal: Principal, body: JoinCodeBody
    ) -> GroupOut:
        """The code of `/groups/join/<code>`. A member joining again gets the group."""
        view = await request.app[CATALOG].groups.join_by_code(principal, body.code)
        return GroupOut.of(view)

    @api.route(
        "POST",
        r"/api/groups/{group_id:\d+}/invitations",
        summary="Invite someone to a study group (members)",
        body=InviteBody,
        response=InvitationOut,
        status=201,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def invite_to_group(
        request: web.Request, principal: Principal, body: InviteBody
    ) -> InvitationOut:
        """The user is notified (`group.invitation`). 409 when already a member or already
        invited; 403 when either blocks the other."""
        view = await request.app[CATALOG].groups.invite(
            principal, path_int(request, "group_id"), body.user_id
        )
        return InvitationOut.of(view)

    @api.route(
        "GET",
        "/api/me/group-invitations",
        summary="My pending study group invitations",
        response=InvitationList,
        tags=tags,
    )
    async def my_group_invitations(request: web.Request, principal: Principal) -> InvitationList:
        views = await request.app[CATALOG].groups.invitations(principal.user)
        return InvitationList(items=[InvitationOut.of(v) for v in views])

    @api.route(
        "POST",
        r"/api/group-invitations/{invitation_id:\d+}/accept",
        summary="Accept an invitation",
        response=GroupOut,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def accept_group_invitation(request: web.Request, principal: Principal) -> GroupOut:
        view = await request.app[CATALOG].groups.accept(
            principal, path_int(request, "invitation_id")
        )
        return GroupOut.of(view)

    @api.route(
        "POST",
        r"/api/group-invitations/{invitation_id:\d+}/decline",
        summary="Decline an invitation",
        status=204,
        errors=[404, 409],
        tags=tags,
    )
    async def decline_group_invitation(request: web.Request, principal: Principal) -> None:
        await request.app[CATALOG].groups.decline(principal, path_int(request, "invitation_id"))

    @api.route(
        "POST",
        r"/api/groups/{group_id:\d+}/leave",
        summary="Leave a study group",
        status=204,
        errors=[404],
        tags=tags,
    )
    async def leave_group(request: web.Request, principal: Principal) -> None:
        """An owner leaving hands the group to the member who joined longest ago; the last
        member leaving deletes it."""
        await request.app[CATALOG].groups.leave(principal, path_int(request, "group_id"))


def _friend_routes(api: Api) -> None:
    tags = ("friends",)

    @api.route(
        "POST",
        "/api/friends/requests",
        summary="Send a friend request",
        body=UserIdBody,
        response=FriendRequestOut,
        status=201,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def request_friend(
        request: web.Request, principal: Principal, body: UserIdBody
    ) -> FriendRequestOut:
        """`accepted` when they had already asked. The other is notified. 403 when either
        blocks the other; 409 when already friends or already asked."""
        status = await request.app[CATALOG].friends.request(principal, body.user_id)
        return FriendRequestOut(status=status)

    @api.route(
        "GET", "/api/friends", summary="Friends and requests", response=FriendsOut, tags=tags
    )
    async def list_friends(request: web.Request, principal: Principal) -> FriendsOut:
        me = principal.user.id
        overview = await request.app[CATALOG].friends.overview(principal.user)
        return FriendsOut(
            friends=[FriendOut.of(me, f) for f in overview.friends],
            incoming=[FriendRequestItem.of(r) for r in overview.incoming],
            outgoing=[FriendRequestItem.of(r) for r in overview.outgoing],
        )

    @api.route(
        "POST",
        r"/api/friends/requests/{user_id:\d+}/accept",
        summary="Accept a friend request",
        response=FriendOut,
        errors=[404],
        tags=tags,
    )
    async def accept_friend(request: web.Request, principal: Principal) -> FriendOut:
        """The requester is notified (`friend.accepted`)."""
        view = await request.app[CATALOG].friends.accept(principal, path_int(request, "user_id"))
        return FriendOut.of(principal.user.id, view)

    @api.route(
        "POST",
        r"/api/friends/requests/{user_id:\d+}/decline",
        summary="Decline a friend request",
        status=204,
        errors=[404],
        tags=tags,
    )
    async def decline_friend(request: web.Request, principal: Principal) -> None:
        await request.app[CATALOG].friends.decline(principal, path_int(request, "user_id"))

    @api.route(
        "DELETE",
        r"/api/friends/{user_id:\d+}",
        summary="Remove a friend, or cancel a request",
        status=204,
        errors=[404],
        tags=tags,
    )
    async def remove_friend(request: web.Request, principal: Principal) -> None:
        await request.app[CATALOG].friends.remove(principal, path_int(request, "user_id"))

    @api.route(
        "POST",
        "/api/blocks",
        summary="Block a user",
        body=UserIdBody,
        response=BlockOut,
        status=201,
        errors=[404, 409],
        tags=tags,
    )
    async def block_user(request: web.Request, principal: Principal, body: UserIdBody) -> BlockOut:
        """Also ends any friendship or request between the two. A blocked user cannot
        request or message."""
        view = await request.app[CATALOG].friends.block(principal, body.user_id)
        return BlockOut.of(view)

    @api.route(
        "DELETE",
        r"/api/blocks/{user_id:\d+}",
        summary="Unblock a user",
        status=204,
        errors=[404],
        tags=tags,
    )
    async def unblock_user(request: web.Request, principal: Principal) -> None:
        await request.app[CATALOG].friends.unblock(principal, path_int(request, "user_id"))

    @api.route("GET", "/api/blocks", summary="Whom I block", response=BlockList, tags=tags)
    async def list_blocks(request: web.Request, principal: Principal) -> BlockList:
        views = await request.app[CATALOG].friends.blocks(principal.user)
        return BlockList(items=[BlockOut.of(v) for v in views])
