import { html, LitElement, nothing, type PropertyValues, type TemplateResult } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { unsafeHTML } from "lit/directives/unsafe-html.js";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { ChatMessage, Person } from "../api/types.ts";
import { auth } from "../auth.ts";
import { gateway, GatewayError, type ChannelMessage, type SubscribedInfo } from "../realtime/gateway.ts";
import { TypingState } from "../realtime/presence.ts";
import { unread } from "../social/unread.ts";
import { avatarDot, messageTime, plainText } from "../social/view.ts";
import { shared } from "../styles.ts";
import { chatPanelStyles } from "./chat-panel-styles.ts";

type Renderer = typeof import("./markdown-html.ts");
let renderer: Promise<Renderer> | null = null;

const PAGE = 40;
const EDIT_WINDOW_MS = 15 * 60_000;
const MAX_LENGTH = 4000;
/** Consecutive messages by one author within this span share one header. */
const GROUP_SPAN_MS = 5 * 60_000;
const READ_DELAY_MS = 250;
/** Without a presence snapshot after a resubscription, the replay counts as done after this. */
const REPLAY_GRACE_MS = 3_000;
const NEAR_BOTTOM_PX = 80;
const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

interface Pending {
  key: number;
  text: string;
  replyTo: number | null;
  mentions: number[];
  /** Known once the hub acknowledged it. */
  seq: number | null;
  state: "sending" | "failed" | "unsure";
  error: string | null;
}

/**
 * `<chat-panel channel="chat:community:3">`: one chat channel, live.
 *
 * History loads from `GET /api/channels/{channel}/messages` (newest first, "Load older" pages
 * back); live events (messages, edits, deletions, reactions, typing) come from the gateway,
 * which also replays what was missed after a reconnect. Messages are markdown, rendered and
 * sanitised (marked + DOMPurify). While the panel is on screen it moves the read marker.
 *
 * Properties: `channel`, `members` (people who can be @mentioned), `canModerate` (may delete
 * others' messages), `disabledReason` (why the composer is off, e.g. muted), `slowModeSeconds`,
 * `label` (accessible name). Events: `presence` (detail: Person[] online), `refused` (a publish
 * was forbidden or the hub ended the subscription: the page may reload what it knows about the
 * user's rights).
 *
 * Test ids: chat-panel, chat-log, chat-message (data-seq, data-author, data-mine), chat-text,
 * chat-load-older, chat-input, chat-send, chat-typing, chat-offline, chat-error, chat-reply,
 * chat-replying, chat-reply-cancel, chat-react, chat-reaction (data-emoji, data-count),
 * chat-emoji, chat-edit, chat-edit-input, chat-edit-save, chat-delete, chat-delete-confirm,
 * chat-mention-option, chat-pending, chat-online-count.
 */
export class ChatPanel extends LitElement {
  static override styles = [shared, chatPanelStyles];

  static override properties = {
    channel: {},
    members: { attribute: false },
    canModerate: { type: Boolean },
    disabledReason: { attribute: false },
    slowModeSeconds: { type: Number },
    label: {},
    messages: { state: true },
    pending: { state: true },
    loading: { state: true },
    loadingOlder: { state: true },
    nextBefore: { state: true },
    error: { state: true },
    sendError: { state: true },
    replyTo: { state: true },
    editing: { state: true },
    confirming: { state: true },
    picking: { state: true },
    mentionQuery: { state: true },
    mentionIndex: { state: true },
    connected: { state: true },
    onlineCount: { state: true },
    unseen: { state: true },
    cooldownUntil: { state: true },
    renderReady: { state: true },
  };

  declare channel: string;
  declare members: readonly Person[];
  declare canModerate: boolean;
  declare disabledReason: string | null;
  declare slowModeSeconds: number;
  declare label: string;
  declare messages: ChatMessage[];
  declare pending: Pending[];
  declare loading: boolean;
  declare loadingOlder: boolean;
  /** null: no older messages. */
  declare nextBefore: number | null;
  declare error: string | null;
  declare sendError: string | null;
  declare replyTo: ChatMessage | null;
  declare editing: number | null;
  declare confirming: number | null;
  declare picking: number | null;
  declare mentionQuery: string | null;
  declare mentionIndex: number;
  declare connected: boolean;
  declare onlineCount: number | null;
  declare unseen: number;
  declare cooldownUntil: number;
  declare renderReady: boolean;

