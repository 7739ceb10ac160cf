"""The demo's social content (``cohort serve --demo``): a community the demo student joined, a
study group of the teacher and the student in it, the student's project in that group with a
program in its document, and a short chat; seeded once however often the hub starts, and
completed on a database from an older demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pycrdt import Map, Text
from sqlalchemy import func, select

from catalog.communities import join_reward_key
from catalog.demo_community import COMMUNITY_SLUG, GROUP_NAME, PROJECT_NAME, seed_demo_community
from catalog.services import CATALOG
from catalog.social_models import Community, CommunityMember, GroupMember, StudyGroup
from hub.demo import seed_demo_accounts
from hub.identity.manager import Principal
from hub.identity.models import User
from hub.services import HUB
from ide.demo import DEMO_FILES, write_demo_files
from ide.models import DocumentUpdate, Project
from ide.projects import FIRST_FILE, Role, doc_name
from ide.services import IDE
from ide.updates import load
from payments.models import Transfer
from rooms.demo import REPLY, WELCOME, seed_demo_chat
from rooms.models import ChatMessage

Client = TestClient[Any, Any]
TEACHER = "teacher@example.com"
STUDENT = "student@example.com"


async def users(app: web.Application) -> tuple[User, User]:
    await seed_demo_accounts(app[HUB].identity)
    async with app[HUB].db.sessions() as s:
        found = {u.email: u for u in await s.scalars(select(User))}
    return found[TEACHER], found[STUDENT]


async def count(app: web.Application, query: Any) -> int:
    async with app[HUB].db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def stored_files(app: web.Application, project_id: int) -> dict[str, str]:
    state, skipped = load(await app[IDE].documents.store.load(doc_name(project_id)))
    assert skipped == 0
    files = state.doc.get("files", type=Map)
    return {str(path): str(text) for path, text in files.items()}


async def test_demo_social_content_is_seeded_once(client: Client, app: web.Application) -> None:
    teacher, student = await users(app)
    first = await seed_demo_community(app, TEACHER, STUDENT)
    assert await seed_demo_chat(app, first.community_id, TEACHER, STUDENT)
    again = await seed_demo_community(app, TEACHER, STUDENT)
    assert not await seed_demo_chat(app, again.community_id, TEACHER, STUDENT)
    assert again == first
    assert first.slug == COMMUNITY_SLUG

    assert await count(app, select(Community.id)) == 1
    assert await count(app, select(StudyGroup.id)) == 1
    assert await count(app, select(Project.id)) == 1
    # The empty document Projects.create wrote, and the demo files on top: once.
    doc = doc_name(first.project_id)
    assert await count(app, select(DocumentUpdate.id).where(DocumentUpdate.doc == doc)) == 2
    key = join_reward_key(first.community_id, student.id)
    assert await count(app, select(Transfer.id).where(Transfer.dedupe_key == key)) == 1

    # As the services (and so the pages) see it.
    catalog = app[CATALOG]
    community = await catalog.communities.by_slug(student, COMMUNITY_SLUG)
    assert (community.owner.id, community.my_role) == (teacher.id, "member")
    assert community.community.member_count == 2
    assert community.community.skills == ["python"]
    group = await catalog.groups.get(student, first.group_id)
    assert (group.group.name, group.group.community_id) == (GROUP_NAME, first.community_id)
    assert (group.owner.id, group.my_role, group.group.member_count) == (teacher.id, "member", 2)
    project = await app[IDE].projects.get(student, first.project_id)
    assert (project.project.name, project.project.group_id) == (PROJECT_NAME, first.group_id)
    assert project.role is Role.OWNER
    # The teacher edits it through the study group.
    assert (await app[IDE].projects.get(teacher, first.project_id)).role is Role.EDITOR

    # The document holds the program, in storage and in a room loaded from it.
    assert await stored_files(app, first.project_id) == DEMO_FILES
    documents = app[IDE].documents
    room = await documents.admit(doc)
    try:
        files = room.doc.get("files", type=Map)
        assert {str(p): str(t) for p, t in files.items()} == DEMO_FILES
    finally:
        documents.release(room)

    channel = f"chat:community:{first.community_id}"
    async with app[HUB].db.sessions() as s:
        messages = list(
            await s.scalars(
                select(ChatMessage).where(ChatMessage.channel == channel).order_by(ChatMessage.seq)
            )
        )
    assert [(m.author_id, m.text) for m in messages] == [
        (teacher.id, WELCOME),
        (student.id, REPLY),
    ]
    assert messages[1].reply_to == messages[0].seq


async def test_seeding_completes_an_older_demo(client: Client, app: web.Application) -> None:
    """A database from before: the community exists, nobody joined it, no group or project."""
    teacher, student = await users(app)
    catalog = app[CATALOG]
    made = await catalog.communities.create(
        Principal(user=teacher, session_id="old-demo"),
        name="Python learners",
        slug=COMMUNITY_SLUG,
        skills=["python"],
        description="From an older demo.",
    )
    seeded = await seed_demo_community(app, TEACHER, STUDENT)
    assert seeded.community_id == made.community.id
    assert await count(app, select(Community.id)) == 1
    async with app[HUB].db.sessions() as s:
        assert await s.get(CommunityMember, (seeded.community_id, student.id)) is not None
        roles = dict(
            (
                await s.execute(
                    select(GroupMember.user_id, GroupMember.role).where(
                        GroupMember.group_id == seeded.group_id
                    )
                )
            ).all()
        )
    assert roles == {teacher.id: "owner", student.id: "member"}
    assert await stored_files(app, seeded.project_id) == DEMO_FILES


async def test_demo_files_only_fill_an_untouched_project(
    client: Client, app: web.Application
) -> None:
    _, student = await users(app)
    projects = app[IDE].projects
    store = app[IDE].documents.store
    fresh = await projects.create(student, name="Fresh", group_id=None)
    edited = await projects.create(student, name="Edited", group_id=None)
    # Someone typed into the edited one's main.py.
    state, _ = load(await store.load(doc_name(edited.project.id)))
    before = state.state_vector
    main = state.doc.get("files", type=Map)[FIRST_FILE]
    assert isinstance(main, Text)
    main.insert(0, "print('mine')\n")
    await store.append({doc_name(edited.project.id): state.doc.get_update(before)})

    assert await write_demo_files(store, fresh.project.id)
    assert not await write_demo_files(store, fresh.project.id)
    assert not await write_demo_files(store, edited.project.id)
    assert await stored_files(app, fresh.project.id) == DEMO_FILES
    assert await stored_files(app, edited.project.id) == {FIRST_FILE: "print('mine')\n"}


def test_demo_programs_run(tmp_path: Path) -> None:
    for path, text in DEMO_FILES.items():
        (tmp_path / path).write_text(text, encoding="utf-8")
    main = subprocess.run(
        [sys.executable, FIRST_FILE], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert main.stdout.splitlines()[0] == "27 words, 21 different ones"
    practice = subprocess.run(
        [sys.executable, "practice.py"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert practice.stdout.startswith("1 2 Fizz 4 Buzz")
