"""Chat rules: messages, edits, deletions and reactions as durable events on the channel, each
stored with its effect on the message's current state (``ChatMessage``) in one transaction.

The channel's events (``channel_messages``) are what subscribers receive and replay; the
``chat_messages`` rows are the messages as they read now, for history and unread counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.batching import Coalescer
from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, FieldError, Forbidden, NotFound, RateLimited, ValidationFailed
from hub.identity.models import User
from hub.notifications.service import Notifications
from hub.ratelimit import RateLimiter
from hub.realtime.gateway import Gateway
from hub.realtime.models import ChannelMessage
from hub.realtime.store import Budget, Companion, Guard, NotStored, Stored
from rooms.access import Access, ChannelAccess
from rooms.channels import ChannelRef, parse_channel
from rooms.events import Delete, Edit, NewMessage, React, parse_event
from rooms.models import ChatMessage

log = logging.getLogger(__name__)

EDIT_WINDOW = timedelta(minutes=15)
MESSAGES_PER_WINDOW = 10
# Edits and reactions are cheaper for people but still stored events: a looser budget.
ACTIONS_PER_WINDOW = 30
RATE_WINDOW = 10.0
MAX_EMOJI_PER_MESSAGE = 20
EXCERPT = 140
# New messages admitted together at most.
ADMIT_BATCH = 256
# Times a message is admitted at most when members' standing keeps changing as it is stored.
ADMIT_TRIES = 5
# Senders' standings kept in memory: how many, and for how long at most (a change made around
# the gateway, straight in the database, shows after that long).
STANDING_KEPT = 100_000
STANDING_TTL = 60.0


def person(user: User) -> dict[str, Any]:
    return {"id": user.id, "display_name": user.display_name, "avatar_color": user.avatar_color}


class Chat:
    """Publishing into chat channels (the gateway's ``chat`` and ``dm`` families)."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        notifications: Notifications,
        limiter: RateLimiter,
        clock: Clock,
        access: ChannelAccess,
    ) -> None:
        self._db = db
        self._gateway = gateway
        self._notifications = notifications
        self._limiter = limiter
        self._clock = clock
        self._access = access
        # Mentions and replies being notified, after their message was acknowledged.
        self._notifying: set[asyncio.Task[None]] = set()
        # New messages are admitted a batch at a time: each sender's standing in the channel,
        # from memory or read for the batch at once. Their budgets and the standing version
        # they were admitted on are checked where they are stored (``Guard``).
        self._admission: Coalescer[_Ask, tuple[Access, int]] = Coalescer(
            self._admit, max_batch=ADMIT_BATCH, name="chat-admission"
        )
        # Senders' standing (user id, channel) -> (access, monotonic time read), valid while
        # the standing version stays ``_version`` (-1: not read yet, or seen to move): whoever
        # changes a member's standing moves it (``Gateway.standing_changed``, evictions).
        self._standing: OrderedDict[tuple[int, str], tuple[Access, float]] = OrderedDict()
        self._version = -1

    async def access(self, user_id: int, channel: str) -> Access | None:
        """The user's access to ``channel``, or None when they may not read it."""
        ref = parse_channel(channel)
        if ref is None:
            return None
        return await self._access.quickly(self._db, user_id, ref)

    async def close(self) -> None:
        """Finish the notifications still being sent (the hub is stopping)."""
        await self._admission.close()
        while self._notifying:
            await asyncio.gather(*self._notifying, return_exceptions=True)

    async def publish(self, user: User, channel: str, data: dict[str, Any]) -> int:
        """Apply a client's publish; returns the stored event's sequence number.

        Raises:
            Forbidden: not a member (or no such channel), muted, or not allowed to do this.
            ValidationFailed, NotFound (the target message), Conflict (it was deleted),
            RateLimited (too fast, or slow mode).
        """
        event = parse_event(data)
        if isinstance(event, NewMessage):
            return await self._message(user, channel, event)
        access = self._may_post(await self.access(user.id, channel))
        now = self._clock.now()
        if isinstance(event, Delete):
            # Not throttled: moderators clean up floods.
            stored = await self._delete(user, access, event, now)
        else:
            action_key = f"chat:act:{user.id}:{channel}"
            await self._throttle(action_key, ACTIONS_PER_WINDOW, RATE_WINDOW, "edits and reactions")
            if isinstance(event, Edit):
                stored = await self._edit(user, access.channel, event, now)
            else:
                stored = await self._react(user, access.channel, event, now)
            await self._limiter.hit(action_key, RATE_WINDOW)
        await self._gateway.announce(stored)
        return stored.seq

    # Messages -------------------------------------------------------------------------------

    def _may_post(self, access: Access | None) -> Access:
        """Raises Forbidden for a stranger to the channel or a muted member."""
        if access is None:
            raise Forbidden("You are not a member of this channel.")
        muted_until = access.muted_until
        if muted_until is not None and muted_until > self._clock.now():
            raise Forbidden(f"You are muted in this community until {muted_until.isoformat()}.")
        return access

    async def _message(self, user: User, channel: str, event: NewMessage) -> int:
        """A new message: admitted with the others arriving meanwhile (the sender's standing:
        ``_admit``), then stored with its ``chat_messages`` row by the gateway's group commit,
        which announces it. The transaction storing it checks the sender's budget, slow mode
        where the channel has it, and that their standing did not change since it was read
        (if it did, the message is admitted again)."""
        now = self._clock.now()
        mentions = list(dict.fromkeys(event.mentions))
        for _ in range(ADMIT_TRIES):
            access, version = await self._admission.submit(_Ask(user.id, channel))
            parent_author = await self._check_references(access, event, mentions)
            data = {
                "type": "message",
                "text": event.text,
                "author": person(user),
                "reply_to": event.reply_to,
                "mentions": mentions,
                "sent_at": now.isoformat(),
            }
            row = {
                "channel": channel,
                "author_id": user.id,
                "text": event.text,
                "reply_to": event.reply_to,
                "mentions": mentions,
                "reactions": {},
                "created_at": now,
            }
            budgets = [Budget(_CHAT_MESSAGES, MESSAGES_PER_WINDOW, RATE_WINDOW)]
            slow = access.slow_mode_seconds if not access.moderator else 0
            if slow > 0:
                budgets.append(Budget(_CHAT_MESSAGES, 1, float(slow)))
            try:
                stored = await self._gateway.publish_durable(
                    channel,
                    data,
                    author_id=user.id,
                    now=now,
                    companions=[Companion(_CHAT_MESSAGES, row)],
                    guard=Guard(version, tuple(budgets)),
                )
            except NotStored as refused:
                if refused.budget is None:  # their standing moved: read it again
                    self._forget(version)
                    continue
                raise await self._over_budget(
                    user.id, channel, budgets[refused.budget], now
                ) from None
            break
        else:
            raise RuntimeError("members' standing kept changing while a message was admitted")
        if mentions or parent_author is not None:
            task = asyncio.get_running_loop().create_task(
                self._notify(user, access, stored.seq, event, mentions, parent_author)
            )
            self._notifying.add(task)
            task.add_done_callback(self._notifying.discard)
        return stored.seq

    async def _over_budget(
        self, user_id: int, channel: str, budget: Budget, now: datetime
    ) -> RateLimited:
        """The refusal of a message over ``budget``, with the wait until the oldest of the
        messages that spent it leaves its window."""
        async with self._db.connect() as conn:
            oldest = await conn.scalar(
                select(ChatMessage.created_at)
                .where(
                    ChatMessage.channel == channel,
                    ChatMessage.author_id == user_id,
                    ChatMessage.created_at > now - timedelta(seconds=budget.window),
                )
                .order_by(ChatMessage.created_at.desc())
                .offset(budget.limit - 1)
                .limit(1)
            )
        # None: the messages that spent it were stored with this one, in the same batch.
        wait = budget.window if oldest is None else (oldest - now).total_seconds() + budget.window
        if budget.limit == 1:
            why = f"Slow mode: one message every {budget.window:g} seconds in this channel."
        else:
            why = f"At most {budget.limit} messages per {budget.window:g} seconds in a channel."
        return _rate_limited(wait, why)

    def _forget(self, version: int) -> None:
        """The standing version moved past ``version``: what was read on it is dropped."""
        if self._version == version:
            self._standing.clear()
            self._version = -1

    async def _admit(self, asks: list[_Ask]) -> list[tuple[Access, int] | BaseException]:
        """Admit a batch of new messages: each sender's standing in the channel from memory, or
        read (for the batch at once) when not known since the standing version last moved.
        Each message gets its sender's access and the version it is valid for, or the
        refusal."""
        if self._version < 0:
            # Read before the standings it is for: a change committed meanwhile moves it again.
            self._version = await self._gateway.standing_version()
        version = self._version
        outcomes = self._judge(await self._standings(asks, version), version)
        if any(isinstance(o, BaseException) for o in outcomes):
            # A refusal is not guarded where messages are stored: it stands only if the
            # standing it was judged on is still current (a member unmuted since).
            current = await self._gateway.standing_version()
            if current != version:
                self._forget(version)
                self._version = current
                outcomes = self._judge(await self._standings(asks, current), current)
        return outcomes

    def _judge(
        self, standings: list[Access | None], version: int
    ) -> list[tuple[Access, int] | BaseException]:
        outcomes: list[tuple[Access, int] | BaseException] = []
        for access in standings:
            try:
                outcomes.append((self._may_post(access), version))
            except Forbidden as exc:
                outcomes.append(exc)
        return outcomes

    async def _standings(self, asks: list[_Ask], version: int) -> list[Access | None]:
        """Each sender's access to the channel, as of ``version`` of standings (read after the
        version was: a change committed meanwhile moves it again, and the messages admitted on
        it are refused where they are stored). Refusals are not kept: a stranger's every
        message is read anew."""
        now = time.monotonic()
        found: dict[tuple[int, str], Access | None] = {}
        unknown: dict[tuple[int, str], ChannelRef] = {}
        for ask in asks:
            pair = (ask.user_id, ask.channel)
            kept = self._standing.get(pair)
            if kept is not None and kept[1] > now - STANDING_TTL:
                found[pair] = kept[0]
                continue
            ref = parse_channel(ask.channel)
            if ref is None:
                found[pair] = None
            else:
                unknown[pair] = ref
        if unknown:
            read = await self._access.many(self._db, [(u, ref) for (u, _), ref in unknown.items()])
            # Kept only while the version they were read on stands (``_forget``).
            keep = self._version == version
            for pair, access in zip(unknown, read, strict=True):
                found[pair] = access
                if access is not None and keep:
                    self._standing[pair] = (access, now)
                    self._standing.move_to_end(pair)
            while len(self._standing) > STANDING_KEPT:
                self._standing.popitem(last=False)
        return [found[(ask.user_id, ask.channel)] for ask in asks]

    async def _check_references(
        self, access: Access, event: NewMessage, mentions: list[int]
    ) -> int | None:
        """The replied-to message's author (None without a reply).

        Raises:
            ValidationFailed: the reply is to no message of the channel (or a deleted one), or
                someone mentioned is not a member."""
        if event.reply_to is None and not mentions:
            return None
        channel = access.channel.name
        parent_author: int | None = None
        async with self._db.connect() as conn:
            if event.reply_to is not None:
                parent = (
                    await conn.execute(
                        select(ChatMessage.author_id, ChatMessage.deleted_at).where(
                            ChatMessage.channel == channel, ChatMessage.seq == event.reply_to
                        )
                    )
                ).first()
                if parent is None or parent.deleted_at is not None:
                    raise ValidationFailed(
                        [FieldError("data.reply_to", "is not a message of this channel")]
                    )
                parent_author = parent.author_id
            if mentions:
                members = await self._access.members_among(conn, access.channel, mentions)
                strangers = [m for m in mentions if m not in members]
                if strangers:
                    raise ValidationFailed(
                        [
                            FieldError(
                                "data.mentions",
                                "not members of this channel: "
                                + ", ".join(str(m) for m in strangers),
                            )
                        ]
                    )
        return parent_author

    async def _notify(
        self,
        user: User,
        access: Access,
        seq: int,
        event: NewMessage,
        mentions: list[int],
        parent_author: int | None,
    ) -> None:
        """Mentions and replies, after the message was stored, announced and acknowledged
        (``close`` waits for them). A failure here is logged, never reported as a failed
        publish (the client would send it again)."""
        channel = access.channel.name
        about = {"channel": channel, "seq": seq, "where": access.title, "excerpt": _excerpt(event)}
        wanted: list[tuple[int, str, dict[str, Any], str]] = [
            (uid, "chat.mention", about, f"chat.mention:{channel}")
            for uid in mentions
            if uid != user.id
        ]
        if parent_author is not None and parent_author != user.id and parent_author not in mentions:
            wanted.append(
                (
                    parent_author,
                    "chat.reply",
                    {**about, "reply_to": event.reply_to},
                    f"chat.reply:{channel}:{event.reply_to}",
                )
            )
        for uid, kind, data, group_key in wanted:
            try:
                await self._notifications.notify(
                    uid, kind, actor=user, data=data, group_key=group_key
                )
            except Exception:
                log.exception(
                    "chat notification failed",
                    extra={"channel": channel, "seq": seq, "user_id": uid, "type": kind},
                )

    # Edits, deletions, reactions -----------------------------------------------------------

    async def _edit(self, user: User, ref: ChannelRef, event: Edit, now: datetime) -> Stored:
        async with self._db.transaction() as s:
            message = await self._target(s, ref.name, event.target)
            if message.author_id != user.id:
                raise Forbidden("Only its author can edit a message.")
            if now - message.created_at > EDIT_WINDOW:
                raise Forbidden("Messages can be edited for 15 minutes after they are sent.")
            message.text = event.text
            message.edited_at = now
            data = {
                "type": "edit",
                "target": event.target,
                "text": event.text,
                "edited_at": now.isoformat(),
                "by": person(user),
            }
            return await self._gateway.store.append(s, ref.name, data, author_id=user.id, now=now)

    async def _delete(self, user: User, access: Access, event: Delete, now: datetime) -> Stored:
        channel = access.channel.name
        async with self._db.transaction() as s:
            message = await self._target(s, channel, event.target)
            if message.author_id != user.id and not access.moderator:
                raise Forbidden("Only its author or a moderator can delete a message.")
            await self._redact(s, message)
            message.text = ""
            message.mentions = []
            message.deleted_at = now
            data = {"type": "delete", "target": event.target, "by": person(user)}
            return await self._gateway.store.append(s, channel, data, author_id=user.id, now=now)

    async def _redact(self, s: AsyncSession, message: ChatMessage) -> None:
        """Empty the text of the message's stored events (the message and its edits), so a
        replay with ``since`` does not bring a deleted message back."""
        author = (
            ChannelMessage.author_id.is_(None)
            if message.author_id is None
            else ChannelMessage.author_id == message.author_id
        )
        rows = (
            await s.execute(
                select(ChannelMessage.seq, ChannelMessage.data).where(
                    ChannelMessage.channel == message.channel,
                    ChannelMessage.seq >= message.seq,
                    author,
                    ChannelMessage.created_at <= message.created_at + EDIT_WINDOW,
                )
            )
        ).all()
        for seq, data in rows:
            original = seq == message.seq and data.get("type") == "message"
            edit = data.get("type") == "edit" and data.get("target") == message.seq
            if original or edit:
                redacted = {**data, "text": ""} | ({"mentions": []} if original else {})
                await s.execute(
                    update(ChannelMessage)
                    .where(ChannelMessage.channel == message.channel, ChannelMessage.seq == seq)
                    .values(data=redacted)
                )

    async def _react(self, user: User, ref: ChannelRef, event: React, now: datetime) -> Stored:
        async with self._db.transaction() as s:
            message = await self._target(s, ref.name, event.target)
            reactions = {emoji: list(users) for emoji, users in message.reactions.items()}
            users = reactions.setdefault(event.emoji, [])
            on = user.id not in users
            if on:
                if len(reactions) > MAX_EMOJI_PER_MESSAGE:
                    raise Conflict(
                        f"A message takes at most {MAX_EMOJI_PER_MESSAGE} different reactions."
                    )
                users.append(user.id)
            else:
                users.remove(user.id)
                if not users:
                    del reactions[event.emoji]
            message.reactions = reactions
            data = {
                "type": "reaction",
                "target": event.target,
                "emoji": event.emoji,
                "user": person(user),
                "on": on,
            }
            return await self._gateway.store.append(s, ref.name, data, author_id=user.id, now=now)

    async def _target(self, s: AsyncSession, channel: str, seq: int) -> ChatMessage:
        """The message an event is about, locked until the transaction ends (PostgreSQL; SQLite
        writers hold the database lock anyway)."""
        message = await s.scalar(
            select(ChatMessage)
            .where(ChatMessage.channel == channel, ChatMessage.seq == seq)
            .with_for_update()
        )
        if message is None:
            raise NotFound(f"No message {seq} in this channel.")
        if message.deleted_at is not None:
            raise Conflict("This message was deleted.")
        return message

    async def _throttle(self, key: str, limit: int, window: float, what: str) -> None:
        wait = await self._limiter.retry_after(key, limit, window)
        if wait > 0:
            raise _rate_limited(
                wait, f"At most {limit} {what} per {window:g} seconds in a channel."
            )


_CHAT_MESSAGES = cast(Table, ChatMessage.__table__)


@dataclass(frozen=True, slots=True)
class _Ask:
    """A new message waiting to be admitted: who sends it where."""

    user_id: int
    channel: str


def _rate_limited(wait: float, why: str) -> RateLimited:
    # The gateway's error frame carries only code and message, so the wait is in the message.
    seconds = max(1, math.ceil(wait))
    return RateLimited(seconds, f"{why} Retry after {seconds} s.")


def _excerpt(event: NewMessage) -> str:
    text = " ".join(event.text.split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"
