"""Notifications: stored per user, similar unread ones grouped, muted per type, pushed live on
the user's durable channel ``user:<id>`` as ``{"type": "notification", "notification": …}``.

Packages call ``Notifications.notify``; the hub's own events (teacher application decisions)
and the feature packages' (video ready, course sold, friend requests, mentions, …) all arrive
here. Hot paths instead write an outbox row (``pending_values``) in their own transaction, so
the notification can be neither lost nor told of a change that rolled back, and costs them one
insert; the outbox is delivered in batches in the background (``delivering``), with the same
effect as ``notify`` one row after the other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.clock import Clock
from hub.db import Database
from hub.errors import NotFound
from hub.identity.models import User
from hub.notifications.models import Notification, NotificationPreference, PendingNotification
from hub.realtime.gateway import Gateway
from hub.realtime.store import Pending, Stored

log = logging.getLogger(__name__)

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


@dataclass(slots=True)
class MergedNotification:
    """A notification as a delivery leaves it (``Notifications.notify``, the outbox), before
    it is written; ``id`` None until it is inserted."""

    id: int | None
    user_id: int
    type: str
    group_key: str | None
    actors: list[int]
    actor_count: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NotificationView:
    notification: Notification | MergedNotification
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


@dataclass(frozen=True, slots=True)
class Event:
    """Something to tell ``user_id`` about (see ``Notifications.notify``), as of ``at``."""

    user_id: int
    type: str
    actor_id: int | None
    data: dict[str, Any]
    group_key: str | None
    at: datetime


# Outbox rows delivered per transaction at most; and how long a delivery waits after being
# told of new rows for more to join them: at a thousand sales a second some two hundred go
# in one transaction, which costs the hub and PostgreSQL half as much per row as fifty do.
DELIVERY_BATCH = 1000
DELIVERY_LINGER_SECONDS = 0.2
# After a round that delivered this many rows or more, the next one waits longer: what one
# round costs goes mostly by the notifications it touches, and the longer a busy outbox fills
# the more of its rows merge into the same ones (sales of a course: "Ana and 3 others
# bought …"). At 650 sales a second of 600 courses, 0.9 notifications touched per sale after
# 0.2 s, 0.6 after 1 s. A quiet hub keeps the short wait.
DELIVERY_BUSY_ROWS = 100
DELIVERY_BUSY_LINGER_SECONDS = 1.0
# How often the outbox is looked at without being told (rows other hubs left behind).
DELIVERY_POLL_SECONDS = 5.0


class Notifications:
    def __init__(self, db: Database, gateway: Gateway, clock: Clock) -> None:
        self._db = db
        self._gateway = gateway
        self._clock = clock
        self._pending = asyncio.Event()

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
        event = Event(
            user_id,
            _known(type),
            actor.id if actor is not None else None,
            data or {},
            group_key,
            self._clock.now(),
        )
        async with self._db.writing() as conn:
            delivered = await self._deliver(conn, [event])
        if not delivered:
            return None
        [(view, stored)] = delivered
        await self._gateway.announce(stored)
        return view

    # The outbox: notifications written in their cause's transaction ----------------------

    @staticmethod
    def pending_values(
        user_id: int,
        type: str,
        *,
        actor_id: int | None,
        data: dict[str, Any],
        group_key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """An outbox row (``PendingNotification``) for the caller to insert in its own
        transaction; call ``wake`` after the commit."""
        return {
            "user_id": user_id,
            "type": _known(type),
            "actor_id": actor_id,
            "data": data,
            "group_key": group_key,
            "created_at": at,
        }

    def wake(self) -> None:
        """Outbox rows were committed: deliver them soon."""
        self._pending.set()

    async def deliver_pending(self, limit: int = DELIVERY_BATCH) -> int:
        """Deliver the oldest outbox rows (at most ``limit``) as ``notify`` would have, one
        after the other, and delete them, in one transaction; returns how many rows."""
        async with self._db.writing() as conn:
            # Taken out of the outbox; the transaction puts them back should delivery fail.
            rows = sorted((await conn.execute(_TAKE, {"limit": limit})).all(), key=lambda r: r.id)
            if not rows:
                return 0
            events = [
                Event(r.user_id, r.type, r.actor_id, dict(r.data), r.group_key, r.created_at)
                for r in rows
            ]
            delivered = await self._deliver(conn, events)
        for _, stored in delivered:
            await self._gateway.announce(stored)
        return len(rows)

    @asynccontextmanager
    async def delivering(self) -> AsyncIterator[None]:
        """Deliver outbox rows in the background while inside: soon after ``wake``, and every
        few seconds in case another hub left some; once more at the exit. What is still left
        then waits for the next hub to start."""
        task = asyncio.get_running_loop().create_task(
            self._delivery_loop(), name="notification-outbox"
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self.deliver_pending()
            except Exception:
                log.warning("pending notifications left for the next hub", exc_info=True)

    async def _delivery_loop(self) -> None:
        linger = DELIVERY_LINGER_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pending.wait(), DELIVERY_POLL_SECONDS)
            # Rows committed while this one waits go in the same transaction.
            await asyncio.sleep(linger)
            self._pending.clear()
            try:
                delivered = await self.deliver_pending()
                linger = lingering_after(delivered)
                while delivered == DELIVERY_BATCH:
                    delivered = await self.deliver_pending()
            except Exception:
                # Nothing is lost: the rows stay in the outbox for the next round.
                log.exception("could not deliver pending notifications")
                await asyncio.sleep(DELIVERY_POLL_SECONDS)

    async def _deliver(
        self, conn: AsyncConnection, events: list[Event]
    ) -> list[tuple[NotificationView, Stored]]:
        """Apply ``events`` in order in the caller's transaction: each is dropped when its
        recipient muted its type, is its actor or no longer exists; merges into the latest
        unread notification with its ``group_key`` (one earlier in the batch included); else
        starts a notification. Returns every notification touched, once, with its stored
        channel message, to announce after the commit."""
        recipients = sorted({e.user_id for e in events})
        muted_read, unread_read, people_read = _READS[conn.dialect.name == "postgresql"]
        muted = {(u, t) for u, t in await conn.execute(muted_read, {"users": recipients})}
        keys = sorted({e.group_key for e in events if e.group_key is not None})
        merged: dict[tuple[int, str], MergedNotification] = {}
        if keys:
            # Oldest first, so the latest unread one of each group is the one kept.
            for n in await conn.execute(unread_read, {"users": recipients, "keys": keys}):
                merged[(n.user_id, n.group_key)] = MergedNotification(
                    n.id,
                    n.user_id,
                    n.type,
                    n.group_key,
                    list(n.actors),
                    n.actor_count,
                    dict(n.data),
                    n.created_at,
                    n.updated_at,
                )
        actor_ids = {e.actor_id for e in events if e.actor_id is not None}
        # Each person's card once: a notification shows up to MAX_ACTORS of them, and a batch
        # of sales names the same buyers in many.
        people = {
            p.id: _person(p)
            for p in await conn.execute(people_read, {"ids": sorted({*recipients, *actor_ids})})
        }
        # Every notification touched, once, in order of first touch (by id() of the object).
        touched: dict[int, MergedNotification] = {}
        for e in events:
            if e.user_id not in people or e.actor_id == e.user_id or (e.user_id, e.type) in muted:
                continue
            row = merged.get((e.user_id, e.group_key)) if e.group_key is not None else None
            if row is None:
                row = MergedNotification(
                    None, e.user_id, e.type, e.group_key, [], 0, e.data, e.at, e.at
                )
                if e.group_key is not None:
                    merged[(e.user_id, e.group_key)] = row
            elif e.data:
                row.data = {**row.data, **e.data}
            if e.actor_id is not None and e.actor_id not in row.actors:
                row.actors = [e.actor_id, *row.actors][:MAX_ACTORS]
                row.actor_count += 1
            row.updated_at = e.at
            touched[id(row)] = row
        rows = list(touched.values())
        fresh = [row for row in rows if row.id is None]
        changed = [row for row in rows if row.id is not None]
        if fresh:
            ids = await conn.execute(
                _INSERT_NOTIFICATION,
                [
                    {
                        "user_id": r.user_id,
                        "type": r.type,
                        "group_key": r.group_key,
                        "actors": r.actors,
                        "actor_count": r.actor_count,
                        "data": r.data,
                        "read_at": None,
                        "created_at": r.created_at,
                        "updated_at": r.updated_at,
                    }
                    for r in fresh
                ],
            )
            for row, new_id in zip(fresh, ids.scalars(), strict=True):
                row.id = new_id
        if changed:
            await conn.execute(
                _UPDATE_NOTIFICATION,
                [
                    {
                        "notification_id": r.id,
                        "actors": r.actors,
                        "actor_count": r.actor_count,
                        "data": r.data,
                        "updated_at": r.updated_at,
                    }
                    for r in changed
                ],
            )
        views = [
            NotificationView(row, [people[a] for a in row.actors if a in people]) for row in rows
        ]
        stored = await self._gateway.store.append_many(
            conn,
            [
                Pending(
                    f"user:{view.notification.user_id}",
                    {"type": "notification", "notification": view.as_json()},
                    None,
                    view.notification.updated_at,
                )
                for view in views
            ],
        )
        return list(zip(views, stored, strict=True))

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


def lingering_after(delivered: int) -> float:
    """How long the next delivery waits for rows to join it, after a round whose first
    transaction delivered ``delivered`` rows."""
    return (
        DELIVERY_BUSY_LINGER_SECONDS if delivered >= DELIVERY_BUSY_ROWS else DELIVERY_LINGER_SECONDS
    )


def _known(type: str) -> str:
    if type not in TYPES:
        raise ValueError(f"unknown notification type {type!r}")
    return type


def _person(user: Row[int, str, str]) -> dict[str, Any]:
    return {"id": user.id, "display_name": user.display_name, "avatar_color": user.avatar_color}


# The statements of every delivery, built once.
_TAKE = (
    delete(PendingNotification)
    .where(
        PendingNotification.id.in_(
            select(PendingNotification.id)
            .order_by(PendingNotification.id)
            .limit(bindparam("limit"))
            # Two hubs delivering at once take different rows.
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .returning(*PendingNotification.__table__.c)
)


def _one_of(column: Any, name: str, item: Any, *, array: bool) -> Any:
    """``column IN (…)`` for a list bound as ``name``. On PostgreSQL as ``= ANY (array)``: an
    expanded IN is other SQL for every length of the list, so the driver prepared these
    statements again in most deliveries (a round trip, and PostgreSQL's parse and plan)."""
    if array:
        return column == any_(bindparam(name, type_=ARRAY(item)))
    return column.in_(bindparam(name, expanding=True))


def _reads(*, array: bool) -> tuple[Any, Any, Any]:
    """The reads of a delivery: muted types, unread groups, people."""
    muted = select(NotificationPreference.user_id, NotificationPreference.type).where(
        _one_of(NotificationPreference.user_id, "users", BigInteger, array=array),
        NotificationPreference.muted.is_(True),
    )
    unread_groups = (
        select(Notification.__table__)
        .where(
            _one_of(Notification.user_id, "users", BigInteger, array=array),
            _one_of(Notification.group_key, "keys", String, array=array),
            Notification.read_at.is_(None),
        )
        .order_by(Notification.id)
        .with_for_update()
    )
    people = select(User.id, User.display_name, User.avatar_color).where(
        _one_of(User.id, "ids", BigInteger, array=array)
    )
    return muted, unread_groups, people


_READS = {False: _reads(array=False), True: _reads(array=True)}
_INSERT_NOTIFICATION = insert(Notification).returning(Notification.id, sort_by_parameter_order=True)
_UPDATE_NOTIFICATION = (
    update(Notification)
    .where(Notification.id == bindparam("notification_id"))
    .values(
        actors=bindparam("actors"),
        actor_count=bindparam("actor_count"),
        data=bindparam("data"),
        updated_at=bindparam("updated_at"),
    )
)


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
