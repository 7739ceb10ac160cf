"""HTTP edge of notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from hub.api import Api, RequestModel, path_int
from hub.identity.manager import Principal
from hub.notifications.service import TYPES, NotificationView
from hub.services import HUB


class Person(BaseModel):
    id: int
    display_name: str
    avatar_color: str


class NotificationOut(BaseModel):
    id: int
    type: str
    text: str = Field(description="what to show, e.g. “Ana and 3 others joined Python”")
    actors: list[Person] = Field(description="latest first, at most 10")
    actor_count: int
    data: dict[str, Any]
    read: bool
    created_at: datetime
    updated_at: datetime


def notification_out(view: NotificationView) -> NotificationOut:
    return NotificationOut.model_validate(view.as_json())


class NotificationQuery(RequestModel):
    cursor: int | None = Field(default=None, ge=1)
    limit: int = Field(default=20, ge=1, le=100)
    unread: bool = False


class NotificationList(BaseModel):
    items: list[NotificationOut]
    unread: int
    next_cursor: int | None


class UnreadOut(BaseModel):
    unread: int


class PreferencesOut(BaseModel):
    muted: dict[str, bool] = Field(description="type → muted")
    labels: dict[str, str] = Field(description="type → what it is about")


class PreferencesBody(RequestModel):
    muted: dict[str, bool]

    @model_validator(mode="after")
    def _known(self) -> PreferencesBody:
        unknown = sorted(set(self.muted) - set(TYPES))
        if unknown:
            raise ValueError(f"unknown notification types: {', '.join(unknown)}")
        return self


def register_routes(api: Api) -> None:
    tags = ("notifications",)

    @api.route(
        "GET",
        "/api/notifications",
        summary="My notifications",
        query=NotificationQuery,
        response=NotificationList,
        tags=tags,
    )
    async def list_notifications(
        request: web.Request, principal: Principal, query: NotificationQuery
    ) -> NotificationList:
        """Newest first, similar ones grouped; live ones arrive on the `user:<id>` channel."""
        views, unread = await request.app[HUB].notifications.recent(
            principal.user.id, before=query.cursor, limit=query.limit, unread_only=query.unread
        )
        items = [notification_out(v) for v in views]
        return NotificationList(
            items=items,
            unread=unread,
            next_cursor=items[-1].id if len(items) == query.limit else None,
        )

    @api.route(
        "GET",
        "/api/notifications/unread-count",
        summary="How many notifications are unread",
        response=UnreadOut,
        tags=tags,
    )
    async def unread(request: web.Request, principal: Principal) -> UnreadOut:
        return UnreadOut(
            unread=await request.app[HUB].notifications.unread_count(principal.user.id)
        )

    @api.route(
        "POST",
        r"/api/notifications/{notification_id:\d+}/read",
        summary="Mark one notification read",
        response=UnreadOut,
        errors=[404],
        tags=tags,
    )
    async def read_one(request: web.Request, principal: Principal) -> UnreadOut:
        left = await request.app[HUB].notifications.mark_read(
            principal.user.id, path_int(request, "notification_id")
        )
        return UnreadOut(unread=left)

    @api.route(
        "POST",
        "/api/notifications/read-all",
        summary="Mark every notification read",
        response=UnreadOut,
        tags=tags,
    )
    async def read_all(request: web.Request, principal: Principal) -> UnreadOut:
        return UnreadOut(
            unread=await request.app[HUB].notifications.mark_read(principal.user.id, None)
        )

    @api.route(
        "GET",
        "/api/notifications/preferences",
        summary="Which notification types I muted",
        response=PreferencesOut,
        tags=tags,
    )
    async def get_preferences(request: web.Request, principal: Principal) -> PreferencesOut:
        muted = await request.app[HUB].notifications.preferences(principal.user.id)
        return PreferencesOut(muted=muted, labels=TYPES)

    @api.route(
        "PUT",
        "/api/notifications/preferences",
        summary="Mute or unmute notification types",
        body=PreferencesBody,
        response=PreferencesOut,
        tags=tags,
    )
    async def put_preferences(
        request: web.Request, principal: Principal, body: PreferencesBody
    ) -> PreferencesOut:
        muted = await request.app[HUB].notifications.set_preferences(principal.user.id, body.muted)
        return PreferencesOut(muted=muted, labels=TYPES)
