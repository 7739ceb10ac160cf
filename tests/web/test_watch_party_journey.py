"""A watch party in three browsers (with Chromium's fake camera and microphone): the teacher
starts one from a lesson ("Watch together"), the admin and a student join with the invite link,
when the host plays, seeks and pauses every page follows (positions compared at one server
instant), and two of them join the call and see each other's video."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from catalog.demo import seed_demo_course
from catalog.models import Lesson
from hub.demo import seed_demo_accounts
from hub.services import HUB
from tests.web.conftest import (
    ServerFactory,
    log_in_page,
    new_page,
    save_screenshots,
    sees_remote_video,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# Positions of the pages at one server instant may differ by this much (seconds) once settled.
TOLERANCE = 0.25


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    server = await make_server(transcode_preset="ultrafast")
    accounts = await seed_demo_accounts(server.app[HUB].identity)
    teacher = next(a for a in accounts if a.role == "verified teacher")
    _, publishing = await seed_demo_course(server.app, teacher.email)
    assert publishing is not None
    await asyncio.wait_for(publishing, 200)
    return server


async def sample(page: Page) -> dict[str, Any]:
    return await page.locator("watch-page").evaluate("el => el.sample()")  # type: ignore[no-any-return]


async def positions(pages: list[Page]) -> list[float]:
    """Each page's position carried to the first page's server instant."""
    samples = await asyncio.gather(*(sample(p) for p in pages))
    ref = samples[0]["serverNow"]
    return [
        s["currentTime"] + (0 if s["paused"] else (ref - s["serverNow"]) / 1000 * s["rate"])
        for s in samples
    ]


async def converged(pages: list[Page], *, paused: bool, near: float | None = None) -> list[float]:
    """Wait (up to 10 s) until every page is paused (or playing) and within TOLERANCE."""
    deadline = time.monotonic() + 10
    last: list[float] = []
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(sample(p) for p in pages))
        last = await positions(pages)
        if (
            all(s["paused"] == paused for s in states)
            and max(last) - min(last) <= TOLERANCE
            and (near is None or abs(last[0] - near) < 2.5)
        ):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"pages did not converge (paused={paused}, near={near}): {last}")


async def test_three_pages_follow_the_host(
    server: TestServer, media_browser: Browser, request: pytest.FixtureRequest
) -> None:
    browser = media_browser
    base = str(server.make_url("/")).rstrip("/")
    async with server.app[HUB].db.sessions() as s:
        lesson = await s.scalar(select(Lesson).where(Lesson.title == "Welcome to Cohort"))
    assert lesson is not None
    host = await new_page(browser)
    admin = await new_page(browser)
    student = await new_page(browser)
    pages = [host, admin, student]
    try:
        await log_in_page(host, base, "teacher@example.com", "chalk-board-2026")
        await host.goto(f"{base}/learn/{lesson.course_id}/{lesson.id}")
        await host.get_by_test_id("watch-together").click()
        await expect(host.get_by_test_id("watch-title")).to_contain_text("Welcome to Cohort")
        invite = await host.get_by_test_id("watch-invite").input_value()
        assert "/watch/join/" in invite

        for page, email, password in (
            (admin, "admin@example.com", "hub-keeper-2026"),
            (student, "student@example.com", "study-buddy-2026"),
        ):
            await log_in_page(page, base, email, password)
            await page.goto(invite)
            await page.get_by_test_id("watch-join").click()
            await expect(page.get_by_test_id("watch-title")).to_contain_text("Welcome to Cohort")

        # Everyone is listed, and everyone's player reports ready.
        for page in pages:
            await expect(page.locator("[data-testid=watch-member][data-ready=true]")).to_have_count(
                3, timeout=30_000
            )
        # Only the host controls playback.
        await expect(student.get_by_test_id("watch-play")).to_be_disabled()
        await expect(host.get_by_test_id("watch-play")).to_be_enabled()

        # Play: everyone plays, in step.
        await host.get_by_test_id("watch-play").click()
        await converged(pages, paused=False)
        await asyncio.sleep(1.5)
        playing = await converged(pages, paused=False)
        assert playing[0] > 1.0

        # Seek: everyone jumps and plays on from there.
        await host.get_by_test_id("watch-seek").evaluate(
            "el => { el.value = '9'; el.dispatchEvent(new Event('change')); }"
        )
        sought = await converged(pages, paused=False, near=9.5)
        assert sought[0] >= 9

        # A reaction bursts on every page.
        await student.locator("[data-testid=watch-react][data-emoji='🎉']").click()
        for page in pages:
            await expect(page.get_by_test_id("watch-burst").first).to_be_attached()

        # Pause: everyone stops at the same frame.
        await host.get_by_test_id("watch-play").click()
        stopped = await converged(pages, paused=True)
        assert max(stopped) - min(stopped) <= 0.05, stopped

        # The host and the student join the call and each sees the other's camera.
        for page in (host, student):
            await page.locator("cohort-call").get_by_role("button", name="Join call").click()
        for page in (host, student):
            await sees_remote_video(page)
    except BaseException:
        await save_screenshots(
            request.node.name, dict(zip(("host", "admin", "student"), pages, strict=False))
        )
        raise
    finally:
        for page in pages:
            await page.context.close()
