"""The whole identity journey in a real browser: sign up, apply to teach, an admin approves in
another browser session, and the new teacher sees the badge."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from hub.services import HUB
from tests.web.conftest import ServerFactory, new_page, save_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    return await make_server()


async def test_sign_up_apply_approve_and_see_the_badge(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    hub = server.app[HUB]
    await hub.identity.ensure_account(
        "reviewer@example.com", "approve all day 2026", "Rey Reviewer", admin=True, teacher=False
    )
    email = f"lea-{uuid.uuid4().hex[:6]}@example.com"
    student = await new_page(browser)
    admin = await new_page(browser)
    try:
        # Sign up; the app logs the new user in.
        await student.goto(f"{base}/signup")
        await student.get_by_test_id("signup-email").fill(email)
        await student.get_by_test_id("signup-name").fill("Lea Learner")
        await student.get_by_test_id("signup-password").fill("short")
        await student.get_by_test_id("signup-submit").click()
        await expect(
            student.get_by_text("Password must be at least 10 characters long", exact=True)
        ).to_be_visible()
        await student.get_by_test_id("signup-password").fill("a long enough passphrase")
        await student.get_by_test_id("signup-submit").click()
        await expect(student.get_by_test_id("nav-user")).to_have_text("Lea Learner")
        await expect(student.get_by_test_id("teacher-badge")).to_have_count(0)

        # Apply to teach.
        await student.goto(f"{base}/teach")
        await student.get_by_test_id("apply-qualifications").fill("MSc Physics, 5 years tutoring.")
        await student.get_by_test_id("apply-experience").fill("Weekly study group for 30 people.")
        await student.get_by_test_id("apply-links").fill("https://example.com/lea")
        await student.get_by_test_id("apply-submit").click()
        await expect(student.get_by_test_id("application-status")).to_have_text("pending")

        # An admin, in a separate browser session, approves it.
        await admin.goto(f"{base}/login")
        await admin.get_by_test_id("login-email").fill("reviewer@example.com")
        await admin.get_by_test_id("login-password").fill("approve all day 2026")
        await admin.get_by_test_id("login-submit").click()
        await expect(admin.get_by_test_id("nav-user")).to_have_text("Rey Reviewer")
        await admin.goto(f"{base}/admin/applications")
        card = admin.locator(f'[data-testid="admin-application"][data-email="{email}"]')
        await expect(card).to_be_visible()
        await card.get_by_test_id("approve").click()
        await expect(card.get_by_text("approved")).to_be_visible()

        # The student reloads: the session comes back through the refresh cookie (the access
        # token only ever lived in memory) and the badge is there.
        refreshes: list[str] = []
        student.on(
            "request",
            lambda r: refreshes.append(r.url) if r.url.endswith("/api/auth/refresh") else None,
        )
        await student.reload()
        await expect(student.get_by_test_id("nav-user")).to_have_text("Lea Learner")
        await expect(student.get_by_test_id("teacher-badge")).to_be_visible()
        await expect(student.get_by_test_id("application-status")).to_have_text("approved")
        # The page's parallel start-up calls share one refresh.
        assert len(refreshes) == 1
        stored = await student.evaluate(
            "() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
        )
        assert "eyJ" not in stored  # no JWT at rest in the page
    except Exception:
        await save_screenshots(request.node.name, {"student": student, "admin": admin})
        raise
