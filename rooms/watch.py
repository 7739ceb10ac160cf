"""Watch parties: a lesson watched together in sync (docs/watch-parties.md).

The party row holds the playback state; every change compares-and-sets its ``version`` (the
ORM's version column), so hubs sharing the database never both apply a change to one state, and
the new state goes out on ``watch:<id>`` as an ephemeral frame. Who is connected comes from the
gateway's presence (across hubs); each member's readiness is stored with their membership.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from catalog.models import Course, Enrollment, Lesson
from catalog.social_models import GroupMember, StudyGroup
from hub.clock import Clock
from hub.db import Database
from hub.errors import (
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from hub.identity.models import User
from hub.notifications.service import Notifications
from hub.ratelimit import RateLimiter
from hub.realtime.gateway import Gateway
from media.models import Video
from rooms.chat import person
from rooms.models import WatchMember, WatchParty

log = logging.getLogger(__name__)

CONTROL_MODES = ("host", "everyone")
PLAYBACK_COMMANDS = ("play", "pause", "seek", "rate")
COMMANDS = (*PLAYBACK_COMMANDS, "ready", "no_wait", "start_anyway", "react")
RATES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
REACTIONS = ("👍", "❤️", "😂", "😮", "👏", "🎉", "🤔", "🔥")
REACTIONS_PER_WINDOW = 8
REACTION_WINDOW = 5.0
# One member's slow network may hold the room HOLD_LIMIT times per HOLD_WINDOW; after that the
# room stops waiting for them until the oldest of those holds is older than the window. A hold
# is a buffering report (`ready: false`) while the room plays, or being the last one the room
# waited for, for longer than HOLD_GRACE, after a join, seek or lesson change.
HOLD_LIMIT = 3
HOLD_WINDOW_MS = 5 * 60_000
HOLD_GRACE_MS = 2_000
# A room that starts playing starts this long after the hub decided, so that every member's
# player has the state (one message away) before the instant it names (docs/watch-parties.md).
START_LEAD_MS = 200
CAS_ATTEMPTS = 10
INVITE_BYTES = 12


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def parse_watch_channel(channel: str) -> int | None:
    """The party id ``watch:<id>`` names, or None."""
    prefix, _, rest = channel.partition(":")
    if prefix != "watch" or not rest.isdigit() or rest.startswith("0") or len(rest) > 18:
        return None
    return int(rest)


def watch_channel(party_id: int) -> str:
    return f"watch:{party_id}"


@dataclass(frozen=True, slots=True)
class PartyView:
    """A party as its members see it over HTTP."""

    party: WatchParty
    lesson: Lesson
    duration: float | None
    host: User
    controller: User | None
    members: list[User]
    online: set[int]


@dataclass(frozen=True, slots=True)
class Command:
    """A member's publish on ``watch:<id>``, validated."""

    cmd: str
    version: int | None = None
    position: float | None = None
    rate: float | None = None
    flag: bool | None = None
    emoji: str | None = None


def parse_command(data: dict[str, Any]) -> Command:
    """Raises ValidationFailed (an error frame; nothing changes)."""
    cmd = data.get("cmd")
    if cmd not in COMMANDS:
        raise ValidationFailed([FieldError("data.cmd", f"must be one of {', '.join(COMMANDS)}")])
    errors: list[FieldError] = []

    def number(name: str) -> float | None:
        value = data.get(name)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            errors.append(FieldError(f"data.{name}", "must be a number"))
            return None
        return float(value)

    version: int | None = None
    position = rate = None
    flag: bool | None = None
    emoji: str | None = None
    if cmd in PLAYBACK_COMMANDS:
        raw = data.get("version")
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            errors.append(
                FieldError("data.version", "the version of the state this command is based on")
            )
        else:
            version = raw
        position = number("position")
        if position is not None and not 0 <= position <= 86_400:
            errors.append(FieldError("data.position", "must be between 0 and 86400 seconds"))
        if cmd == "seek" and position is None and not errors:
            errors.append(FieldError("data.position", "a seek needs a position"))
        rate = number("rate")
        if cmd == "rate" and rate is None and not errors:
            errors.append(FieldError("data.rate", "a rate command needs a rate"))
        if rate is not None and rate not in RATES:
            errors.append(FieldError("data.rate", f"must be one of {', '.join(map(str, RATES))}"))
    elif cmd in ("ready", "no_wait"):
        key = "ready" if cmd == "ready" else "value"
        raw_flag = data.get(key)
        if not isinstance(raw_flag, bool):
            errors.append(FieldError(f"data.{key}", "must be true or false"))
        else:
            flag = raw_flag
    elif cmd == "react":
        raw_emoji = data.get("emoji")
        if raw_emoji not in REACTIONS:
            errors.append(FieldError("data.emoji", f"must be one of {' '.join(REACTIONS)}"))
        else:
            emoji = str(raw_emoji)
    if errors:
        raise ValidationFailed(errors)
    return Command(str(cmd), version, position, rate, flag, emoji)


