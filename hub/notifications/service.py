"""Notifications: stored per user, similar unread ones grouped, muted per type, pushed live on
the user's durable channel ``user:<id>`` as ``{"type": "notification", "notification": …}``.

Packages call ``Notifications.notify``; the hub's own events (teacher application decisions)
and the feature packages' (video ready, course sold, friend requests, mentions, …) all arrive
here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from hub.clock import Clock
from hub.db import Database
from hub.errors import NotFound
from hub.identity.models import User
from hub.notifications.models import Notification, NotificationPreference
from hub.realtime.gateway import Gateway

MAX_ACTORS = 10

# Every type a user can receive and mute, with what the web shows for it.
TYPES: dict[str, str] = {
    "friend.request": "friend requests",
    "friend.accepted": "accepted friend requests",
    "chat.mention": "mentions",
    "chat.reply": "replies to your messages",
    "group.invitation": "study group invitations",
    "watch_party.started": "watch parties started in your study groups",
    "community.role": "role changes in communities",
    "community.joined": "new members of your communities",
    "teacher_application.decided": "teacher application decisions",
    "course.purchased": "sales of your courses",
    "video.ready": "videos ready to watch",
    "video.failed": "videos that failed to process",
}


@dataclass(frozen=True, slots=True)
class NotificationView:
    notification: Notification
    actors: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        n = self.notification
        raw = {
            "id": n.id,
            "type": n.type,
            "actors": self.actors,
            "actor_count": n.actor_count,
            "data": n.data,
            "read": n.read_at is not None,
            "created_at": n.created_at.isoformat(),
            "updated_at": n.updated_at.isoformat(),
        }
        return {**raw, "text": describe(raw)}


class Notifications:
    def __init__(self, db: Database, gateway: Gateway, clock: Clock) -> None:
        self._db = db
        self._gateway = gateway
        self._clock = clock

    async def notify(
        self,
        user_id: int,
        type: str,
        *,
        actor: User | None = None,
        data: dict[str, Any] | None = None,
        group_key: str | None = None,
    ) -> NotificationView | None:
        """Store (or merge into the unread one with the same ``group_key``) and push live.
        Returns None when the user muted this type or is the actor."""
        if type not in TYPES:
            raise ValueError(f"unknown notification type {type!r}")
        if actor is not None and actor.id == user_id:
            return None
        now = self._clock.now()
        async with self._db.transaction() as s:
            muted = await s.scalar(
                select(NotificationPreference.muted).where(
                    NotificationPreference.user_id == user_id,
                    NotificationPreference.type == type,
                )
            )
            if muted:
                return None
            row = None
            if group_key is not None:
                row = await s.scalar(
                    select(Notification)
                    .where(
                        Notification.user_id == user_id,
                        Notification.group_key == group_key,
                        Notification.read_at.is_(None),
                    )
                    .order_by(Notification.id.desc())
                    .limit(1)
                    .with_for_update()
                )
            if row is None:
                row = Notification(
                    user_id=user_id,
                    type=type,
                    group_key=group_key,
                    actors=[],
                    actor_count=0,
                    data=data or {},
                    created_at=now,
                )
                s.add(row)
            elif data:
                row.data = {**row.data, **data}
            if actor is not None and actor.id not in row.actors:
                row.actors = [actor.id, *row.actors][:MAX_ACTORS]
                row.actor_count += 1
            row.updated_at = now
            await s.flush()
            view = NotificationView(row, await self._people(s, row.actors))
            stored = await self._gateway.store.append(
                s,
                f"user:{user_id}",
                {"type": "notification", "notification": view.as_json()},
                author_id=None,
                now=now,
            )
        await self._gateway.announce(stored)
        return view

    async def recent(
        self, user_id: int, *, before: int | None, limit: int, unread_only: bool = False
    ) -> tuple[list[NotificationView], int]:
        """Newest first (a grouped notification keeps its place as it grows; its
        ``updated_at`` moves), and the unread count."""
        async with self._db.sessions() as s:
            query = (
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(Notification.id < before)
            if unread_only:
                query = query.where(Notification.read_at.is_(None))
            rows = list(await s.scalars(query))
            ids = {a for row in rows for a in row.actors}
            people = await self._people(s, list(ids))
            unread = await self._unread(s, user_id)
        by_id = {p["id"]: p for p in people}
        return [
            NotificationView(row, [by_id[a] for a in row.actors if a in by_id]) for row in rows
        ], unread

    async def unread_count(self, user_id: int) -> int:
        async with self._db.sessions() as s:
            return await self._unread(s, user_id)

    async def mark_read(self, user_id: int, notification_id: int | None) -> int:
        """Mark one (or, with None, every) notification read; returns the unread count, which is
        also pushed to the user's other tabs."""
        now = self._clock.now()
        async with self._db.transaction() as s:
            query = update(Notification).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
            if notification_id is not None:
                exists = await s.scalar(
                    select(Notification.id).where(
                        Notification.id == notification_id, Notification.user_id == user_id
                    )
                )
                if exists is None:
                    raise NotFound("No notification of yours with this id.")
                query = query.where(Notification.id == notification_id)
            await s.execute(query.values(read_at=now))
            unread = await self._unread(s, user_id)
            stored = await self._gateway.store.append(
                s,
                f"user:{user_id}",
                {"type": "notifications.read", "id": notification_id, "unread": unread},
                author_id=None,
                now=now,
            )
        await self._gateway.announce(stored)
        return unread

    async def preferences(self, user_id: int) -> dict[str, bool]:
        """Type → muted, for every type."""
        async with self._db.sessions() as s:
            muted = set(
                await s.scalars(
                    select(NotificationPreference.type).where(
                        NotificationPreference.user_id == user_id,
                        NotificationPreference.muted.is_(True),
                    )
                )
            )
        return {t: t in muted for t in TYPES}

    async def set_preferences(self, user_id: int, muted: dict[str, bool]) -> dict[str, bool]:
        async with self._db.transaction() as s:
            for type_, value in muted.items():
                row = await s.get(NotificationPreference, (user_id, type_))
                if row is None:
                    s.add(NotificationPreference(user_id=user_id, type=type_, muted=value))
                else:
                    row.muted = value
        return await self.preferences(user_id)

    async def _unread(self, s: Any, user_id: int) -> int:
        count = await s.scalar(
            select(func.count()).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
        )
        return int(count or 0)

    async def _people(self, s: Any, ids: list[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        users = {u.id: u for u in await s.scalars(select(User).where(User.id.in_(ids)))}
        return [
            {"id": u.id, "display_name": u.display_name, "avatar_color": u.avatar_color}
            for i in ids
            if (u := users.get(i)) is not None
        ]


def describe(notification: dict[str, Any]) -> str:
    """A one-line text for a notification (also what the web shows): "Ana and 3 others …"."""
    actors = notification.get("actors") or []
    count = int(notification.get("actor_count") or 0)
    who = ""
    if actors:
        who = actors[0]["display_name"]
        if count > 1:
            who += f" and {count - 1} other{'s' if count > 2 else ''}"
    data = notification.get("data") or {}
    kind = str(notification["type"])
    texts = {
        "friend.request": f"{who} sent you a friend request",
        "friend.accepted": f"{who} accepted your friend request",
        "chat.mention": f"{who} mentioned you in {data.get('where', 'a chat')}",
        "chat.reply": f"{who} replied to your message",
        "group.invitation": f"{who} invited you to {data.get('group_name', 'a study group')}",
        "watch_party.started": f"{who} started a watch party in "
        f"{data.get('group_name', 'your study group')}: {data.get('lesson_title', 'a lesson')}",
        "community.role": f"You are now {data.get('role', 'a member')} of "
        f"{data.get('community_name', 'a community')}",
        "community.joined": f"{who} joined {data.get('community_name', 'your community')}",
        "teacher_application.decided": "Your teacher application was "
        f"{data.get('status', 'decided')}",
        "course.purchased": f"{who} bought {data.get('course_title', 'your course')}",
        "video.ready": f"Your video {data.get('title', '')} is ready".replace("  ", " "),
        "video.failed": f"Your video {data.get('title', '')} could not be processed".replace(
            "  ", " "
        ),
    }
    return str(texts.get(kind, kind))
