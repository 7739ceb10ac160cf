"""HTTP edge of chat: history, read markers and unread counts (live chat is on ``/ws``)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel
from hub.identity.manager import Principal
from rooms.history import MessageView
from rooms.services import ROOMS

# Gateway channel names (chat:community:12, chat:community:12:help, chat:group:3, dm:4:9).
CHANNEL = "{channel:[a-z]+(?::[A-Za-z0-9_.-]+)+}"


class ChatPerson(BaseModel):
    id: int
    display_name: str
    avatar_color: str


class ChatMessageOut(BaseModel):
    seq: int = Field(description="the message's id: its sequence number in the channel")
    text: str = Field(description="markdown; empty once deleted")
    author: ChatPerson | None = Field(description="null when the account is gone")
    reply_to: int | None
    mentions: list[int] = Field(description="user ids")
    reactions: dict[str, list[int]] = Field(description="emoji → user ids")
    edited_at: datetime | None
    deleted: bool
    sent_at: datetime


class HistoryQuery(RequestModel):
    before: int | None = Field(
        default=None, ge=1, le=2**62, description="messages with a smaller seq"
    )
    limit: int = Field(default=50, ge=1, le=100)


class HistoryOut(BaseModel):
    items: list[ChatMessageOut] = Field(description="newest first")
    next_before: int | None = Field(description="`before` for the next (older) page")


class ReadBody(RequestModel):
    seq: int = Field(ge=0, le=2**62, description="the last message read")


class ChannelUnreadOut(BaseModel):
    unread: int


class MyUnreadOut(BaseModel):
    channels: dict[str, int] = Field(description="channel → unread messages")


def message_out(view: MessageView) -> ChatMessageOut:
    m, author = view.message, view.author
    return ChatMessageOut(
        seq=m.seq,
        text=m.text,
        author=None
        if author is None
        else ChatPerson(
            id=author.id, display_name=author.display_name, avatar_color=author.avatar_color
        ),
        reply_to=m.reply_to,
        mentions=list(m.mentions),
        reactions={emoji: list(users) for emoji, users in m.reactions.items()},
        edited_at=m.edited_at,
        deleted=m.deleted_at is not None,
        sent_at=m.created_at,
    )


def register_routes(api: Api) -> None:
    tags = ("chat",)

    @api.route(
        "GET",
        f"/api/channels/{CHANNEL}/messages",
        summary="A chat channel's messages (members)",
        query=HistoryQuery,
        response=HistoryOut,
        errors=[403, 404],
        tags=tags,
    )
    async def channel_messages(
        request: web.Request, principal: Principal, query: HistoryQuery
    ) -> HistoryOut:
        """Messages as they read now (edits, deletions and reactions applied), newest first;
        page back with `before=next_before`. Live ones arrive on `/ws`."""
        views = await request.app[ROOMS].history.page(
            principal.user.id, request.match_info["channel"], before=query.before, limit=query.limit
        )
        items = [message_out(v) for v in views]
        return HistoryOut(
            items=items, next_before=items[-1].seq if len(items) == query.limit else None
        )

    @api.route(
        "POST",
        f"/api/channels/{CHANNEL}/read",
        summary="Move my read marker in a chat channel",
        body=ReadBody,
        response=ChannelUnreadOut,
        errors=[403, 404],
        tags=tags,
    )
    async def mark_channel_read(
        request: web.Request, principal: Principal, body: ReadBody
    ) -> ChannelUnreadOut:
        """The marker never moves back; returns what is still unread in the channel."""
        unread = await request.app[ROOMS].history.mark_read(
            principal.user.id, request.match_info["channel"], body.seq
        )
        return ChannelUnreadOut(unread=unread)

    @api.route(
        "GET",
        "/api/me/unread",
        summary="Unread chat messages per channel",
        response=MyUnreadOut,
        tags=tags,
    )
    async def my_unread(request: web.Request, principal: Principal) -> MyUnreadOut:
        """Messages by others after my read marker, for every channel I belong to (my
        communities' channels, my groups, direct messages with my friends)."""
        return MyUnreadOut(channels=await request.app[ROOMS].history.unread(principal.user.id))
