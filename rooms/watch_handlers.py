"""HTTP edge of watch parties (docs/watch-parties.md); playback itself is on ``/ws``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel, path_int
from hub.identity.manager import Principal
from hub.identity.models import User
from rooms.channels import party_channel
from rooms.watch import PartyView, WatchParties, watch_channel

WATCH = web.AppKey("watch_parties", WatchParties)
PARTY = r"/api/watch-parties/{party_id:\d+}"


class PartyPerson(BaseModel):
    id: int
    display_name: str
    avatar_color: str
    online: bool = Field(description="connected to the party's channel now")


class PartyLesson(BaseModel):
    id: int
    title: str
    video_id: str | None
    duration: float | None = Field(description="seconds")


class PartyOut(BaseModel):
    id: int
    lesson: PartyLesson
    course_id: int
    group_id: int | None
    host: PartyPerson
    controller: PartyPerson | None = Field(description="who controls playback (control=host)")
    control: Literal["host", "everyone"]
    invite_code: str
    invite_url: str = Field(description="path of the page that joins with the invite code")
    channel: str = Field(description="playback state and commands: watch:<id>")
    chat_channel: str = Field(description="the party's chat: chat:party:<id>")
    call_channel: str = Field(description="the party's call signalling: call:<id>")
    members: list[PartyPerson]
    status: Literal["live", "ended"]
    created_at: datetime
    ended_at: datetime | None


class CreateBody(RequestModel):
    lesson_id: int = Field(ge=1, le=2**62)
    group_id: int | None = Field(default=None, ge=1, le=2**62)
    control: Literal["host", "everyone"] = "host"


class JoinBody(RequestModel):
    code: str = Field(min_length=1, max_length=64)


class ControlBody(RequestModel):
    user_id: int = Field(ge=1, le=2**62)


class LessonBody(RequestModel):
    lesson_id: int = Field(ge=1, le=2**62)


def party_out(view: PartyView) -> PartyOut:
    party = view.party

    def who(user: User) -> PartyPerson:
        return PartyPerson(
            id=user.id,
            display_name=user.display_name,
            avatar_color=user.avatar_color,
            online=user.id in view.online,
        )

    return PartyOut(
        id=party.id,
        lesson=PartyLesson(
            id=view.lesson.id,
            title=view.lesson.title,
            video_id=view.lesson.video_id,
            duration=view.duration,
        ),
        course_id=party.course_id,
        group_id=party.group_id,
        host=who(view.host),
        controller=who(view.controller) if view.controller else None,
        control="everyone" if party.control == "everyone" else "host",
        invite_code=party.invite_code,
        invite_url=f"/watch/join/{party.invite_code}",
        channel=watch_channel(party.id),
        chat_channel=party_channel(party.id),
        call_channel=f"call:{party.id}",
        members=[who(u) for u in view.members],
        status="ended" if party.status == "ended" else "live",
        created_at=party.created_at,
        ended_at=party.ended_at,
    )


def register_watch_routes(api: Api) -> None:
    tags = ("watch parties",)

    @api.route(
        "POST",
        "/api/watch-parties",
        summary="Start a watch party on a lesson",
        body=CreateBody,
        response=PartyOut,
        status=201,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def create_party(
        request: web.Request, principal: Principal, body: CreateBody
    ) -> PartyOut:
        """Only users who may watch the lesson (enrolled, a free preview, the course's owner)
        start one (403 with the reason); the lesson needs a ready video (409). The creator
        hosts, and controls playback until they hand control on."""
        view = await request.app[WATCH].create(
            principal.user, body.lesson_id, body.group_id, body.control
        )
        return party_out(view)

    @api.route(
        "POST",
        "/api/watch-parties/join",
        summary="Join a watch party with its invite code",
        body=JoinBody,
        response=PartyOut,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def join_party(request: web.Request, principal: Principal, body: JoinBody) -> PartyOut:
        """Idempotent. 403 (with the reason) for users who may not watch the party's lesson;
        409 once the party has ended."""
        return party_out(await request.app[WATCH].join(principal.user, body.code))

    @api.route(
        "GET",
        PARTY,
        summary="A watch party (members, and members of its study group)",
        response=PartyOut,
        errors=[404],
        tags=tags,
    )
    async def get_party(request: web.Request, principal: Principal) -> PartyOut:
        view = await request.app[WATCH].get(principal.user, path_int(request, "party_id"))
        return party_out(view)

    @api.route(
        "POST",
        PARTY + "/control",
        summary="Hand playback control to a member (host)",
        body=ControlBody,
        response=PartyOut,
        errors=[403, 404, 409, 422],
        tags=tags,
    )
    async def hand_control(
        request: web.Request, principal: Principal, body: ControlBody
    ) -> PartyOut:
        view = await request.app[WATCH].hand_control(
            principal.user, path_int(request, "party_id"), body.user_id
        )
        return party_out(view)

    @api.route(
        "POST",
        PARTY + "/lesson",
        summary="Switch the party to another lesson of the course (host)",
        body=LessonBody,
        response=PartyOut,
        errors=[403, 404, 409, 422],
        tags=tags,
    )
    async def switch_lesson(
        request: web.Request, principal: Principal, body: LessonBody
    ) -> PartyOut:
        """From the lesson's start; the room waits for every member's player before it plays.
        409 when someone connected may not watch that lesson."""
        view = await request.app[WATCH].switch_lesson(
            principal.user, path_int(request, "party_id"), body.lesson_id
        )
        return party_out(view)

    @api.route(
        "POST",
        PARTY + "/end",
        summary="End the watch party (host)",
        response=PartyOut,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def end_party(request: web.Request, principal: Principal) -> PartyOut:
        """Everyone connected is unsubscribed from its channel; its chat stays readable."""
        view = await request.app[WATCH].end(principal.user, path_int(request, "party_id"))
        return party_out(view)
