"""Demo social content for the embedded default (``make run``): a community by the demo teacher
that the demo student has joined, a study group of the two inside it, and the student's project
in that group with a small program to run.

Everything goes through the services (the student's join earns the join reward, the teacher is
notified, as for real users). Each piece is looked up before it is made, so seeding on every
start creates nothing twice and adds what an older demo database lacks."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from catalog.communities import membership
from catalog.services import CATALOG
from catalog.social_models import Community, GroupMember, StudyGroup
from hub.errors import Conflict
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.services import HUB
from ide.demo import write_demo_files
from ide.models import Project
from ide.services import IDE

log = logging.getLogger(__name__)

COMMUNITY_SLUG = "python-learners"
COMMUNITY_NAME = "Python learners"
COMMUNITY_SKILLS = ("python",)
COMMUNITY_DESCRIPTION = (
    "A place to learn Python together: ask questions in the chat, form a study group and write "
    "code side by side in a shared project."
)
GROUP_NAME = "Python study group"
GROUP_DESCRIPTION = "We meet to solve small exercises together in our shared project."
PROJECT_NAME = "First steps in Python"


@dataclass(frozen=True, slots=True)
class DemoCommunity:
    community_id: int
    slug: str
    group_id: int
    project_id: int


async def seed_demo_community(
    app: web.Application, teacher_email: str, student_email: str
) -> DemoCommunity:
    """Make sure the demo community, its study group and the student's project exist; safe to
    run on every start."""
    teacher = await _user(app, teacher_email)
    student = await _user(app, student_email)
    as_teacher = Principal(user=teacher, session_id="demo-seed")
    as_student = Principal(user=student, session_id="demo-seed")
    community_id = await _community(app, as_teacher)
    # The teacher owns it unless someone else took the address first: then they join it too.
    await _join_community(app, as_teacher, community_id)
    await _join_community(app, as_student, community_id)
    group_id = await _group(app, as_teacher, community_id)
    await _join_group(app, as_student, group_id)
    project_id = await _project(app, student, group_id)
    if await write_demo_files(app[IDE].documents.store, project_id):
        log.info("demo project files written", extra={"project_id": project_id})
    return DemoCommunity(community_id, COMMUNITY_SLUG, group_id, project_id)


async def _user(app: web.Application, email: str) -> User:
    async with app[HUB].db.sessions() as s:
        user = await s.scalar(select(User).where(User.email == email))
    if user is None:
        raise RuntimeError(f"demo account {email} does not exist")
    return user


async def _community(app: web.Application, owner: Principal) -> int:
    async with app[HUB].db.sessions() as s:
        existing = await s.scalar(select(Community.id).where(Community.slug == COMMUNITY_SLUG))
    if existing is not None:
        return existing
    try:
        view = await app[CATALOG].communities.create(
            owner,
            name=COMMUNITY_NAME,
            slug=COMMUNITY_SLUG,
            skills=list(COMMUNITY_SKILLS),
            description=COMMUNITY_DESCRIPTION,
        )
    except Conflict:
        # Another hub starting at the same time created it first.
        return await _community(app, owner)
    log.info("demo community created", extra={"community_id": view.community.id})
    return view.community.id


async def _join_community(app: web.Application, member: Principal, community_id: int) -> None:
    async with app[HUB].db.sessions() as s:
        if await membership(s, community_id, member.user.id) is not None:
            return
    # Conflict: another hub starting at the same time joined first.
    with contextlib.suppress(Conflict):
        await app[CATALOG].communities.join(member, community_id)


async def _group(app: web.Application, owner: Principal, community_id: int) -> int:
    async with app[HUB].db.sessions() as s:
        existing = await s.scalar(
            select(StudyGroup.id)
            .where(StudyGroup.community_id == community_id, StudyGroup.name == GROUP_NAME)
            .order_by(StudyGroup.id)
            .limit(1)
        )
    if existing is not None:
        return existing
    view = await app[CATALOG].groups.create(
        owner, name=GROUP_NAME, description=GROUP_DESCRIPTION, community_id=community_id
    )
    log.info("demo study group created", extra={"group_id": view.group.id})
    return view.group.id


async def _join_group(app: web.Application, member: Principal, group_id: int) -> None:
    async with app[HUB].db.sessions() as s:
        if await s.get(GroupMember, (group_id, member.user.id)) is not None:
            return
        code = await s.scalar(select(StudyGroup.invite_code).where(StudyGroup.id == group_id))
    assert code is not None
    # The invite link: joining again is harmless, so no race to guard against.
    await app[CATALOG].groups.join_by_code(member, code)


async def _project(app: web.Application, owner: User, group_id: int) -> int:
    async with app[HUB].db.sessions() as s:
        existing = await s.scalar(
            select(Project.id)
            .where(
                Project.owner_id == owner.id,
                Project.group_id == group_id,
                Project.name == PROJECT_NAME,
            )
            .order_by(Project.id)
            .limit(1)
        )
    if existing is not None:
        return existing
    view = await app[IDE].projects.create(owner, name=PROJECT_NAME, group_id=group_id)
    log.info("demo project created", extra={"project_id": view.project.id})
    return view.project.id
