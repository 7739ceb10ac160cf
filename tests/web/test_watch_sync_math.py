"""The watch page's clock sync and drift correction (docs/watch-parties.md, "Clock sync and drift
correction"), run in Node on the real modules: ``web/src/realtime/clock.ts`` keeps the offset of
the lowest-delay recent ping/pong sample, and ``web/src/watch/sync.ts`` leaves small drift alone,
nudges the rate for moderate drift and seeks only when far off."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hub.settings import REPO_ROOT

WEB = REPO_ROOT / "web"

# Transpiles the two modules with the front end's own TypeScript, imports them and answers the
# cases below as one JSON object.
SCRIPT = r"""
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [web, out] = process.argv.slice(2);
const ts = createRequire(join(web, "package.json"))("typescript");
async function load(path, name) {
  const source = readFileSync(join(web, path), "utf8");
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const file = join(out, name);
  writeFileSync(file, js);
  return import(pathToFileURL(file).href);
}
const { ClockEstimate } = await load("src/realtime/clock.ts", "clock.mjs");
const sync = await load("src/watch/sync.ts", "sync.mjs");

const clock = new ClockEstimate();
const before = { synced: clock.synced, offset: clock.offset };
// [sent, received, server time]: offsets 1000 (rtt 80), 1010 (rtt 10), 990 (rtt 40).
clock.add(0, 80, 1040);
clock.add(100, 110, 1115);
clock.add(200, 240, 1210);
const lowest = { offset: clock.offset, rtt: clock.rtt };
// Five minutes on, the old samples no longer count: only the new one (offset 1500, rtt 30).
clock.add(400_000, 400_030, 401_515);
const refreshed = { offset: clock.offset, rtt: clock.rtt };
// Of 20 more samples only the last 16 are kept: the best (rtt 1) was among the first four.
const capped = new ClockEstimate();
capped.add(0, 1, 500);
for (let i = 1; i < 20; i++) capped.add(i * 10, i * 10 + 50, 0);
const afterCap = { rtt: capped.rtt };

const state = { position: 10, playing: true, rate: 2, at: 1_000 };
const expected = [
  sync.expectedPosition(state, 3_000),
  sync.expectedPosition(state, 500),
  sync.expectedPosition({ ...state, playing: false }, 3_000),
  sync.expectedPosition(state, 60_000, 12),
];
const cases = [
  [0.03, false, false],
  [0.02, true, false],
  [0.01, true, false],
  [0.05, false, false],
  [-0.5, false, false],
  [0.35, false, true],
  [0.35, false, false],
  [1.0, false, false],
].map(([drift, nudging, fresh]) => sync.correct(drift, 20, 1, nudging, fresh, 0.1));
const constants = {
  BAND_EXIT: sync.BAND_EXIT,
  BAND_ENTER: sync.BAND_ENTER,
  GAIN: sync.GAIN,
  MAX_NUDGE: sync.MAX_NUDGE,
  SEEK_AT: sync.SEEK_AT,
  HARD_SYNC_AT: sync.HARD_SYNC_AT,
};
// The benchmark's overrides (window.__cohortSyncTuning): only finite, non-negative numbers count.
const untuned = sync.currentTuning() === sync.DEFAULT_TUNING;
globalThis.__cohortSyncTuning = { gain: 3, seekAt: "2", maxNudge: -1, bandEnter: 0.08 };
const tuned = sync.currentTuning();
const tunedNudge = sync.correct(0.06, 20, 1, false, false, 0.1);
delete globalThis.__cohortSyncTuning;
const tuning = { untuned, defaults: sync.DEFAULT_TUNING, tuned, tunedNudge };
console.log(
  JSON.stringify({ before, lowest, refreshed, afterCap, expected, cases, constants, tuning }),
);
"""


def run(tmp_path: Path) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/system-deps installs it)"
    assert (WEB / "node_modules" / "typescript").is_dir(), "run `make web` first"
    script = tmp_path / "sync_math.mjs"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [node, str(script), str(WEB), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_clock_keeps_the_lowest_delay_recent_sample(tmp_path: Path) -> None:
    got = run(tmp_path)
    assert got["before"] == {"synced": False, "offset": 0}
    assert got["lowest"] == {"offset": 1010, "rtt": 10}
    assert got["refreshed"] == {"offset": 1500, "rtt": 30}
    assert got["afterCap"] == {"rtt": 50}


def test_drift_is_left_alone_nudged_or_sought(tmp_path: Path) -> None:
    got = run(tmp_path)
    # Where the room is: position + elapsed * rate, never before `at`, never past the end.
    assert got["expected"] == [14, 10, 10, 12]
    c = got["constants"]
    # The values the sweep chose (docs/watch-parties.md, "How the numbers were chosen").
    assert (
        c["BAND_EXIT"],
        c["BAND_ENTER"],
        c["GAIN"],
        c["MAX_NUDGE"],
        c["SEEK_AT"],
        c["HARD_SYNC_AT"],
    ) == (0.015, 0.04, 3, 0.08, 1.0, 0.3)
    none, held, settled, ahead, behind, fresh, stale_far, far = got["cases"]
    # Inside the band nothing happens; once nudging, it goes on until inside the inner band.
    assert none == {"kind": "none", "rate": 1}
    assert held["kind"] == "nudge"
    # Near the band the nudge is proportional to the drift (20 ms * GAIN is under the cap).
    assert abs(held["rate"] - (1 - 0.02 * c["GAIN"])) < 1e-9
    assert settled == {"kind": "none", "rate": 1}
    # Ahead slows down, behind speeds up, by at most MAX_NUDGE.
    assert ahead["kind"] == "nudge"
    assert 1 - c["MAX_NUDGE"] <= ahead["rate"] < 1
    assert behind == {"kind": "nudge", "rate": 1 + c["MAX_NUDGE"]}
    # A seek only when far off (or right after a command): to where the room will be.
    assert fresh == {"kind": "seek", "to": 20.1, "rate": 1}
    assert stale_far["kind"] == "nudge"
    assert far == {"kind": "seek", "to": 20.1, "rate": 1}


def test_only_the_benchmark_overrides_the_numbers(tmp_path: Path) -> None:
    got = run(tmp_path)
    t = got["tuning"]
    c = got["constants"]
    # Without window.__cohortSyncTuning the production constants are used as they are.
    assert t["untuned"] is True
    assert t["defaults"] == {
        "bandExit": c["BAND_EXIT"],
        "bandEnter": c["BAND_ENTER"],
        "gain": c["GAIN"],
        "maxNudge": c["MAX_NUDGE"],
        "seekAt": c["SEEK_AT"],
        "hardSyncAt": c["HARD_SYNC_AT"],
    }
    # Overrides replace only the numbers they name, and only with sensible numbers.
    assert t["tuned"] == {**t["defaults"], "gain": 3, "bandEnter": 0.08}
    # 60 ms is beyond the production band but inside the overridden one.
    assert t["tunedNudge"] == {"kind": "none", "rate": 1}
