import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { Community } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import { errorAlert, field, formText, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { currentLocation, navigate } from "../router.ts";
import { UnreadController, unread } from "../social/unread.ts";
import { plainText, roleBadge, socialStyles, unreadBadge } from "../social/view.ts";
import { shared } from "../styles.ts";

const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;

/** `/communities`: every community, searchable; create one. */
export class CommunitiesPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .top {
        display: flex;
        flex-wrap: wrap;
        gap: 0.75rem;
        align-items: flex-end;
        margin-bottom: 1rem;
      }
      .top .field {
        flex: 1 1 16rem;
        margin: 0;
      }
      .members {
        color: var(--muted);
        font-size: 0.9rem;
        white-space: nowrap;
      }
      details.card summary {
        cursor: pointer;
        font-weight: 700;
      }
      details.card[open] summary {
        margin-bottom: 1rem;
      }
      .pager {
        margin-top: 1rem;
      }
    `,
  ];

  static override properties = {
    items: { state: true },
    total: { state: true },
    page: { state: true },
    q: { state: true },
    loading: { state: true },
    errors: { state: true },
    createErrors: { state: true },
    creating: { state: true },
  };

  declare items: Community[] | null;
  declare total: number;
  declare page: number;
  declare q: string;
  declare loading: boolean;
  declare errors: FormErrors | null;
  declare createErrors: FormErrors | null;
  declare creating: boolean;

  private readonly session = new AuthController(this);
  private abort: AbortController | null = null;
  private searchTimer: number | undefined;

  constructor() {
    super();
    new UnreadController(this);
    this.items = null;
    this.total = 0;
    this.page = 1;
    this.q = currentLocation().query.get("q") ?? "";
    this.loading = false;
    this.errors = null;
    this.createErrors = null;
    this.creating = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
    window.clearTimeout(this.searchTimer);
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.loading = true;
    try {
      const result = await api.searchCommunities({ q: this.q.trim(), page: this.page, page_size: PAGE_SIZE }, abort.signal);
      this.items = result.items;
      this.total = result.total;
      this.errors = null;
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    } finally {
      if (this.abort === abort) this.loading = false;
    }
  }

  override render() {
    const signedIn = !!this.session.user;
    return html`
      <h1 tabindex="-1">Communities</h1>
      <p class="lead">One community per skill or topic: meet people learning the same thing, chat, and form study groups.</p>
      <form class="top" role="search" @submit=${(e: Event) => e.preventDefault()}>
        <div class="field">
          <label for="community-q">Search</label>
          <input
            id="community-q"
            type="search"
            data-testid="community-search"
            placeholder="Name, skill or topic"
            maxlength="200"
            autocomplete="off"
            .value=${this.q}
            @input=${this.onSearch}
          />
        </div>
      </form>
      ${signedIn ? this.renderCreate() : html`<p class="muted"><a href="/login?next=/communities">Log in</a> to join or create a community.</p>`}
      ${errorAlert(this.errors)} ${this.renderList()}
    `;
  }

  private renderList() {
    if (this.items === null) return html`<p class="muted" role="status">Loading communities…</p>`;
    if (this.items.length === 0) {
      return html`<div class="card" data-testid="communities-empty">
        <p><strong>No communities found.</strong></p>
        <p class="muted">${this.q ? "Try other words." : "Be the first: create one above."}</p>
      </div>`;
    }
    const pages = Math.max(1, Math.ceil(this.total / PAGE_SIZE));
    return html`
      <p class="muted" role="status" aria-live="polite" data-testid="communities-total">
        ${this.total} communit${this.total === 1 ? "y" : "ies"}${this.loading ? " · updating…" : ""}
      </p>
      <ul class="list" data-testid="community-list">
        ${this.items.map(
          (c) => html`<li class="list-item" data-testid="community-card" data-slug=${c.slug}>
            <div class="grow">
              <h3><a href="/communities/${encodeURIComponent(c.slug)}">${c.name}</a> ${roleBadge(c.my_role)}</h3>
              ${c.description ? html`<p class="muted">${plainText(c.description).slice(0, 200)}</p>` : nothing}
              <div class="skills">${c.skills.map((s) => html`<span class="badge">${s}</span>`)}</div>
            </div>
            ${c.my_role ? unreadBadge(unread.community(c.id)) : nothing}
            <span class="members">${c.member_count} member${c.member_count === 1 ? "" : "s"}</span>
          </li>`,
        )}
      </ul>
      ${pages > 1
        ? html`<nav class="actions pager" aria-label="Pages">
            <button type="button" class="secondary" ?disabled=${this.page <= 1} @click=${() => this.go(this.page - 1)}>
              Previous
            </button>
            <span>Page ${this.page} of ${pages}</span>
            <button type="button" class="secondary" ?disabled=${this.page >= pages} @click=${() => this.go(this.page + 1)}>
              Next
            </button>
          </nav>`
        : nothing}
    `;
  }

  private renderCreate() {
    return html`<details class="card" data-testid="community-create">
      <summary>Create a community</summary>
      <form @submit=${this.create} @input=${this.suggestSlug} novalidate>
        ${errorAlert(this.createErrors)}
        ${field({
          id: "cc-name",
          name: "name",
          label: "Name",
          testid: "community-name",
          errors: this.createErrors,
          required: true,
          maxlength: 100,
        })}
        ${field({
          id: "cc-slug",
          name: "slug",
          label: "Address",
          testid: "community-slug",
          errors: this.createErrors,
          hint: "Lowercase letters, digits and dashes: /communities/<address>",
          required: true,
          maxlength: 64,
        })}
        ${field({
          id: "cc-skills",
          name: "skills",
          label: "Skills",
          testid: "community-skills",
          errors: this.createErrors,
          hint: "Comma-separated, e.g. python, data science",
        })}
        ${field({
          id: "cc-description",
          name: "description",
          label: "Description",
          testid: "community-description",
          errors: this.createErrors,
          multiline: true,
          rows: 3,
        })}
        <button type="submit" data-testid="community-create-submit" ?disabled=${this.creating}>
          ${this.creating ? "Creating…" : "Create community"}
        </button>
      </form>
    </details>`;
  }

  /** The address follows the name until someone edits it by hand. */
  private suggestSlug(event: Event): void {
    const input = event.target as HTMLInputElement;
    const form = input.form;
    const slug = form?.elements.namedItem("slug");
    if (!(slug instanceof HTMLInputElement)) return;
    if (input === slug) {
      slug.dataset["edited"] = slug.value ? "true" : "";
      return;
    }
    if (input.name !== "name" || slug.dataset["edited"]) return;
    slug.value = slugify(input.value);
  }

  private onSearch(event: Event): void {
    this.q = (event.target as HTMLInputElement).value;
    window.clearTimeout(this.searchTimer);
    this.searchTimer = window.setTimeout(() => {
      this.page = 1;
      const params = new URLSearchParams();
      if (this.q.trim()) params.set("q", this.q);
      navigate(`/communities${params.size ? `?${params}` : ""}`, { replace: true });
      void this.load();
    }, SEARCH_DELAY_MS);
  }

  private go(page: number): void {
    this.page = page;
    void this.load();
    window.scrollTo(0, 0);
  }

  private async create(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const name = formText(data, "name").trim();
    const slug = formText(data, "slug").trim().toLowerCase();
    this.creating = true;
    try {
      const community = await api.createCommunity({
        name,
        slug,
        skills: formText(data, "skills")
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
        description: formText(data, "description").trim(),
      });
      this.createErrors = null;
      void unread.refresh();
      navigate(`/communities/${encodeURIComponent(community.slug)}`);
    } catch (error) {
      this.createErrors = toFormErrors(error, ["name", "slug", "skills", "description"]);
    } finally {
      this.creating = false;
    }
  }
}

/** "Data Science & ML!" → "data-science-ml": the hub's slug rule (letters, digits, single hyphens). */
export function slugify(name: string): string {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
}

customElements.define("communities-page", CommunitiesPage);
