"""Watch-party sync (issue 7): three headless Chromium pages in one party against a real
``cohort serve`` (embedded SQLite, the demo course); after each of 20 play/seek/rate commands,
how long until every page plays the new state in step (settle time) and how far apart the pages
are once settled (spread of ``currentTime`` carried to one server instant). Then drift: one
page is knocked off the room by a seek of N ms mid-play (as a stall or a decoder hiccup would
leave it), and its own correction is traced: time until back within 40 ms, overshoot, seeks,
rate changes, and whether the room had to wait for it.

    .venv/bin/python bench/watch_sync.py [--commands 20] [--perturb=-150,300,-400,700,-1400]
        [--tuning '{"bandEnter": 0.08}'] [--sweep] [--chromium /usr/bin/chromium]

``--tuning`` overrides some of ``web/src/watch/sync.ts``'s drift-correction numbers in every
page (``window.__cohortSyncTuning``, set before the app loads); ``--sweep`` runs the same
measurements for each variant of ``SWEEP`` (one number changed at a time around the production
values, the production values first and last) in one hub and one set of pages.

Prints one JSON line. Targets: p95 spread ≤ 50 ms, settling ≤ 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
PERTURB = "-150,300,-400,700,-1400"  # ms; a knock lands further behind: its seek stalls a little
PERTURB_FROM = 2.0  # s: where the room restarts before each perturbation
BACK_WITHIN = 0.04  # s: "back" = |drift| at most this ...
BACK_FOR = 0.3  # s: ... for this long
OBSERVE_MAX = 11.0  # s after the perturbation (the lesson is 16 s)
TRACES: Path | None = None  # --traces: every perturbation's raw trace, one JSON line each
# Variants of the drift-correction numbers (sync.ts's names), one changed at a time.
SWEEP: tuple[tuple[str, dict[str, float]], ...] = (
    ("production", {}),
    ("band 20 ms", {"bandEnter": 0.02, "bandExit": 0.0075}),
    ("band 80 ms", {"bandEnter": 0.08, "bandExit": 0.03}),
    ("gain 0.5", {"gain": 0.5}),
    ("gain 3", {"gain": 3.0}),
    ("cap 4 %", {"maxNudge": 0.04}),
    ("cap 15 %", {"maxNudge": 0.15}),
    ("seek at 0.5 s", {"seekAt": 0.5}),
    ("seek at 2 s", {"seekAt": 2.0}),
    ("cap 12 %", {"maxNudge": 0.12}),
    ("production again", {}),
)

# Runs in the perturbed page: wait until it follows the room quietly, knock it off by `offset`
# seconds, then trace its drift from the room (as its own controller sees it) every 20 ms.
PERTURB_JS = """
async (el, {offset, within, quietFor, observeMax, backWithin}) => {
  const video = el.renderRoot.querySelector("video");
  const now = () => performance.now();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const drift = () => { const s = el.sample(); return [s.currentTime - s.expected, s]; };
  let quietSince = null;
  const quietDeadline = now() + 4000;
  while (now() < quietDeadline) {
    const [d, s] = drift();
    const quiet = Math.abs(d) <= within && Math.abs(s.rate - 1) < 1e-4 && !video.seeking;
    quietSince = quiet ? (quietSince ?? now()) : null;
    if (quietSince !== null && now() - quietSince >= quietFor) break;
    await sleep(20);
  }
  const [before, s0] = drift();
  const events = [];
  const t0 = now();
  const on = (type) => () =>
    events.push([type, Math.round(now() - t0), video.playbackRate, drift()[0]]);
  const handlers = ["seeking", "seeked", "ratechange", "waiting"].map((t) => [t, on(t)]);
  for (const [t, h] of handlers) video.addEventListener(t, h);
  video.currentTime = video.currentTime + offset;
  const left = video.duration - video.currentTime - Math.max(0, offset) - 0.7;
  const until = t0 + 1000 * Math.max(1, Math.min(observeMax, left));
  const trace = [];
  let calm = null;
  while (now() < until) {
    const [d, s] = drift();
    const me = el.state?.members.find((m) => m.id === el.session.user?.id);
    trace.push([Math.round(now() - t0), d, s.rate, video.seeking ? 1 : 0, me?.ready ? 0 : 1]);
    const landed = events.some((e) => e[0] === "seeked");
    const still =
      landed && !video.seeking && Math.abs(s.rate - 1) < 1e-4 && Math.abs(d) <= 2 * backWithin;
    calm = still ? (calm ?? now()) : null;
    if (calm !== null && now() - calm >= 1500) break;
    await sleep(20);
  }
  for (const [t, h] of handlers) video.removeEventListener(t, h);
  return {before, version: s0.version, trace, events};
}
"""


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


async def send(host: Page, command: dict[str, Any]) -> tuple[int, float]:
    """The host's page sends `command`: the version it was based on and when it was sent."""
    before = (await samples([host]))[0]["version"]
    started = time.monotonic()
    await host.locator("watch-page").evaluate(
        "(el, c) => el.playback(c.cmd, c.extra)", {"cmd": command["cmd"], "extra": command}
    )
    return before, started


