/**
 * Keeping a local `<video>` on the room's playback (docs/watch-parties.md, "Sync").
 *
 * The hub's state says where playback was at a server instant; with the tab's clock offset
 * (NTP-style, `realtime/clock.ts`) each tab computes where it should be now. Small drift is
 * left alone, moderate drift is corrected by playing a few percent faster or slower, and only
 * large drift is corrected by seeking (a seek stalls the picture and rebuffers).
 */

import type { PlaybackState } from "./api.ts";

/** Drift (s) inside which nothing is done once corrected ... */
export const BAND_EXIT = 0.015;
/** ... and beyond which the rate is nudged. */
export const BAND_ENTER = 0.04;
/** Rate correction per second of drift (a proportional controller), capped at MAX_NUDGE. */
export const GAIN = 3;
export const MAX_NUDGE = 0.08;
/** Drift (s) that is corrected by seeking. */
export const SEEK_AT = 1.0;
/** Right after a change of state (a command), drift beyond this seeks at once. */
export const HARD_SYNC_AT = 0.3;

/** The drift-correction numbers that `correct` uses (the constants above by default). */
export interface SyncTuning {
  bandExit: number;
  bandEnter: number;
  gain: number;
  maxNudge: number;
  seekAt: number;
  hardSyncAt: number;
}

export const DEFAULT_TUNING: Readonly<SyncTuning> = Object.freeze({
  bandExit: BAND_EXIT,
  bandEnter: BAND_ENTER,
  gain: GAIN,
  maxNudge: MAX_NUDGE,
  seekAt: SEEK_AT,
  hardSyncAt: HARD_SYNC_AT,
});

/**
 * The production numbers, unless `window.__cohortSyncTuning` overrides some of them: only the
 * sync benchmark (`bench/watch_sync.py --tuning/--sweep`) sets it, to compare variants in real
 * players. Read on every decision so a sweep can switch variants without reloading the page;
 * anything but a finite, non-negative number is ignored.
 */
export function currentTuning(): Readonly<SyncTuning> {
  const overrides: unknown = (globalThis as { __cohortSyncTuning?: unknown }).__cohortSyncTuning;
  if (typeof overrides !== "object" || overrides === null) return DEFAULT_TUNING;
  const tuning: SyncTuning = { ...DEFAULT_TUNING };
  for (const key of Object.keys(tuning) as (keyof SyncTuning)[]) {
    const value: unknown = (overrides as Record<string, unknown>)[key];
    if (typeof value === "number" && Number.isFinite(value) && value >= 0) tuning[key] = value;
  }
  return tuning;
}

/** A paused player farther than this from the room's position seeks there. */
export const PAUSED_TOLERANCE = 0.02;
/** Seeks while playing land this much ahead at first (learned from the seeks made). */
export const INITIAL_SEEK_LEAD = 0.12;
/** A player asked to play starts moving this long after (ms), at first (learned after). */
export const INITIAL_START_LATENCY_MS = 60;

/** Where the room's playback is at server time `serverNow` (ms). */
export function expectedPosition(state: PlaybackState, serverNow: number, duration?: number): number {
  let position = state.position;
  if (state.playing) position += (Math.max(0, serverNow - state.at) / 1000) * state.rate;
  if (duration !== undefined && Number.isFinite(duration) && duration > 0) position = Math.min(position, duration);
  return position;
}

export type Correction =
  | { kind: "none"; rate: number }
  | { kind: "nudge"; rate: number }
  | { kind: "seek"; to: number; rate: number };

/**
 * What to do about `drift` (local − expected, seconds; positive means ahead) while playing.
 * `nudging` is whether the previous decision was a nudge (hysteresis between the bands);
 * `fresh` whether the state just changed; `tuning` the numbers (the production ones unless the
 * sync benchmark overrides them).
 */
export function correct(
  drift: number,
  expected: number,
  rate: number,
  nudging: boolean,
  fresh: boolean,
  seekLead: number,
  tuning: Readonly<SyncTuning> = currentTuning(),
): Correction {
  const size = Math.abs(drift);
  if (size >= tuning.seekAt || (fresh && size >= tuning.hardSyncAt)) {
    return { kind: "seek", to: expected + seekLead * rate, rate };
  }
  if (size > tuning.bandEnter || (nudging && size > tuning.bandExit)) {
    const cap = tuning.maxNudge;
    const nudge = Math.max(-cap, Math.min(cap, drift * tuning.gain));
    return { kind: "nudge", rate: rate * (1 - nudge) };
  }
  return { kind: "none", rate };
}
