"""Watch-party sync (issue 7): three headless Chromium pages in one party against a real
``cohort serve`` (embedded SQLite, the demo course); after each of 20 play/seek/rate commands,
how long until every page plays the new state in step (settle time) and how far apart the pages
are once settled (spread of ``currentTime`` carried to one server instant).

    .venv/bin/python bench/watch_sync.py [--commands 20] [--chromium /usr/bin/chromium]

Prints one JSON line. Targets: p95 spread ≤ 50 ms, settling ≤ 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import hubbench
from playwright.async_api import Page, async_playwright

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    # Hidden or occluded pages must keep playing at full rate.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
ACCOUNTS = (
    ("teacher@example.com", "chalk-board-2026"),
    ("admin@example.com", "hub-keeper-2026"),
    ("student@example.com", "study-buddy-2026"),
)
LESSON = "Welcome to Cohort"  # 16 s, a free preview: the student may watch it
SETTLED_SPREAD = 0.05  # s: all pages this close (and playing the new state) counts as settled
SETTLED_SAMPLES = 3  # consecutive samples
SAMPLE_EVERY = 0.05
SETTLE_LIMIT = 6.0
MEASURE_FOR = 1.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


class Hub(hubbench.HubProcess):
    def spawn(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(hubbench.BIN / "cohort"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--migrate",
                    "--demo",
                ],
                env=self.env.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=hubbench.ROOT,
            )


async def api(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None = None,
    **kwargs: Any,
) -> Any:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.request(method, url, headers=headers, **kwargs) as resp:
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise hubbench.BenchError(f"{method} {url}: {resp.status} {body}")
        return body


async def prepare(hub: Hub) -> tuple[int, list[str]]:
    """The demo course published, a party on its free preview with all three in it."""
    base = hub.base_url
    async with aiohttp.ClientSession() as session:
        tokens = []
        for email, password in ACCOUNTS:
            for _ in range(100):
                try:
                    body = await api(
                        session,
                        "POST",
                        f"{base}/api/auth/login",
                        json={"email": email, "password": password},
                    )
                    break
                except hubbench.BenchError:
                    await asyncio.sleep(0.3)
            tokens.append(body["access_token"])
        course_id = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            found = re.search(r"/courses/(\d+)", hub.log_path.read_text(errors="replace"))
            if found:
                course_id = int(found.group(1))
                course = await api(session, "GET", f"{base}/api/courses/{course_id}", tokens[0])
                if course["status"] == "published":
                    break
            await asyncio.sleep(1)
        else:
            raise hubbench.BenchError(f"the demo course was not published:\n{hub.log_tail()}")
        lesson = next(
            lesson
            for section in course["sections"]
            for lesson in section["lessons"]
            if lesson["title"] == LESSON
        )
        party = await api(
            session,
            "POST",
            f"{base}/api/watch-parties",
            tokens[0],
            json={"lesson_id": lesson["id"], "control": "host"},
        )
        for token in tokens[1:]:
            await api(
                session,
                "POST",
                f"{base}/api/watch-parties/join",
                token,
                json={"code": party["invite_code"]},
            )
        return party["id"], tokens


async def log_in(page: Page, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("nav-user").wait_for()


async def samples(pages: list[Page]) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(p.locator("watch-page").evaluate("el => el.sample()") for p in pages)
        )
    )


def spread(taken: list[dict[str, Any]]) -> float:
    """Positions carried to the first page's server instant: max - min (s)."""
    ref = taken[0]["serverNow"]
    positions = [
        s["currentTime"] + (0 if s["paused"] else (ref - s["serverNow"]) / 1000 * s["rate"])
        for s in taken
    ]
    return float(max(positions) - min(positions))


def drifts(taken: list[dict[str, Any]]) -> list[float]:
    """Each page against where the room says it should be (s)."""
    return [abs(s["currentTime"] - s["expected"]) for s in taken if s["expected"] is not None]


