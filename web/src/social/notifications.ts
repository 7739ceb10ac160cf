import type { ReactiveController, ReactiveControllerHost } from "lit";
import * as api from "../api/endpoints.ts";
import type { AppNotification } from "../api/types.ts";
import { auth } from "../auth.ts";
import { gateway, type ChannelMessage } from "../realtime/gateway.ts";

const RECENT = 10;
/** After live pushes, the count is read again from the hub this much later (one request per burst). */
const RECONCILE_MS = 1_500;

/**
 * The signed-in user's notifications as the bell shows them: the unread count (read at start,
 * then kept live from `user:<id>`) and the most recent few.
 */
class NotificationStore extends EventTarget {
  /** null while unknown or signed out. */
  unread: number | null = null;
  /** Newest activity first; live pushes join at the top. */
  items: AppNotification[] = [];
  /** The list was read from the hub at least once since sign-in. */
  loaded = false;
  private userId: number | null = null;
  private stopChannel: (() => void) | null = null;
  private reconcileTimer: number | undefined;

  constructor() {
    super();
    // Auth emits on every token renewal; only a change of user means other notifications.
    auth.addEventListener("change", () => {
      const id = auth.user?.id ?? null;
      if (id === this.userId) return;
      this.userId = id;
      this.stopChannel?.();
      this.stopChannel = null;
      this.unread = null;
      this.items = [];
      this.loaded = false;
      this.changed();
      if (id !== null) this.follow(id);
    });
  }

  private follow(userId: number): void {
    this.stopChannel = gateway.subscribe(`user:${userId}`, {
      subscribed: (info) => {
        // First subscription: read the count now that nothing newer can slip by unseen. After
        // a reconnect the replay brings what was missed, unless the hub could not replay.
        if (!info.resumed || !info.recovered) void this.refreshCount();
        if (info.resumed && !info.recovered && this.loaded) void this.load();
      },
      message: (message) => this.onMessage(message),
    });
  }

  /** Read the list (and count) from the hub. */
  async load(signal?: AbortSignal): Promise<void> {
    const userId = this.userId;
    const list = await api.listNotifications({ limit: RECENT }, signal);
    if (userId !== this.userId) return;
    this.items = list.items;
    this.unread = list.unread;
    this.loaded = true;
    this.changed();
  }

  async refreshCount(): Promise<void> {
    const userId = this.userId;
    try {
      const { unread } = await api.unreadNotificationCount();
      if (userId === this.userId) {
        this.unread = unread;
        this.changed();
      }
    } catch {
      // The bell keeps its last figure; the next push or reload corrects it.
    }
  }

  async markRead(id: number): Promise<void> {
    const item = this.items.find((n) => n.id === id);
    if (item && !item.read) {
      item.read = true;
      this.changed();
    }
    const { unread } = await api.markNotificationRead(id);
    this.unread = unread;
    this.changed();
  }

  async markAllRead(): Promise<void> {
    for (const item of this.items) item.read = true;
    this.changed();
    const { unread } = await api.markAllNotificationsRead();
    this.unread = unread;
    this.changed();
  }

  private onMessage(message: ChannelMessage): void {
    const data = message.data;
    if (data["type"] === "notification") {
      const notification = data["notification"] as AppNotification | undefined;
      if (!notification || typeof notification.id !== "number") return;
      const known = this.items.find((n) => n.id === notification.id);
      // Grouping only ever grows an unread notification, so a push is either a new one
      // (created just now) or an unread one growing: only the first adds to the count.
      const isNew = !known && notification.created_at === notification.updated_at;
      const wasUnread = known ? !known.read : !isNew;
      const entry: AppNotification = { ...notification, text: describeNotification(notification) };
      this.items = [entry, ...this.items.filter((n) => n.id !== notification.id)].slice(0, RECENT);
      if (this.unread !== null && !notification.read && !wasUnread) this.unread += 1;
      this.changed();
      this.reconcileSoon();
      this.dispatchEvent(new CustomEvent<AppNotification>("notification", { detail: entry }));
    } else if (data["type"] === "notifications.read") {
      const id = data["id"];
      for (const item of this.items) if (id === null || id === undefined || item.id === id) item.read = true;
      if (typeof data["unread"] === "number") this.unread = data["unread"];
      this.changed();
    }
  }

  private reconcileSoon(): void {
    window.clearTimeout(this.reconcileTimer);
    this.reconcileTimer = window.setTimeout(() => void this.refreshCount(), RECONCILE_MS);
  }

  private changed(): void {
    this.dispatchEvent(new Event("change"));
  }
}

export const notifications = new NotificationStore();

/** Re-renders its host whenever the notifications or their count change. */
export class NotificationsController implements ReactiveController {
  private readonly host: ReactiveControllerHost;
  private readonly onChange = (): void => this.host.requestUpdate();

  constructor(host: ReactiveControllerHost) {
    this.host = host;
    host.addController(this);
  }