def expected_position(party: WatchParty, now_ms: int, duration: float | None) -> float:
    """Where playback is at server time ``now_ms``."""
    position = party.position
    if party.playing:
        position += max(0, now_ms - party.state_at) / 1000.0 * party.rate
    if duration is not None:
        position = min(position, duration)
    return position


def recent_holds(member: WatchMember, now_ms: int) -> list[int]:
    return [int(h) for h in member.holds if now_ms - int(h) < HOLD_WINDOW_MS]


def exempt(member: WatchMember, now_ms: int) -> bool:
    """Held the room too often lately: no longer waited for."""
    return len(recent_holds(member, now_ms)) > HOLD_LIMIT


def state_frame(
    party: WatchParty, members: dict[int, WatchMember], online: set[int], now_ms: int
) -> dict[str, Any]:
    """The ``{"type": "state"}`` message data (docs/watch-parties.md)."""
    return {
        "type": "state",
        "lesson": party.lesson_id,
        "playing": party.playing,
        "resume": party.resume,
        "position": round(party.position, 3),
        "rate": party.rate,
        "at": party.state_at,
        "version": party.version,
        "waiting_for": list(party.waiting_for),
        "controller": party.controller_id,
        "control": party.control,
        "host": party.host_id,
        "members": [
            {
                "id": uid,
                "ready": members[uid].ready,
                "no_wait": members[uid].no_wait,
                "exempt": exempt(members[uid], now_ms),
            }
            for uid in sorted(online)
            if uid in members
        ],
    }


def _key(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != "version"}


Change = Callable[[WatchParty, dict[int, WatchMember], int], None]
# Called with a party's id: when it ends, and on every sweep while it is live (its call).
PartyHook = Callable[[int], Awaitable[None]]


