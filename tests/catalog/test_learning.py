"""Finding courses, opening lessons, watch progress and completion, my learning, and the
teacher's statistics."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from catalog.learning import credit, merge, subtract
from catalog.services import CATALOG
from catalog.stats import dropoff
from hub.clock import FakeClock
from hub.services import HUB
from tests.catalog.test_courses import COURSE, a_video
from tests.conftest import Account, log_in, sign_up

DURATION = 125.5  # what tests.catalog.test_courses.a_video gives every video


@pytest.fixture
async def teacher(client: Any, app: web.Application) -> Account:
    account = Account("tina@example.com", "teaching all day", "Tina")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, "Tina", admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


async def course_with(
    client: Any,
    teacher: Account,
    lessons: list[dict[str, Any]],
    *,
    publish: bool = True,
    **changes: Any,
) -> tuple[int, list[int]]:
    resp = await client.post("/api/courses", json={**COURSE, **changes}, headers=teacher.auth)
    assert resp.status == 201, await resp.text()
    course = await resp.json()
    section = await (
        await client.post(
            f"/api/courses/{course['id']}/sections", json={"title": "S"}, headers=teacher.auth
        )
    ).json()
    ids = []
    for lesson in lessons:
        resp = await client.post(
            f"/api/sections/{section['id']}/lessons", json=lesson, headers=teacher.auth
        )
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    if publish:
        resp = await client.post(f"/api/courses/{course['id']}/publish", headers=teacher.auth)
        assert resp.status == 200, await resp.text()
    return course["id"], ids


def text_lesson(title: str = "Read me", free: bool = False) -> dict[str, Any]:
    return {"title": title, "kind": "text", "body": "# Notes\nSome *words*.", "free_preview": free}


async def search(client: Any, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/courses", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def buy(client: Any, student: Account, course_id: int) -> None:
    resp = await client.post(f"/api/courses/{course_id}/purchase", headers=student.auth)
    assert resp.status == 201, await resp.text()


# Ranges -----------------------------------------------------------------------------------


def test_range_arithmetic() -> None:
    assert merge([(5, 10), (0, 3), (3, 4), (9, 12)]) == [(0, 4), (5, 12)]
    assert subtract([(0, 10)], [(2, 3), (5, 20)]) == [(0, 2), (3, 5)]
    assert subtract([(0, 4)], []) == [(0, 4)]
    assert credit([(0, 5), (10, 20)], 8) == [(0, 5), (10, 13)]
    # A bucket counts when at least a second of it was watched.
    assert dropoff([[0, 7.5], [14.5, 16]], 18) == [1, 1, 0, 1]


# Catalog ----------------------------------------------------------------------------------


async def test_search_filters_sorts_and_pages(
    client: Any, app: web.Application, teacher: Account
) -> None:
    python, _ = await course_with(
        client, teacher, [text_lesson()], title="Python for beginners", tags=["Python"], price=30
    )
    pandas, _ = await course_with(
        client,
        teacher,
        [text_lesson()],
        title="Data analysis",
        subtitle="Pandas with Python",
        tags=["python", "data"],
        level="intermediate",
        price=10,
    )
    cooking, _ = await course_with(
        client,
        teacher,
        [text_lesson()],
        title="Knife skills",
        description="Cooking basics, no code.",
        tags=["cooking"],
        price=0,
    )
    draft, _ = await course_with(
        client, teacher, [text_lesson()], publish=False, title="Python secrets"
    )

    # Prefix search on every word; the title weighs most; drafts never appear.
    found = await search(client, q="pyth")
    assert [c["id"] for c in found["items"]] == [python, pandas]
    assert found["total"] == 2
    card = found["items"][0]
    assert card["owner"] == {"id": teacher.id, "display_name": "Tina"}
    assert (card["lesson_count"], card["enrollments"], card["rating"]["count"]) == (1, 0, 0)
    assert [c["id"] for c in (await search(client, q="analysis pandas"))["items"]] == [pandas]
    assert (await search(client, q="cook"))["items"][0]["id"] == cooking
    assert (await search(client, q="nothing-like-this"))["total"] == 0
    # Query syntax of either engine is just words here: no errors, no injection.
    for hostile in ('"', "python OR", "NEAR(", "a:*", "'); DROP TABLE courses; --", "*"):
        assert (await search(client, q=hostile))["total"] >= 0

    assert {c["id"] for c in (await search(client, tag="PYTHON"))["items"]} == {python, pandas}
    assert [c["id"] for c in (await search(client, level="intermediate"))["items"]] == [pandas]
    assert [c["id"] for c in (await search(client, sort="price"))["items"]] == [
        cooking,
        pandas,
        python,
    ]
    assert next(c["id"] for c in (await search(client, sort="price_desc"))["items"]) == python
    page2 = await search(client, sort="price", page=2, page_size=2)
    assert ([c["id"] for c in page2["items"]], page2["total"]) == ([python], 3)
    assert draft not in {c["id"] for c in (await search(client, page_size=50))["items"]}

    # Popularity follows enrollments; rating follows reviews.
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    for student in (ana, ben):
        await buy(client, student, pandas)
    await buy(client, ana, cooking)
    # Sales leave the listings kept (docs/courses.md, "Freshness"): their counts show within
    # the cache's ttl, which this stands for.
    app[CATALOG].search.cache.clear()
    assert [c["id"] for c in (await search(client, sort="popular"))["items"]] == [
        pandas,
        cooking,
        python,
    ]
    for student, stars in ((ana, 3), (ben, 4)):
        resp = await client.put(
            f"/api/courses/{pandas}/review", json={"rating": stars}, headers=student.auth
        )
        assert resp.status == 200
    resp = await client.put(f"/api/courses/{cooking}/review", json={"rating": 5}, headers=ana.auth)
    rated = (await search(client, sort="rating"))["items"]
    assert [c["id"] for c in rated] == [cooking, pandas, python]
    assert rated[1]["rating"] == {"average": 3.5, "count": 2}
    # Editing a review moves the average, not the count.
    await client.put(f"/api/courses/{pandas}/review", json={"rating": 5}, headers=ana.auth)
    rated = (await search(client, sort="rating"))["items"]
    assert rated[1]["id"] == pandas
    assert rated[1]["rating"] == {"average": 4.5, "count": 2}

    tags = await (await client.get("/api/tags")).json()
    assert tags["items"][0] == {"tag": "python", "count": 2}


@pytest.mark.parametrize(
    "params",
    [{"sort": "cheapest"}, {"page": "0"}, {"page_size": "51"}, {"level": "guru"}, {"q": "x" * 201}],
)
async def test_bad_catalog_queries_are_422(client: Any, params: dict[str, str]) -> None:
    resp = await client.get("/api/courses", params=params)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"


async def test_search_follows_edits(client: Any, teacher: Account) -> None:
    course, _ = await course_with(client, teacher, [text_lesson()], title="Watercolour")
    assert (await search(client, q="watercolour"))["total"] == 1
    resp = await client.patch(
        f"/api/courses/{course}",
        json={"title": "Oil painting", "tags": ["art"]},
        headers=teacher.auth,
    )
    assert resp.status == 200
    assert (await search(client, q="watercolour"))["total"] == 0
    assert (await search(client, q="oil"))["total"] == 1
    assert (await search(client, q="art"))["total"] == 1
    assert (await search(client, tag="art"))["total"] == 1


# Lessons and progress -----------------------------------------------------------------------


async def test_lessons_open_for_the_entitled_only(
    client: Any, app: web.Application, teacher: Account
) -> None:
    video = await a_video(app, teacher.id)
    course, (paid, preview, text) = await course_with(
        client,
        teacher,
        [
            {"title": "Paid", "kind": "video", "video_id": video},
            text_lesson("Preview", free=True),
            text_lesson("Notes"),
        ],
        price=20,
    )
    ana = await sign_up(client, "Ana")
    resp = await client.get(f"/api/lessons/{paid}", headers=ana.auth)
    assert resp.status == 403
    assert "Enroll" in (await resp.json())["detail"]
    opened = await (await client.get(f"/api/lessons/{preview}", headers=ana.auth)).json()
    assert opened["body"].startswith("# Notes")
    assert opened["progress"] is None
    assert (opened["prev_lesson_id"], opened["next_lesson_id"]) == (paid, text)
    assert (await client.get(f"/api/lessons/{paid}")).status == 401
    assert (await client.get("/api/lessons/999999", headers=ana.auth)).status == 404

    await buy(client, ana, course)
    lesson = await (await client.get(f"/api/lessons/{paid}", headers=ana.auth)).json()
    assert (lesson["video_id"], lesson["duration"], lesson["enrolled"]) == (video, DURATION, True)
    assert lesson["progress"]["percent"] == 0.0
    # The teacher opens their own lessons without progress.
    mine = await (await client.get(f"/api/lessons/{paid}", headers=teacher.auth)).json()
    assert (mine["video_id"], mine["progress"]) == (video, None)


async def test_watching_ninety_percent_completes_and_scrubbing_does_not(
    client: Any, app: web.Application, clock: FakeClock, teacher: Account
) -> None:
    video = await a_video(app, teacher.id)
    course, (lesson, notes) = await course_with(
        client,
        teacher,
        [{"title": "Watch", "kind": "video", "video_id": video}, text_lesson()],
        price=0,
    )
    ana = await sign_up(client, "Ana")
    url = f"/api/lessons/{lesson}/progress"
    # Not enrolled: no progress.
    resp = await client.post(url, json={"position": 1, "watched": [[0, 1]]}, headers=ana.auth)
    assert resp.status == 403
    await buy(client, ana, course)
    await client.get(f"/api/lessons/{lesson}", headers=ana.auth)

    # Dragging the scrubber to the end plays nothing: position moves, nothing is credited.
    resp = await client.post(url, json={"position": 125, "watched": []}, headers=ana.auth)
    progress = await resp.json()
    assert (progress["position"], progress["watched_seconds"], progress["completed"]) == (
        125,
        0,
        False,
    )
    # Claiming the whole video at once, without the time to have watched it, is capped.
    resp = await client.post(url, json={"position": 125, "watched": [[0, 125]]}, headers=ana.auth)
    assert (await resp.json())["watched_seconds"] == 30.0  # the slack, no time has passed
    # Watching for real: heartbeats every 10 s with the ranges played; overlaps count once.
    start = 30.0
    while start < 110:
        clock.advance(10)
        end = start + 10
        resp = await client.post(
            url, json={"position": end, "watched": [[start - 2, end]]}, headers=ana.auth
        )
        progress = await resp.json()
        start = end
    assert progress["watched_seconds"] == 110
    assert not progress["completed"]
    clock.advance(10)
    resp = await client.post(url, json={"position": 115, "watched": [[110, 115]]}, headers=ana.auth)
    progress = await resp.json()
    assert progress["completed"]
    assert progress["percent"] == pytest.approx(91.6, abs=0.1)
    # Resume from the last position.
    opened = await (await client.get(f"/api/lessons/{lesson}", headers=ana.auth)).json()
    assert opened["progress"]["position"] == 115
    assert opened["progress"]["completed"]

    # Bad heartbeats change nothing.
    for bad in (
        {"position": 200, "watched": []},
        {"position": 5, "watched": [[10, 5]]},
        {"position": 5, "watched": [[0, 500]]},
        {"position": -1, "watched": []},
        {"position": 5, "watched": [[0, "x"]]},
        {"watched": []},
    ):
        resp = await client.post(url, json=bad, headers=ana.auth)
        assert resp.status == 422, bad
    # Text lessons are marked done, video lessons are not.
    assert (await client.post(f"/api/lessons/{lesson}/complete", headers=ana.auth)).status == 409
    resp = await client.post(
        f"/api/lessons/{notes}/progress", json={"position": 0}, headers=ana.auth
    )
    assert resp.status == 409
    done = await (await client.post(f"/api/lessons/{notes}/complete", headers=ana.auth)).json()
    assert done["completed"]
    assert done["percent"] == 100.0

    course_json = await (await client.get(f"/api/courses/{course}", headers=ana.auth)).json()
    assert course_json["enrolled"] is True
    assert [x["completed"] for x in course_json["sections"][0]["lessons"]] == [True, True]
    anonymous = await (await client.get(f"/api/courses/{course}")).json()
    assert anonymous["enrolled"] is False
    assert anonymous["sections"][0]["lessons"][0]["completed"] is None


async def test_my_learning_and_teacher_stats(
    client: Any, app: web.Application, clock: FakeClock, teacher: Account
) -> None:
    video = await a_video(app, teacher.id)
    course, (watch, notes) = await course_with(
        client,
        teacher,
        [{"title": "Watch", "kind": "video", "video_id": video}, text_lesson("Notes")],
        price=50,
    )
    other, _ = await course_with(client, teacher, [text_lesson()], title="Second course", price=0)
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    for student in (ana, ben):
        await buy(client, student, course)
    await buy(client, ana, other)

    # Ana watches the first 20 s and finishes the notes; Ben watches 0-10 s and 60-70 s.
    clock.advance(30)
    await client.post(
        f"/api/lessons/{watch}/progress",
        json={"position": 20, "watched": [[0, 20]]},
        headers=ana.auth,
    )
    await client.post(f"/api/lessons/{notes}/complete", headers=ana.auth)
    await client.post(
        f"/api/lessons/{watch}/progress",
        json={"position": 70, "watched": [[0, 10], [60, 70]]},
        headers=ben.auth,
    )

    mine = await (await client.get("/api/me/learning", headers=ana.auth)).json()
    assert mine["balance"] == 100 - 50
    first = mine["items"][0]
    assert first["course"]["id"] == course  # most recently active first
    assert (first["completed_lessons"], first["total_lessons"], first["percent"]) == (1, 2, 50.0)
    assert first["next_lesson"] == {"id": watch, "title": "Watch"}
    assert mine["items"][1]["course"]["id"] == other

    assert (await client.get(f"/api/studio/courses/{course}/stats", headers=ana.auth)).status == 403
    stats = await (
        await client.get(f"/api/studio/courses/{course}/stats", headers=teacher.auth)
    ).json()
    assert stats["enrollments"]["total"] == 2
    assert sum(day["count"] for day in stats["enrollments"]["by_day"]) == 2
    assert stats["coins_earned"] == 2 * 35  # 70% of 50, twice
    video_stats, notes_stats = stats["lessons"]
    assert (video_stats["viewers"], video_stats["completed"]) == (2, 0)
    counts = video_stats["dropoff"]["counts"]
    assert len(counts) == 26
    assert video_stats["dropoff"]["bucket_seconds"] == 5
    assert counts[:4] == [2, 2, 1, 1]
    assert counts[4:12] == [0] * 8
    assert counts[12:14] == [1, 1]
    assert (notes_stats["completed"], notes_stats["completion_rate"]) == (1, 0.5)

    studio = await (await client.get("/api/studio/courses", headers=teacher.auth)).json()
    earned = {row["course"]["id"]: row["coins_earned"] for row in studio["items"]}
    assert earned == {course: 70, other: 0}


async def test_cover_images_are_checked_and_reencoded(client: Any, teacher: Account) -> None:
    import io

    from PIL import Image

    course, _ = await course_with(client, teacher, [text_lesson()], publish=False)
    assert (await client.get(f"/api/courses/{course}/cover")).status == 404
    png = io.BytesIO()
    Image.new("RGB", (1600, 900), (200, 30, 90)).save(png, format="PNG")
    resp = await client.put(
        f"/api/courses/{course}/cover",
        data=png.getvalue(),
        headers={**teacher.auth, "Content-Type": "image/png"},
    )
    assert resp.status == 200, await resp.text()
    url = (await resp.json())["cover_url"]
    image = await client.get(url)
    assert image.status == 200
    assert image.content_type == "image/jpeg"
    decoded = Image.open(io.BytesIO(await image.read()))
    assert (decoded.format, decoded.size) == ("JPEG", (1280, 720))
    # Not an image, a broken one, or someone else's course: refused, nothing changes.
    for body in (b"hello", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50):
        resp = await client.put(
            f"/api/courses/{course}/cover",
            data=body,
            headers={**teacher.auth, "Content-Type": "image/png"},
        )
        assert resp.status == 422
    ana = await sign_up(client, "Ana")
    resp = await client.put(
        f"/api/courses/{course}/cover",
        data=png.getvalue(),
        headers={**ana.auth, "Content-Type": "image/png"},
    )
    assert resp.status == 404
    after = await (await client.get(f"/api/courses/{course}", headers=teacher.auth)).json()
    assert after["cover_url"] == url


async def test_edit_move_delete_lessons_and_archive(
    client: Any, app: web.Application, teacher: Account
) -> None:
    video = await a_video(app, teacher.id)
    course, (watch, notes) = await course_with(
        client,
        teacher,
        [{"title": "Watch", "kind": "video", "video_id": video}, text_lesson("Notes")],
        price=0,
    )
    extra = await (
        await client.post(
            f"/api/courses/{course}/sections", json={"title": "More"}, headers=teacher.auth
        )
    ).json()
    ana = await sign_up(client, "Ana")
    url = f"/api/lessons/{notes}"
    # Others cannot touch it; bad edits are refused and change nothing.
    assert (await client.patch(url, json={"title": "X"}, headers=ana.auth)).status == 404
    for bad in ({}, {"title": None}, {"body": "  "}, {"section_id": 999999}, {"extra": 1}):
        assert (await client.patch(url, json=bad, headers=teacher.auth)).status == 422, bad
    resp = await client.patch(f"/api/lessons/{watch}", json={"body": "text"}, headers=teacher.auth)
    assert resp.status == 422
    resp = await client.patch(
        url,
        json={
            "title": "Reading",
            "body": "New *notes*",
            "free_preview": True,
            "section_id": extra["id"],
        },
        headers=teacher.auth,
    )
    assert resp.status == 200, await resp.text()
    moved = await resp.json()
    assert (moved["title"], moved["section_id"], moved["free_preview"]) == (
        "Reading",
        extra["id"],
        True,
    )
    lesson = await (await client.get(url, headers=ana.auth)).json()  # now a free preview
    assert lesson["body"] == "New *notes*"
    resp = await client.patch(
        f"/api/sections/{extra['id']}", json={"title": "Extras"}, headers=teacher.auth
    )
    assert (await resp.json())["title"] == "Extras"
    assert (await client.delete(f"/api/sections/{extra['id']}", headers=teacher.auth)).status == 409
    assert (await client.delete(url, headers=teacher.auth)).status == 204
    assert (await client.delete(f"/api/sections/{extra['id']}", headers=teacher.auth)).status == 204
    # The last lesson of a published course stays.
    assert (await client.delete(f"/api/lessons/{watch}", headers=teacher.auth)).status == 409

    # Archived: off the catalog and not for sale; enrolled students keep it.
    await buy(client, ana, course)
    ben = await sign_up(client, "Ben")
    resp = await client.post(f"/api/courses/{course}/archive", headers=ana.auth)
    assert resp.status == 404
    resp = await client.post(f"/api/courses/{course}/archive", headers=teacher.auth)
    assert (await resp.json())["status"] == "archived"
    assert (await search(client))["total"] == 0
    assert (await client.post(f"/api/courses/{course}/purchase", headers=ben.auth)).status == 404
    assert (await client.get(f"/api/lessons/{watch}", headers=ana.auth)).status == 200
    assert (await client.get(f"/api/lessons/{watch}", headers=ben.auth)).status == 404
