"""The watch party's call in two browsers: the teacher starts a party, the student joins it
with the invite link, both join the call with Chromium's fake camera and each sees the other's
video playing (a remote tile with frames)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect
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


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    server = await make_server(transcode_preset="ultrafast")
    accounts = await seed_demo_accounts(server.app[HUB].identity)
    teacher = next(a for a in accounts if a.role == "verified teacher")
    _, publishing = await seed_demo_course(server.app, teacher.email)
    assert publishing is not None
    await asyncio.wait_for(publishing, 200)
    return server


async def test_two_pages_see_each_other_in_the_call(
    server: TestServer, media_browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    async with server.app[HUB].db.sessions() as s:
        lesson = await s.scalar(select(Lesson).where(Lesson.title == "Welcome to Cohort"))
    assert lesson is not None
    host = await new_page(media_browser)
    guest = await new_page(media_browser)
    pages = [host, guest]
    try:
        await log_in_page(host, base, "teacher@example.com", "chalk-board-2026")
        await host.goto(f"{base}/learn/{lesson.course_id}/{lesson.id}")
        await host.get_by_test_id("watch-together").click()
        invite = await host.get_by_test_id("watch-invite").input_value()
        await log_in_page(guest, base, "student@example.com", "study-buddy-2026")
        await guest.goto(invite)
        await guest.get_by_test_id("watch-join").click()

        for page in pages:
            await page.locator("cohort-call").get_by_role("button", name="Join call").click()
            await expect(page.locator("cohort-call").get_by_text("Leave call")).to_be_visible()
        for page in pages:
            await sees_remote_video(page)

        # Leaving removes the tile on the other page.
        await guest.locator("cohort-call").get_by_role("button", name="Leave call").click()
        await expect(host.locator("cohort-call [data-testid=call-remote]")).to_have_count(
            0, timeout=15_000
        )

        # Ending the party hangs up everyone's call.
        await guest.locator("cohort-call").get_by_role("button", name="Join call").click()
        await expect(host.locator("cohort-call [data-testid=call-remote]")).to_have_count(
            1, timeout=30_000
        )
        host.once("dialog", lambda dialog: dialog.accept())
        await host.get_by_test_id("watch-end").click()
        for page in pages:
            await expect(page.get_by_test_id("watch-ended")).to_be_visible()
            await expect(page.locator("cohort-call")).to_have_count(0)
    except BaseException:
        await save_screenshots(request.node.name, dict(zip(("host", "guest"), pages, strict=False)))
        raise
    finally:
        for page in pages:
            await page.context.close()
