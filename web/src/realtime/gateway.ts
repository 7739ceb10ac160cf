import { ApiError, refreshSession } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Person } from "../api/types.ts";
import { ClockEstimate, localNow } from "./clock.ts";

/**
 * The tab's one connection to the hub's `/ws` gateway (protocol: docs/realtime.md).
 *
 * Views subscribe to channels through it and never see the socket: it fetches a fresh ticket
 * for every connection, reconnects with exponential backoff and jitter, and on every reconnect
 * resubscribes each channel with `since` = the last sequence number it delivered, so durable
 * messages missed while away arrive in order, once. Several views may listen to one channel;
 * the hub sees a single subscription.
 */

export type GatewayStatus = "idle" | "connecting" | "open" | "waiting";

export type MessageData = Record<string, unknown>;

export interface ChannelMessage {
  channel: string;
  /** The message's sequence number on a durable channel; null for ephemeral events. */
  seq: number | null;
  data: MessageData;
}

export interface SubscribedInfo {
  channel: string;
  /** The channel's head when the hub subscribed us. */
  seq: number;
  /**
   * False when `since` was sent but the hub could not replay from it (e.g. its storage was
   * reset): whoever shows history should reload it.
   */
  recovered: boolean;
  /** A resubscription (after a reconnect) rather than the first subscription. */
  resumed: boolean;
}

/** What a view hears about a channel; every callback is optional. */
export interface ChannelListener {
  message?(message: ChannelMessage): void;
  subscribed?(info: SubscribedInfo): void;
  /** Who is online now (after the snapshot and every presence event: joins and leaves). */
  presence?(online: readonly Person[]): void;
  /** The subscription was refused (`forbidden`, `not_found`, …). */
  error?(error: GatewayError): void;
}

export class GatewayError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
  }
}

export interface PublishResult {
  /** Sequence number of the stored message, or null (ephemeral, or nothing stored). */
  seq: number | null;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A connection that lasted this long resets the backoff. */
const STABLE_AFTER_MS = 10_000;
const PUBLISH_TIMEOUT_MS = 15_000;
const PONG_TIMEOUT_MS = 10_000;
/** A liveness ping this often; every third one is a small burst that refreshes the clock. */
const PING_EVERY_MS = 20_000;
const CLOCK_BURST_ON_CONNECT = 5;
const CLOCK_BURST = 3;
const TYPING_EVERY_MS = 3_000;

const CLOSE_NORMAL = 1000;
const CLOSE_TOO_SLOW = 4008;
const CLOSE_REVOKED = 4401;

class ChannelEntry {
  readonly listeners = new Set<ChannelListener>();
  /** Highest sequence number delivered to listeners; null before the first subscription. */
  lastSeq: number | null;
  /** Ref of the subscribe frame sent on the current socket; null when none was sent. */
  ref: string | null = null;
  subscribed = false;
  everSubscribed = false;
  failed: GatewayError | null = null;
  readonly online = new Map<number, Person>();
  presenceKnown = false;
  lastTyping = 0;

  constructor(readonly name: string, since: number | null) {
    this.lastSeq = since;
  }
}

interface PendingPublish {
  ref: string | null;
  channel: string;
  data: MessageData;
  resolve: (result: PublishResult) => void;
  reject: (error: GatewayError) => void;
  timer: number;
}

interface PendingPing {
  sentAt: number;
  resolve: () => void;
  timer: number;
}

type ServerFrame =
  | { op: "subscribed"; ref?: string | number | null; channel: string; seq: number; recovered: boolean }
  | { op: "unsubscribed"; ref?: string | number | null; channel: string; reason?: string }
  | { op: "message"; channel: string; seq: number | null; data: MessageData }
  | { op: "presence"; channel: string; online: Person[] }
  | { op: "ack"; ref?: string | number | null; seq: number | null }
  | { op: "pong"; ref?: string | number | null; server_time: number }
  | { op: "error"; ref?: string | number | null; code: string; message: string };

export class Gateway extends EventTarget {
  status: GatewayStatus = "idle";
  private running = false;
  private userId: number | null = null;
  private socket: WebSocket | null = null;
  /** Bumped whenever a socket is abandoned, so late callbacks of the old one are ignored. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: number | undefined;
  private stableTimer: number | undefined;
  private pingTimer: number | undefined;
  private pingCount = 0;
  private outageReported = false;
  private nextRef = 0;
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly outbox: PendingPublish[] = [];
  private readonly publishes = new Map<string, PendingPublish>();
  private readonly pings = new Map<string, PendingPing>();
  private readonly clock = new ClockEstimate();

  constructor() {
    super();
    if (typeof window !== "undefined") {
      window.addEventListener("online", () => this.reconnectSoon());
      document.addEventListener("visibilitychange", () => {
        // After a sleep the socket may be dead without anyone noticing: check at once.
        if (document.visibilityState === "visible" && this.status === "open") void this.ping().catch(() => undefined);
      });
    }
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Connect for this user (idempotent); a different user starts from scratch. */
  start(userId: number): void {
    if (this.running && this.userId === userId) return;
    if (this.running) this.stop();
    if (this.userId !== userId) {
      for (const entry of this.channels.values()) entry.lastSeq = null;
    }
    this.userId = userId;
    this.running = true;
    this.attempt = 0;
    void this.connect();
  }

