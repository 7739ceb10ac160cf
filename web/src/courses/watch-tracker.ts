import type { WatchedRange } from "../api/types.ts";

/** Stretches shorter than this (seconds) are noise from event timing, not watching. */
const MIN_RANGE = 0.05;
/** Grace (seconds) for timeupdate events that arrive late, e.g. in a throttled tab. */
const SLACK = 1;

interface OpenRange {
  from: number;
  to: number;
  /** performance.now() at the last extension */
  wall: number;
}

/**
 * What a viewer actually played, as ranges of the video's timeline: fed from the player's
 * `timeupdate` while it plays, closed by pauses and seeks. A jump of the playhead further
 * than the wall-clock time since the last update allows (at the playback rate) is a seek, so
 * dragging the scrubber to the end credits nothing.
 */
export class WatchTracker {
  private closed: WatchedRange[] = [];
  private open: OpenRange | null = null;

  /** The playhead is at `time` and the video is playing at `rate`. */
  playing(time: number, rate: number, now: number = performance.now()): void {
    const open = this.open;
    if (open) {
      const elapsed = Math.max(0, now - open.wall) / 1000;
      const reachable = elapsed * Math.max(rate, 1) + SLACK;
      if (time >= open.to && time - open.to <= reachable) {
        open.to = time;
        open.wall = now;
        return;
      }
      this.close();
    }
    this.open = { from: time, to: time, wall: now };
  }

  /** Playback stopped (pause, end, seek start): what was playing so far counts, nothing after. */
  stop(time?: number, now: number = performance.now()): void {
    const open = this.open;
    if (open && time !== undefined && time >= open.to) {
      const reachable = (Math.max(0, now - open.wall) / 1000) * 4 + SLACK;
      if (time - open.to <= reachable) open.to = time;
    }
    this.close();
  }

  /** Ranges played since the previous take, merged; an open range goes on from where it is. */
  take(duration: number | null = null): WatchedRange[] {
    const out = this.closed;
    this.closed = [];
    const open = this.open;
    if (open && open.to - open.from >= MIN_RANGE) {
      out.push([open.from, open.to]);
      open.from = open.to;
    }
    return normalise(out, duration);
  }

  /** Hand back ranges whose heartbeat did not arrive, to go with the next one. */
  restore(ranges: readonly WatchedRange[]): void {
    this.closed.unshift(...ranges);
  }

  get pending(): boolean {
    return this.closed.length > 0 || (this.open !== null && this.open.to - this.open.from >= MIN_RANGE);
  }

  private close(): void {
    const open = this.open;
    if (open && open.to - open.from >= MIN_RANGE) this.closed.push([open.from, open.to]);
    this.open = null;
  }
}

/** Sorted, overlapping ranges merged, clamped to the video and rounded to milliseconds. */
export function normalise(ranges: readonly WatchedRange[], duration: number | null = null): WatchedRange[] {
  const end = duration !== null && duration > 0 ? duration : Number.POSITIVE_INFINITY;
  const sorted = ranges
    .map(([from, to]): WatchedRange => [Math.max(0, from), Math.min(end, to)])
    .filter(([from, to]) => to - from >= MIN_RANGE)
    .sort((a, b) => a[0] - b[0]);
  const merged: WatchedRange[] = [];
  for (const [from, to] of sorted) {
    const last = merged[merged.length - 1];
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else merged.push([from, to]);
  }
  // Rounded inwards, so a range never reaches past the video's end.
  return merged
    .map(([from, to]): WatchedRange => [Math.ceil(from * 1000) / 1000, Math.floor(to * 1000) / 1000])
    .filter(([from, to]) => from < to);
}