  private bySeq = new Map<number, ChatMessage>();
  /** Live events that arrived while the first page of history was loading. */
  private early: ChannelMessage[] | null = null;
  private stop: (() => void) | null = null;
  /** The channel the panel is subscribed to now. */
  private opened: string | null = null;
  private abort: AbortController | null = null;
  private readonly typing = new TypingState(
    () => this.requestUpdate(),
    () => auth.user?.id ?? null,
  );
  /** Highest sequence number seen on the channel (messages and events). */
  private head = 0;
  private readSent = 0;
  private readTimer: number | undefined;
  private visible = false;
  private showingChannel: string | null = null;
  private observer: IntersectionObserver | null = null;
  private stickToBottom = true;
  private pendingKey = 0;
  private replaying = false;
  private replayTimer: number | undefined;
  private chosenMentions = new Map<string, number>();
  private cooldownTimer: number | undefined;
  private readonly htmlCache = new Map<string, string>();
  private render_: Renderer | null = null;
  private readonly onStatus = (): void => {
    this.connected = gateway.connected;
  };
  private readonly onVisibility = (): void => this.updateVisibility();
  /** Leaving the page: what was on screen counts as read, even within the short delay. */
  private readonly onPageHide = (): void => {
    if (this.readTimer === undefined) return;
    window.clearTimeout(this.readTimer);
    this.readTimer = undefined;
    void this.sendRead(true);
  };

