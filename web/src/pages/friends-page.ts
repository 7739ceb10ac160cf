import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { AppNotification, BlockedUser, Friends, Person } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import { errorAlert, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { PresenceController } from "../realtime/presence.ts";
import { notifications } from "../social/notifications.ts";
import { UnreadController, unread } from "../social/unread.ts";
import { avatarDot, personName, relativeTime, socialStyles, unreadBadge } from "../social/view.ts";
import { shared } from "../styles.ts";

/** `/friends`: friends (with online dots), requests both ways, adding by user id, blocking. */
export class FriendsPage extends LitElement {
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
      .card h2 {
        margin-top: 0;
        font-size: 1.05rem;
      }
      .me-id {
        font-variant-numeric: tabular-nums;
        font-weight: 700;
      }
      .confirm {
        display: flex;
        gap: 0.35rem;
        align-items: center;
        font-size: 0.85rem;
      }
    `,
  ];

  static override properties = {
    data: { state: true },
    blocks: { state: true },
    errors: { state: true },
    note: { state: true },
    confirmBlock: { state: true },
  };

  declare data: Friends | null;
  declare blocks: BlockedUser[] | null;
  declare errors: FormErrors | null;
  declare note: string | null;
  declare confirmBlock: number | null;

  private readonly session = new AuthController(this);
  private readonly presence = new PresenceController(this);
  private abort: AbortController | null = null;
  private readonly onNotification = (event: Event): void => {
    const n = (event as CustomEvent<AppNotification>).detail;
    if (n.type === "friend.request" || n.type === "friend.accepted") void this.load();
  };

  constructor() {
    super();
    new UnreadController(this);
    this.data = null;
    this.blocks = null;
    this.errors = null;
    this.note = null;
    this.confirmBlock = null;
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

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const [data, blocks] = await Promise.all([api.listFriends(abort.signal), api.listBlocks(abort.signal).catch(() => [])]);
      this.data = data;
      this.blocks = blocks;
      this.presence.watch(data.friends.map((f) => f.dm_channel));
      for (const f of data.friends) unread.track(f.dm_channel);
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    }
  }

  override render() {
    const me = this.session.user;
    return html`
      <h1 tabindex="-1">Friends</h1>
      <p class="lead">Friends can send each other direct messages.</p>
      ${errorAlert(this.errors)} ${successNote(this.note)}
      <div class="layout">
        <div>
          ${this.renderIncoming()}
          <h2>Your friends</h2>
          ${this.renderFriends()} ${this.renderOutgoing()}
        </div>
        <div>
          <form class="card" @submit=${this.add} data-testid="friend-add-form">
            <h2>Add a friend</h2>
            <p class="hint">Ask them for their user id (yours is <span class="me-id" data-testid="my-user-id">${me?.id ?? "…"}</span>).</p>
            <div class="row-form">
              <div class="field">
                <label for="friend-id">User id</label>
                <input id="friend-id" name="user_id" data-testid="friend-add-id" inputmode="numeric" pattern="[0-9]+" required />
              </div>
              <button type="submit" data-testid="friend-add">Send request</button>
            </div>
          </form>
          ${this.renderBlocks()}
        </div>
      </div>
    `;
  }

  private renderIncoming() {
    const incoming = this.data?.incoming ?? [];
    if (!incoming.length) return nothing;
    return html`<h2>Friend requests</h2>
      <ul class="list" data-testid="friend-incoming">
        ${incoming.map(
          (r) => html`<li class="list-item" data-testid="friend-request" data-user=${r.user.id}>
            ${avatarDot(r.user)}
            <div class="grow"><strong>${personName(r.user)}</strong> <span class="muted">· ${relativeTime(r.created_at)}</span></div>
            <button type="button" class="small" data-testid="friend-accept" @click=${() => this.accept(r.user)}>Accept</button>
            <button type="button" class="small secondary" data-testid="friend-decline" @click=${() => this.decline(r.user)}>Decline</button>
            ${this.renderBlockButton(r.user)}
          </li>`,
        )}
      </ul>`;
  }

  private renderFriends() {
    if (this.data === null) return html`<p class="muted" role="status">Loading…</p>`;
    const friends = [...this.data.friends].sort(
      (a, b) =>
        Number(this.presence.isOnline(b.user.id, b.dm_channel)) - Number(this.presence.isOnline(a.user.id, a.dm_channel)) ||
        a.user.display_name.localeCompare(b.user.display_name),
    );
    if (!friends.length) {
      return html`<div class="card" data-testid="friends-empty"><p class="muted">No friends yet: add someone by their user id.</p></div>`;
    }
    return html`<ul class="list" data-testid="friend-list">
      ${friends.map((f) => {
        const online = this.presence.isOnline(f.user.id, f.dm_channel);
        return html`<li class="list-item" data-testid="friend" data-user=${f.user.id}>
          ${avatarDot(f.user, online)}
          <div class="grow">
            <strong>${personName(f.user, online)}</strong>
            <div class="muted">${online ? "Online" : "Offline"} · friends since ${relativeTime(f.since)}</div>
          </div>
          ${unreadBadge(unread.count(f.dm_channel))}
          <a href="/messages/${f.user.id}" data-testid="friend-message">Message</a>
          <button type="button" class="small secondary" data-testid="friend-remove" @click=${() => this.removeFriend(f.user)}>Remove</button>
          ${this.renderBlockButton(f.user)}
        </li>`;
      })}
    </ul>`;
  }

  private renderBlockButton(user: Person) {
    if (this.confirmBlock === user.id) {
      return html`<span class="confirm">
        Block ${user.display_name}?
        <button type="button" class="small danger" data-testid="friend-block-confirm" @click=${() => this.block(user)}>Block</button>
        <button type="button" class="small secondary" @click=${() => (this.confirmBlock = null)}>Cancel</button>
      </span>`;
    }
    return html`<button type="button" class="small secondary" data-testid="friend-block" @click=${() => (this.confirmBlock = user.id)}>
      Block
    </button>`;
  }

  private renderOutgoing() {
    const outgoing = this.data?.outgoing ?? [];
    if (!outgoing.length) return nothing;
    return html`<h2>Sent requests</h2>
      <ul class="list" data-testid="friend-outgoing">
        ${outgoing.map(
          (r) => html`<li class="list-item" data-testid="friend-pending" data-user=${r.user.id}>
            ${avatarDot(r.user)}
            <div class="grow"><strong>${personName(r.user)}</strong> <span class="muted">· waiting since ${relativeTime(r.created_at)}</span></div>
            <button type="button" class="small secondary" data-testid="friend-cancel" @click=${() => this.removeFriend(r.user)}>Cancel</button>
          </li>`,
        )}
      </ul>`;
  }

  private renderBlocks() {
    if (!this.blocks?.length) return nothing;
    return html`<section class="card">
      <h2>Blocked</h2>
      <ul class="people" data-testid="block-list">
        ${this.blocks.map(
          (b) => html`<li class="person" data-user=${b.user.id}>
            ${avatarDot(b.user)}
            <span class="name">${b.user.display_name}</span>
            <button type="button" class="small secondary" data-testid="unblock" @click=${() => this.unblock(b.user)}>Unblock</button>
          </li>`,
        )}
      </ul>
    </section>`;
  }

  private async act(task: () => Promise<string>): Promise<void> {
    this.errors = null;
    try {
      this.note = await task();
      await this.load();
    } catch (error) {
      this.note = null;
      this.errors = toFormErrors(error);
    }
  }

  private add(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const userId = Number(new FormData(form).get("user_id"));
    if (!Number.isInteger(userId) || userId <= 0) {
      this.errors = { message: "Enter a user id: a whole number.", extra: [], fields: {} };
      return Promise.resolve();
    }
    return this.act(async () => {
      const { status } = await api.requestFriend(userId);
      form.reset();
      return status === "accepted" ? "You are now friends." : "Friend request sent.";
    });
  }

  private accept(user: Person): Promise<void> {
    return this.act(async () => {
      await api.acceptFriend(user.id);
      return `You and ${user.display_name} are now friends.`;
    });
  }

  private decline(user: Person): Promise<void> {
    return this.act(async () => {
      await api.declineFriend(user.id);
      return `Declined ${user.display_name}'s request.`;
    });
  }

  private removeFriend(user: Person): Promise<void> {
    return this.act(async () => {
      await api.removeFriend(user.id);
      return `${user.display_name} is no longer on your list.`;
    });
  }

  private block(user: Person): Promise<void> {
    this.confirmBlock = null;
    return this.act(async () => {
      await api.blockUser(user.id);
      return `${user.display_name} is blocked.`;
    });
  }

  private unblock(user: Person): Promise<void> {
    return this.act(async () => {
      await api.unblockUser(user.id);
      return `${user.display_name} is unblocked.`;
    });
  }
}

customElements.define("friends-page", FriendsPage);
