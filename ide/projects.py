"""Projects: a name, an owner, invited members and optionally a study group, and one Yjs
document (``project-<id>``) holding the files.

Who may open the document: the owner and editors write; viewers read (their updates are
dropped, their cursors shown); every member of the project's study group is an editor unless
invited with another role.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pycrdt import Doc, Map, Text
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, Forbidden, NotFound
from hub.identity.models import User
from ide.models import DocumentUpdate, Project, ProjectMember

DOC_NAME = re.compile(r"^project-([1-9][0-9]{0,17})$")
FIRST_FILE = "main.py"


class Role(enum.StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def can_write(self) -> bool:
        return self is not Role.VIEWER


class _Group(Protocol):
    @property
    def id(self) -> int: ...


class _GroupMembership(Protocol):
    @property
    def group(self) -> _Group: ...


class GroupDirectory(Protocol):
    """Study groups as the catalog keeps them (provided at wiring time: the ide package may not
    import the catalog)."""

    async def get(self, user: User, group_id: int) -> _GroupMembership:
        """The user's membership of a group. Raises NotFound when they are not a member."""
        ...

    async def mine(self, user: User) -> Sequence[_GroupMembership]:
        """Every group the user belongs to."""
        ...


def doc_name(project_id: int) -> str:
    return f"project-{project_id}"


@dataclass(frozen=True, slots=True)
class ProjectView:
    project: Project
    owner: User
    role: Role  # the viewer's

    @property
    def doc(self) -> str:
        return doc_name(self.project.id)


@dataclass(frozen=True, slots=True)
class MemberView:
    user: User
    role: Role
    added_at: datetime


def initial_document(project: Project) -> bytes:
    """The document a new project starts with: its metadata and one empty file. Written once,
    with the project, so no client ever races to create the structure."""
    doc: Doc[Any] = Doc()
    meta = doc.get("meta", type=Map)
    files = doc.get("files", type=Map)
    with doc.transaction():
        meta["schema"] = 1
        meta["project_id"] = project.id
        meta["name"] = project.name
        meta["created_at"] = project.created_at.isoformat()
        files[FIRST_FILE] = Text()
    return doc.get_update()


class Projects:
    def __init__(self, db: Database, clock: Clock, groups: GroupDirectory) -> None:
        self._db = db
        self._clock = clock
        self._groups = groups

    async def create(self, user: User, *, name: str, group_id: int | None) -> ProjectView:
        """A new project owned by ``user``, with its document.

        Raises:
            Forbidden: ``group_id`` names a group the user does not belong to.
        """
        if group_id is not None and not await self._in_group(user, group_id):
            raise Forbidden("Only members of a study group attach it to a project.")
        now = self._clock.now()
        async with self._db.transaction() as s:
            project = Project(name=name, owner_id=user.id, group_id=group_id, created_at=now)
            s.add(project)
            await s.flush()
            s.add(
                DocumentUpdate(
                    doc=doc_name(project.id), data=initial_document(project), created_at=now
                )
            )
        return ProjectView(project, user, Role.OWNER)

    async def get(self, user: User, project_id: int) -> ProjectView:
        """Raises: NotFound (no such project), Forbidden (not a member)."""
        async with self._db.sessions() as s:
            project = await s.get(Project, project_id)
            if project is None:
                raise NotFound("No project with this id.")
            role = await self._role(s, user, project)
            if role is None:
                raise Forbidden("This project is not shared with you.")
            owner = user if project.owner_id == user.id else await s.get(User, project.owner_id)
        assert owner is not None
        return ProjectView(project, owner, role)

    async def mine(self, user: User) -> list[ProjectView]:
        """Projects the user owns, was invited to, or shares through a group; newest first."""
        group_ids = [m.group.id for m in await self._groups.mine(user)]
        async with self._db.sessions() as s:
            invited = {
                pid: Role(role)
                for pid, role in (
                    await s.execute(
                        select(ProjectMember.project_id, ProjectMember.role).where(
                            ProjectMember.user_id == user.id
                        )
                    )
                ).all()
            }
            clauses = [Project.owner_id == user.id]
            if invited:
                clauses.append(Project.id.in_(list(invited)))
            if group_ids:
                clauses.append(Project.group_id.in_(group_ids))
            rows = (
                await s.execute(
                    select(Project, User)
                    .join(User, User.id == Project.owner_id)
                    .where(or_(*clauses))
                    .order_by(Project.created_at.desc(), Project.id.desc())
                )
            ).all()
        views = []
        for project, owner in rows:
            if project.owner_id == user.id:
                role = Role.OWNER
            else:
                role = invited.get(project.id, Role.EDITOR)
            views.append(ProjectView(project, owner, role))
        return views

    async def members(self, project: Project) -> list[MemberView]:
        """The owner, then invited members in the order they were added."""
        async with self._db.sessions() as s:
            owner = await s.get(User, project.owner_id)
            rows = (
                await s.execute(
                    select(ProjectMember, User)
                    .join(User, User.id == ProjectMember.user_id)
                    .where(ProjectMember.project_id == project.id)
                    .order_by(ProjectMember.added_at, ProjectMember.user_id)
                )
            ).all()
        assert owner is not None
        views = [MemberView(owner, Role.OWNER, project.created_at)]
        views += [MemberView(u, Role(m.role), m.added_at) for m, u in rows]
        return views

    async def add_member(
        self, user: User, project_id: int, *, member_id: int, role: Role
    ) -> MemberView:
        """Invite a user (or change their role). Only the owner invites.

        Raises:
            NotFound: no such project or user. Forbidden: not the owner.
            Conflict: the owner cannot be invited to their own project.
        """
        if role is Role.OWNER:
            raise Conflict("A project has one owner; invite as editor or viewer.")
        now = self._clock.now()
        async with self._db.transaction() as s:
            project = await s.get(Project, project_id)
            if project is None:
                raise NotFound("No project with this id.")
            if project.owner_id != user.id:
                raise Forbidden("Only the project's owner invites members.")
            if member_id == project.owner_id:
                raise Conflict("The owner is already in the project.")
            member = await s.get(User, member_id)
            if member is None:
                raise NotFound("No user with this id.")
            row = await s.get(ProjectMember, (project_id, member_id))
            if row is None:
                row = ProjectMember(
                    project_id=project_id,
                    user_id=member_id,
                    role=role.value,
                    added_by=user.id,
                    added_at=now,
                )
                s.add(row)
            else:
                row.role = role.value
        return MemberView(member, role, row.added_at)

    async def document_role(self, user: User, doc: str) -> Role:
        """What ``user`` may do in a document.

        Raises:
            NotFound: no such document. Forbidden: no access.
        """
        match = DOC_NAME.match(doc)
        if match is None:
            raise NotFound("No document with this name.")
        return (await self.get(user, int(match.group(1)))).role

    async def _role(self, s: AsyncSession, user: User, project: Project) -> Role | None:
        if project.owner_id == user.id:
            return Role.OWNER
        invited = await s.get(ProjectMember, (project.id, user.id))
        if invited is not None:
            return Role(invited.role)
        if project.group_id is not None and await self._in_group(user, project.group_id):
            return Role.EDITOR
        return None

    async def _in_group(self, user: User, group_id: int) -> bool:
        try:
            await self._groups.get(user, group_id)
        except NotFound:
            return False
        return True
