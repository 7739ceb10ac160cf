import type { ReactiveController, ReactiveControllerHost } from "lit";
import * as api from "../api/endpoints.ts";
import type { Person } from "../api/types.ts";
import { auth } from "../auth.ts";
import { gateway, type ChannelMessage } from "../realtime/gateway.ts";

/** One connection carries at most 200 channels; leave room for the views' own. */
const MAX_TRACKED = 150;
/** A refocused tab re-reads the counts at most this often. */
const REFRESH_ON_FOCUS_MS = 30_000;
/** New subscriptions settle this long before the counts are read again. */
const RESYNC_DELAY_MS = 300;

/**
 * Unread chat messages per channel (`GET /api/me/unread`), kept live: the store listens to
 * every channel the user belongs to and counts new messages by others, except in a channel a
 * chat panel is showing right now (that panel moves the read marker instead).
 */
class UnreadStore extends EventTarget {
  private readonly counts = new Map<string, number>();
  private readonly subscriptions = new Map<string, () => void>();
  private readonly visible = new Map<string, number>();
  private userId: number | null = null;
  private lastRefresh = 0;
  private inflight: Promise<void> | null = null;
  private refreshTimer: number | undefined;

  constructor() {
    super();
    auth.addEventListener("change", () => {
      const id = auth.user?.id ?? null;
      if (id === this.userId) return;
      this.userId = id;
      for (const stop of this.subscriptions.values()) stop();
      this.subscriptions.clear();
      this.counts.clear();
      this.changed();
      if (id !== null) void this.refresh();
    });
    window.addEventListener("focus", () => {
      if (this.userId !== null && Date.now() - this.lastRefresh > REFRESH_ON_FOCUS_MS) void this.refresh();
    });
  }

  /** Read the counts anew (after joining or leaving something, or on focus). */
  refresh(): Promise<void> {
    this.inflight ??= this.read().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async read(): Promise<void> {
    const userId = this.userId;
    this.lastRefresh = Date.now();
    try {
      const { channels } = await api.myUnread();
      if (userId !== this.userId) return;
      this.counts.clear();
      for (const [channel, count] of Object.entries(channels)) {
        this.counts.set(channel, this.visible.has(channel) ? 0 : count);
        this.track(channel);
      }
      this.changed();
    } catch {
      // Badges are a convenience; the lists still work without them.
    }
  }

  private refreshSoon(): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), RESYNC_DELAY_MS);
  }

  /** Keep a channel's count live (list pages call this for what they show). */
  track(channel: string): void {
    if (this.userId === null || this.subscriptions.has(channel) || this.subscriptions.size >= MAX_TRACKED) return;
    this.subscriptions.set(
      channel,
      gateway.subscribe(channel, {
        message: (message) => this.onMessage(message),
        subscribed: (info) => {
          // Counts read before the subscription miss what was sent in between: read them
          // again now that new messages arrive live (once per batch of new channels). After a
          // reconnect the replay covers the gap, unless the hub could not replay.
          if (!info.resumed || !info.recovered) this.refreshSoon();
        },
        // Not a member (any more): stop listening.
        error: () => this.untrack(channel),
      }),
    );
  }

  untrack(channel: string): void {
    this.subscriptions.get(channel)?.();
    this.subscriptions.delete(channel);
    if (this.counts.delete(channel)) this.changed();
  }

  count(channel: string): number {
    return this.counts.get(channel) ?? 0;
  }

  /** Sum over channels whose name starts with `prefix` (e.g. "dm:", "chat:group:"). */
  total(prefix: string): number {
    let sum = 0;
    for (const [channel, count] of this.counts) if (channel.startsWith(prefix)) sum += count;
    return sum;
  }

  /** Sum over a community's channels. */
  community(communityId: number): number {
    const base = `chat:community:${communityId}`;
    let sum = 0;
    for (const [channel, count] of this.counts) {
      if (channel === base || channel.startsWith(`${base}:`)) sum += count;
    }
    return sum;
  }

  /** A chat panel shows this channel on screen (it marks messages read as they arrive). */
  showing(channel: string, on: boolean): void {
    const n = (this.visible.get(channel) ?? 0) + (on ? 1 : -1);
    if (n > 0) this.visible.set(channel, n);
    else this.visible.delete(channel);
  }

  /** The hub's answer to a read marker. */
  set(channel: string, unread: number): void {
    if (this.counts.get(channel) === unread) return;
    this.counts.set(channel, unread);
    this.changed();
  }

  private onMessage(message: ChannelMessage): void {
    if (message.seq === null || message.data["type"] !== "message") return;
    const author = message.data["author"] as Person | undefined;
    if (!author || author.id === this.userId || this.visible.has(message.channel)) return;
    this.counts.set(message.channel, (this.counts.get(message.channel) ?? 0) + 1);
    this.changed();
  }

  private changed(): void {
    this.dispatchEvent(new Event("change"));
  }
}

export const unread = new UnreadStore();

/** Re-renders its host whenever an unread count changes. */
export class UnreadController implements ReactiveController {
  private readonly host: ReactiveControllerHost;
  private readonly onChange = (): void => this.host.requestUpdate();

  constructor(host: ReactiveControllerHost) {
    this.host = host;
    host.addController(this);
  }

  hostConnected(): void {
    unread.addEventListener("change", this.onChange);
  }

  hostDisconnected(): void {
    unread.removeEventListener("change", this.onChange);
  }
}
