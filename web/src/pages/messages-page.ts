import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import * as api from "../api/endpoints.ts";
import type { AppNotification, Friend } from "../api/types.ts";
import "../components/chat-panel.ts";
import { errorAlert, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { PresenceController } from "../realtime/presence.ts";
import { notifications } from "../social/notifications.ts";
import { UnreadController, unread } from "../social/unread.ts";
import { avatarDot, socialStyles, unreadBadge } from "../social/view.ts";
import { shared } from "../styles.ts";

/** `/messages` and `/messages/:userId`: direct messages with friends. */
export class MessagesPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: 16rem minmax(0, 1fr);
        gap: 1rem;
        align-items: start;
      }
      @media (max-width: 48rem) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
        .layout.chatting .threads {
          display: none;
        }
      }
      .threads {
        padding: 0.4rem;
      }
      .threads ul {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .threads a {
        display: flex;
        align-items: center;
        gap: 0.55rem;
        padding: 0.45rem 0.5rem;
        border-radius: 6px;
        color: var(--text);
        text-decoration: none;
      }
      .threads a:hover {
        background: var(--hover);
      }
      .threads a[aria-current="page"] {
        background: var(--accent-soft);
        font-weight: 700;
      }
      .threads .who {
        flex: 1 1 auto;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .placeholder {
        text-align: center;
        padding: 3rem 1rem;
      }
      .back {
        display: none;
      }
      @media (max-width: 48rem) {
        .back {
          display: inline-block;
          margin-bottom: 0.5rem;
        }
      }
    `,
  ];

  static override properties = {
    userId: {},
    friends: { state: true },
    errors: { state: true },
  };

  declare userId: string;
  declare friends: Friend[] | null;
  declare errors: FormErrors | null;

  private readonly presence = new PresenceController(this);
  private abort: AbortController | null = null;
  private readonly onNotification = (event: Event): void => {
    const n = (event as CustomEvent<AppNotification>).detail;
    if (n.type === "friend.accepted" || n.type === "friend.request") void this.load();
  };

  constructor() {
    super();
    new UnreadController(this);
    this.userId = "";
    this.friends = null;
    this.errors = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    notifications.addEventListener("notification", this.onNotification);
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    notifications.removeEventListener("notification", this.onNotification);
    this.abort?.abort();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("userId") && changed.get("userId") !== undefined && this.friends === null) void this.load();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const { friends } = await api.listFriends(abort.signal);
      this.friends = friends;
      this.presence.watch(friends.map((f) => f.dm_channel));
      for (const f of friends) unread.track(f.dm_channel);
      this.errors = null;
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    }
  }

  override render() {
    const selected = this.friends?.find((f) => String(f.user.id) === this.userId) ?? null;
    return html`
      <h1 tabindex="-1">${selected ? `Messages with ${selected.user.display_name}` : "Messages"}</h1>
      ${errorAlert(this.errors)}
      <div class="layout ${this.userId ? "chatting" : ""}">
        <nav class="card threads" aria-label="Conversations">${this.renderThreads()}</nav>
        <div>${this.renderConversation(selected)}</div>
      </div>
    `;
  }

  private renderThreads() {
    if (this.friends === null) return html`<p class="muted" role="status">Loading…</p>`;
    if (!this.friends.length) return html`<p class="muted">No friends yet. <a href="/friends">Add friends</a> to message them.</p>`;
    const sorted = [...this.friends].sort(
      (a, b) =>
        unread.count(b.dm_channel) - unread.count(a.dm_channel) ||
        Number(this.presence.isOnline(b.user.id, b.dm_channel)) - Number(this.presence.isOnline(a.user.id, a.dm_channel)) ||
        a.user.display_name.localeCompare(b.user.display_name),
    );
    return html`<ul data-testid="dm-threads">
      ${sorted.map((f) => {
        const online = this.presence.isOnline(f.user.id, f.dm_channel);
        return html`<li>
          <a
            href="/messages/${f.user.id}"
            data-testid="dm-thread"
            data-user=${f.user.id}
            aria-current=${String(f.user.id) === this.userId ? "page" : nothing}
          >
            ${avatarDot(f.user, online)}
            <span class="who">${f.user.display_name}${online ? html`<span class="visually-hidden"> (online)</span>` : nothing}</span>
            ${String(f.user.id) === this.userId ? nothing : unreadBadge(unread.count(f.dm_channel))}
          </a>
        </li>`;
      })}
    </ul>`;
  }

  private renderConversation(selected: Friend | null) {
    if (!this.userId) {
      return html`<div class="card placeholder muted">Choose a friend to message.</div>`;
    }
    if (this.friends === null) return nothing;
    if (!selected) {
      return html`<div class="card placeholder" data-testid="dm-not-friend">
        <p>You can message friends only.</p>
        <a href="/friends">Send a friend request</a>
      </div>`;
    }
    return html`<a class="back" href="/messages">← All conversations</a>
      <chat-panel
        .channel=${selected.dm_channel}
        .label=${selected.user.display_name}
        .members=${[selected.user]}
        @refused=${() => void this.load()}
      ></chat-panel>`;
  }
}

customElements.define("messages-page", MessagesPage);