async def settle(pages: list[Page], before: int, started: float) -> float | None:
    """Seconds from `started` until every page plays a newer state than `before`, in step."""
    streak = 0
    took: float | None = None
    while time.monotonic() - started < SETTLE_LIMIT:
        taken = await samples(pages)
        live = all(
            s["version"] > before and s["playing"] and not s["paused"] and s["waiting"] == 0
            for s in taken
        )
        if live and spread(taken) <= SETTLED_SPREAD:
            streak += 1
            if streak >= SETTLED_SAMPLES:
                took = time.monotonic() - started - (SETTLED_SAMPLES - 1) * SAMPLE_EVERY
                break
        else:
            streak = 0
        await asyncio.sleep(SAMPLE_EVERY)
    return took


async def run_command(pages: list[Page], host: Page, command: dict[str, Any]) -> dict[str, Any]:
    settled = await settle(pages, *await send(host, command))
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
        "settle_s": None if settled is None else round(settled, 3),
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


def correction(offset_ms: int, traced: dict[str, Any]) -> dict[str, Any]:
    """What the perturbed page did about its drift, from its trace (times from when the knock's
    own seek landed)."""
    events = traced["events"]
    landed, landed_drift = next(((e[1], e[3]) for e in events if e[0] == "seeked"), (None, None))
    trace = [row for row in traced["trace"] if landed is not None and row[0] >= landed]
    playing = [row for row in trace if not row[3]]
    result: dict[str, Any] = {
        "offset_ms": offset_ms,
        "before_ms": round(1000 * traced["before"], 1),
        "landed_ms": round(1000 * landed_drift, 1) if landed_drift is not None else None,
    }
    if not playing or landed is None:
        return {**result, "back_s": None}
    back: float | None = None
    streak_from: int | None = None
    for row in playing:
        if abs(row[1]) <= BACK_WITHIN:
            streak_from = row[0] if streak_from is None else streak_from
            if row[0] - streak_from >= 1000 * BACK_FOR:
                back = (streak_from - landed) / 1000
                break
        else:
            streak_from = None
    # The knock's seek may stall the player a little after it lands: the drift to correct is
    # the largest in the first second.
    peak = max([landed_drift, *(row[1] for row in playing if row[0] - landed <= 1000)], key=abs)
    sign = 1 if peak > 0 else -1
    seeking_from = [e[1] for e in events if e[0] == "seeking"][1:]  # the first was the knock
    rates = [e[2] for e in events if e[0] == "ratechange"]
    nudged = sum(b[0] - a[0] for a, b in itertools.pairwise(trace) if abs(a[2] - 1) > 1e-4)
    tail = [abs(row[1]) for row in playing if row[0] >= playing[-1][0] - 500]
    return {
        **result,
        "peak_ms": round(1000 * peak, 1),
        "back_s": None if back is None else round(back, 2),
        "left_ms": round(1000 * statistics.median(tail), 1),
        "overshoot_ms": round(1000 * max(max(0.0, -sign * row[1]) for row in playing), 1),
        "seeks": len(seeking_from),
        "rate_changes": len(rates),
        "max_nudge_pct": round(100 * max((abs(r - 1) for r in rates), default=0), 1),
        "nudging_s": round(nudged / 1000, 2),
        # Unready (buffering) after a corrective seek: the room would wait for a member that has
        # not opted out, holding everyone. (The knock's own seek always makes it unready.)
        "seek_unready": bool(seeking_from)
        and any(row[4] for row in trace if row[0] >= seeking_from[0]),
        "observed_s": round((trace[-1][0] - landed) / 1000, 1) if trace else 0,
    }


async def perturb(pages: list[Page], host: Page, target: Page, offset_ms: int) -> dict[str, Any]:
    """Restart the room near the start, then knock `target` off it by `offset_ms` and trace."""
    await settle(pages, *await send(host, {"cmd": "seek", "position": PERTURB_FROM}))
    traced = await target.locator("watch-page").evaluate(
        PERTURB_JS,
        {
            "offset": offset_ms / 1000,
            "within": BACK_WITHIN,
            "quietFor": 500,
            "observeMax": OBSERVE_MAX,
            "backWithin": BACK_WITHIN,
        },
    )
    if TRACES is not None:
        with TRACES.open("a") as out:
            out.write(json.dumps({"offset_ms": offset_ms, **traced}) + "\n")
    return correction(offset_ms, traced)