class WatchParties:
    """Creating, joining and running watch parties (HTTP edge and the ``watch`` channels)."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        limiter: RateLimiter,
        clock: Clock,
        notifications: Notifications,
        *,
        idle_end: float,
    ) -> None:
        self._db = db
        self._gateway = gateway
        self._limiter = limiter
        self._clock = clock
        self._notifications = notifications
        self.idle_end = idle_end
        self.hooks_on_end: list[PartyHook] = []
        self.hooks_on_sweep: list[PartyHook] = []

    def _now_ms(self) -> int:
        return epoch_ms(self._clock.now())

    # HTTP ---------------------------------------------------------------------------------

    async def create(
        self, user: User, lesson_id: int, group_id: int | None, control: str
    ) -> PartyView:
        """Start a party on a lesson the user may watch.

        Raises:
            NotFound: no such lesson (or a draft the user cannot see).
            Forbidden: not entitled to the lesson, or not a member of the group.
            Conflict: the lesson has no video ready to play.
        """
        if control not in CONTROL_MODES:
            raise ValidationFailed([FieldError("control", "must be host or everyone")])
        now = self._clock.now()
        async with self._db.transaction() as s:
            lesson, course, _ = await self._watchable(s, user, lesson_id)
            if group_id is not None:
                member = await s.get(GroupMember, (group_id, user.id))
                if member is None:
                    raise Forbidden("You are not a member of this study group.")
            party = WatchParty(
                course_id=course.id,
                lesson_id=lesson.id,
                host_id=user.id,
                controller_id=user.id,
                control=control,
                group_id=group_id,
                invite_code=secrets.token_urlsafe(INVITE_BYTES),
                status="live",
                playing=False,
                resume=False,
                position=0.0,
                rate=1.0,
                state_at=epoch_ms(now),
                version=1,
                command_version=1,
                waiting_for=[],
                waiting_since=None,
                skip_wait=False,
                last_seen_at=now,
                created_at=now,
            )
            s.add(party)
            await s.flush()
            s.add(WatchMember(party_id=party.id, user_id=user.id, holds=[], joined_at=now))
            party_id = party.id
        if group_id is not None:
            await self._tell_group(user, party_id, group_id, lesson)
        return await self.get(user, party_id)

    async def _tell_group(self, host: User, party_id: int, group_id: int, lesson: Lesson) -> None:
        """Notify the study group's members who may watch the lesson that a party started.
        The party exists already: a failure here is logged, never the request's."""
        try:
            async with self._db.sessions() as s:
                group = await s.get(StudyGroup, group_id)
                others = list(
                    await s.scalars(
                        select(User)
                        .join(GroupMember, GroupMember.user_id == User.id)
                        .where(GroupMember.group_id == group_id, User.id != host.id)
                        .order_by(User.id)
                    )
                )
                invited = []
                for other in others:
                    with contextlib.suppress(Forbidden, NotFound, Conflict):
                        await self._watchable(s, other, lesson.id)
                        invited.append(other.id)
            data = {
                "party_id": party_id,
                "group_id": group_id,
                "group_name": group.name if group is not None else "your study group",
                "lesson_id": lesson.id,
                "lesson_title": lesson.title,
                "url": f"/watch/{party_id}",
            }
            for uid in invited:
                await self._notifications.notify(
                    uid,
                    "watch_party.started",
                    actor=host,
                    data=data,
                    group_key=f"watch_party.started:{party_id}",
                )
        except Exception:
            log.exception("watch party notification failed", extra={"party_id": party_id})

    async def get(self, user: User, party_id: int) -> PartyView:
        """Members, and members of the party's study group, see a party.

        Raises:
            NotFound: no such party, or not theirs to see.
        """
        async with self._db.sessions() as s:
            party = await s.get(WatchParty, party_id)
            if party is None:
                raise NotFound("No watch party with this id.")
            member_ids = set(
                await s.scalars(select(WatchMember.user_id).where(WatchMember.party_id == party_id))
            )
            if user.id not in member_ids and not user.is_admin:
                in_group = party.group_id is not None and (
                    await s.get(GroupMember, (party.group_id, user.id)) is not None
                )
                if not in_group:
                    raise NotFound("No watch party with this id.")
            return await self._view(s, party, member_ids)

    async def join(self, user: User, code: str) -> PartyView:
        """Join with an invite code; idempotent.

        Raises:
            NotFound: no party with this code.
            Conflict: the party has ended.
            Forbidden: not entitled to the party's lesson (with the reason).
        """
        now = self._clock.now()
        async with self._db.transaction() as s:
            party = await s.scalar(select(WatchParty).where(WatchParty.invite_code == code))
            if party is None:
                raise NotFound("No watch party has this invite code.")
            if party.status != "live":
                raise Conflict("This watch party has ended.")
            await self._watchable(s, user, party.lesson_id)
            if await s.get(WatchMember, (party.id, user.id)) is None:
                s.add(WatchMember(party_id=party.id, user_id=user.id, holds=[], joined_at=now))
            party_id = party.id
        return await self.get(user, party_id)

    async def hand_control(self, user: User, party_id: int, target_id: int) -> PartyView:
        """The host gives playback control to a member (or takes it back).

        Raises:
            NotFound, Forbidden (not the host), Conflict (ended), ValidationFailed (not a member).
        """
        async with self._db.sessions() as s:
            party = await self._party_for_host(s, user, party_id)
            if await s.get(WatchMember, (party_id, target_id)) is None:
                raise ValidationFailed([FieldError("user_id", "is not a member of this party")])

        def change(party: WatchParty, members: dict[int, WatchMember], now: int) -> None:
            party.controller_id = target_id

        await self._mutate(party.id, change, command=True)
        return await self.get(user, party_id)

    async def switch_lesson(self, user: User, party_id: int, lesson_id: int) -> PartyView:
        """The host moves the party to another lesson of the same course: from its start, every
        member loading it before it plays.

        Raises:
            NotFound, Forbidden (not the host), Conflict (ended; no video; a member connected
            now may not watch that lesson), ValidationFailed (another course).
        """
        async with self._db.sessions() as s:
            party = await self._party_for_host(s, user, party_id)
            lesson, _, _ = await self._watchable(s, user, lesson_id)
            if lesson.course_id != party.course_id:
                raise ValidationFailed([FieldError("lesson_id", "is not a lesson of this course")])
            online = await self._online(party_id)
            users = list(await s.scalars(select(User).where(User.id.in_(online))))
            refused = []
            for member in users:
                try:
                    await self._watchable(s, member, lesson_id)
                except (Forbidden, NotFound):
                    refused.append(member.display_name)
            if refused:
                raise Conflict(
                    "Not everyone here may watch that lesson: " + ", ".join(sorted(refused)) + "."
                )

        def change(party: WatchParty, members: dict[int, WatchMember], now: int) -> None:
            party.lesson_id = lesson_id
            party.position = 0.0
            party.state_at = now
            party.playing = False
            party.skip_wait = False
            for member in members.values():
                member.ready = False

        await self._mutate(party_id, change, command=True)
        return await self.get(user, party_id)

    async def end(self, user: User, party_id: int) -> PartyView:
        """The host ends the party; its chat stays.

        Raises:
            NotFound, Forbidden (not the host), Conflict (ended already).
        """
        async with self._db.sessions() as s:
            await self._party_for_host(s, user, party_id)
        await self._end(party_id, "The host ended the watch party.")
        return await self.get(user, party_id)

    async def _end(self, party_id: int, reason: str) -> bool:
        now = self._clock.now()
        try:
            async with self._db.transaction() as s:
                party = await s.get(WatchParty, party_id, populate_existing=True)
                if party is None or party.status != "live":
                    return False
                party.status = "ended"
                party.ended_at = now
                party.playing = party.resume = False
                party.version += 1
                party.waiting_for = []
                members = list(
                    await s.scalars(
                        select(WatchMember.user_id).where(WatchMember.party_id == party_id)
                    )
                )
        except StaleDataError:
            return await self._end(party_id, reason)
        channel = watch_channel(party_id)
        await self._gateway.publish_ephemeral(
            channel, {"type": "ended", "reason": reason, "ended_at": now.isoformat()}
        )
        for uid in members:
            await self._gateway.evict(channel, uid, reason)
        for hook in self.hooks_on_end:
            try:
                await hook(party_id)
            except Exception:
                log.exception("watch party end hook failed", extra={"party_id": party_id})
        return True

    async def _party_for_host(self, s: AsyncSession, user: User, party_id: int) -> WatchParty:
        party = await s.get(WatchParty, party_id)
        member = await s.get(WatchMember, (party_id, user.id))
        if party is None or (member is None and not user.is_admin):
            raise NotFound("No watch party with this id.")
        if party.host_id != user.id:
            raise Forbidden("Only the host can do this.")
        if party.status != "live":
            raise Conflict("This watch party has ended.")
        return party

    async def _view(self, s: AsyncSession, party: WatchParty, member_ids: set[int]) -> PartyView:
        row = (
            await s.execute(
                select(Lesson, Video.duration)
                .outerjoin(Video, Video.id == Lesson.video_id)
                .where(Lesson.id == party.lesson_id)
            )
        ).one()
        lesson, duration = row
        users = {
            u.id: u
            for u in await s.scalars(select(User).where(User.id.in_(member_ids | {party.host_id})))
        }
        online = await self._online(party.id) if party.status == "live" else set()
        return PartyView(
            party=party,
            lesson=lesson,
            duration=duration,
            host=users[party.host_id],
            controller=users.get(party.controller_id) if party.controller_id else None,
            members=[users[i] for i in sorted(member_ids) if i in users],
            online=online,
        )

    async def _watchable(
        self, s: AsyncSession, user: User, lesson_id: int
    ) -> tuple[Lesson, Course, Video]:
        """The lesson, if the user may watch it (the catalog's rule: enrolled students, a
        published course's free previews, the owner and admins) and its video is ready."""
        row = (
            await s.execute(
                select(Lesson, Course, Video)
                .join(Course, Course.id == Lesson.course_id)
                .outerjoin(Video, Video.id == Lesson.video_id)
                .where(Lesson.id == lesson_id)
            )
        ).first()
        if row is None:
            raise NotFound("No lesson with this id.")
        lesson, course, video = row
        staff = user.is_admin or user.id == course.owner_id
        enrolled = bool(
            await s.scalar(
                select(
                    exists().where(Enrollment.user_id == user.id, Enrollment.course_id == course.id)
                )
            )
        )
        published = course.status == "published"
        if not published and not (staff or enrolled):
            raise NotFound("No lesson with this id.")
        if not (staff or enrolled or (lesson.free_preview and published)):
            raise Forbidden(
                f"{user.display_name} is not enrolled in “{course.title}”, and this lesson is "
                "not a free preview: enroll to watch it together."
            )
        if lesson.kind != "video" or video is None or video.status != "ready":
            raise Conflict("This lesson has no video ready to watch.")
        return lesson, course, video

    # The watch channel --------------------------------------------------------------------

    async def _online(self, party_id: int) -> set[int]:
        return await self._gateway.online_ids(watch_channel(party_id))

    async def may_subscribe(self, user: User, channel: str) -> bool:
        """Members entitled to the lesson, while the party is live.

        Raises:
            Forbidden / NotFound: with the reason (sent as the error frame).
        """
        party_id = parse_watch_channel(channel)
        if party_id is None:
            return False
        async with self._db.sessions() as s:
            party = await s.get(WatchParty, party_id)
            if party is None:
                raise NotFound("No watch party with this id.")
            if await s.get(WatchMember, (party_id, user.id)) is None:
                raise Forbidden("Join this watch party with its invite link first.")
            if party.status != "live":
                raise Forbidden("This watch party has ended.")
            await self._watchable(s, user, party.lesson_id)
        return True

    async def joined(self, user: User, channel: str) -> list[dict[str, Any]]:
        """A member subscribed: the room waits for their player; they get the state first."""
        party_id = parse_watch_channel(channel)
        assert party_id is not None
        online = await self._online(party_id) | {user.id}

        def change(party: WatchParty, members: dict[int, WatchMember], now: int) -> None:
            party.skip_wait = False
            if user.id in members:
                members[user.id].ready = False

        frame = await self._mutate(party_id, change, online=online, force=True)
        return [frame]

    async def current(self, channel: str) -> list[dict[str, Any]]:
        """The state as it stands, changing nothing (sent again to a hub's members after its
        broker connection came back)."""
        party_id = parse_watch_channel(channel)
        if party_id is None:
            return []
        online = await self._online(party_id)
        async with self._db.sessions() as s:
            party = await s.get(WatchParty, party_id)
            if party is None or party.status != "live":
                return []
            rows = await s.scalars(select(WatchMember).where(WatchMember.party_id == party_id))
            members = {m.user_id: m for m in rows}
            return [state_frame(party, members, online, self._now_ms())]

    async def left(self, user: User, channel: str) -> None:
        """A connection left ``watch:<id>``: stop waiting for a member who is gone."""
        party_id = parse_watch_channel(channel)
        if party_id is None:
            return
        online = await self._online(party_id)
        if user.id in online:
            return

        def change(party: WatchParty, members: dict[int, WatchMember], now: int) -> None:
            if user.id in members:
                members[user.id].ready = False

        with contextlib.suppress(Conflict, NotFound):
            await self._mutate(party_id, change, online=online, force=True)

    async def command(self, user: User, channel: str, data: dict[str, Any]) -> None:
        """A member's publish on ``watch:<id>``.

        Raises:
            ValidationFailed: a malformed command.
            Forbidden: not a member, or not allowed to control playback.
            Conflict: ``stale`` (based on a state another command replaced), or the party ended.
            RateLimited: too many reactions.
        """
        party_id = parse_watch_channel(channel)
        if party_id is None:
            raise NotFound("No such channel.")
        command = parse_command(data)
        async with self._db.sessions() as s:
            party = await s.get(WatchParty, party_id)
            member = await s.get(WatchMember, (party_id, user.id))
            if party is None or member is None:
                raise Forbidden("Join this watch party with its invite link first.")
            if party.status != "live":
                raise Conflict("This watch party has ended.")
            duration = await s.scalar(
                select(Video.duration)
                .join(Lesson, Lesson.video_id == Video.id)
                .where(Lesson.id == party.lesson_id)
            )
        controls = user.id in (party.host_id, party.controller_id) or party.control == "everyone"
        if command.cmd == "react":
            await self._react(user, party_id, command)
            return
        if command.cmd in PLAYBACK_COMMANDS and not controls:
            raise Forbidden("Only the member with control can play, pause, seek or change speed.")
        if command.cmd == "start_anyway" and user.id not in (party.host_id, party.controller_id):
            raise Forbidden("Only the host can start without waiting.")

        def change(party: WatchParty, members: dict[int, WatchMember], now: int) -> None:
            _apply(command, user.id, party, members, now, duration)

        await self._mutate(
            party_id,
            change,
            command=command.cmd in (*PLAYBACK_COMMANDS, "start_anyway"),
            based_on=command.version,
        )

    async def _react(self, user: User, party_id: int, command: Command) -> None:
        key = f"watch:react:{party_id}:{user.id}"
        wait = await self._limiter.retry_after(key, REACTIONS_PER_WINDOW, REACTION_WINDOW)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                seconds,
                f"At most {REACTIONS_PER_WINDOW} reactions per {REACTION_WINDOW:g} seconds. "
                f"Retry after {seconds} s.",
            )
        await self._limiter.hit(key, REACTION_WINDOW)
        await self._gateway.publish_ephemeral(
            watch_channel(party_id),
            {"type": "reaction", "user": person(user), "emoji": command.emoji},
        )

    async def _mutate(
        self,
        party_id: int,
        change: Change,
        *,
        online: set[int] | None = None,
        command: bool = False,
        based_on: int | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Apply ``change`` and settle the waiting room, compare-and-set on the version, and
        fan the new state out when it changed; returns the state frame."""
        if online is None:
            online = await self._online(party_id)
        for _ in range(CAS_ATTEMPTS):
            try:
                async with self._db.transaction() as s:
                    party = await s.get(WatchParty, party_id, populate_existing=True)
                    if party is None:
                        raise NotFound("No watch party with this id.")
                    if party.status != "live":
                        raise Conflict("This watch party has ended.")
                    if based_on is not None and (
                        based_on < party.command_version or based_on > party.version
                    ):
                        raise Conflict(
                            f"This command was based on version {based_on}; the room is at "
                            f"{party.version} since another command: resend it if it still "
                            "applies.",
                            code=ErrorCode.STALE,
                        )
                    rows = await s.scalars(
                        select(WatchMember)
                        .where(WatchMember.party_id == party_id)
                        .execution_options(populate_existing=True)
                    )
                    members = {m.user_id: m for m in rows}
                    now = self._now_ms()
                    before = _key(state_frame(party, members, online, now))
                    change(party, members, now)
                    _settle(party, members, online, now)
                    frame = state_frame(party, members, online, now)
                    changed = force or _key(frame) != before
                    if online or force:
                        party.last_seen_at = self._clock.now()
                    if changed:
                        party.version += 1
                        if command:
                            party.command_version = party.version
                        frame["version"] = party.version
            except StaleDataError:
                continue
            if changed:
                await self._gateway.publish_ephemeral(watch_channel(party_id), frame)
            return frame
        raise Conflict("The room is busy; try again.", code=ErrorCode.STALE)

    async def sweep(self) -> list[int]:
        """Settle every live party against who is connected now (a hub may have died with
        members on it) and end those nobody joined for ``idle_end`` seconds; returns the ids
        of the parties it ended."""
        now = self._clock.now()
        async with self._db.sessions() as s:
            live = list(
                await s.execute(
                    select(WatchParty.id, WatchParty.last_seen_at).where(
                        WatchParty.status == "live"
                    )
                )
            )
        ended = []
        for party_id, last_seen in live:
            online = await self._online(party_id)
            for hook in self.hooks_on_sweep:
                try:
                    await hook(party_id)
                except Exception:
                    log.exception("watch party sweep hook failed", extra={"party_id": party_id})
            try:
                if online:
                    await self._mutate(party_id, lambda *_: None, online=online)
                elif (now - last_seen).total_seconds() >= self.idle_end and await self._end(
                    party_id, "Nobody was left in the watch party."
                ):
                    ended.append(party_id)
            except (Conflict, NotFound):
                continue
            except Exception:
                log.exception("watch party sweep failed", extra={"party_id": party_id})
        return ended


def _apply(
    command: Command,
    user_id: int,
    party: WatchParty,
    members: dict[int, WatchMember],
    now: int,
    duration: float | None,
) -> None:
    """A member's command's effect on the state (before the room settles)."""
    cmd = command.cmd
    if cmd in PLAYBACK_COMMANDS:
        current = expected_position(party, now, duration)
        target = command.position
        if target is not None and duration is not None:
            target = min(target, duration)
        party.position = current
        party.state_at = now
        if target is not None and abs(target - current) > 0.001:
            party.position = target
            party.playing = False
            party.skip_wait = False
            # Everyone buffers at the new position before the room plays on.
            for member in members.values():
                member.ready = False
        if cmd == "play":
            party.resume = True
        elif cmd == "pause":
            party.resume = False
            party.playing = False
        elif cmd == "rate" and command.rate is not None:
            party.rate = command.rate
    elif cmd == "start_anyway":
        party.resume = True
        party.skip_wait = True
    elif cmd == "no_wait":
        members[user_id].no_wait = bool(command.flag)
    elif cmd == "ready":
        member = members[user_id]
        ready = bool(command.flag)
        # Buffering while the room plays, or the last one a long wait waited for.
        buffering = member.ready and not ready and party.resume and not member.no_wait
        last_one = (
            ready
            and not member.ready
            and party.resume
            and list(party.waiting_for) == [user_id]
            and party.waiting_since is not None
            and now - party.waiting_since > HOLD_GRACE_MS
        )
        if buffering or last_one:
            _charge(member, now)
        member.ready = ready


def _charge(member: WatchMember, now: int) -> None:
    member.holds = [*recent_holds(member, now), now]


def _settle(party: WatchParty, members: dict[int, WatchMember], online: set[int], now: int) -> None:
    """Who the room waits for now, and whether it plays: it plays when it means to (``resume``)
    and nobody it waits for is still loading."""
    unready = sorted(
        uid
        for uid in online
        if (m := members.get(uid)) is not None
        and not m.ready
        and not m.no_wait
        and not exempt(m, now)
    )
    if not unready:
        party.skip_wait = False
    waited = [] if party.skip_wait else unready
    party.waiting_for = waited
    if waited:
        if party.waiting_since is None:
            party.waiting_since = now
    else:
        party.waiting_since = None
    if party.resume and waited and party.playing:
        party.position = expected_position(party, now, None)
        party.playing = False
        party.state_at = now
    elif party.resume and not waited and not party.playing:
        # Starts a moment ahead, so every player has the state before it and starts on time.
        party.playing = True
        party.state_at = now + START_LEAD_MS
    elif not party.resume:
        party.playing = False
