import { css, html, LitElement, nothing } from "lit";
import type { AppNotification } from "../api/types.ts";
import { navigate } from "../router.ts";
import {
  describeNotification,
  notificationHref,
  notifications,
  NotificationsController,
  resolveNotificationHref,
} from "../social/notifications.ts";
import { shared } from "../styles.ts";
import { avatarDot, relativeTime, socialStyles } from "../social/view.ts";

/**
 * `<notification-bell>`: the navigation's bell with the live unread count and a dropdown of
 * recent notifications. Test ids: bell, bell-count, bell-panel, notification-item (with
 * data-id and data-read), notifications-read-all, notifications-all-link.
 */
export class NotificationBell extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      :host {
        position: relative;
        display: inline-block;
      }
      .bell {
        position: relative;
        background: transparent;
        color: var(--text);
        border: 1px solid var(--border);
        border-radius: 999px;
        padding: 0.3rem 0.5rem;
        display: inline-flex;
        align-items: center;
        line-height: 1;
      }
      .bell:hover:not(:disabled),
      .bell[aria-expanded="true"] {
        background: var(--hover);
      }
      .count {
        position: absolute;
        top: -0.45rem;
        right: -0.45rem;
        min-width: 1.2rem;
        height: 1.2rem;
        padding: 0 0.3rem;
        border-radius: 999px;
        background: var(--danger);
        color: var(--on-danger);
        font-size: 0.72rem;
        font-weight: 700;
        display: inline-flex;
        align-items: center;
        justify-content: center;
        font-variant-numeric: tabular-nums;
      }
      .panel {
        position: absolute;
        right: 0;
        top: calc(100% + 0.5rem);
        width: min(24rem, calc(100vw - 1.5rem));
        background: var(--surface);
        border: 1px solid var(--border);
        border-radius: var(--radius);
        box-shadow: 0 10px 30px rgb(0 0 0 / 0.18);
        z-index: 20;
        overflow: hidden;
      }
      .panel header {
        display: flex;
        justify-content: space-between;
        align-items: center;
        padding: 0.6rem 0.9rem;
        border-bottom: 1px solid var(--border);
      }
      .panel h2 {
        margin: 0;
        font-size: 1rem;
      }
      .panel ul {
        list-style: none;
        margin: 0;
        padding: 0;
        max-height: 24rem;
        overflow-y: auto;
      }
      .item {
        display: flex;
        gap: 0.6rem;
        align-items: flex-start;
        padding: 0.6rem 0.9rem;
        border-bottom: 1px solid var(--border);
        cursor: pointer;
        color: var(--text);
        text-decoration: none;
      }
      .item:hover,
      .item:focus-visible {
        background: var(--hover);
      }
      .item.unread {
        background: var(--accent-soft);
      }
      .item .text {
        flex: 1 1 auto;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .item time {
        display: block;
        color: var(--muted);
        font-size: 0.8rem;
      }
      .link {
        background: none;
        border: none;
        color: var(--accent);
        padding: 0.2rem 0.3rem;
        font-weight: 600;
        font-size: 0.9rem;
      }
      .link:hover:not(:disabled) {
        background: var(--hover);
      }
      .panel footer {
        padding: 0.55rem 0.9rem;
        text-align: center;
      }
      .empty {
        padding: 1rem 0.9rem;
        margin: 0;
      }
    `,
  ];

  static override properties = {
    open: { state: true },
    loading: { state: true },
    failed: { state: true },
  };

  declare open: boolean;
  declare loading: boolean;
  declare failed: boolean;

  private readonly onDocumentClick = (event: MouseEvent): void => {
    if (this.open && !event.composedPath().includes(this)) this.open = false;
  };
  private readonly onKey = (event: KeyboardEvent): void => {
    if (this.open && event.key === "Escape") {
      this.open = false;
      this.renderRoot.querySelector<HTMLButtonElement>(".bell")?.focus();
    }
  };

  constructor() {
    super();
    new NotificationsController(this);
    this.open = false;
    this.loading = false;
    this.failed = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    document.addEventListener("click", this.onDocumentClick);
    document.addEventListener("keydown", this.onKey);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    document.removeEventListener("click", this.onDocumentClick);
    document.removeEventListener("keydown", this.onKey);
  }

  override render() {
    const count = notifications.unread ?? 0;
    const label = count ? `Notifications: ${count} unread` : "Notifications";
    return html`
      <button
        type="button"
        class="bell"
        data-testid="bell"
        aria-label=${label}
        aria-haspopup="true"
        aria-expanded=${this.open ? "true" : "false"}
        @click=${this.toggle}
      >
        <svg viewBox="0 0 24 24" width="1.2em" height="1.2em" aria-hidden="true">
          <path
            d="M12 3a6 6 0 0 0-6 6v3.5L4.5 16h15L18 12.5V9a6 6 0 0 0-6-6zm-2.2 15a2.3 2.3 0 0 0 4.4 0"
            fill="none"
            stroke="currentColor"
            stroke-width="1.8"
            stroke-linejoin="round"
          />
        </svg>
        ${count
          ? html`<span class="count" data-testid="bell-count" aria-hidden="true">${count > 99 ? "99+" : count}</span>`
          : nothing}
      </button>
      <span class="visually-hidden" role="status" aria-live="polite">${count ? `${count} unread notifications` : ""}</span>
      ${this.open ? this.renderPanel() : nothing}
    `;
  }

  private renderPanel() {
    const items = notifications.items;
    return html`<div class="panel" data-testid="bell-panel" role="dialog" aria-label="Notifications">
      <header>
        <h2>Notifications</h2>
        <button
          type="button"
          class="link"
          data-testid="notifications-read-all"
          ?disabled=${!notifications.unread}
          @click=${this.readAll}
        >
          Mark all read
        </button>
      </header>
      ${this.loading && !notifications.loaded
        ? html`<p class="muted empty" role="status">Loading…</p>`
        : this.failed && !notifications.loaded
          ? html`<p class="muted empty" role="alert">Could not load notifications.</p>`
          : items.length === 0
            ? html`<p class="muted empty" data-testid="notifications-empty">Nothing yet. Friend requests, mentions and
                invitations show up here.</p>`
            : html`<ul>
                ${items.map((n) => this.renderItem(n))}
              </ul>`}
      <footer><a href="/notifications" data-testid="notifications-all-link" @click=${this.close}>See all and settings</a></footer>
    </div>`;
  }

  private renderItem(n: AppNotification) {
    const actor = n.actors[0];
    return html`<li>
      <a
        class="item ${n.read ? "" : "unread"}"
        href=${notificationHref(n) ?? "/notifications"}
        data-testid="notification-item"
        data-id=${n.id}
        data-type=${n.type}
        data-read=${n.read ? "true" : "false"}
        @click=${(event: MouseEvent) => this.openItem(event, n)}
      >
        ${actor ? avatarDot(actor) : nothing}
        <span class="text">
          ${describeNotification(n)}
          <time datetime=${n.updated_at}>${relativeTime(n.updated_at)}</time>
        </span>
        ${n.read ? nothing : html`<span class="visually-hidden">(unread)</span>`}
      </a>
    </li>`;
  }

  private async toggle(): Promise<void> {
    this.open = !this.open;
    if (!this.open) return;
    this.loading = true;
    this.failed = false;
    try {
      await notifications.load();
    } catch {
      this.failed = true;
    } finally {
      this.loading = false;
    }
  }

  private close(): void {
    this.open = false;
  }

  private openItem(event: MouseEvent, n: AppNotification): void {
    event.preventDefault();
    this.open = false;
    if (!n.read) void notifications.markRead(n.id).catch(() => undefined);
    void resolveNotificationHref(n).then((href) => navigate(href));
  }

  private async readAll(): Promise<void> {
    try {
      await notifications.markAllRead();
    } catch {
      // The count stays as the hub last said.
    }
  }
}

customElements.define("notification-bell", NotificationBell);

declare global {
  interface HTMLElementTagNameMap {
    "notification-bell": NotificationBell;
  }
}