  /** Disconnect (sign-out). Listeners stay registered; their views go away with the session. */
  stop(): void {
    this.running = false;
    this.abandonSocket(CLOSE_NORMAL, "signed out");
    window.clearTimeout(this.reconnectTimer);
    for (const pending of this.outbox.splice(0)) {
      window.clearTimeout(pending.timer);
      pending.reject(new GatewayError("disconnected", "Signed out."));
    }
    this.setStatus("idle");
  }

  get connected(): boolean {
    return this.status === "open";
  }

  /** The hub's clock in ms since the epoch (this tab's clock until the first pong). */
  serverNow(): number {
    return this.clock.serverNow();
  }

  /** Round-trip time behind the current clock estimate, or null before the first sample. */
  get clockRtt(): number | null {
    return this.clock.rtt;
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setStatus("connecting");
    let ticket: string;
    try {
      ({ ticket } = await api.realtimeTicket());
    } catch (error) {
      if (generation !== this.generation || !this.running) return;
      // A 401 here means the session is gone; auth notices and stops us. Anything else is
      // the network or the hub: try again later (said once per outage, not per attempt).
      if (!this.outageReported && !(error instanceof ApiError && error.status === 401)) {
        this.outageReported = true;
        console.info(`realtime: no ticket (${error instanceof Error ? error.message : String(error)}); retrying`);
      }
      this.scheduleReconnect();
      return;
    }
    if (generation !== this.generation || !this.running) return;
    const url = new URL("/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("ticket", ticket);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      if (generation === this.generation) this.onOpen();
    };
    socket.onmessage = (event) => {
      if (generation === this.generation && typeof event.data === "string") this.onFrame(event.data);
    };
    socket.onclose = (event) => {
      if (generation === this.generation) this.onClose(event.code, event.reason);
    };
  }

  private onOpen(): void {
    this.setStatus("open");
    this.outageReported = false;
    window.clearTimeout(this.stableTimer);
    this.stableTimer = window.setTimeout(() => {
      this.attempt = 0;
    }, STABLE_AFTER_MS);
    for (const entry of this.channels.values()) this.sendSubscribe(entry);
    for (const pending of this.outbox.splice(0)) this.sendPublish(pending);
    this.pingCount = 0;
    window.clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => this.keepAlive(), PING_EVERY_MS);
    void this.syncClock(CLOCK_BURST_ON_CONNECT);
  }

  private onClose(code: number, reason: string): void {
    this.abandonSocket();
    if (!this.running) return;
    if (code === CLOSE_REVOKED) {
      // The session ended elsewhere: only a working session may reconnect.
      this.setStatus("waiting");
      void refreshSession().then(
        (session) => {
          if (session && this.running) this.scheduleReconnect();
        },
        () => this.scheduleReconnect(),
      );
      return;
    }
    // 4008 ("too slow"), 1001 (hub restarting), 1006 (network) and the rest: reconnect; the
    // resubscription with `since` brings back whatever was missed.
    if (code !== CLOSE_TOO_SLOW && code !== 1001) console.info(`realtime: closed (${code}${reason ? `: ${reason}` : ""})`);
    this.scheduleReconnect();
  }

