import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Video } from "../api/types.ts";

/**
 * Live state of videos that are still being transcoded.
 *
 * Pages only talk to a `VideoUpdateSource`, so the polling one below can be swapped for a push
 * channel (SSE or WebSocket) with `setVideoUpdateSource` without touching any view.
 */
export interface VideoUpdateSource {
  /**
   * Deliver the video's current state soon, then every change until it settles (ready or
   * failed) or the returned function is called. `onError` reports failures to fetch it; the
   * source keeps trying unless the video is gone (404), which ends the subscription.
   */
  watch(id: string, onVideo: (video: Video) => void, onError?: (error: unknown) => void): () => void;
}

export function isSettled(video: Pick<Video, "status">): boolean {
  return video.status === "ready" || video.status === "failed";
}

interface Subscriber {
  onVideo: (video: Video) => void;
  onError: ((error: unknown) => void) | undefined;
}

interface Poll {
  subscribers: Set<Subscriber>;
  timer: number | undefined;
  aborter: AbortController | null;
  failures: number;
  /** Last state, handed to late subscribers straight away. */
  latest: Video | null;
  done: boolean;
}

/**
 * `GET /api/videos/{id}` every second while the video is queued or processing (slower while
 * the tab is hidden or the hub is failing). One poll per video however many views watch it.
 */
export class PollingVideoUpdates implements VideoUpdateSource {
  private readonly polls = new Map<string, Poll>();

  constructor(
    private readonly intervalMs = 1_000,
    private readonly hiddenIntervalMs = 5_000,
  ) {}

  watch(id: string, onVideo: (video: Video) => void, onError?: (error: unknown) => void): () => void {
    const subscriber: Subscriber = { onVideo, onError };
    let poll = this.polls.get(id);
    if (!poll) {
      poll = { subscribers: new Set(), timer: undefined, aborter: null, failures: 0, latest: null, done: false };
      this.polls.set(id, poll);
      poll.subscribers.add(subscriber);
      void this.tick(id, poll);
    } else {
      poll.subscribers.add(subscriber);
      const latest = poll.latest;
      if (latest) queueMicrotask(() => poll?.subscribers.has(subscriber) && onVideo(latest));
      if (poll.done && !poll.aborter && poll.timer === undefined) {
        // Settled earlier; a new subscriber still deserves a fresh look.
        poll.done = false;
        void this.tick(id, poll);
      }
    }
    return () => {
      const current = this.polls.get(id);
      if (!current) return;
      current.subscribers.delete(subscriber);
      if (current.subscribers.size === 0) this.stop(id, current);
    };
  }

  private stop(id: string, poll: Poll): void {
    window.clearTimeout(poll.timer);
    poll.timer = undefined;
    poll.aborter?.abort();
    poll.aborter = null;
    this.polls.delete(id);
  }

  private async tick(id: string, poll: Poll): Promise<void> {
    poll.timer = undefined;
    const aborter = new AbortController();
    poll.aborter = aborter;
    try {
      const video = await api.getVideo(id, aborter.signal);
      if (aborter.signal.aborted) return;
      poll.failures = 0;
      poll.latest = video;
      for (const s of [...poll.subscribers]) s.onVideo(video);
      if (isSettled(video)) {
        poll.done = true;
        return;
      }
    } catch (error) {
      if (aborter.signal.aborted) return;
      for (const s of [...poll.subscribers]) s.onError?.(error);
      if (error instanceof ApiError && (error.status === 404 || error.status === 401 || error.status === 403)) {
        poll.done = true;
        return;
      }
      poll.failures += 1;
    } finally {
      if (poll.aborter === aborter) poll.aborter = null;
    }
    if (this.polls.get(id) !== poll) return;
    const base = document.visibilityState === "hidden" ? this.hiddenIntervalMs : this.intervalMs;
    // Back off while the hub is failing: 1 s, 2 s, 4 s ... at most 15 s.
    const delay = poll.failures ? Math.min(15_000, base * 2 ** poll.failures) : base;
    poll.timer = window.setTimeout(() => void this.tick(id, poll), delay);
  }
}

let source: VideoUpdateSource = new PollingVideoUpdates();

/** Replace the polling source, e.g. with one fed by a push channel. */
export function setVideoUpdateSource(next: VideoUpdateSource): void {
  source = next;
}

export function watchVideo(
  id: string,
  onVideo: (video: Video) => void,
  onError?: (error: unknown) => void,
): () => void {
  return source.watch(id, onVideo, onError);
}

/** Keeps one subscription per id in sync with the set of ids a view currently shows. */
export class VideoWatchers {
  private readonly active = new Map<string, () => void>();

  constructor(
    private readonly onVideo: (video: Video) => void,
    private readonly onError?: (id: string, error: unknown) => void,
  ) {}

  sync(ids: Iterable<string>): void {
    const wanted = new Set(ids);
    for (const [id, stop] of this.active) {
      if (!wanted.has(id)) {
        stop();
        this.active.delete(id);
      }
    }
    for (const id of wanted) {
      if (this.active.has(id)) continue;
      const onError = this.onError;
      this.active.set(
        id,
        watchVideo(id, this.onVideo, onError ? (error) => onError(id, error) : undefined),
      );
    }
  }

  clear(): void {
    for (const stop of this.active.values()) stop();
    this.active.clear();
  }
}
