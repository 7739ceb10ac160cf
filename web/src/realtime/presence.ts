import type { ReactiveController, ReactiveControllerHost } from "lit";
import type { Person } from "../api/types.ts";
import { gateway, type ChannelMessage } from "./gateway.ts";

/** How long "is typing" lasts after the last typing event (senders repeat every 3 s). */
const TYPING_SHOWN_MS = 6_000;

/**
 * Who is typing in one channel, from its ephemeral `typing` events. A message from someone
 * ends their indicator at once; otherwise it fades after a few seconds without news.
 */
export class TypingState {
  private readonly typing = new Map<number, { person: Person; until: number }>();
  private timer: number | undefined;

  constructor(
    private readonly onChange: () => void,
    private readonly selfId: () => number | null,
  ) {}

  handle(message: ChannelMessage): void {
    const data = message.data;
    if (data["type"] === "typing") {
      const user = data["user"] as Person | undefined;
      if (!user || user.id === this.selfId()) return;
      this.typing.set(user.id, { person: user, until: Date.now() + TYPING_SHOWN_MS });
      this.changed();
    } else if (data["type"] === "message") {
      const author = data["author"] as Person | undefined;
      if (author && this.typing.delete(author.id)) this.changed();
    }
  }

  get people(): Person[] {
    return [...this.typing.values()].map((t) => t.person);
  }

  /** "Ana is typing…", "Ana and Ben are typing…", "Several people are typing…", or null. */
  get label(): string | null {
    const names = this.people.map((p) => p.display_name);
    if (names.length === 0) return null;
    if (names.length === 1) return `${names[0]} is typing…`;
    if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
    return "Several people are typing…";
  }

  clear(): void {
    this.typing.clear();
    window.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private changed(): void {
    this.onChange();
    this.schedule();
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (this.typing.size === 0) return;
    const next = Math.min(...[...this.typing.values()].map((t) => t.until));
    this.timer = window.setTimeout(() => {
      const now = Date.now();
      let removed = false;
      for (const [id, entry] of this.typing) {
        if (entry.until <= now) {
          this.typing.delete(id);
          removed = true;
        }
      }
      if (removed) this.onChange();
      this.schedule();
    }, Math.max(50, next - Date.now()));
  }
}

/**
 * Who is online in a set of channels, for views that show online dots: subscribes to each
 * channel while the host is connected and re-renders the host on every join or leave.
 */
export class PresenceController implements ReactiveController {
  private readonly host: ReactiveControllerHost;
  private readonly online = new Map<string, Set<number>>();
  private readonly subscriptions = new Map<string, () => void>();
  private wanted: readonly string[] = [];
  private connected = false;

  constructor(host: ReactiveControllerHost) {
    this.host = host;
    host.addController(this);
  }

  /** The channels to watch (call from `willUpdate`; unchanged lists cost nothing). */
  watch(channels: readonly string[]): void {
    this.wanted = channels;
    if (this.connected) this.sync();
  }

  /** Whether a user is online in a channel (or, without a channel, in any watched one). */
  isOnline(userId: number, channel?: string): boolean {
    if (channel !== undefined) return this.online.get(channel)?.has(userId) ?? false;
    for (const users of this.online.values()) if (users.has(userId)) return true;
    return false;
  }

  onlineCount(channel: string): number {
    return this.online.get(channel)?.size ?? 0;
  }

  hostConnected(): void {
    this.connected = true;
    this.sync();
  }

  hostDisconnected(): void {
    this.connected = false;
    for (const stop of this.subscriptions.values()) stop();
    this.subscriptions.clear();
    this.online.clear();
  }

  private sync(): void {
    const wanted = new Set(this.wanted);
    for (const [channel, stop] of this.subscriptions) {
      if (wanted.has(channel)) continue;
      stop();
      this.subscriptions.delete(channel);
      this.online.delete(channel);
    }
    for (const channel of wanted) {
      if (this.subscriptions.has(channel)) continue;
      this.subscriptions.set(
        channel,
        gateway.subscribe(channel, {
          presence: (people) => {
            this.online.set(channel, new Set(people.map((p) => p.id)));
            this.host.requestUpdate();
          },
        }),
      );
    }
  }
}
