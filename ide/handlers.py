"""HTTP edge of the IDE: projects and their members, and the ``/yjs/{doc}`` document socket."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from hub.api import Api, RequestModel, path_int
from hub.identity.manager import Principal
from hub.identity.models import User
from ide.projects import MemberView, ProjectView, Role, doc_name
from ide.services import IDE


class PersonOut(BaseModel):
    id: int
    display_name: str
    avatar_color: str


class ProjectBody(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    group_id: int | None = Field(
        default=None, ge=1, description="a study group of yours: its members edit the project"
    )

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class ProjectOut(BaseModel):
    id: int
    name: str
    doc: str = Field(description="the document's name: open it at /yjs/{doc}")
    role: Literal["owner", "editor", "viewer"] = Field(description="yours")
    owner: PersonOut
    group_id: int | None
    created_at: datetime


class MemberOut(BaseModel):
    user: PersonOut
    role: Literal["owner", "editor", "viewer"]
    added_at: datetime


class ProjectDetailOut(ProjectOut):
    members: list[MemberOut] = Field(
        description="the owner and invited users (the group's members are editors too)"
    )


class ProjectsOut(BaseModel):
    items: list[ProjectOut]


class MemberBody(RequestModel):
    user_id: int = Field(ge=1)
    role: Literal["editor", "viewer"]


def person(user: User) -> PersonOut:
    return PersonOut(id=user.id, display_name=user.display_name, avatar_color=user.avatar_color)


def project_out(view: ProjectView) -> ProjectOut:
    p = view.project
    return ProjectOut(
        id=p.id,
        name=p.name,
        doc=view.doc,
        role=view.role.value,
        owner=person(view.owner),
        group_id=p.group_id,
        created_at=p.created_at,
    )


def member_out(view: MemberView) -> MemberOut:
    return MemberOut(user=person(view.user), role=view.role.value, added_at=view.added_at)


async def _detail(request: web.Request, view: ProjectView) -> ProjectDetailOut:
    members = await request.app[IDE].projects.members(view.project)
    return ProjectDetailOut(
        **project_out(view).model_dump(), members=[member_out(m) for m in members]
    )


def register_routes(api: Api) -> None:
    tags = ("projects",)

    @api.route(
        "POST",
        "/api/projects",
        summary="Create a project",
        body=ProjectBody,
        response=ProjectDetailOut,
        status=201,
        errors=[403],
        tags=tags,
    )
    async def create_project(
        request: web.Request, principal: Principal, body: ProjectBody
    ) -> ProjectDetailOut:
        """A project owned by the caller, with a document holding `main.py`. With `group_id`
        (a group the caller belongs to), every member of the group edits it."""
        view = await request.app[IDE].projects.create(
            principal.user, name=body.name, group_id=body.group_id
        )
        return await _detail(request, view)

    @api.route(
        "GET",
        r"/api/projects/{project_id:\d+}",
        summary="A project (members)",
        response=ProjectDetailOut,
        errors=[403, 404],
        tags=tags,
    )
    async def get_project(request: web.Request, principal: Principal) -> ProjectDetailOut:
        """`doc` names the document to open at `/yjs/{doc}` with a ticket from
        `POST /api/realtime/ticket` `{"doc": doc}`; `role` says whether the caller may edit."""
        view = await request.app[IDE].projects.get(principal.user, path_int(request, "project_id"))
        return await _detail(request, view)

    @api.route(
        "GET",
        "/api/me/projects",
        summary="My projects",
        response=ProjectsOut,
        tags=tags,
    )
    async def my_projects(request: web.Request, principal: Principal) -> ProjectsOut:
        """Owned, invited to, or shared through one of my study groups; newest first."""
        views = await request.app[IDE].projects.mine(principal.user)
        return ProjectsOut(items=[project_out(v) for v in views])

    @api.route(
        "POST",
        r"/api/projects/{project_id:\d+}/members",
        summary="Invite a member or change their role (owner)",
        body=MemberBody,
        response=MemberOut,
        errors=[403, 404, 409],
        tags=tags,
    )
    async def add_project_member(
        request: web.Request, principal: Principal, body: MemberBody
    ) -> MemberOut:
        """An `editor` edits; a `viewer` reads and is seen (their updates are dropped). A role
        change applies at once: the member's open document sockets are closed (1013) and
        reconnect under it."""
        ide = request.app[IDE]
        project_id = path_int(request, "project_id")
        view = await ide.projects.add_member(
            principal.user, project_id, member_id=body.user_id, role=Role(body.role)
        )
        # Open sockets reconnect under the new role (a viewer's edits are dropped from then on).
        ide.documents.kick(doc_name(project_id), body.user_id, "your role in this project changed")
        return member_out(view)


async def open_document(request: web.Request) -> web.StreamResponse:
    """``GET /yjs/{doc}?ticket=…``: the y-websocket protocol. Refused before the upgrade: 401
    without a valid document ticket, 403 for a ticket to another document or a user without
    access, 404 for an unknown document."""
    ide = request.app[IDE]
    name = request.match_info["doc"]
    user = await ide.tickets.redeem(request.query.get("ticket", ""), name)
    role = await ide.projects.document_role(user, name)
    room = await ide.documents.admit(name)
    return await ide.documents.serve(request, room, user_id=user.id, writable=role.can_write)
