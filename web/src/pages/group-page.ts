import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { GroupMember, StudyGroup } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/chat-panel.ts";
import { errorAlert, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { unread } from "../social/unread.ts";
import { avatarDot, personName, roleBadge, socialStyles } from "../social/view.ts";
import { shared } from "../styles.ts";

/** `/groups/:id`: a study group's members, invitations and chat. */
export class GroupPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 17rem;
        gap: 1rem;
        align-items: start;
      }
      @media (max-width: 52rem) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      aside.card {
        padding: 0.9rem;
      }
      aside h2 {
        margin: 0 0 0.5rem;
        font-size: 1rem;
      }
      aside h2 + * {
        margin-top: 0;
      }
      aside section + section {
        margin-top: 1.25rem;
      }
      .invite-link {
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
        font-size: 0.8rem;
        overflow-wrap: anywhere;
        background: var(--hover);
        border-radius: 6px;
        padding: 0.35rem 0.5rem;
        margin-bottom: 0.4rem;
      }
      .hero {
        display: flex;
        justify-content: space-between;
        gap: 1rem;
        flex-wrap: wrap;
        align-items: flex-start;
      }
    `,
  ];

  static override properties = {
    groupId: {},
    group: { state: true },
    members: { state: true },
    online: { state: true },
    errors: { state: true },
    actionErrors: { state: true },
    note: { state: true },
    missing: { state: true },
    busy: { state: true },
  };

  declare groupId: string;
  declare group: StudyGroup | null;
  declare members: GroupMember[];
  declare online: Set<number>;
  declare errors: FormErrors | null;
  declare actionErrors: FormErrors | null;
  declare note: string | null;
  declare missing: boolean;
  declare busy: boolean;

  private readonly session = new AuthController(this);
  private abort: AbortController | null = null;
  private reloadTimer: number | undefined;

  constructor() {
    super();
    this.groupId = "";
    this.group = null;
    this.members = [];
    this.online = new Set();
    this.errors = null;
    this.actionErrors = null;
    this.note = null;
    this.missing = false;
    this.busy = false;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
    window.clearTimeout(this.reloadTimer);
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("groupId") && this.groupId) void this.load();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.missing = false;
    try {
      const [group, members] = await Promise.all([
        api.getGroup(this.groupId, abort.signal),
        api.groupMembers(Number(this.groupId), abort.signal),
      ]);
      this.group = group;
      this.members = members;
      this.errors = null;
      unread.track(group.channel);
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) this.missing = true;
      else this.errors = toFormErrors(error);
    }
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Study group not found</h1>
        <p class="lead">It does not exist, or you are not a member. Ask a member for an invite link.</p>
        <a href="/groups">Your study groups</a>`;
    }
    const g = this.group;
    if (!g) return html`${errorAlert(this.errors)}<p class="muted" role="status">${this.errors ? "" : "Loading…"}</p>`;
    return html`
      <div class="hero">
        <div>
          <h1 tabindex="-1">${g.name}</h1>
          <p class="muted">
            ${g.member_count} member${g.member_count === 1 ? "" : "s"} · owner ${g.owner.display_name}
            ${g.community_id ? html` · part of a <a href="/communities">community</a>` : nothing}
          </p>
        </div>
        <button type="button" class="secondary" data-testid="group-leave" ?disabled=${this.busy} @click=${this.leave}>Leave group</button>
      </div>
      ${g.description ? html`<p class="prose">${g.description}</p>` : nothing} ${successNote(this.note)} ${errorAlert(this.actionErrors)}
      <div class="layout">
        <chat-panel
          .channel=${g.channel}
          .label=${g.name}
          .members=${this.members.map((m) => m.user)}
          .canModerate=${g.my_role === "owner"}
          @presence=${this.onPresence}
          @refused=${() => void this.load()}
        ></chat-panel>
        <aside class="card">
          <section aria-label="Members">
            <h2>Members</h2>
            <ul class="people" data-testid="group-members">
              ${this.members.map((m) => {
                const online = this.online.has(m.user.id);
                return html`<li class="person" data-testid="member" data-user=${m.user.id}>
                  ${avatarDot(m.user, online)}
                  <span class="name">${personName(m.user, online)}${m.user.id === this.session.user?.id ? html` <span class="muted">(you)</span>` : nothing}</span>
                  ${m.role && m.role !== "member" ? roleBadge(m.role) : nothing}
                </li>`;
              })}
            </ul>
          </section>
          <section aria-label="Invite">
            <h2>Invite</h2>
            ${g.invite_code
              ? html`<div class="invite-link" data-testid="group-invite-link">${this.inviteUrl(g.invite_code)}</div>
                  <button type="button" class="small secondary" data-testid="group-copy-link" @click=${() => this.copyLink(g.invite_code ?? "")}>
                    Copy invite link
                  </button>`
              : nothing}
            <form class="row-form" style="margin-top:0.75rem" @submit=${this.invite}>
              <div class="field">
                <label for="invite-user">User id</label>
                <input id="invite-user" name="user_id" data-testid="group-invite-user" inputmode="numeric" pattern="[0-9]+" required />
              </div>
              <button type="submit" class="small" data-testid="group-invite-submit">Invite</button>
            </form>
          </section>
        </aside>
      </div>
    `;
  }

  private readonly onPresence = (event: CustomEvent<readonly { id: number }[]>): void => {
    this.online = new Set(event.detail.map((p) => p.id));
    // Someone online we do not list has just joined.
    if (event.detail.some((p) => !this.members.some((m) => m.user.id === p.id))) {
      window.clearTimeout(this.reloadTimer);
      this.reloadTimer = window.setTimeout(() => {
        const id = Number(this.groupId);
        void Promise.all([api.getGroup(id), api.groupMembers(id)]).then(
          ([group, members]) => {
            if (Number(this.groupId) !== id) return;
            this.group = group;
            this.members = members;
          },
          () => undefined,
        );
      }, 500);
    }
  };

  private inviteUrl(code: string): string {
    return new URL(`/groups/join/${encodeURIComponent(code)}`, window.location.origin).href;
  }

  private async copyLink(code: string): Promise<void> {
    const url = this.inviteUrl(code);
    try {
      await navigator.clipboard.writeText(url);
      this.note = "Invite link copied.";
    } catch {
      // No clipboard permission (or plain http): select the text so it can be copied by hand.
      const box = this.renderRoot.querySelector("[data-testid=group-invite-link]");
      if (box) window.getSelection()?.selectAllChildren(box);
      this.note = "Select and copy the link above.";
    }
  }

  private async invite(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const value = new FormData(form).get("user_id");
    const userId = Number(value);
    const g = this.group;
    if (!g || !Number.isInteger(userId) || userId <= 0) return;
    this.actionErrors = null;
    try {
      await api.inviteToGroup(g.id, userId);
      this.note = `Invitation sent to user ${userId}.`;
      form.reset();
    } catch (error) {
      this.actionErrors = toFormErrors(error);
    }
  }

  private async leave(): Promise<void> {
    const g = this.group;
    if (!g) return;
    this.busy = true;
    try {
      await api.leaveGroup(g.id);
      unread.untrack(g.channel);
      navigate("/groups");
    } catch (error) {
      this.actionErrors = toFormErrors(error);
    } finally {
      this.busy = false;
    }
  }
}

customElements.define("group-page", GroupPage);
