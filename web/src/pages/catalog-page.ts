import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import { COURSE_LEVELS, type CourseCard, type CourseLevel, type CourseSort, type TagCount } from "../api/types.ts";
import { courseCard, courseStyles, LEVEL_LABELS } from "../courses/view.ts";
import { errorAlert, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { currentLocation, navigate, onRouteChange } from "../router.ts";
import { shared } from "../styles.ts";

const PAGE_SIZE = 12;
const SEARCH_DELAY_MS = 300;

const SORT_LABELS: Record<CourseSort, string> = {
  relevance: "Best match",
  popular: "Most popular",
  newest: "Newest",
  rating: "Highest rated",
  price: "Price: low to high",
  price_desc: "Price: high to low",
};

interface CatalogQuery {
  q: string;
  tag: string;
  level: CourseLevel | "";
  sort: CourseSort | "";
  page: number;
}

/** `/courses`: the catalog. Its filters live in the URL, so Back and reloads keep them. */
export class CatalogPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    css`
      .filters {
        display: grid;
        grid-template-columns: minmax(14rem, 2fr) repeat(3, minmax(9rem, 1fr));
        gap: 0.75rem;
        align-items: end;
        margin-bottom: 1.25rem;
      }
      .filters .field {
        margin: 0;
      }
      @media (max-width: 48rem) {
        .filters {
          grid-template-columns: 1fr 1fr;
        }
        .filters .search {
          grid-column: 1 / -1;
        }
      }
      .summary {
        display: flex;
        justify-content: space-between;
        flex-wrap: wrap;
        gap: 0.5rem;
        margin-bottom: 0.75rem;
      }
      .pager {
        margin-top: 1.5rem;
        justify-content: center;
      }
      .empty {
        text-align: center;
        padding: 2rem 1rem;
      }
    `,
  ];

  static override properties = {
    query: { state: true },
    courses: { state: true },
    total: { state: true },
    tags: { state: true },
    errors: { state: true },
    loading: { state: true },
  };

  declare query: CatalogQuery;
  /** null before the first answer. */
  declare courses: CourseCard[] | null;
  declare total: number;
  declare tags: TagCount[];
  declare errors: FormErrors | null;
  declare loading: boolean;

  private aborter: AbortController | null = null;
  private stopListening: (() => void) | null = null;
  private searchTimer: number | undefined;

  constructor() {
    super();
    this.query = queryFromUrl();
    this.courses = null;
    this.total = 0;
    this.tags = [];
    this.errors = null;
    this.loading = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.stopListening = onRouteChange(() => {
      if (currentLocation().path !== "/courses") return;
      const next = queryFromUrl();
      if (JSON.stringify(next) !== JSON.stringify(this.query)) {
        this.query = next;
        void this.load();
      }
    });
    this.query = queryFromUrl();
    void this.load();
    void this.loadTags();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopListening?.();
    this.aborter?.abort();
    window.clearTimeout(this.searchTimer);
  }

  private async load(): Promise<void> {
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    this.loading = true;
    this.errors = null;
    const { q, tag, level, sort, page } = this.query;
    try {
      const result = await api.searchCourses(
        { q: q.trim(), tag, level, sort, page, page_size: PAGE_SIZE },
        aborter.signal,
      );
      this.courses = result.items;
      this.total = result.total;
    } catch (error) {
      if (isAbort(error)) return;
      this.courses ??= [];
      this.errors = toFormErrors(error);
    } finally {
      if (this.aborter === aborter) this.loading = false;
    }
  }

  private async loadTags(): Promise<void> {
    try {
      this.tags = await api.listTags();
    } catch {
      // The tag filter is a convenience; searching still works without it.
    }
  }

  override render() {
    const { q, tag, level, sort } = this.query;
    const sorts: CourseSort[] = q.trim()
      ? ["relevance", "popular", "newest", "rating", "price", "price_desc"]
      : ["popular", "newest", "rating", "price", "price_desc"];
    const shownSort = sort || (q.trim() ? "relevance" : "popular");
    const tagOptions = this.tags.some((t) => t.tag.toLowerCase() === tag.toLowerCase()) || !tag
      ? this.tags
      : [{ tag, count: 0 }, ...this.tags];
    return html`
      <h1 tabindex="-1">Courses</h1>
      <p class="lead">Learn from verified teachers, at your own pace.</p>
      <form class="filters" role="search" @submit=${this.onSubmit}>
        <div class="field search">
          <label for="catalog-q">Search</label>
          <input
            id="catalog-q"
            type="search"
            name="q"
            data-testid="catalog-search"
            placeholder="Title, topic or skill"
            maxlength="200"
            autocomplete="off"
            .value=${q}
            @input=${this.onSearchInput}
          />
        </div>
        <div class="field">
          <label for="catalog-tag">Skill</label>
          <select id="catalog-tag" data-testid="catalog-tag" @change=${(e: Event) => this.setFilter("tag", value(e))}>
            <option value="" ?selected=${!tag}>All skills</option>
            ${tagOptions.map(
              (t) => html`<option value=${t.tag} ?selected=${t.tag.toLowerCase() === tag.toLowerCase()}>${t.tag}</option>`,
            )}
          </select>
        </div>
        <div class="field">
          <label for="catalog-level">Level</label>
          <select id="catalog-level" data-testid="catalog-level" @change=${(e: Event) => this.setFilter("level", value(e))}>
            <option value="" ?selected=${!level}>All levels</option>
            ${COURSE_LEVELS.map((l) => html`<option value=${l} ?selected=${l === level}>${LEVEL_LABELS[l]}</option>`)}
          </select>
        </div>
        <div class="field">
          <label for="catalog-sort">Sort by</label>
          <select id="catalog-sort" data-testid="catalog-sort" @change=${(e: Event) => this.setFilter("sort", value(e))}>
            ${sorts.map((s) => html`<option value=${s} ?selected=${s === shownSort}>${SORT_LABELS[s]}</option>`)}
          </select>
        </div>
      </form>
      ${errorAlert(this.errors)} ${this.renderResults()}
    `;
  }

  private renderResults() {
    const courses = this.courses;
    if (courses === null) return html`<p class="muted" role="status">Loading courses…</p>`;
    const { page } = this.query;
    const pages = Math.max(1, Math.ceil(this.total / PAGE_SIZE));
    if (courses.length === 0) {
      return html`<div class="card empty" data-testid="catalog-empty">
        <p><strong>No courses found.</strong></p>
        <p class="muted">Try other words or fewer filters.</p>
      </div>`;
    }
    return html`
      <div class="summary">
        <span class="muted" role="status" aria-live="polite" data-testid="catalog-total"
          >${this.total} course${this.total === 1 ? "" : "s"}${this.loading ? " · updating…" : ""}</span
        >
        ${pages > 1 ? html`<span class="muted">Page ${page} of ${pages}</span>` : nothing}
      </div>
      <ul class="course-grid" data-testid="course-list" aria-busy=${this.loading ? "true" : "false"}>
        ${courses.map((course) => courseCard(course))}
      </ul>
      ${pages > 1
        ? html`<nav class="actions pager" aria-label="Pages">
            <button
              type="button"
              class="secondary"
              data-testid="catalog-prev"
              ?disabled=${page <= 1}
              @click=${() => this.goToPage(page - 1)}
            >
              Previous
            </button>
            <span>Page ${page} of ${pages}</span>
            <button
              type="button"
              class="secondary"
              data-testid="catalog-next"
              ?disabled=${page >= pages}
              @click=${() => this.goToPage(page + 1)}
            >
              Next
            </button>
          </nav>`
        : nothing}
    `;
  }

  private onSearchInput(event: Event): void {
    const q = (event.target as HTMLInputElement).value;
    window.clearTimeout(this.searchTimer);
    this.searchTimer = window.setTimeout(() => this.push({ ...this.query, q, page: 1 }, true), SEARCH_DELAY_MS);
  }

  private onSubmit(event: SubmitEvent): void {
    event.preventDefault();
    window.clearTimeout(this.searchTimer);
    const input = this.renderRoot.querySelector<HTMLInputElement>("#catalog-q");
    this.push({ ...this.query, q: input?.value ?? "", page: 1 });
  }

  private setFilter(name: "tag" | "level" | "sort", value: string): void {
    this.push({ ...this.query, [name]: value, page: 1 } as CatalogQuery);
  }

  private goToPage(page: number): void {
    this.push({ ...this.query, page });
    window.scrollTo(0, 0);
  }

  /** Typing replaces the history entry; deliberate choices add one. */
  private push(query: CatalogQuery, replace = false): void {
    // A sort of "relevance" means nothing without words to match.
    if (!query.q.trim() && query.sort === "relevance") query = { ...query, sort: "" };
    const params = new URLSearchParams();
    // Kept as typed (a trailing space included) so the box does not change under the cursor.
    if (query.q.trim()) params.set("q", query.q);
    if (query.tag) params.set("tag", query.tag);
    if (query.level) params.set("level", query.level);
    if (query.sort) params.set("sort", query.sort);
    if (query.page > 1) params.set("page", String(query.page));
    const search = params.toString();
    navigate(`/courses${search ? `?${search}` : ""}`, { replace });
  }
}

function value(event: Event): string {
  return (event.target as HTMLSelectElement).value;
}

function queryFromUrl(): CatalogQuery {
  const params = currentLocation().query;
  const level = params.get("level") ?? "";
  const sort = params.get("sort") ?? "";
  const page = Number.parseInt(params.get("page") ?? "1", 10);
  return {
    q: params.get("q") ?? "",
    tag: params.get("tag") ?? "",
    level: COURSE_LEVELS.find((l) => l === level) ?? "",
    sort: (Object.keys(SORT_LABELS) as CourseSort[]).find((s) => s === sort) ?? "",
    page: Number.isFinite(page) && page > 0 ? page : 1,
  };
}

customElements.define("catalog-page", CatalogPage);