async def measure(
    pages: list[Page], commands: list[dict[str, Any]], offsets: list[int]
) -> dict[str, Any]:
    """The commands' settle and spread, then each perturbation's correction, as one summary."""
    host = pages[0]
    results = []
    for command in commands:
        result = await run_command(pages, host, command)
        hubbench.note(json.dumps(result))
        results.append(result)
    corrections = []
    if offsets:
        await settle(pages, *await send(host, {"cmd": "rate", "rate": 1.0}))
        # The knocked page's own seeks must not make the room wait for it (which would pause
        # everyone and restart the room in step): the product lets a member opt out of that.
        await (
            pages[-1]
            .locator("watch-page")
            .evaluate("el => el.command({cmd: 'no_wait', value: true})")
        )
        for offset in offsets:
            corrected = await perturb(pages, host, pages[-1], offset)
            hubbench.note(json.dumps(corrected))
            corrections.append(corrected)
    settles = [r["settle_s"] for r in results if r["settle_s"] is not None]
    spreads = [r["spread_ms"] for r in results]
    summary: dict[str, Any] = {"commands": len(results)}
    if results:
        summary |= {
            "spread_ms": {"p50": pct(spreads, 0.5), "p95": pct(spreads, 0.95), "max": max(spreads)},
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
        }
    if corrections:
        summary["drift_correction"] = corrections
    return summary


def sweep_row(name: str, summary: dict[str, Any]) -> str:
    """One Markdown row per variant (to stderr; the JSON line has everything)."""
    cells = [name]
    if "spread_ms" in summary:
        cells += [str(summary["spread_ms"]["p50"]), str(summary["spread_ms"]["p95"])]
        cells.append(str(summary["settle_s"]["p95"]))
    for c in summary.get("drift_correction", []):
        cells.append(
            f"{c.get('peak_ms', 0):+.0f}: "
            + ("never" if c["back_s"] is None else f"{c['back_s']}s")
            + f" os{c.get('overshoot_ms', 0):.0f} s{c.get('seeks', 0)}"
            + f" r{c.get('rate_changes', 0)}{' U' if c.get('seek_unready') else ''}"
        )
    return "| " + " | ".join(cells) + " |"


async def set_tuning(pages: list[Page], tuning: dict[str, float] | None) -> None:
    for page in pages:
        await page.evaluate("t => { window.__cohortSyncTuning = t ?? undefined; }", tuning)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--perturb",
        default=PERTURB,
        help="ms to knock the last page off the room by, comma-separated ('' for none)",
    )
    parser.add_argument(
        "--tuning", type=json.loads, default=None, help='sync.ts overrides, e.g. {"gain": 3}'
    )
    parser.add_argument("--sweep", action="store_true", help="measure the variants of SWEEP")
    parser.add_argument(
        "--variants", default="", help="with --sweep: only these (comma-separated names)"
    )
    parser.add_argument("--traces", type=Path, help="append the raw drift traces to this file")
    args = parser.parse_args()
    global TRACES
    TRACES = args.traces
    offsets = [int(v) for v in args.perturb.split(",") if v.strip()]
    commands = plan(args.commands, args.seed)
    load_start = [round(v, 2) for v in os.getloadavg()]
    report: dict[str, Any] = {"bench": "watch_sync", "pages": 3}
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
                    if args.tuning:
                        await context.add_init_script(
                            f"window.__cohortSyncTuning = {json.dumps(args.tuning)};"
                        )
                    page = await context.new_page()
                    page.set_default_timeout(30_000)
                    await log_in(page, hub.base_url, email, password)
                    await page.goto(f"{hub.base_url}/watch/{party_id}")
                    pages.append(page)
                await (
                    pages[0]
                    .locator("[data-testid=watch-member][data-ready=true]")
                    .nth(2)
                    .wait_for(timeout=60_000)
                )
                report["clock_rtt_ms"] = [s["clockRtt"] for s in await samples(pages)]
                if args.sweep:
                    variants = []
                    chosen = {v.strip() for v in args.variants.split(",") if v.strip()}
                    for name, tuning in SWEEP:
                        if chosen and name not in chosen:
                            continue
                        hubbench.note(f"variant {name}: {json.dumps(tuning)}")
                        await set_tuning(pages, tuning)
                        variant = {"variant": name, "tuning": tuning}
                        variant |= await measure(pages, commands, offsets)
                        variant["loadavg"] = [round(v, 2) for v in os.getloadavg()]
                        hubbench.note(sweep_row(name, variant))
                        variants.append(variant)
                    report["sweep"] = variants
                else:
                    report["tuning"] = args.tuning or {}
                    report |= await measure(pages, commands, offsets)
                await browser.close()
        finally:
            hub.stop()
    report |= {
        "targets": {"spread_p95_ms": 50, "settle_s": 2},
        "loadavg_start": load_start,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
