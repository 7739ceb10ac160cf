import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Community, CommunityBan, CommunityChannel, CommunityMember, CommunityRole, Person, StudyGroup } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/chat-panel.ts";
import "../components/cohort-markdown.ts";
import { errorAlert, formatDate, formText, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { gateway } from "../realtime/gateway.ts";
import { currentLocation, navigate, onRouteChange } from "../router.ts";
import { UnreadController, unread } from "../social/unread.ts";
import { avatarDot, personName, roleBadge, roleRank, socialStyles, unreadBadge } from "../social/view.ts";
import { shared } from "../styles.ts";
import { formatCoins, wallet } from "../wallet.ts";

const MEMBER_PAGE = 50;
const MUTE_CHOICES: readonly { minutes: number; label: string }[] = [
  { minutes: 10, label: "10 minutes" },
  { minutes: 60, label: "1 hour" },
  { minutes: 1440, label: "1 day" },
  { minutes: 10080, label: "1 week" },
];
const SLOW_MODES: readonly number[] = [0, 5, 10, 30, 60, 300];

/** `/communities/:slug`: about, members with roles and online dots, channels and their chat. */
export class CommunityPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .hero {
        display: flex;
        flex-wrap: wrap;
        justify-content: space-between;
        gap: 1rem;
        align-items: flex-start;
        margin-bottom: 1rem;
      }
      .hero .meta {
        color: var(--muted);
      }
      .layout {
        display: grid;
        grid-template-columns: 11rem minmax(0, 1fr) 15rem;
        gap: 1rem;
        align-items: start;
      }
      @media (max-width: 60rem) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      aside.card,
      section.card {
        padding: 0.9rem;
      }
      aside h2,
      section.card h2 {
        margin: 0 0 0.6rem;
        font-size: 1rem;
      }
      .channels {
        list-style: none;
        margin: 0 0 0.75rem;
        padding: 0;
      }
      .channels a {
        display: flex;
        justify-content: space-between;
        align-items: center;
        gap: 0.4rem;
        color: var(--text);
        text-decoration: none;
        padding: 0.3rem 0.5rem;
        border-radius: 6px;
        overflow-wrap: anywhere;
      }
      .channels a:hover {
        background: var(--hover);
      }
      .channels a[aria-current="page"] {
        background: var(--accent-soft);
        color: var(--accent-strong);
        font-weight: 700;
      }
      .channel-tools {
        display: flex;
        gap: 0.5rem;
        align-items: center;
        justify-content: flex-end;
        margin-bottom: 0.5rem;
        font-size: 0.9rem;
      }
      .channel-tools select {
        width: auto;
      }
      .join-card {
        text-align: center;
        padding: 2rem 1rem;
      }
      details.manage summary {
        cursor: pointer;
        font-size: 0.8rem;
        color: var(--accent);
        list-style: none;
      }
      details.manage[open] {
        flex-basis: 100%;
      }
      .manage-body {
        display: grid;
        gap: 0.4rem;
        padding: 0.5rem 0 0.25rem;
      }
      .manage-body label {
        font-size: 0.8rem;
        font-weight: 600;
      }
      .manage-body .line {
        display: flex;
        gap: 0.35rem;
      }
      .manage-body select,
      .manage-body input {
        padding: 0.25rem 0.4rem;
        font-size: 0.85rem;
      }
      .muted-note {
        display: block;
        font-weight: 400;
        font-size: 0.75rem;
        color: var(--warning);
      }
      .about {
        margin-bottom: 1rem;
        max-width: 48rem;
      }
      .lower {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr));
        gap: 1rem;
        margin-top: 1rem;
      }
      .small-form .field {
        margin-bottom: 0.5rem;
      }
      .more {
        margin-top: 0.5rem;
      }
    `,
  ];

  static override properties = {
    slug: {},
    community: { state: true },
    members: { state: true },
    membersCursor: { state: true },
    groups: { state: true },
    bans: { state: true },
    online: { state: true },
    errors: { state: true },
    actionErrors: { state: true },
    note: { state: true },
    busy: { state: true },
    notFound: { state: true },
  };

  declare slug: string;
  declare community: Community | null;
  declare members: CommunityMember[];
  declare membersCursor: string | number | null;
  declare groups: StudyGroup[] | null;
  declare bans: CommunityBan[] | null;
  declare online: Set<number>;
  declare errors: FormErrors | null;
  declare actionErrors: FormErrors | null;
  declare note: string | null;
  declare busy: boolean;
  declare notFound: boolean;

  private readonly session = new AuthController(this);
  private abort: AbortController | null = null;
  private stopPresence: (() => void) | null = null;
  private presenceChannel: string | null = null;
  private stopRoute: (() => void) | null = null;
  private reloadMembersTimer: number | undefined;

  constructor() {
    super();
    new UnreadController(this);
    this.slug = "";
    this.community = null;
    this.members = [];
    this.membersCursor = null;
    this.groups = null;
    this.bans = null;
    this.online = new Set();
    this.errors = null;
    this.actionErrors = null;
    this.note = null;
    this.busy = false;
    this.notFound = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    // ?channel= changes without a new page element.
    this.stopRoute = onRouteChange(() => this.requestUpdate());
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopRoute?.();
    this.abort?.abort();
    this.watchPresence(null);
    window.clearTimeout(this.reloadMembersTimer);
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("slug") && this.slug) void this.load();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.notFound = false;
    try {
      const community = await api.getCommunityBySlug(this.slug, abort.signal);
      this.community = community;
      this.errors = null;
      this.afterLoad(community, abort.signal);
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.notFound = true;
      else this.errors = toFormErrors(error);
    }
  }

  private afterLoad(community: Community, signal: AbortSignal): void {
    const member = community.my_role !== null;
    this.watchPresence(member ? (community.channels[0]?.channel ?? null) : null);
    if (member) for (const c of community.channels) unread.track(c.channel);
    void this.loadMembers(true, signal);
    void api.communityGroups(community.id, signal).then(
      (groups) => (this.groups = groups),
      () => (this.groups = []),
    );
    if (roleRank(community.my_role) >= roleRank("admin")) {
      void api.communityBans(community.id, signal).then(
        (bans) => (this.bans = bans),
        () => (this.bans = null),
      );
    } else {
      this.bans = null;
    }
  }

  private async loadMembers(first: boolean, signal?: AbortSignal): Promise<void> {
    const community = this.community;
    if (!community) return;
    try {
      const page = await api.communityMembers(community.id, first ? null : this.membersCursor, MEMBER_PAGE, signal);
      this.members = first ? page.items : [...this.members, ...page.items.filter((m) => !this.members.some((x) => x.user.id === m.user.id))];
      this.membersCursor = page.next_cursor;
    } catch (error) {
      if (!isAbort(error)) this.actionErrors = toFormErrors(error);
    }
  }

  /** Someone new showed up: the list and the count change. */
  private async refreshMembers(): Promise<void> {
    await this.loadMembers(true);
    try {
      const community = await api.getCommunityBySlug(this.slug);
      if (community.id === this.community?.id) this.community = community;
    } catch {
      // The count stays as it was.
    }
  }

  private watchPresence(channel: string | null): void {
    if (channel === this.presenceChannel) return;
    this.stopPresence?.();
    this.stopPresence = null;
    this.presenceChannel = channel;
    this.online = new Set();
    if (!channel) return;
    this.stopPresence = gateway.subscribe(channel, {
      presence: (people) => {
        this.online = new Set(people.map((p) => p.id));
        // Someone online we do not list yet has just joined: list them.
        if (people.some((p) => !this.members.some((m) => m.user.id === p.id)) && this.membersCursor === null) {
          window.clearTimeout(this.reloadMembersTimer);
          this.reloadMembersTimer = window.setTimeout(() => void this.refreshMembers(), 500);
        }
      },
    });
  }

  // ---- rendering ----------------------------------------------------------------------------

  override render() {
    if (this.notFound) {
      return html`<h1 tabindex="-1">Community not found</h1>
        <p class="lead">There is no community at this address. <a href="/communities">Browse communities</a>.</p>`;
    }
    const c = this.community;
    if (!c) {
      return html`${errorAlert(this.errors)}
        <p class="muted" role="status">${this.errors ? "" : "Loading community…"}</p>`;
    }
    return html`
      <div class="hero">
        <div>
          <h1 tabindex="-1">${c.name}</h1>
          <div class="meta">
            <span data-testid="community-member-count">${c.member_count} member${c.member_count === 1 ? "" : "s"}</span>
            · owner <a href="/users/${c.owner.id}">${c.owner.display_name}</a> ${roleBadge(c.my_role)}
          </div>
          <div class="skills">${c.skills.map((s) => html`<span class="badge">${s}</span>`)}</div>
        </div>
        <div class="actions">${this.renderMembership(c)}</div>
      </div>
      ${successNote(this.note)} ${errorAlert(this.actionErrors)}
      ${c.description
        ? html`<cohort-markdown class="about" data-testid="community-about" .source=${c.description}></cohort-markdown>`
        : nothing}
      <div class="layout">
        ${this.renderChannels(c)} ${this.renderChat(c)} ${this.renderMembers(c)}
      </div>
      <div class="lower">${this.renderGroups(c)} ${this.renderBans(c)}</div>
    `;
  }

  private renderMembership(c: Community) {
    if (!this.session.user) {
      return html`<a href="/login?next=${encodeURIComponent(currentLocation().path)}">Log in to join</a>`;
    }
    if (c.my_role === null) {
      return html`<button type="button" data-testid="community-join" ?disabled=${this.busy} @click=${this.join}>
        ${this.busy ? "Joining…" : "Join community"}
      </button>`;
    }
    if (c.my_role === "owner") return nothing;
    return html`<button type="button" class="secondary" data-testid="community-leave" ?disabled=${this.busy} @click=${this.leave}>
      Leave
    </button>`;
  }

  private selectedChannel(c: Community): CommunityChannel | null {
    const wanted = currentLocation().query.get("channel");
    return c.channels.find((ch) => ch.slug === wanted) ?? c.channels[0] ?? null;
  }

  private renderChannels(c: Community) {
    const selected = this.selectedChannel(c);
    const admin = roleRank(c.my_role) >= roleRank("admin");
    return html`<aside class="card" aria-label="Channels">
      <h2>Channels</h2>
      <ul class="channels" data-testid="channel-list">
        ${c.channels.map(
          (ch, i) => html`<li>
            <a
              href="/communities/${encodeURIComponent(c.slug)}${i === 0 ? "" : `?channel=${encodeURIComponent(ch.slug)}`}"
              data-testid="channel-link"
              data-channel=${ch.channel}
              aria-current=${ch === selected ? "page" : nothing}
            >
              <span># ${ch.name}</span> ${c.my_role && ch !== selected ? unreadBadge(unread.count(ch.channel)) : nothing}
            </a>
          </li>`,
        )}
      </ul>
      ${admin
        ? html`<details>
            <summary class="muted">New channel</summary>
            <form class="small-form" @submit=${this.createChannel}>
              <div class="field">
                <label for="ch-name">Name</label>
                <input id="ch-name" name="name" data-testid="channel-name" required maxlength="100" />
              </div>
              <div class="field">
                <label for="ch-slug">Address</label>
                <input id="ch-slug" name="slug" data-testid="channel-slug" required maxlength="64" />
              </div>
              <div class="field">
                <label for="ch-slow">Slow mode</label>
                <select id="ch-slow" name="slow_mode_seconds">
                  ${SLOW_MODES.map((s) => html`<option value=${s}>${slowLabel(s)}</option>`)}
                </select>
              </div>
              <button type="submit" class="small" data-testid="channel-create">Create</button>
            </form>
          </details>`
        : nothing}
    </aside>`;
  }

  private renderChat(c: Community) {
    const channel = this.selectedChannel(c);
    if (!channel) return html`<section class="card">No channels.</section>`;
    if (c.my_role === null) {
      return html`<section class="card join-card">
        <h2># ${channel.name}</h2>
        <p class="muted">Join the community to read and write in its channels.</p>
        ${this.session.user
          ? html`<button type="button" ?disabled=${this.busy} @click=${this.join}>Join ${c.name}</button>`
          : html`<a href="/login?next=${encodeURIComponent(currentLocation().path)}">Log in</a>`}
      </section>`;
    }
    const rank = roleRank(c.my_role);
    const mutedUntil = c.muted_until ? Date.parse(c.muted_until) : 0;
    const muted = mutedUntil > gateway.serverNow();
    return html`<section>
      ${rank >= roleRank("admin")
        ? html`<div class="channel-tools">
            <label for="slow-mode">Slow mode</label>
            <select
              id="slow-mode"
              class="small"
              data-testid="slow-mode"
              @change=${(e: Event) => this.setSlowMode(channel, Number((e.target as HTMLSelectElement).value))}
            >
              ${SLOW_MODES.includes(channel.slow_mode_seconds)
                ? nothing
                : html`<option selected value=${channel.slow_mode_seconds}>${slowLabel(channel.slow_mode_seconds)}</option>`}
              ${SLOW_MODES.map((s) => html`<option value=${s} ?selected=${s === channel.slow_mode_seconds}>${slowLabel(s)}</option>`)}
            </select>
          </div>`
        : nothing}
      <chat-panel
        .channel=${channel.channel}
        .label=${`# ${channel.name}`}
        .members=${this.members.map((m) => m.user)}
        .canModerate=${rank >= roleRank("moderator")}
        .slowModeSeconds=${channel.slow_mode_seconds}
        .disabledReason=${muted ? `You are muted in this community until ${formatDate(c.muted_until)}.` : null}
        @refused=${() => void this.load()}
      ></chat-panel>
    </section>`;
  }

  private renderMembers(c: Community) {
    const me = this.session.user?.id;
    const sorted = [...this.members].sort(
      (a, b) =>
        Number(this.online.has(b.user.id)) - Number(this.online.has(a.user.id)) ||
        roleRank(b.role) - roleRank(a.role) ||
        a.user.display_name.localeCompare(b.user.display_name),
    );
    const onlineCount = this.members.filter((m) => this.online.has(m.user.id)).length;
    return html`<aside class="card" aria-label="Members">
      <h2>Members <span class="muted">· ${onlineCount} online</span></h2>
      <ul class="people" data-testid="member-list">
        ${sorted.map((m) => {
          const online = this.online.has(m.user.id);
          const mutedUntil = m.muted_until && Date.parse(m.muted_until) > Date.now() ? m.muted_until : null;
          return html`<li class="person" data-testid="member" data-user=${m.user.id} data-role=${m.role}>
            ${avatarDot(m.user, c.my_role ? online : undefined)}
            <span class="name">
              ${personName(m.user, online)}${m.user.id === me ? html` <span class="muted">(you)</span>` : nothing}
              ${mutedUntil ? html`<span class="muted-note" data-testid="member-muted">muted until ${formatDate(mutedUntil)}</span>` : nothing}
            </span>
            ${m.role === "member" ? nothing : roleBadge(m.role)} ${this.renderManage(c, m)}
          </li>`;
        })}
      </ul>
      ${this.membersCursor !== null
        ? html`<button type="button" class="secondary small more" @click=${() => this.loadMembers(false)}>More members</button>`
        : nothing}
    </aside>`;
  }

  private renderManage(c: Community, m: CommunityMember) {
    const mine = roleRank(c.my_role);
    const theirs = roleRank(m.role);
    if (m.user.id === this.session.user?.id || mine < roleRank("moderator") || theirs >= mine) return nothing;
    const roles: Exclude<CommunityRole, "owner">[] =
      c.my_role === "owner" ? ["admin", "moderator", "member"] : c.my_role === "admin" ? ["moderator", "member"] : [];
    return html`<details class="manage" data-testid="member-manage">
      <summary>Manage</summary>
      <div class="manage-body">
        ${roles.length
          ? html`<label for="role-${m.user.id}">Role</label>
              <select
                id="role-${m.user.id}"
                data-testid="member-role-select"
                @change=${(e: Event) => this.setRole(m.user, (e.target as HTMLSelectElement).value as Exclude<CommunityRole, "owner">)}
              >
                ${roles.map((r) => html`<option value=${r} ?selected=${r === m.role}>${r}</option>`)}
              </select>`
          : nothing}
        <label for="mute-${m.user.id}">Mute</label>
        <div class="line">
          <select id="mute-${m.user.id}" data-testid="member-mute-minutes">
            ${MUTE_CHOICES.map((choice) => html`<option value=${choice.minutes}>${choice.label}</option>`)}
          </select>
          <button type="button" class="small secondary" data-testid="member-mute" @click=${() => this.mute(m.user, this.muteMinutes(m.user.id))}>
            Mute
          </button>
        </div>
        ${m.muted_until && Date.parse(m.muted_until) > Date.now()
          ? html`<button type="button" class="small secondary" data-testid="member-unmute" @click=${() => this.mute(m.user, 0)}>Unmute</button>`
          : nothing}
        ${mine >= roleRank("admin")
          ? html`<label for="ban-${m.user.id}">Ban (reason)</label>
              <div class="line">
                <input id="ban-${m.user.id}" data-testid="member-ban-reason" maxlength="500" placeholder="Reason" />
                <button type="button" class="small danger" data-testid="member-ban" @click=${() => this.ban(m.user)}>Ban</button>
              </div>`
          : nothing}
      </div>
    </details>`;
  }

  private renderGroups(c: Community) {
    return html`<section class="card" aria-label="Study groups">
      <h2>Study groups</h2>
      ${this.groups === null
        ? html`<p class="muted">Loading…</p>`
        : this.groups.length === 0
          ? html`<p class="muted">No study groups yet.</p>`
          : html`<ul class="people" data-testid="community-groups">
              ${this.groups.map(
                (g) => html`<li class="person">
                  <span class="name">
                    ${g.my_role ? html`<a href="/groups/${g.id}">${g.name}</a>` : g.name}
                    <small>${g.member_count} member${g.member_count === 1 ? "" : "s"}${g.my_role ? " · you are in it" : ""}</small>
                  </span>
                </li>`,
              )}
            </ul>`}
      ${c.my_role
        ? html`<details>
            <summary class="muted">Start a study group here</summary>
            <form class="small-form" @submit=${this.createGroup}>
              <div class="field">
                <label for="g-name">Name</label>
                <input id="g-name" name="name" data-testid="community-group-name" required maxlength="100" />
              </div>
              <div class="field">
                <label for="g-desc">Description</label>
                <input id="g-desc" name="description" maxlength="500" />
              </div>
              <button type="submit" class="small" data-testid="community-group-create">Create group</button>
            </form>
          </details>`
        : nothing}
    </section>`;
  }

  private renderBans(c: Community) {
    if (roleRank(c.my_role) < roleRank("admin") || this.bans === null) return nothing;
    return html`<section class="card" aria-label="Bans">
      <h2>Banned</h2>
      ${this.bans.length === 0
        ? html`<p class="muted">Nobody is banned.</p>`
        : html`<ul class="people" data-testid="ban-list">
            ${this.bans.map(
              (b) => html`<li class="person" data-testid="ban" data-user=${b.user.id}>
                ${avatarDot(b.user)}
                <span class="name">${b.user.display_name}${b.reason ? html`<small>${b.reason}</small>` : nothing}</span>
                <button type="button" class="small secondary" data-testid="ban-lift" @click=${() => this.liftBan(b.user)}>Lift</button>
              </li>`,
            )}
          </ul>`}
    </section>`;
  }

  // ---- actions ------------------------------------------------------------------------------

  private async run(task: () => Promise<void>): Promise<void> {
    this.busy = true;
    this.actionErrors = null;
    try {
      await task();
    } catch (error) {
      this.actionErrors = toFormErrors(error);
    } finally {
      this.busy = false;
    }
  }

  private join = (): Promise<void> =>
    this.run(async () => {
      const c = this.community;
      if (!c) return;
      const result = await api.joinCommunity(c.id);
      this.note = result.reward > 0 ? `Welcome to ${c.name}! You earned ${formatCoins(result.reward)}.` : `Welcome back to ${c.name}!`;
      if (result.reward > 0) void wallet.refresh();
      await this.load();
      void unread.refresh();
    });

  private leave = (): Promise<void> =>
    this.run(async () => {
      const c = this.community;
      if (!c) return;
      await api.leaveCommunity(c.id);
      for (const ch of c.channels) unread.untrack(ch.channel);
      this.note = `You left ${c.name}.`;
      await this.load();
    });

  private setRole(user: Person, role: Exclude<CommunityRole, "owner">): Promise<void> {
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      await api.setCommunityRole(c.id, user.id, role);
      this.note = `${user.display_name} is now ${role}.`;
      await this.loadMembers(true);
    });
  }

  private muteMinutes(userId: number): number {
    const select = this.renderRoot.querySelector<HTMLSelectElement>(`#mute-${userId}`);
    return Number(select?.value ?? 10);
  }

  private mute(user: Person, minutes: number): Promise<void> {
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      await api.muteCommunityMember(c.id, user.id, minutes);
      this.note = minutes ? `${user.display_name} is muted for ${minutes} minutes.` : `${user.display_name} can post again.`;
      await this.loadMembers(true);
    });
  }

  private ban(user: Person): Promise<void> {
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      const reason = this.renderRoot.querySelector<HTMLInputElement>(`#ban-${user.id}`)?.value.trim() ?? "";
      await api.banFromCommunity(c.id, user.id, reason);
      this.note = `${user.display_name} is banned.`;
      await this.load();
    });
  }

  private liftBan(user: Person): Promise<void> {
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      await api.liftCommunityBan(c.id, user.id);
      this.note = `${user.display_name} may join again.`;
      this.bans = await api.communityBans(c.id);
    });
  }

  private createChannel = (event: SubmitEvent): Promise<void> => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      const channel = await api.createCommunityChannel(c.id, {
        name: formText(data, "name").trim(),
        slug: formText(data, "slug").trim().toLowerCase(),
        slow_mode_seconds: Number(formText(data, "slow_mode_seconds") || 0),
      });
      form.reset();
      await this.load();
      navigate(`/communities/${encodeURIComponent(c.slug)}?channel=${encodeURIComponent(channel.slug)}`);
    });
  };

  private setSlowMode(channel: CommunityChannel, seconds: number): Promise<void> {
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      await api.updateCommunityChannel(c.id, channel.slug, { slow_mode_seconds: seconds });
      this.note = seconds ? `Slow mode in #${channel.name}: ${slowLabel(seconds)}.` : `Slow mode is off in #${channel.name}.`;
      await this.load();
    });
  }

  private createGroup = (event: SubmitEvent): Promise<void> => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    return this.run(async () => {
      const c = this.community;
      if (!c) return;
      const group = await api.createGroup({
        name: formText(data, "name").trim(),
        description: formText(data, "description").trim(),
        community_id: c.id,
      });
      void unread.refresh();
      navigate(`/groups/${group.id}`);
    });
  };
}

function slowLabel(seconds: number): string {
  if (!seconds) return "Off";
  if (seconds < 60) return `${seconds} s`;
  return `${Math.round(seconds / 60)} min`;
}

customElements.define("community-page", CommunityPage);
