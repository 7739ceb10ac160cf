import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { AppNotification, NotificationPreferences } from "../api/types.ts";
import { errorAlert, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import {
  describeNotification,
  notificationHref,
  notifications,
  NotificationsController,
  resolveNotificationHref,
} from "../social/notifications.ts";
import { avatarDot, relativeTime, socialStyles } from "../social/view.ts";
import { shared } from "../styles.ts";

const PAGE = 30;

/** `/notifications`: every notification, newest first, and which kinds to receive. */
export class NotificationsPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 20rem;
        gap: 1.5rem;
        align-items: start;
      }
      @media (max-width: 52rem) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      .toolbar {
        display: flex;
        justify-content: space-between;
        align-items: center;
        gap: 0.75rem;
        flex-wrap: wrap;
        margin-bottom: 0.75rem;
      }
      .toolbar label {
        font-weight: 400;
        display: inline-flex;
        gap: 0.4rem;
        align-items: center;
      }
      .toolbar input,
      .prefs input {
        width: auto;
      }
      .list-item.unread {
        border-color: var(--accent);
        background: var(--accent-soft);
      }
      .list-item a.text {
        color: var(--text);
        text-decoration: none;
      }
      .list-item a.text:hover {
        text-decoration: underline;
      }
      .prefs {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .prefs li {
        padding: 0.35rem 0;
        border-bottom: 1px solid var(--border);
      }
      .prefs li:last-child {
        border-bottom: none;
      }
      .prefs label {
        font-weight: 400;
        display: flex;
        gap: 0.55rem;
        align-items: center;
      }
      .card h2 {
        margin-top: 0;
        font-size: 1.05rem;
      }
    `,
  ];

  static override properties = {
    items: { state: true },
    cursor: { state: true },
    unreadOnly: { state: true },
    prefs: { state: true },
    errors: { state: true },
    prefNote: { state: true },
    loadingMore: { state: true },
  };

  declare items: AppNotification[] | null;
  declare cursor: number | null;
  declare unreadOnly: boolean;
  declare prefs: NotificationPreferences | null;
  declare errors: FormErrors | null;
  declare prefNote: string | null;
  declare loadingMore: boolean;

  private abort: AbortController | null = null;
  private readonly onLive = (event: Event): void => {
    const n = (event as CustomEvent<AppNotification>).detail;
    if (this.items === null) return;
    this.items = [n, ...this.items.filter((x) => x.id !== n.id)];
  };

  constructor() {
    super();
    new NotificationsController(this);
    this.items = null;
    this.cursor = null;
    this.unreadOnly = false;
    this.prefs = null;
    this.errors = null;
    this.prefNote = null;
    this.loadingMore = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    notifications.addEventListener("notification", this.onLive);
    void this.load();
    void api.notificationPreferences().then(
      (prefs) => (this.prefs = prefs),
      (error) => (this.errors = toFormErrors(error)),
    );
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    notifications.removeEventListener("notification", this.onLive);
    this.abort?.abort();
  }

  private async load(more = false): Promise<void> {
    if (!more) {
      this.abort?.abort();
      this.abort = new AbortController();
    }
    this.loadingMore = more;
    try {
      const page = await api.listNotifications(
        { cursor: more ? this.cursor : null, limit: PAGE, unread: this.unreadOnly },
        this.abort?.signal,
      );
      this.items = more ? [...(this.items ?? []), ...page.items] : page.items;
      this.cursor = page.next_cursor;
      this.errors = null;
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    } finally {
      this.loadingMore = false;
    }
  }

  override render() {
    const unreadCount = notifications.unread ?? 0;
    return html`
      <h1 tabindex="-1">Notifications</h1>
      ${errorAlert(this.errors)}
      <div class="layout">
        <div>
          <div class="toolbar">
            <span class="muted" data-testid="notifications-unread">${unreadCount} unread</span>
            <label><input type="checkbox" .checked=${this.unreadOnly} @change=${this.toggleUnreadOnly} /> Unread only</label>
            <button type="button" class="secondary small" data-testid="notifications-page-read-all" ?disabled=${!unreadCount} @click=${this.readAll}>
              Mark all read
            </button>
          </div>
          ${this.renderList()}
        </div>
        ${this.renderPrefs()}
      </div>
    `;
  }

  private renderList() {
    if (this.items === null) return html`<p class="muted" role="status">Loading…</p>`;
    if (!this.items.length) return html`<div class="card muted" data-testid="notifications-empty">Nothing here.</div>`;
    return html`<ul class="list" data-testid="notification-list">
        ${this.items.map((n) => {
          // The store knows about reads made from the bell or other tabs.
          const live = notifications.items.find((x) => x.id === n.id);
          const read = live ? live.read : n.read;
          const actor = n.actors[0];
          return html`<li class="list-item ${read ? "" : "unread"}" data-testid="notification-row" data-id=${n.id} data-read=${read ? "true" : "false"}>
            ${actor ? avatarDot(actor) : nothing}
            <div class="grow">
              <a class="text" href=${notificationHref(n) ?? "/notifications"} @click=${(e: MouseEvent) => this.open(e, n)}>${describeNotification(n)}</a>
              <div class="muted"><time datetime=${n.updated_at}>${relativeTime(n.updated_at)}</time></div>
            </div>
            ${read
              ? nothing
              : html`<button type="button" class="small secondary" data-testid="notification-mark-read" @click=${() => this.markRead(n)}>
                  Mark read
                </button>`}
          </li>`;
        })}
      </ul>
      ${this.cursor !== null
        ? html`<button type="button" class="secondary" ?disabled=${this.loadingMore} @click=${() => this.load(true)}>
            ${this.loadingMore ? "Loading…" : "Older notifications"}
          </button>`
        : nothing}`;
  }

  private renderPrefs() {
    const prefs = this.prefs;
    return html`<form class="card" data-testid="notification-preferences" @change=${this.savePrefs}>
      <h2>What to notify me about</h2>
      ${prefs === null
        ? html`<p class="muted">Loading…</p>`
        : html`<ul class="prefs">
            ${Object.entries(prefs.labels).map(
              ([type, label]) => html`<li>
                <label>
                  <input type="checkbox" name=${type} data-testid="notification-pref" data-type=${type} .checked=${!prefs.muted[type]} />
                  ${label.charAt(0).toUpperCase() + label.slice(1)}
                </label>
              </li>`,
            )}
          </ul>`}
      ${successNote(this.prefNote)}
    </form>`;
  }

  private toggleUnreadOnly(event: Event): void {
    this.unreadOnly = (event.target as HTMLInputElement).checked;
    void this.load();
  }

  private open(event: MouseEvent, n: AppNotification): void {
    event.preventDefault();
    if (!n.read) void this.markRead(n);
    void resolveNotificationHref(n).then((href) => navigate(href));
  }

  private async markRead(n: AppNotification): Promise<void> {
    try {
      this.items = (this.items ?? []).map((x) => (x.id === n.id ? { ...x, read: true } : x));
      await notifications.markRead(n.id);
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }

  private async readAll(): Promise<void> {
    try {
      this.items = (this.items ?? []).map((x) => ({ ...x, read: true }));
      await notifications.markAllRead();
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }

  private async savePrefs(event: Event): Promise<void> {
    const input = event.target as HTMLInputElement;
    if (!this.prefs || input.type !== "checkbox") return;
    try {
      this.prefs = await api.setNotificationPreferences({ [input.name]: !input.checked });
      this.prefNote = input.checked ? "Turned on." : "Muted: these will no longer be stored or shown.";
    } catch (error) {
      input.checked = !input.checked;
      this.errors = toFormErrors(error);
    }
  }
}

customElements.define("notifications-page", NotificationsPage);