  hostConnected(): void {
    notifications.addEventListener("change", this.onChange);
  }

  hostDisconnected(): void {
    notifications.removeEventListener("change", this.onChange);
  }
}

/**
 * The one-line text of a notification, for live pushes (which carry no `text`); mirrors the
 * hub's `describe()` in hub/notifications/service.py.
 */
export function describeNotification(n: AppNotification): string {
  if (n.text) return n.text;
  const actors = n.actors ?? [];
  const count = n.actor_count ?? 0;
  let who = "";
  if (actors[0]) {
    who = actors[0].display_name;
    if (count > 1) who += ` and ${count - 1} other${count > 2 ? "s" : ""}`;
  }
  const data = n.data ?? {};
  const text = (key: string, fallback: string): string => {
    const value = data[key];
    return typeof value === "string" && value ? value : fallback;
  };
  switch (n.type) {
    case "friend.request":
      return `${who} sent you a friend request`;
    case "friend.accepted":
      return `${who} accepted your friend request`;
    case "chat.mention":
      return `${who} mentioned you in ${text("where", "a chat")}`;
    case "chat.reply":
      return `${who} replied to your message`;
    case "group.invitation":
      return `${who} invited you to ${text("group_name", "a study group")}`;
    case "watch_party.started":
      return `${who} started a watch party in ${text("group_name", "your study group")}: ${text("lesson_title", "a lesson")}`;
    case "community.role":
      return `You are now ${text("role", "a member")} of ${text("community_name", "a community")}`;
    case "community.joined":
      return `${who} joined ${text("community_name", "your community")}`;
    case "teacher_application.decided":
      return `Your teacher application was ${text("status", "decided")}`;
    case "course.purchased":
      return `${who} bought ${text("course_title", "your course")}`;
    case "video.ready":
      return `Your video ${text("title", "")} is ready`.replace("  ", " ");
    case "video.failed":
      return `Your video ${text("title", "")} could not be processed`.replace("  ", " ");
    default:
      return n.type;
  }
}

/** Where a notification leads, as far as its data tells. */
export function notificationHref(n: AppNotification): string | null {
  const data = n.data ?? {};
  const str = (key: string): string | null => {
    const value = data[key];
    return typeof value === "string" || typeof value === "number" ? String(value) : null;
  };
  const url = str("url");
  if (url && url.startsWith("/") && !url.startsWith("//")) return url;
  const channel = str("channel");
  switch (n.type) {
    case "friend.request":
    case "friend.accepted":
      return "/friends";
    case "group.invitation":
      return "/groups";
    case "watch_party.started": {
      const party = str("party_id");
      return party ? `/watch/${party}` : null;
    }
    case "chat.mention":
    case "chat.reply":
      return (channel && channelHref(channel, str("community_slug"), n.actors[0]?.id ?? null)) ?? null;
    case "community.role":
    case "community.joined": {
      const slug = str("community_slug") ?? str("slug");
      return slug ? `/communities/${encodeURIComponent(slug)}` : "/communities";
    }
    case "teacher_application.decided":
      return "/teach";
    case "course.purchased": {
      const course = str("course_id");
      return course ? `/studio/courses/${course}/stats` : "/studio/courses";
    }
    case "video.ready":
    case "video.failed": {
      const video = str("video_id");
      return video ? `/videos/${encodeURIComponent(video)}` : "/studio";
    }
    default:
      return null;
  }
}

/** The page that shows a chat channel. */
export function channelHref(channel: string, communitySlug: string | null, otherUserId: number | null): string | null {
  const parts = channel.split(":");
  if (parts[0] === "dm") {
    const me = auth.user?.id;
    const other = parts.slice(1).map(Number).find((id) => id !== me) ?? otherUserId;
    return other ? `/messages/${other}` : "/messages";
  }
  if (parts[0] === "chat" && parts[1] === "group" && parts[2]) return `/groups/${parts[2]}`;
  if (parts[0] === "chat" && parts[1] === "party" && parts[2]) return `/watch/${parts[2]}`;
  if (parts[0] === "chat" && parts[1] === "community") {
    if (!communitySlug) return "/communities";
    const sub = parts[3] ? `?channel=${encodeURIComponent(parts[3])}` : "";
    return `/communities/${encodeURIComponent(communitySlug)}${sub}`;
  }
  return null;
}

/** Like `notificationHref`, and asks the hub where a community channel lives when needed. */
export async function resolveNotificationHref(n: AppNotification): Promise<string> {
  const href = notificationHref(n);
  const channel = n.data?.["channel"];
  if (typeof channel === "string" && channel.startsWith("chat:community:") && href === "/communities") {
    const [, , id, sub] = channel.split(":");
    try {
      const community = await api.getCommunity(Number(id));
      return `/communities/${encodeURIComponent(community.slug)}${sub ? `?channel=${encodeURIComponent(sub)}` : ""}`;
    } catch {
      // Fall back to the directory.
    }
  }
  return href ?? "/notifications";
}