  constructor() {
    super();
    this.channel = "";
    this.members = [];
    this.canModerate = false;
    this.disabledReason = null;
    this.slowModeSeconds = 0;
    this.label = "Chat";
    this.messages = [];
    this.pending = [];
    this.loading = false;
    this.loadingOlder = false;
    this.nextBefore = null;
    this.error = null;
    this.sendError = null;
    this.replyTo = null;
    this.editing = null;
    this.confirming = null;
    this.picking = null;
    this.mentionQuery = null;
    this.mentionIndex = 0;
    this.connected = gateway.connected;
    this.onlineCount = null;
    this.unseen = 0;
    this.cooldownUntil = 0;
    this.renderReady = false;
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  override connectedCallback(): void {
    super.connectedCallback();
    gateway.addEventListener("status", this.onStatus);
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("focus", this.onVisibility);
    window.addEventListener("pagehide", this.onPageHide);
    this.observer = new IntersectionObserver((entries) => {
      const entry = entries[entries.length - 1];
      this.intersecting = entry?.isIntersecting ?? false;
      this.updateVisibility();
    });
    this.observer.observe(this);
    renderer ??= import("./markdown-html.ts");
    void renderer.then((module) => {
      this.render_ = module;
      this.renderReady = true;
    });
    if (this.channel) this.open(this.channel);
  }

  private intersecting = false;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    gateway.removeEventListener("status", this.onStatus);
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("focus", this.onVisibility);
    window.removeEventListener("pagehide", this.onPageHide);
    this.observer?.disconnect();
    this.observer = null;
    this.close();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("channel") && this.isConnected && this.channel !== this.opened) {
      this.close();
      if (this.channel) this.open(this.channel);
    }
  }

  private open(channel: string): void {
    this.opened = channel;
    this.reset();
    this.loading = true;
    this.early = [];
    this.stop = gateway.subscribe(channel, {
      message: (message) => {
        if (this.early) this.early.push(message);
        else this.apply(message);
      },
      subscribed: (info) => this.onSubscribed(info),
      presence: (online) => {
        // After a resubscription the presence snapshot follows the replay: what was stored
        // has arrived by now, so a message still unaccounted for never reached the hub.
        if (this.replaying) this.afterReplay();
        this.onlineCount = online.length;
        this.dispatchEvent(new CustomEvent<readonly Person[]>("presence", { detail: online }));
      },
      error: (error) => {
        this.error =
          error.code === "forbidden" ? "You cannot read this chat (are you a member?)." : error.message;
        // The page may know why (banned, left, unfriended) and show something better.
        if (error.code === "evicted") this.dispatchEvent(new CustomEvent("refused", { detail: error }));
      },
    });
    this.abort = new AbortController();
    void this.loadFirstPage(channel, this.abort.signal);
    this.updateVisibility();
  }

  private close(): void {
    this.opened = null;
    window.clearTimeout(this.replayTimer);
    this.replaying = false;
    window.clearInterval(this.cooldownTimer);
    this.cooldownUntil = 0;
    this.stop?.();
    this.stop = null;
    this.abort?.abort();
    this.abort = null;
    this.typing.clear();
    window.clearTimeout(this.readTimer);
    this.setShowing(null);
  }

  private reset(): void {
    this.bySeq = new Map();
    this.messages = [];
    this.pending = [];
    this.nextBefore = null;
    this.error = null;
    this.sendError = null;
    this.replyTo = null;
    this.editing = null;
    this.confirming = null;
    this.picking = null;
    this.onlineCount = null;
    this.unseen = 0;
    this.head = 0;
    this.readSent = 0;
    this.stickToBottom = true;
    this.chosenMentions.clear();
  }

  private async loadFirstPage(channel: string, signal: AbortSignal): Promise<void> {
    try {
      const page = await api.channelHistory(channel, null, PAGE, signal);
      if (channel !== this.channel) return;
      this.bySeq = new Map();
      for (const item of page.items) this.bySeq.set(item.seq, { ...item });
      this.head = Math.max(this.head, page.items[0]?.seq ?? 0);
      this.nextBefore = page.next_before;
      const early = this.early ?? [];
      this.early = null;
      for (const message of early) this.apply(message, false);
      this.sync();
      this.stickToBottom = true;
      this.error = null;
    } catch (error) {
      if (signal.aborted) return;
      this.early = null;
      this.error =
        error instanceof ApiError && (error.status === 403 || error.status === 404)
          ? "You cannot read this chat (are you a member?)."
          : error instanceof ApiError
            ? error.message
            : "Could not load the conversation.";
    } finally {
      if (!signal.aborted) this.loading = false;
    }
    this.scheduleRead();
  }

  private onSubscribed(info: SubscribedInfo): void {
    this.head = Math.max(this.head, info.seq);
    if (info.resumed && this.pending.some((p) => p.state === "unsure")) {
      this.replaying = true;
      window.clearTimeout(this.replayTimer);
      this.replayTimer = window.setTimeout(() => this.afterReplay(), REPLAY_GRACE_MS);
    }
    this.error = this.error?.startsWith("You cannot read") ? null : this.error;
    if (info.resumed && !info.recovered) {
      // The hub could not replay from where we were: start over from its history.
      this.abort?.abort();
      this.abort = new AbortController();
      this.early = [];
      this.loading = true;
      void this.loadFirstPage(this.channel, this.abort.signal);
    }
    this.scheduleRead();
  }

  // ---- live events --------------------------------------------------------------------------

  private apply(message: ChannelMessage, sync = true): void {
    const data = message.data;
    const type = data["type"];
    if (message.seq !== null) this.head = Math.max(this.head, message.seq);
    if (type === "typing") {
      this.typing.handle(message);
      return;
    }
    if (type === "message" && message.seq !== null) {
      this.typing.handle(message);
      if (this.bySeq.has(message.seq)) return;
      const author = (data["author"] as Person | undefined) ?? null;
      const item: ChatMessage = {
        seq: message.seq,
        text: String(data["text"] ?? ""),
        author,
        reply_to: typeof data["reply_to"] === "number" ? data["reply_to"] : null,
        mentions: Array.isArray(data["mentions"]) ? (data["mentions"] as number[]) : [],
        reactions: {},
        edited_at: null,
        deleted: false,
        sent_at: String(data["sent_at"] ?? new Date(gateway.serverNow()).toISOString()),
      };
      this.bySeq.set(item.seq, item);
      if (author && author.id === auth.user?.id) this.settlePending(item);
      else if (!this.stickToBottom) this.unseen += 1;
    } else if (type === "edit") {
      const target = this.bySeq.get(Number(data["target"]));
      if (target) {
        target.text = String(data["text"] ?? "");
        target.edited_at = String(data["edited_at"] ?? new Date().toISOString());
        this.bySeq.set(target.seq, { ...target });
      }
    } else if (type === "delete") {
      const target = this.bySeq.get(Number(data["target"]));
      if (target) this.bySeq.set(target.seq, { ...target, deleted: true, text: "" });
    } else if (type === "reaction") {
      const target = this.bySeq.get(Number(data["target"]));
      const emoji = String(data["emoji"] ?? "");
      const user = data["user"];
      const userId = typeof user === "number" ? user : (user as Person | undefined)?.id;
      if (target && emoji && typeof userId === "number") {
        const reactions = { ...target.reactions };
        const users = new Set(reactions[emoji] ?? []);
        if (data["on"] === false) users.delete(userId);
        else users.add(userId);
        if (users.size) reactions[emoji] = [...users];
        else delete reactions[emoji];
        this.bySeq.set(target.seq, { ...target, reactions });
      }
    } else {
      return;
    }
    if (sync) this.sync();
    this.scheduleRead();
  }

  /** An own message arrived: its "sending…" copy goes. */
  private settlePending(item: ChatMessage): void {
    const index = this.pending.findIndex(
      (p) => p.seq === item.seq || (p.seq === null && p.state !== "failed" && p.text === item.text),
    );
    if (index >= 0) this.pending = this.pending.filter((_, i) => i !== index);
  }

  private sync(): void {
    this.messages = [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  // ---- read marker --------------------------------------------------------------------------

  private updateVisibility(): void {
    const visible = this.isConnected && this.intersecting && document.visibilityState === "visible";
    this.visible = visible;
    this.setShowing(visible && this.channel ? this.channel : null);
    if (visible) this.scheduleRead();
  }

  private setShowing(channel: string | null): void {
    if (this.showingChannel === channel) return;
    if (this.showingChannel) unread.showing(this.showingChannel, false);
    this.showingChannel = channel;
    if (channel) unread.showing(channel, true);
  }

  private scheduleRead(): void {
    if (!this.visible || this.loading || this.head <= this.readSent) return;
    window.clearTimeout(this.readTimer);
    this.readTimer = window.setTimeout(() => {
      this.readTimer = undefined;
      void this.sendRead();
    }, READ_DELAY_MS);
  }

  private async sendRead(leaving = false): Promise<void> {
    const channel = this.channel;
    const seq = this.head;
    if (!this.visible || seq <= this.readSent) return;
    this.readSent = seq;
    try {
      const { unread: left } = await api.markChannelRead(channel, seq, { keepalive: leaving });
      unread.set(channel, left);
    } catch {
      // Not fatal: the next message or visit tries again.
      if (this.readSent === seq) this.readSent = 0;
    }
  }

  // ---- history ------------------------------------------------------------------------------

  private async loadOlder(): Promise<void> {
    if (this.nextBefore === null || this.loadingOlder) return;
    const channel = this.channel;
    const log = this.log;
    const before = log ? log.scrollHeight - log.scrollTop : 0;
    this.loadingOlder = true;
    try {
      const page = await api.channelHistory(channel, this.nextBefore, PAGE);
      if (channel !== this.channel) return;
      for (const item of page.items) if (!this.bySeq.has(item.seq)) this.bySeq.set(item.seq, { ...item });
      this.nextBefore = page.next_before;
      this.stickToBottom = false;
      this.sync();
      await this.updateComplete;
      // Keep what the reader was looking at in place.
      if (log) log.scrollTop = log.scrollHeight - before;
    } catch (error) {
      this.error = error instanceof ApiError ? error.message : "Could not load older messages.";
    } finally {
      this.loadingOlder = false;
    }
  }

  // ---- scrolling ----------------------------------------------------------------------------

  private get log(): HTMLElement | null {
    return this.renderRoot.querySelector<HTMLElement>(".log");
  }

  protected override updated(): void {
    const log = this.log;
    if (log && this.stickToBottom) log.scrollTop = log.scrollHeight;
  }

  private onScroll(): void {
    const log = this.log;
    if (!log) return;
    const near = log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM_PX;
    this.stickToBottom = near;
    if (near && this.unseen) this.unseen = 0;
  }

  private jumpToEnd(): void {
    this.stickToBottom = true;
    this.unseen = 0;
    this.requestUpdate();
  }

  private scrollToMessage(seq: number): void {
    const target = this.renderRoot.querySelector<HTMLElement>(`[data-seq="${seq}"]`);
    if (!target) return;
    target.scrollIntoView({ block: "center", behavior: "smooth" });
    target.focus({ preventScroll: true });
  }

  // ---- sending ------------------------------------------------------------------------------

  private get input(): HTMLTextAreaElement | null {
    return this.renderRoot.querySelector<HTMLTextAreaElement>("[data-testid=chat-input]");
  }

  private onKeyDown(event: KeyboardEvent): void {
    const options = this.mentionOptions();
    if (this.mentionQuery !== null && options.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        this.mentionIndex = (this.mentionIndex + step + options.length) % options.length;
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        const choice = options[this.mentionIndex] ?? options[0];
        if (choice) this.pickMention(choice);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        this.mentionQuery = null;
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void this.send();
    } else if (event.key === "Escape" && this.replyTo) {
      this.replyTo = null;
    } else if (event.key === "ArrowUp" && !this.input?.value) {
      // Edit the last own message, as chat apps do.
      const mine = [...this.messages].reverse().find((m) => this.canEdit(m));
      if (mine) {
        event.preventDefault();
        this.editing = mine.seq;
      }
    }
  }

  private onInput(): void {
    const input = this.input;
    if (!input) return;
    if (input.value.trim()) gateway.typing(this.channel);
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
    const before = input.value.slice(0, input.selectionStart ?? input.value.length);
    const found = /(?:^|\s)@([\p{L}\p{N}_.-]{0,30})$/u.exec(before);
    const query = found ? (found[1] ?? "") : null;
    if (query !== this.mentionQuery) this.mentionIndex = 0;
    this.mentionQuery = query;
  }

  private mentionOptions(): Person[] {
    if (this.mentionQuery === null) return [];
    const q = this.mentionQuery.toLowerCase();
    const me = auth.user?.id;
    const seen = new Set<number>();
    return this.members
      .filter((p) => {
        if (p.id === me || seen.has(p.id)) return false;
        seen.add(p.id);
        const name = p.display_name.toLowerCase();
        return !q || name.startsWith(q) || name.split(/\s+/).some((part) => part.startsWith(q));
      })
      .slice(0, 6);
  }

  private pickMention(person: Person): void {
    const input = this.input;
    if (!input) return;
    const caret = input.selectionStart ?? input.value.length;
    const before = input.value.slice(0, caret).replace(/@([\p{L}\p{N}_.-]{0,30})$/u, `@${person.display_name} `);
    input.value = before + input.value.slice(caret);
    input.setSelectionRange(before.length, before.length);
    this.chosenMentions.set(person.display_name, person.id);
    this.mentionQuery = null;
    input.focus();
  }

  /** Ids of the people picked from the list whose `@Name` is still in the text. */
  private mentionsIn(text: string): number[] {
    const ids = new Set<number>();
    for (const [name, id] of this.chosenMentions) if (text.includes(`@${name}`)) ids.add(id);
    // Names typed out in full count too.
    for (const person of this.members) {
      if (person.id !== auth.user?.id && text.includes(`@${person.display_name}`)) ids.add(person.id);
    }
    return [...ids];
  }

  private async send(): Promise<void> {
    const input = this.input;
    if (!input || this.disabledReason) return;
    const text = input.value.trim();
    if (!text) return;
    if (text.length > MAX_LENGTH) {
      this.sendError = `A message is at most ${MAX_LENGTH} characters (this one has ${text.length}).`;
      return;
    }
    if (this.cooldownUntil > Date.now()) return;
    const pending: Pending = {
      key: ++this.pendingKey,
      text,
      replyTo: this.replyTo?.seq ?? null,
      mentions: this.mentionsIn(text),
      seq: null,
      state: "sending",
      error: null,
    };
    input.value = "";
    input.style.height = "";
    this.replyTo = null;
    this.mentionQuery = null;
    this.sendError = null;
    this.pending = [...this.pending, pending];
    this.stickToBottom = true;
    this.startCooldown();
    await this.deliver(pending);
  }

  private async deliver(pending: Pending): Promise<void> {
    const data: Record<string, unknown> = { text: pending.text };
    if (pending.replyTo !== null) data["reply_to"] = pending.replyTo;
    if (pending.mentions.length) data["mentions"] = pending.mentions;
    try {
      const { seq } = await gateway.publish(this.channel, data);
      if (seq !== null && this.bySeq.has(seq)) {
        this.pending = this.pending.filter((p) => p.key !== pending.key);
      } else {
        this.updatePending(pending.key, { seq });
      }
    } catch (error) {
      const code = error instanceof GatewayError ? error.code : "";
      // The page may know something changed (a mute, a ban, a left group): let it look.
      if (code === "forbidden") this.dispatchEvent(new CustomEvent("refused", { detail: error }));
      this.updatePending(pending.key, {
        // After a dropped connection the hub may have stored it: the replay will tell.
        state: code === "disconnected" ? "unsure" : "failed",
        error: describeSendError(error),
      });
    }
  }

  /** Send again what the connection lost before the hub acknowledged it and the replay lacks. */
  private afterReplay(): void {
    this.replaying = false;
    window.clearTimeout(this.replayTimer);
    for (const p of this.pending) if (p.state === "unsure") this.retry(p);
  }

  private updatePending(key: number, changes: Partial<Pending>): void {
    this.pending = this.pending.map((p) => (p.key === key ? { ...p, ...changes } : p));
  }

  private retry(p: Pending): void {
    this.updatePending(p.key, { state: "sending", error: null, seq: null });
    void this.deliver({ ...p, state: "sending", error: null, seq: null });
  }

  private discard(p: Pending): void {
    this.pending = this.pending.filter((x) => x.key !== p.key);
  }

  private startCooldown(): void {
    if (!this.slowModeSeconds || this.canModerate) return;
    this.cooldownUntil = Date.now() + this.slowModeSeconds * 1000;
    window.clearInterval(this.cooldownTimer);
    this.cooldownTimer = window.setInterval(() => {
      if (Date.now() >= this.cooldownUntil) {
        window.clearInterval(this.cooldownTimer);
        this.cooldownUntil = 0;
      }
      this.requestUpdate();
    }, 1000);
  }

  // ---- message actions ----------------------------------------------------------------------

  private canEdit(m: ChatMessage): boolean {
    return (
      !m.deleted &&
      m.author?.id === auth.user?.id &&
      gateway.serverNow() - Date.parse(m.sent_at) < EDIT_WINDOW_MS &&
      !this.disabledReason
    );
  }

  private canDelete(m: ChatMessage): boolean {
    return !m.deleted && (m.author?.id === auth.user?.id || this.canModerate);
  }

  private async action(data: Record<string, unknown>): Promise<boolean> {
    try {
      await gateway.publish(this.channel, data);
      this.sendError = null;
      return true;
    } catch (error) {
      this.sendError = describeSendError(error);
      return false;
    }
  }

  private async saveEdit(m: ChatMessage): Promise<void> {
    const field = this.renderRoot.querySelector<HTMLTextAreaElement>("[data-testid=chat-edit-input]");
    const text = field?.value.trim() ?? "";
    if (!text || text === m.text) {
      this.editing = null;
      return;
    }
    if (await this.action({ type: "edit", target: m.seq, text })) this.editing = null;
  }

  private async deleteMessage(m: ChatMessage): Promise<void> {
    this.confirming = null;
    await this.action({ type: "delete", target: m.seq });
  }

  private async react(m: ChatMessage, emoji: string): Promise<void> {
    this.picking = null;
    await this.action({ type: "react", target: m.seq, emoji });
  }

  // ---- rendering ----------------------------------------------------------------------------

  override render() {
    const me = auth.user?.id ?? null;
    return html`<section class="panel" data-testid="chat-panel" data-channel=${this.channel} aria-label=${this.label}>
      <div class="bar">
        <span class="title">${this.label}</span>
        ${this.onlineCount !== null
          ? html`<span class="muted" data-testid="chat-online-count">${this.onlineCount} online</span>`
          : nothing}
        ${this.connected
          ? nothing
          : html`<span class="offline" role="status" data-testid="chat-offline">Reconnecting…</span>`}
      </div>
      ${this.error ? html`<div class="alert error" role="alert" data-testid="chat-error">${this.error}</div>` : nothing}
      <div class="log-wrap">
        <div
          class="log"
          data-testid="chat-log"
          role="log"
          aria-live="polite"
          aria-relevant="additions"
          aria-busy=${this.loading ? "true" : "false"}
          @scroll=${this.onScroll}
        >
          ${this.renderTop()}
          ${repeat(
            this.messages,
            (m) => m.seq,
            (m, i) => this.renderMessage(m, this.messages[i - 1], me),
          )}
          ${this.pending.filter((p) => p.seq === null || !this.bySeq.has(p.seq)).map((p) => this.renderPending(p))}
        </div>
        ${this.unseen
          ? html`<button type="button" class="jump" data-testid="chat-jump" @click=${this.jumpToEnd}>
              ${this.unseen} new message${this.unseen === 1 ? "" : "s"} ↓
            </button>`
          : nothing}
      </div>
      ${this.renderComposer()}
    </section>`;
  }

  private renderTop(): TemplateResult | typeof nothing {
    if (this.loading) return html`<p class="start" role="status">Loading messages…</p>`;
    if (this.nextBefore !== null) {
      return html`<div class="older">
        <button
          type="button"
          class="secondary"
          data-testid="chat-load-older"
          ?disabled=${this.loadingOlder}
          @click=${this.loadOlder}
        >
          ${this.loadingOlder ? "Loading…" : "Load older messages"}
        </button>
      </div>`;
    }
    if (this.error) return nothing;
    return html`<p class="start">${this.messages.length ? "This is the start of the conversation." : "No messages yet. Say hello!"}</p>`;
  }

  private renderMessage(m: ChatMessage, previous: ChatMessage | undefined, me: number | null): TemplateResult {
    const author = m.author ?? { id: 0, display_name: "Someone", avatar_color: "#8a94a6" };
    const first =
      !previous ||
      previous.author?.id !== m.author?.id ||
      m.reply_to !== null ||
      Date.parse(m.sent_at) - Date.parse(previous.sent_at) > GROUP_SPAN_MS;
    const mine = me !== null && author.id === me;
    const mentionsMe = me !== null && !mine && m.mentions.includes(me);
    const classes = ["msg", first ? "first" : "", mentionsMe ? "mentions-me" : ""].join(" ");
    return html`<article
      class=${classes}
      tabindex="-1"
      data-testid="chat-message"
      data-seq=${m.seq}
      data-author=${author.id}
      data-mine=${mine ? "true" : "false"}
      aria-label=${`${author.display_name}, ${messageTime(m.sent_at)}`}
    >
      <div class="avatar-col">${first ? avatarDot(author) : nothing}</div>
      <div>
        ${first
          ? html`<div class="head">
              <span class="author" data-testid="chat-author">${author.display_name}</span>
              <time datetime=${m.sent_at}>${messageTime(m.sent_at)}</time>
            </div>`
          : nothing}
        ${m.reply_to !== null ? this.renderQuote(m.reply_to) : nothing}
        ${this.editing === m.seq ? this.renderEditor(m) : this.renderBody(m)}
        ${this.renderReactions(m, me)}
        ${this.confirming === m.seq
          ? html`<div class="confirm" role="group" aria-label="Delete this message?">
              Delete this message?
              <button type="button" class="danger" data-testid="chat-delete-confirm" @click=${() => this.deleteMessage(m)}>
                Delete
              </button>
              <button type="button" class="secondary" @click=${() => (this.confirming = null)}>Cancel</button>
            </div>`
          : nothing}
        ${this.picking === m.seq
          ? html`<div class="picker" role="group" aria-label="Add a reaction">
              ${QUICK_REACTIONS.map(
                (emoji) =>
                  html`<button type="button" data-testid="chat-emoji" data-emoji=${emoji} @click=${() => this.react(m, emoji)}>
                    ${emoji}
                  </button>`,
              )}
            </div>`
          : nothing}
      </div>
      ${m.deleted || this.editing === m.seq ? nothing : this.renderTools(m)}
    </article>`;
  }

  private renderBody(m: ChatMessage): TemplateResult {
    if (m.deleted) return html`<div class="text deleted" data-testid="chat-text">Message deleted</div>`;
    return html`<div class="text" data-testid="chat-text">
      ${this.markdown(m.text)}${m.edited_at ? html` <span class="edited" title=${m.edited_at}>(edited)</span>` : nothing}
    </div>`;
  }

  private markdown(text: string): TemplateResult {
    if (!this.renderReady || !this.render_) return html`<span class="plain">${text}</span>`;
    let rendered = this.htmlCache.get(text);
    if (rendered === undefined) {
      rendered = this.render_.markdownToSafeHtml(text);
      if (this.htmlCache.size > 2000) this.htmlCache.clear();
      this.htmlCache.set(text, rendered);
    }
    return html`${unsafeHTML(rendered)}`;
  }

  private renderQuote(seq: number): TemplateResult {
    const target = this.bySeq.get(seq);
    const snippet = target
      ? target.deleted
        ? "a deleted message"
        : `${target.author?.display_name ?? "Someone"}: ${plainText(target.text).slice(0, 120)}`
      : "an earlier message";
    return html`<button type="button" class="quote" data-testid="chat-quote" @click=${() => this.scrollToMessage(seq)}>
      ↪ Reply to ${snippet}
    </button>`;
  }

  private renderEditor(m: ChatMessage): TemplateResult {
    return html`<div>
      <label class="visually-hidden" for="edit-${m.seq}">Edit message</label>
      <textarea
        id="edit-${m.seq}"
        data-testid="chat-edit-input"
        maxlength=${MAX_LENGTH}
        .value=${m.text}
        @keydown=${(event: KeyboardEvent) => {
          if (event.key === "Enter" && !event.shiftKey) {
            event.preventDefault();
            void this.saveEdit(m);
          } else if (event.key === "Escape") {
            this.editing = null;
          }
        }}
      ></textarea>
      <div class="edit-actions">
        <button type="button" data-testid="chat-edit-save" @click=${() => this.saveEdit(m)}>Save</button>
        <button type="button" class="secondary" @click=${() => (this.editing = null)}>Cancel</button>
      </div>
    </div>`;
  }

  private renderReactions(m: ChatMessage, me: number | null): TemplateResult | typeof nothing {
    const entries = Object.entries(m.reactions).filter(([, users]) => users.length > 0);
    if (!entries.length || m.deleted) return nothing;
    return html`<div class="reactions">
      ${entries.map(([emoji, users]) => {
        const mine = me !== null && users.includes(me);
        return html`<button
          type="button"
          data-testid="chat-reaction"
          data-emoji=${emoji}
          data-count=${users.length}
          aria-pressed=${mine ? "true" : "false"}
          aria-label=${`${emoji} ${users.length}${mine ? ", including you" : ""}`}
          ?disabled=${!!this.disabledReason}
          @click=${() => this.react(m, emoji)}
        >
          ${emoji} ${users.length}
        </button>`;
      })}
    </div>`;
  }

  private renderTools(m: ChatMessage): TemplateResult {
    const disabled = !!this.disabledReason;
    return html`<div class="tools ${this.picking === m.seq ? "open" : ""}" role="toolbar" aria-label="Message actions">
      ${disabled
        ? nothing
        : html`<button
              type="button"
              data-testid="chat-reply"
              @click=${() => {
                this.replyTo = m;
                this.input?.focus();
              }}
            >
              Reply
            </button>
            <button
              type="button"
              data-testid="chat-react"
              aria-expanded=${this.picking === m.seq ? "true" : "false"}
              @click=${() => (this.picking = this.picking === m.seq ? null : m.seq)}
            >
              React
            </button>`}
      ${this.canEdit(m)
        ? html`<button type="button" data-testid="chat-edit" @click=${() => (this.editing = m.seq)}>Edit</button>`
        : nothing}
      ${this.canDelete(m)
        ? html`<button type="button" data-testid="chat-delete" @click=${() => (this.confirming = m.seq)}>Delete</button>`
        : nothing}
    </div>`;
  }

  private renderPending(p: Pending): TemplateResult {
    const me = auth.user;
    return html`<article
      class="msg first pending ${p.state === "failed" ? "failed" : ""}"
      data-testid="chat-pending"
      data-state=${p.state}
    >
      <div class="avatar-col">${me ? avatarDot(me) : nothing}</div>
      <div>
        <div class="head">
          <span class="author">${me?.display_name ?? "You"}</span>
          <time>${p.state === "sending" ? "sending…" : ""}</time>
        </div>
        <div class="text plain">${p.text}</div>
        ${p.error
          ? html`<div class="failed-note" role="alert">
              ${p.error}
              <button type="button" class="secondary" data-testid="chat-retry" @click=${() => this.retry(p)}>Retry</button>
              <button type="button" class="secondary" @click=${() => this.discard(p)}>Discard</button>
            </div>`
          : nothing}
      </div>
    </article>`;
  }

  private renderComposer(): TemplateResult {
    const typing = this.typing.label;
    if (this.disabledReason) {
      return html`<div class="composer">
        <div class="typing" data-testid="chat-typing" aria-live="polite">${typing ?? ""}</div>
        <p class="disabled-note" data-testid="chat-disabled">${this.disabledReason}</p>
      </div>`;
    }
    const options = this.mentionOptions();
    const cooling = this.cooldownUntil > Date.now();
    const wait = Math.ceil((this.cooldownUntil - Date.now()) / 1000);
    return html`<div class="composer">
      <div class="typing" data-testid="chat-typing" aria-live="polite">${typing ?? ""}</div>
      ${this.replyTo
        ? html`<div class="replying" data-testid="chat-replying">
            <span>Replying to <strong>${this.replyTo.author?.display_name ?? "a message"}</strong>: ${plainText(this.replyTo.text).slice(0, 80)}</span>
            <button type="button" data-testid="chat-reply-cancel" aria-label="Cancel reply" @click=${() => (this.replyTo = null)}>
              ×
            </button>
          </div>`
        : nothing}
      ${this.sendError ? html`<div class="failed-note" role="alert" data-testid="chat-send-error">${this.sendError}</div>` : nothing}
      ${options.length
        ? html`<ul class="mentions" role="listbox" aria-label="Mention someone">
            ${options.map(
              (person, i) => html`<li
                role="option"
                data-testid="chat-mention-option"
                data-user=${person.id}
                aria-selected=${i === this.mentionIndex ? "true" : "false"}
                @mousedown=${(event: Event) => {
                  event.preventDefault();
                  this.pickMention(person);
                }}
              >
                ${avatarDot(person)} ${person.display_name}
              </li>`,
            )}
          </ul>`
        : nothing}
      <div class="send-row">
        <label class="visually-hidden" for="chat-input">Message ${this.label}</label>
        <textarea
          id="chat-input"
          data-testid="chat-input"
          rows="1"
          maxlength=${MAX_LENGTH}
          placeholder="Write a message… (markdown, @ to mention)"
          autocomplete="off"
          @keydown=${this.onKeyDown}
          @input=${this.onInput}
          @blur=${() => (this.mentionQuery = null)}
        ></textarea>
        <button type="button" data-testid="chat-send" ?disabled=${cooling} @click=${() => this.send()}>
          ${cooling ? `${wait}s` : "Send"}
        </button>
      </div>
      <div class="hint-row">
        <span>Enter to send, Shift+Enter for a new line</span>
        ${this.slowModeSeconds
          ? html`<span data-testid="chat-slow-mode"
              >Slow mode: one message every ${this.slowModeSeconds} s${this.canModerate ? " (you are exempt)" : ""}</span
            >`
          : nothing}
      </div>
    </div>`;
  }
}

function describeSendError(error: unknown): string {
  if (error instanceof GatewayError) {
    switch (error.code) {
      case "rate_limited":
        return error.message || "You are sending too fast. Wait a moment.";
      case "forbidden":
        return error.message || "You cannot post here.";
      case "disconnected":
        return "Connection lost: sending again once reconnected.";
      case "timeout":
        return "Not sent: the hub did not answer. Check your connection.";
      default:
        return error.message || "Not sent.";
    }
  }
  return "Not sent.";
}

customElements.define("chat-panel", ChatPanel);

declare global {
  interface HTMLElementTagNameMap {
    "chat-panel": ChatPanel;
  }
}
