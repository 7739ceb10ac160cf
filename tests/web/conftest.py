"""A real hub on a local port and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner
from playwright.async_api import Browser, Page, async_playwright, expect

from hub.app import create_app
from hub.clock import SystemClock
from hub.settings import REPO_ROOT
from tests.conftest import make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"

ServerFactory = Callable[..., Awaitable[TestServer]]

# How long an assertion waits for the page (Playwright's default is 5 s): these are whole
# journeys through the hub, run beside the rest of the suite on two cores, where a page that
# is ready in half a second alone can take several.
PATIENCE_MS = 20_000


@pytest.fixture(autouse=True)
def patient_assertions() -> Iterator[None]:
    expect.set_options(timeout=PATIENCE_MS)
    yield
    expect.set_options(timeout=5_000)


class _Server(TestServer):
    """A hub served as `cohort serve` serves it (``web.run_app``): a request whose client goes
    away is not cancelled. (aiohttp's test server cancels it, and a static file opened for a
    request the browser dropped, while the opening was still under way, is then never closed.)"""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


@pytest.fixture
async def make_server(
    tmp_path: Path, sqlite_template: Path, fast_hashing: Any
) -> AsyncIterator[ServerFactory]:
    """Start a hub on the embedded default (SQLite) with the built front end."""
    servers: list[TestServer] = []

    async def start(**overrides: Any) -> TestServer:
        assert (REPO_ROOT / "web" / "dist" / "index.html").exists(), "run `make web` first"
        shutil.copy(sqlite_template, tmp_path / "cohort.db")
        settings = make_settings(
            tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'cohort.db'}", **overrides
        )
        app = create_app(settings, clock=SystemClock(), hashing=fast_hashing)
        server = _Server(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


# Chromium's fake camera and microphone, granted without asking (the call tests).
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture
async def media_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *FAKE_MEDIA]
        )
        yield browser
        await browser.close()


async def remote_video_width(page: Page) -> int:
    """The width of the first remote call tile's video while it plays frames (0 otherwise)."""
    tile = page.locator("cohort-call [data-testid=call-remote]").first
    return int(await tile.evaluate("v => v.readyState >= 2 && !v.paused ? v.videoWidth : 0"))


async def sees_remote_video(page: Page) -> None:
    """Wait (up to 30 s for the tile, 15 s for frames) until a remote video plays."""
    await expect(page.locator("cohort-call [data-testid=call-remote]")).to_have_count(
        1, timeout=30_000
    )
    deadline = asyncio.get_running_loop().time() + 15
    while await remote_video_width(page) == 0:
        assert asyncio.get_running_loop().time() < deadline, "no remote video frames"
        await asyncio.sleep(0.1)


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(PATIENCE_MS)
    return page


async def save_screenshots(name: str, pages: dict[str, Page]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for label, page in pages.items():
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"))


async def log_in_page(page: Page, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("nav-user").wait_for()
