/** One storyboard cue: a region of a sprite sheet shown for [start, end). */
export interface StoryboardCue {
  start: number;
  end: number;
  /** Absolute URL of the sprite sheet (without the #xywh fragment). */
  image: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

const TIMING = /^\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)/;

/**
 * Parse a WebVTT storyboard whose cue payloads are `sprite.jpg#xywh=x,y,w,h`, resolved
 * against `baseUrl` (the VTT's own URL). Cues without a usable region are skipped.
 */
export function parseStoryboard(text: string, baseUrl: string): StoryboardCue[] {
  const cues: StoryboardCue[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const timing = TIMING.exec(lines[i] ?? "");
    if (!timing) continue;
    const payload = (lines[i + 1] ?? "").trim();
    const start = parseTimestamp(timing[1] ?? "");
    const end = parseTimestamp(timing[2] ?? "");
    if (!payload || start === null || end === null) continue;
    let url: URL;
    try {
      url = new URL(payload, baseUrl);
    } catch {
      continue;
    }
    const region = /^#?xywh=(?:pixel:)?(\d+),(\d+),(\d+),(\d+)$/.exec(url.hash);
    if (!region) continue;
    url.hash = "";
    cues.push({
      start,
      end,
      image: url.href,
      x: Number(region[1]),
      y: Number(region[2]),
      w: Number(region[3]),
      h: Number(region[4]),
    });
  }
  return cues.sort((a, b) => a.start - b.start);
}

/** The cue covering `time` (or the nearest one before it, for gaps between cues). */
export function storyboardCueAt(cues: readonly StoryboardCue[], time: number): StoryboardCue | null {
  let low = 0;
  let high = cues.length - 1;
  let found: StoryboardCue | null = null;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const cue = cues[mid];
    if (!cue) break;
    if (cue.start <= time) {
      found = cue;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found ?? cues[0] ?? null;
}

function parseTimestamp(value: string): number | null {
  const parts = value.replace(",", ".").split(":");
  if (parts.length < 2 || parts.length > 3) return null;
  let seconds = 0;
  for (const part of parts) {
    const n = Number(part);
    if (!Number.isFinite(n)) return null;
    seconds = seconds * 60 + n;
  }
  return seconds;
}