async def run_command(pages: list[Page], host: Page, command: dict[str, Any]) -> dict[str, Any]:
    before = (await samples([host]))[0]["version"]
    started = time.monotonic()
    await host.locator("watch-page").evaluate(
        "(el, c) => el.playback(c.cmd, c.extra)", {"cmd": command["cmd"], "extra": command}
    )
    streak = 0
    settle: float | None = None
    while time.monotonic() - started < SETTLE_LIMIT:
        taken = await samples(pages)
        live = all(
            s["version"] > before and s["playing"] and not s["paused"] and s["waiting"] == 0
            for s in taken
        )
        if live and spread(taken) <= SETTLED_SPREAD:
            streak += 1
            if streak >= SETTLED_SAMPLES:
                settle = time.monotonic() - started - (SETTLED_SAMPLES - 1) * SAMPLE_EVERY
                break
        else:
            streak = 0
        await asyncio.sleep(SAMPLE_EVERY)
    spreads: list[float] = []
    page_drifts: list[float] = []
    end = time.monotonic() + MEASURE_FOR
    while time.monotonic() < end:
        taken = await samples(pages)
        spreads.append(spread(taken))
        page_drifts.extend(drifts(taken))
        await asyncio.sleep(SAMPLE_EVERY * 2)
    return {
        "cmd": command["cmd"],
        "settle_s": None if settle is None else round(settle, 3),
        "spread_ms": round(1000 * statistics.median(spreads), 1),
        "spread_max_ms": round(1000 * max(spreads), 1),
        "drift_ms_max": round(1000 * max(page_drifts, default=0), 1),
    }


def plan(count: int, seed: int) -> list[dict[str, Any]]:
    """play first, then seeks and rate changes, positions kept inside the 16 s lesson."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = [{"cmd": "play"}]
    rates = [1.0, 1.25, 1.5, 0.75, 1.0, 2.0, 1.0]
    while len(commands) < count:
        if len(commands) % 2:
            commands.append({"cmd": "seek", "position": round(rng.uniform(1, 8), 2)})
        else:
            commands.append({"cmd": "rate", "rate": rates[len(commands) // 2 % len(rates)]})
    return commands[:count]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    load_start = [round(v, 2) for v in os.getloadavg()]
    with hubbench.data_dir() as directory:
        env = hubbench.HubEnv(
            database_url=f"sqlite+aiosqlite:///{directory / 'cohort.db'}",
            data_dir=directory,
            extra={"COHORT_TRANSCODE_PRESET": "ultrafast", "COHORT_LOG_FORMAT": "text"},
        )
        hub = Hub(env)
        try:
            hub.spawn()
            await hub.wait_ready(120)
            party_id, _ = await prepare(hub)
            hubbench.note(f"party {party_id} ready on {hub.base_url}")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=args.chromium, args=CHROMIUM_ARGS
                )
                pages = []
                for email, password in ACCOUNTS:
                    context = await browser.new_context()
                    page = await context.new_page()
                    page.set_default_timeout(30_000)
                    await log_in(page, hub.base_url, email, password)
                    await page.goto(f"{hub.base_url}/watch/{party_id}")
                    pages.append(page)
                host = pages[0]
                await (
                    host.locator("[data-testid=watch-member][data-ready=true]")
                    .nth(2)
                    .wait_for(timeout=60_000)
                )
                rtts = [s["clockRtt"] for s in await samples(pages)]
                results = []
                for command in plan(args.commands, args.seed):
                    result = await run_command(pages, host, command)
                    hubbench.note(json.dumps(result))
                    results.append(result)
                await browser.close()
        finally:
            hub.stop()
    settles = [r["settle_s"] for r in results if r["settle_s"] is not None]
    spreads = [r["spread_ms"] for r in results]
    print(
        json.dumps(
            {
                "bench": "watch_sync",
                "pages": 3,
                "commands": len(results),
                "spread_ms": {
                    "p50": pct(spreads, 0.5),
                    "p95": pct(spreads, 0.95),
                    "max": max(spreads),
                },
                "spread_max_within_1s_after_settle_ms_p95": pct(
                    [r["spread_max_ms"] for r in results], 0.95
                ),
                "settle_s": {
                    "p50": pct(settles, 0.5),
                    "p95": pct(settles, 0.95),
                    "max": max(settles, default=None),
                    "unsettled": len(results) - len(settles),
                },
                "drift_vs_room_ms_p95": pct([r["drift_ms_max"] for r in results], 0.95),
                "per_command": results,
                "clock_rtt_ms": rtts,
                "targets": {"spread_p95_ms": 50, "settle_s": 2},
                "loadavg_start": load_start,
                "loadavg_end": [round(v, 2) for v in os.getloadavg()],
                "cores": os.cpu_count(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
