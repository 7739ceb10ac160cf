"""The demo course end to end: a student browses the catalog, buys the course with coins,
watches a lesson to completion and sees the progress; the teacher sees the sale and the view
on the course dashboard."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from catalog.demo import seed_demo_course
from hub.demo import seed_demo_accounts
from hub.services import HUB
from tests.web.conftest import ServerFactory, log_in_page, new_page, save_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    server = await make_server(transcode_preset="ultrafast")
    accounts = await seed_demo_accounts(server.app[HUB].identity)
    teacher = next(a for a in accounts if a.role == "verified teacher")
    _, publishing = await seed_demo_course(server.app, teacher.email)
    # The course is published by a background task once its three videos are transcoded.
    assert publishing is not None
    await asyncio.wait_for(publishing, 150)
    return server


async def test_student_buys_watches_and_the_teacher_sees_it(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    student = await new_page(browser)
    teacher = await new_page(browser)
    try:
        await log_in_page(student, base, "student@example.com", "study-buddy-2026")
        await student.goto(f"{base}/courses")
        await student.get_by_test_id("catalog-search").fill("learn together")
        card = student.get_by_test_id("course-card-link").first
        await expect(card).to_contain_text("Learn Together")
        await card.click()

        # The price, the balance and a confirmation before any coin moves.
        await expect(student.get_by_test_id("course-price")).to_contain_text("30")
        await student.get_by_test_id("buy-button").click()
        await expect(student.get_by_test_id("buy-balance")).to_have_text("100")
        await expect(student.get_by_test_id("buy-after")).to_have_text("70")
        await student.get_by_test_id("buy-confirm").click()
        await expect(student.get_by_test_id("enrolled-badge")).to_be_visible()
        await expect(student.get_by_test_id("nav-balance")).to_contain_text("70")

        # Watch the first lesson to the end (at 4x: the server allows that much per second).
        await student.get_by_test_id("continue-button").click()
        await expect(student.get_by_test_id("lesson-title")).to_have_text("Welcome to Cohort")
        video = student.get_by_test_id("player-video")
        await expect(video).to_be_attached()
        await video.evaluate("v => { v.muted = true; v.playbackRate = 4; }")
        await student.get_by_test_id("play").click()
        await expect(student.get_by_test_id("lesson-completed")).to_be_visible(timeout=60_000)

        await student.goto(f"{base}/learning")
        course_row = student.get_by_test_id("learning-course")
        await expect(course_row.get_by_test_id("learning-percent")).to_have_text("25%")
        await expect(student.get_by_test_id("learning-balance")).to_have_text("70")

        # The teacher's dashboard shows the sale and the view.
        await log_in_page(teacher, base, "teacher@example.com", "chalk-board-2026")
        async with server.app[HUB].db.sessions() as s:
            from sqlalchemy import select

            from catalog.models import Course

            course_id = await s.scalar(select(Course.id))
        await teacher.goto(f"{base}/studio/courses/{course_id}/stats")
        await expect(teacher.get_by_test_id("stats-enrollments-total")).to_have_text("1")
        await expect(teacher.get_by_test_id("stats-coins-earned")).to_have_text("21")
        first = teacher.get_by_test_id("lesson-stat").first
        await expect(first.get_by_test_id("lesson-viewers")).to_have_text("1")
        await expect(first.get_by_test_id("lesson-completions")).to_have_text("1")
        await expect(teacher.get_by_test_id("chart-enrollments")).to_be_visible()
        await expect(teacher.get_by_test_id("chart-dropoff")).to_be_visible()
    finally:
        await save_screenshots(request.node.name, {"student": student, "teacher": teacher})
        await student.context.close()
        await teacher.context.close()
