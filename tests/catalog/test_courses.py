"""Course authoring: create, edit, sections and lessons, reorder, publish rules, visibility."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import web

from catalog.handlers_learning import card_out
from catalog.services import CATALOG
from hub.services import HUB
from media.models import Video
from tests.conftest import Account, log_in, sign_up

COURSE = {
    "title": "Python for Data Journalism",
    "subtitle": "From spreadsheets to stories",
    "description": "Learn pandas by investigating real public data.",
    "tags": ["python", "data"],
    "level": "beginner",
    "language": "en",
    "price": 40,
}


@pytest.fixture
async def teacher(client: Any, app: web.Application) -> Account:
    account = Account("tina@example.com", "teaching all day", "Tina")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, "Tina", admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


async def a_video(app: web.Application, owner: int, status: str = "ready") -> str:
    """A video row as the media pipeline leaves it (its own tests cover transcoding)."""
    now = app[HUB].clock.now()
    video = Video(
        id=uuid.uuid4().hex,
        owner_id=owner,
        title="Lesson",
        filename="l.mp4",
        status=status,
        stage="done",
        source_key="raw/x/source",
        source_size=1,
        options={},
        duration=125.5,
        width=1280,
        height=720,
        renditions=[],
        playable=status == "ready",
        assets={},
        attempts=1,
        created_at=now,
        updated_at=now,
    )
    async with app[HUB].db.transaction() as s:
        s.add(video)
    return video.id


async def create(client: Any, teacher: Account, **changes: Any) -> dict[str, Any]:
    resp = await client.post("/api/courses", json={**COURSE, **changes}, headers=teacher.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_build_and_publish_a_course(
    client: Any, app: web.Application, teacher: Account
) -> None:
    course = await create(client, teacher)
    assert (course["status"], course["slug"], course["price"]) == (
        "draft",
        "python-for-data-journalism",
        40,
    )
    cid = course["id"]
    refused = await client.post(f"/api/courses/{cid}/publish", headers=teacher.auth)
    assert refused.status == 409
    assert "at least one lesson" in (await refused.json())["detail"]

    intro = await (
        await client.post(
            f"/api/courses/{cid}/sections", json={"title": "Intro"}, headers=teacher.auth
        )
    ).json()
    deep = await (
        await client.post(
            f"/api/courses/{cid}/sections", json={"title": "Deeper"}, headers=teacher.auth
        )
    ).json()
    assert (intro["position"], deep["position"]) == (0, 1)
    ready = await a_video(app, teacher.id)
    pending = await a_video(app, teacher.id, status="processing")
    l1 = await (
        await client.post(
            f"/api/sections/{intro['id']}/lessons",
            json={"title": "Welcome", "kind": "video", "video_id": ready, "free_preview": True},
            headers=teacher.auth,
        )
    ).json()
    l2 = await (
        await client.post(
            f"/api/sections/{intro['id']}/lessons",
            json={"title": "Reading", "kind": "text", "body": "# Setup\nInstall Python."},
            headers=teacher.auth,
        )
    ).json()
    l3 = await (
        await client.post(
            f"/api/sections/{deep['id']}/lessons",
            json={"title": "Pandas", "kind": "video", "video_id": pending},
            headers=teacher.auth,
        )
    ).json()

    not_ready = await client.post(f"/api/courses/{cid}/publish", headers=teacher.auth)
    assert not_ready.status == 409
    assert "Pandas" in (await not_ready.json())["detail"]
    async with app[HUB].db.transaction() as s:
        (await s.get(Video, pending)).status = "ready"  # type: ignore[union-attr]

    reordered = await client.put(
        f"/api/courses/{cid}/order",
        json={
            "sections": [deep["id"], intro["id"]],
            "lessons": {str(intro["id"]): [l2["id"], l1["id"]]},
        },
        headers=teacher.auth,
    )
    assert reordered.status == 200
    body = await reordered.json()
    assert [s["title"] for s in body["sections"]] == ["Deeper", "Intro"]
    assert [lesson["title"] for lesson in body["sections"][1]["lessons"]] == ["Reading", "Welcome"]

    published = await client.post(f"/api/courses/{cid}/publish", headers=teacher.auth)
    assert published.status == 200
    assert (await published.json())["status"] == "published"

    # Anyone sees a published course; lessons show titles and durations, never videos.
    public = await (await client.get(f"/api/courses/{cid}")).json()
    lessons = [lesson for section in public["sections"] for lesson in section["lessons"]]
    assert [(x["title"], x["duration"], x["video_id"]) for x in lessons] == [
        ("Pandas", 125.5, None),
        ("Reading", None, None),
        ("Welcome", 125.5, None),
    ]
    assert next(x for x in lessons if x["title"] == "Welcome")["free_preview"] is True
    _ = l3

    # The catalog reads its cards with the page (one statement); they say what the course's
    # card says elsewhere: three lessons, both videos' seconds, the first ready video's poster.
    listed = (await (await client.get("/api/courses", params={"q": "journalism"})).json())["items"]
    card = card_out(await app[CATALOG].search.card(cid)).model_dump(mode="json")
    assert listed == [card]
    assert (card["lesson_count"], card["duration"]) == (3, 251.0)
    assert card["cover_url"] == f"/api/courses/{cid}/cover?v={pending[:12]}"


async def test_only_teachers_create_and_only_owners_edit(
    client: Any, app: web.Application, teacher: Account
) -> None:
    student = await sign_up(client, "Stu")
    assert (await client.post("/api/courses", json=COURSE, headers=student.auth)).status == 403
    course = await create(client, teacher)
    cid = course["id"]
    for method, path, body in (
        ("PATCH", f"/api/courses/{cid}", {"price": 0}),
        ("POST", f"/api/courses/{cid}/sections", {"title": "Mine now"}),
        ("POST", f"/api/courses/{cid}/publish", None),
        ("PUT", f"/api/courses/{cid}/order", {"sections": []}),
    ):
        resp = await client.request(method, path, json=body, headers=student.auth)
        assert resp.status == 404, (method, path)
    # A draft is invisible to others.
    assert (await client.get(f"/api/courses/{cid}", headers=student.auth)).status == 404
    assert (await client.get(f"/api/courses/{cid}")).status == 404
    assert (await client.get(f"/api/courses/{cid}", headers=teacher.auth)).status == 200
    # Another teacher's video cannot be attached.
    other = await app[HUB].identity.ensure_account(
        "otto@example.com", "teaching too 2026", "Otto", admin=False, teacher=True
    )
    foreign = await a_video(app, other.id)
    section = await (
        await client.post(f"/api/courses/{cid}/sections", json={"title": "S"}, headers=teacher.auth)
    ).json()
    resp = await client.post(
        f"/api/sections/{section['id']}/lessons",
        json={"title": "Stolen", "kind": "video", "video_id": foreign},
        headers=teacher.auth,
    )
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"


async def test_edit_and_admin_unpublish(
    client: Any, app: web.Application, teacher: Account, admin: Account
) -> None:
    course = await create(client, teacher)
    cid = course["id"]
    patched = await client.patch(
        f"/api/courses/{cid}", json={"price": 0, "tags": ["free"]}, headers=teacher.auth
    )
    assert (await patched.json())["price"] == 0
    section = await (
        await client.post(f"/api/courses/{cid}/sections", json={"title": "S"}, headers=teacher.auth)
    ).json()
    await client.post(
        f"/api/sections/{section['id']}/lessons",
        json={"title": "T", "kind": "text", "body": "hi"},
        headers=teacher.auth,
    )
    assert (await client.post(f"/api/courses/{cid}/publish", headers=teacher.auth)).status == 200
    down = await client.post(f"/api/courses/{cid}/unpublish", headers=admin.auth)
    assert (await down.json())["status"] == "draft"
    # Same title again gets its own slug.
    again = await create(client, teacher)
    assert again["slug"].startswith("python-for-data-journalism-")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**COURSE, "title": "ab"}, "title"),
        ({**COURSE, "price": -1}, "price"),
        ({**COURSE, "level": "expert"}, "level"),
        ({**COURSE, "language": "English"}, "language"),
        ({**COURSE, "tags": ["x" * 41]}, "tags.0"),
        ({**COURSE, "free": True}, "free"),
    ],
)
async def test_bad_courses_are_422(client: Any, teacher: Account, body: Any, field: str) -> None:
    resp = await client.post("/api/courses", json=body, headers=teacher.auth)
    assert resp.status == 422
    assert field in {e["field"] for e in (await resp.json())["errors"]}


@pytest.mark.parametrize(
    "lesson",
    [
        {"title": "V", "kind": "video"},
        {"title": "T", "kind": "text", "body": "   "},
        {"title": "", "kind": "text", "body": "x"},
        {"title": "X", "kind": "audio", "body": "x"},
        {"title": "V", "kind": "video", "video_id": "not-an-id"},
    ],
)
async def test_bad_lessons_are_422(client: Any, teacher: Account, lesson: Any) -> None:
    course = await create(client, teacher)
    section = await (
        await client.post(
            f"/api/courses/{course['id']}/sections", json={"title": "S"}, headers=teacher.auth
        )
    ).json()
    resp = await client.post(
        f"/api/sections/{section['id']}/lessons", json=lesson, headers=teacher.auth
    )
    assert resp.status == 422


async def test_reorder_must_name_everything_once(client: Any, teacher: Account) -> None:
    course = await create(client, teacher)
    cid = course["id"]
    a = await (
        await client.post(f"/api/courses/{cid}/sections", json={"title": "A"}, headers=teacher.auth)
    ).json()
    await client.post(f"/api/courses/{cid}/sections", json={"title": "B"}, headers=teacher.auth)
    resp = await client.put(
        f"/api/courses/{cid}/order", json={"sections": [a["id"]]}, headers=teacher.auth
    )
    assert resp.status == 422
    view = await (await client.get(f"/api/courses/{cid}", headers=teacher.auth)).json()
    assert [s["title"] for s in view["sections"]] == ["A", "B"]