  /** Forget the current socket: everything in flight on it fails, channels wait to resubscribe. */
  private abandonSocket(code?: number, reason?: string): void {
    this.generation += 1;
    const socket = this.socket;
    this.socket = null;
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.stableTimer);
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        try {
          socket.close(code ?? CLOSE_NORMAL, reason);
        } catch {
          // Already closing.
        }
      }
    }
    for (const entry of this.channels.values()) {
      entry.ref = null;
      entry.subscribed = false;
    }
    for (const pending of this.publishes.values()) {
      window.clearTimeout(pending.timer);
      // It may or may not have been stored; the replay after reconnecting will tell.
      pending.reject(new GatewayError("disconnected", "The connection dropped before the hub answered."));
    }
    this.publishes.clear();
    for (const ping of this.pings.values()) window.clearTimeout(ping.timer);
    this.pings.clear();
  }

  private scheduleReconnect(): void {
    window.clearTimeout(this.reconnectTimer);
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    // "Equal jitter": never reconnect instantly, and spread a crowd of tabs after a hub restart.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.setStatus("waiting");
    this.reconnectTimer = window.setTimeout(() => {
      if (this.running) void this.connect();
    }, delay);
  }

  /** The network came back: do not wait out the backoff. */
  private reconnectSoon(): void {
    if (!this.running || this.status === "open" || this.status === "connecting") return;
    this.attempt = 0;
    window.clearTimeout(this.reconnectTimer);
    void this.connect();
  }

  /** A socket that stopped answering is dropped and replaced. */
  private dropDeadSocket(): void {
    if (!this.running || this.socket === null) return;
    this.abandonSocket(4000, "no pong");
    this.scheduleReconnect();
  }

  private setStatus(status: GatewayStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new Event("status"));
  }

  // ---- channels -----------------------------------------------------------------------------

  /**
   * Listen to a channel; returns the function that stops listening. A function listener gets
   * the channel's messages only. `since` (the last sequence number already shown) makes the
   * first subscription replay everything after it; later listeners of a live channel get live
   * messages from now on.
   */
  subscribe(
    channel: string,
    listener: ChannelListener | ((message: ChannelMessage) => void),
    options: { since?: number | null } = {},
  ): () => void {
    const wrapped: ChannelListener = typeof listener === "function" ? { message: listener } : listener;
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = new ChannelEntry(channel, options.since ?? null);
      this.channels.set(channel, entry);
      entry.listeners.add(wrapped);
      this.sendSubscribe(entry);
    } else {
      entry.listeners.add(wrapped);
      if (entry.failed) {
        // Someone asks again (e.g. after joining): the answer may have changed.
        entry.failed = null;
        this.sendSubscribe(entry);
      } else {
        const known = entry;
        queueMicrotask(() => {
          if (!known.listeners.has(wrapped)) return;
          if (known.subscribed && known.lastSeq !== null) {
            wrapped.subscribed?.({ channel, seq: known.lastSeq, recovered: true, resumed: false });
          }
          if (known.presenceKnown) wrapped.presence?.([...known.online.values()]);
        });
      }
    }
    const owner = entry;
    return () => {
      owner.listeners.delete(wrapped);
      if (owner.listeners.size > 0 || this.channels.get(channel) !== owner) return;
      this.channels.delete(channel);
      if (owner.ref !== null && this.socket?.readyState === WebSocket.OPEN && !owner.failed) {
        this.send({ op: "unsubscribe", channel, ref: this.ref("u") });
      }
    };
  }

  /** Who is online in a channel this tab listens to (empty until the hub said). */
  online(channel: string): Person[] {
    return [...(this.channels.get(channel)?.online.values() ?? [])];
  }

  /** Highest sequence number delivered on a channel, or null. */
  lastSeq(channel: string): number | null {
    return this.channels.get(channel)?.lastSeq ?? null;
  }

  private sendSubscribe(entry: ChannelEntry): void {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    entry.ref = this.ref("s");
    const frame: Record<string, unknown> = { op: "subscribe", channel: entry.name, ref: entry.ref };
    if (entry.lastSeq !== null) frame["since"] = entry.lastSeq;
    this.send(frame);
  }

  // ---- publishing ---------------------------------------------------------------------------

  /**
   * Send into a channel. Resolves when the hub acknowledges (with the stored message's `seq`),
   * rejects with the hub's error (`forbidden`, `rate_limited`, …), with `disconnected` when the
   * socket dropped first (the message may still have been stored), or with `timeout`. While
   * disconnected the message waits for the next connection, up to the timeout.
   */
  publish(channel: string, data: MessageData, options: { timeoutMs?: number } = {}): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve, reject) => {
      const pending: PendingPublish = { ref: null, channel, data, resolve, reject, timer: 0 };
      pending.timer = window.setTimeout(() => {
        const queued = this.outbox.indexOf(pending);
        if (queued >= 0) this.outbox.splice(queued, 1);
        if (pending.ref !== null) this.publishes.delete(pending.ref);
        reject(new GatewayError("timeout", "The hub did not answer in time. Check your connection."));
      }, options.timeoutMs ?? PUBLISH_TIMEOUT_MS);
      if (this.socket?.readyState === WebSocket.OPEN) this.sendPublish(pending);
      else if (this.running) this.outbox.push(pending);
      else {
        window.clearTimeout(pending.timer);
        reject(new GatewayError("disconnected", "Not signed in."));
      }
    });
  }

  private sendPublish(pending: PendingPublish): void {
    pending.ref = this.ref("p");
    this.publishes.set(pending.ref, pending);
    this.send({ op: "publish", channel: pending.channel, data: pending.data, ref: pending.ref });
  }

  /** Tell the channel this user is typing; throttled, best effort. */
  typing(channel: string): void {
    const entry = this.channels.get(channel);
    if (!entry?.subscribed) return;
    const now = localNow();
    if (now - entry.lastTyping < TYPING_EVERY_MS) return;
    entry.lastTyping = now;
    this.publish(channel, { type: "typing" }, { timeoutMs: 5_000 }).catch(() => undefined);
  }

  // ---- clock and liveness -------------------------------------------------------------------

  /** One ping/pong exchange; feeds the clock estimate. Rejects when no pong comes back. */
  ping(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.socket?.readyState !== WebSocket.OPEN) {
        reject(new GatewayError("disconnected", "Not connected."));
        return;
      }
      const ref = this.ref("t");
      const timer = window.setTimeout(() => {
        this.pings.delete(ref);
        reject(new GatewayError("timeout", "No pong."));
        this.dropDeadSocket();
      }, PONG_TIMEOUT_MS);
      this.pings.set(ref, { sentAt: localNow(), resolve, timer });
      this.send({ op: "ping", ref });
    });
  }

  /** A burst of ping/pong exchanges for a view that needs the clock tight (watch parties). */
  refreshClock(samples = 8): Promise<void> {
    return this.syncClock(samples);
  }

  private async syncClock(samples: number): Promise<void> {
    try {
      for (let i = 0; i < samples; i += 1) await this.ping();
      this.dispatchEvent(new Event("clock"));
    } catch {
      // A dropped socket ends the burst; the next connection starts another.
    }
  }

  private keepAlive(): void {
    this.pingCount += 1;
    if (this.pingCount % 3 === 0) void this.syncClock(CLOCK_BURST);
    else void this.ping().catch(() => undefined);
  }

  // ---- frames -------------------------------------------------------------------------------

  private ref(kind: string): string {
    this.nextRef += 1;
    return `${kind}${this.nextRef}`;
  }

  private send(frame: Record<string, unknown>): void {
    this.socket?.send(JSON.stringify(frame));
  }

  private onFrame(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      console.warn("realtime: a frame that is not JSON");
      return;
    }
    switch (frame.op) {
      case "message":
        this.onMessage(frame);
        break;
      case "subscribed":
        this.onSubscribed(frame);
        break;
      case "presence": {
        const entry = this.channels.get(frame.channel);
        if (!entry) break;
        entry.online.clear();
        for (const person of frame.online) entry.online.set(person.id, person);
        entry.presenceKnown = true;
        this.emitPresence(entry);
        break;
      }
      case "ack": {
        const pending = this.publishes.get(String(frame.ref));
        if (!pending) break;
        this.publishes.delete(String(frame.ref));
        window.clearTimeout(pending.timer);
        pending.resolve({ seq: frame.seq ?? null });
        break;
      }
      case "pong": {
        const ping = this.pings.get(String(frame.ref));
        if (!ping) break;
        this.pings.delete(String(frame.ref));
        window.clearTimeout(ping.timer);
        this.clock.add(ping.sentAt, localNow(), frame.server_time);
        ping.resolve();
        break;
      }
      case "error":
        this.onError(frame);
        break;
      case "unsubscribed":
        // Without a ref, the hub ended the subscription itself (banned, left, unfriended).
        if (frame.ref === undefined || frame.ref === null) this.onEvicted(frame.channel, frame.reason);
        break;
    }
  }

  private onSubscribed(frame: Extract<ServerFrame, { op: "subscribed" }>): void {
    const entry = this.channels.get(frame.channel);
    if (!entry || String(frame.ref) !== entry.ref) return;
    const resumed = entry.everSubscribed;
    entry.subscribed = true;
    entry.everSubscribed = true;
    entry.failed = null;
    const sentSince = entry.lastSeq;
    // A channel whose storage went back (a reset hub) would otherwise drop every new message
    // as a duplicate.
    if (sentSince === null || frame.seq < sentSince || !frame.recovered) entry.lastSeq = frame.seq;
    const info: SubscribedInfo = {
      channel: frame.channel,
      seq: frame.seq,
      recovered: sentSince === null ? true : frame.recovered,
      resumed,
    };
    for (const listener of [...entry.listeners]) safely(() => listener.subscribed?.(info));
  }

  private onMessage(frame: Extract<ServerFrame, { op: "message" }>): void {
    const entry = this.channels.get(frame.channel);
    if (!entry) return;
    if (frame.seq !== null) {
      if (entry.lastSeq !== null && frame.seq <= entry.lastSeq) return;
      entry.lastSeq = frame.seq;
    }
    const data = frame.data ?? {};
    if (data["type"] === "presence") {
      // One event lists everyone who came or went on a hub within a short window.
      let changed = false;
      for (const user of people(data["joined"])) {
        entry.online.set(user.id, user);
        changed = true;
      }
      for (const user of people(data["left"])) changed = entry.online.delete(user.id) || changed;
      if (changed && entry.presenceKnown) this.emitPresence(entry);
    }
    const message: ChannelMessage = { channel: frame.channel, seq: frame.seq, data };
    for (const listener of [...entry.listeners]) safely(() => listener.message?.(message));
  }

  private onError(frame: Extract<ServerFrame, { op: "error" }>): void {
    const ref = frame.ref === undefined || frame.ref === null ? null : String(frame.ref);
    const error = new GatewayError(frame.code, frame.message);
    if (ref !== null) {
      const pending = this.publishes.get(ref);
      if (pending) {
        this.publishes.delete(ref);
        window.clearTimeout(pending.timer);
        pending.reject(error);
        return;
      }
      for (const entry of this.channels.values()) {
        if (entry.ref !== ref) continue;
        if (frame.code === "already_subscribed") return;
        entry.failed = error;
        entry.subscribed = false;
        for (const listener of [...entry.listeners]) safely(() => listener.error?.(error));
        return;
      }
    }
    console.warn(`realtime: ${frame.code}: ${frame.message}`);
  }

  private onEvicted(channel: string, reason: string | undefined): void {
    const entry = this.channels.get(channel);
    if (!entry) return;
    const error = new GatewayError("evicted", reason || "You no longer have access to this channel.");
    entry.failed = error;
    entry.subscribed = false;
    entry.ref = null;
    entry.online.clear();
    entry.presenceKnown = false;
    for (const listener of [...entry.listeners]) safely(() => listener.error?.(error));
  }

  private emitPresence(entry: ChannelEntry): void {
    const online = [...entry.online.values()];
    for (const listener of [...entry.listeners]) safely(() => listener.presence?.(online));
  }
}

/** The people listed in a presence event's `joined` or `left` (anything else is skipped). */
function people(value: unknown): Person[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (p): p is Person => typeof p === "object" && p !== null && typeof (p as Person).id === "number",
  );
}

function safely(call: () => void): void {
  try {
    call();
  } catch (error) {
    console.error(error);
  }
}

/** The tab's gateway; `realtime/session.ts` starts it when someone signs in. */
export const gateway = new Gateway();
