import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { GroupInvitation, StudyGroup } from "../api/types.ts";
import { errorAlert, field, formText, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { UnreadController, unread } from "../social/unread.ts";
import { avatarDot, socialStyles, unreadBadge } from "../social/view.ts";
import { shared } from "../styles.ts";

/** `/groups`: my study groups, invitations waiting for an answer, and a new group. */
export class GroupsPage extends LitElement {
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
      h2:first-child {
        margin-top: 0;
      }
    `,
  ];

  static override properties = {
    groups: { state: true },
    invitations: { state: true },
    errors: { state: true },
    createErrors: { state: true },
    creating: { state: true },
    note: { state: true },
  };

  declare groups: StudyGroup[] | null;
  declare invitations: GroupInvitation[] | null;
  declare errors: FormErrors | null;
  declare createErrors: FormErrors | null;
  declare creating: boolean;
  declare note: string | null;

  private abort: AbortController | null = null;

  constructor() {
    super();
    new UnreadController(this);
    this.groups = null;
    this.invitations = null;
    this.errors = null;
    this.createErrors = null;
    this.creating = false;
    this.note = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const [groups, invitations] = await Promise.all([api.myGroups(abort.signal), api.myGroupInvitations(abort.signal)]);
      this.groups = groups;
      this.invitations = invitations.filter((i) => i.status === "pending" || !i.status);
      for (const g of groups) unread.track(g.channel);
      this.errors = null;
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    }
  }

  override render() {
    return html`
      <h1 tabindex="-1">Study groups</h1>
      <p class="lead">Small groups that learn together, with their own chat.</p>
      ${errorAlert(this.errors)} ${successNote(this.note)}
      <div class="layout">
        <div>
          ${this.renderInvitations()}
          <h2>My groups</h2>
          ${this.renderGroups()}
        </div>
        ${this.renderCreate()}
      </div>
    `;
  }

  private renderInvitations() {
    if (!this.invitations?.length) return nothing;
    return html`<h2>Invitations</h2>
      <ul class="list" data-testid="group-invitations">
        ${this.invitations.map(
          (inv) => html`<li class="list-item" data-testid="group-invitation" data-id=${inv.id}>
            ${avatarDot(inv.invited_by)}
            <div class="grow">
              <strong>${inv.invited_by.display_name}</strong> invited you to <strong>${inv.group.name}</strong>
            </div>
            <button type="button" class="small" data-testid="group-invitation-accept" @click=${() => this.accept(inv)}>Join</button>
            <button type="button" class="small secondary" data-testid="group-invitation-decline" @click=${() => this.decline(inv)}>
              Decline
            </button>
          </li>`,
        )}
      </ul>`;
  }

  private renderGroups() {
    if (this.groups === null) return html`<p class="muted" role="status">Loading…</p>`;
    if (this.groups.length === 0) {
      return html`<div class="card" data-testid="groups-empty">
        <p><strong>You are not in a study group yet.</strong></p>
        <p class="muted">Create one, join one from a <a href="/communities">community</a>, or open an invite link.</p>
      </div>`;
    }
    return html`<ul class="list" data-testid="group-list">
      ${this.groups.map(
        (g) => html`<li class="list-item" data-testid="group-card" data-id=${g.id}>
          <div class="grow">
            <h3><a href="/groups/${g.id}">${g.name}</a></h3>
            ${g.description ? html`<p class="muted">${g.description.slice(0, 160)}</p>` : nothing}
          </div>
          ${unreadBadge(unread.count(g.channel))}
          <span class="muted">${g.member_count} member${g.member_count === 1 ? "" : "s"}</span>
        </li>`,
      )}
    </ul>`;
  }

  private renderCreate() {
    return html`<form class="card" @submit=${this.create} novalidate data-testid="group-create">
      <h2>New study group</h2>
      ${errorAlert(this.createErrors)}
      ${field({ id: "group-name", name: "name", label: "Name", testid: "group-name", errors: this.createErrors, required: true, maxlength: 100 })}
      ${field({
        id: "group-description",
        name: "description",
        label: "What you will study",
        testid: "group-description",
        errors: this.createErrors,
        multiline: true,
        rows: 3,
        maxlength: 2000,
      })}
      <button type="submit" data-testid="group-create-submit" ?disabled=${this.creating}>${this.creating ? "Creating…" : "Create group"}</button>
    </form>`;
  }

  private async create(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    this.creating = true;
    try {
      const group = await api.createGroup({ name: formText(data, "name").trim(), description: formText(data, "description").trim() });
      this.createErrors = null;
      unread.track(group.channel);
      navigate(`/groups/${group.id}`);
    } catch (error) {
      this.createErrors = toFormErrors(error, ["name", "description"]);
    } finally {
      this.creating = false;
    }
  }

  private async accept(inv: GroupInvitation): Promise<void> {
    try {
      const group = await api.acceptGroupInvitation(inv.id);
      unread.track(group.channel);
      navigate(`/groups/${group.id}`);
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }

  private async decline(inv: GroupInvitation): Promise<void> {
    try {
      await api.declineGroupInvitation(inv.id);
      this.invitations = (this.invitations ?? []).filter((i) => i.id !== inv.id);
      this.note = `Declined the invitation to ${inv.group.name}.`;
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }
}

customElements.define("groups-page", GroupsPage);
