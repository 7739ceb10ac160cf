import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import { COURSE_LEVELS, type CourseLevel, type StudioCourseItem } from "../api/types.ts";
import { AuthController, canUploadVideos } from "../auth.ts";
import { studioNav, studioNavStyles } from "../courses/studio-nav.ts";
import { courseStyles, LEVEL_LABELS, parseTags, priceLabel } from "../courses/view.ts";
import { errorAlert, field, formText, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { shared } from "../styles.ts";
import { formatCoins } from "../wallet.ts";

const COURSE_FIELDS = ["title", "subtitle", "description", "tags", "level", "language", "price"] as const;

/** `/studio/courses`: the teacher's courses in every status, and a form for a new one. */
export class StudioCoursesPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    studioNavStyles,
    css`
      .rows {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 52rem;
      }
      .row {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1rem;
      }
      .row .main {
        flex: 1 1 16rem;
        min-width: 0;
      }
      .row .title {
        font-weight: 700;
        overflow-wrap: anywhere;
      }
      .row .meta {
        display: flex;
        flex-wrap: wrap;
        gap: 0.25rem 0.9rem;
        color: var(--muted);
        font-size: 0.9rem;
        align-items: center;
      }
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr));
        gap: 0 1rem;
      }
      form.card {
        max-width: 40rem;
      }
    `,
  ];

  static override properties = {
    courses: { state: true },
    errors: { state: true },
    formErrors: { state: true },
    creating: { state: true },
    showForm: { state: true },
  };

  declare courses: StudioCourseItem[] | null;
  declare errors: FormErrors | null;
  declare formErrors: FormErrors | null;
  declare creating: boolean;
  declare showForm: boolean;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.courses = null;
    this.errors = null;
    this.formErrors = null;
    this.creating = false;
    this.showForm = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (!canUploadVideos(this.session.user)) return;
    this.aborter = new AbortController();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  private async load(): Promise<void> {
    try {
      this.courses = await api.listStudioCourses(this.aborter?.signal);
      if (this.courses.length === 0) this.showForm = true;
    } catch (error) {
      if (isAbort(error)) return;
      this.courses ??= [];
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    const user = this.session.user;
    if (!user) return nothing;
    if (!canUploadVideos(user)) {
      return html`<h1 tabindex="-1">Your courses</h1>
        <div class="card narrow" data-testid="studio-not-teacher">
          <p>Only verified teachers can create courses.</p>
          <p><a href="/teach">Apply to teach</a></p>
        </div>`;
    }
    return html`
      <h1 tabindex="-1">Studio</h1>
      ${studioNav("courses")}
      <p class="lead">Build courses from your uploaded videos and reading lessons, then publish them.</p>
      ${errorAlert(this.errors)}
      ${this.showForm
        ? this.renderForm()
        : html`<p>
            <button type="button" data-testid="new-course" @click=${() => (this.showForm = true)}>New course</button>
          </p>`}
      <h2>Your courses</h2>
      ${this.renderList()}
    `;
  }

  private renderList() {
    const courses = this.courses;
    if (courses === null) return html`<p class="muted" role="status">Loading your courses…</p>`;
    if (courses.length === 0) return html`<p class="muted" data-testid="no-courses">No courses yet.</p>`;
    return html`<ul class="rows" data-testid="studio-course-list">
      ${courses.map((item) => {
        const course = item.course;
        const enrollments = course.enrollments ?? item.enrollments ?? 0;
        const coins = course.coins_earned ?? item.coins_earned ?? 0;
        return html`<li class="card row" data-testid="studio-course-row" data-course-id=${course.id}>
          <div class="main">
            <a class="title" href=${`/studio/courses/${course.id}`} data-testid="studio-course-link">${course.title}</a>
            <div class="meta">
              <span class="badge ${course.status}" data-testid="studio-course-status">${course.status}</span>
              ${course.price !== undefined ? html`<span>${priceLabel(course.price)}</span>` : nothing}
              <span><span data-testid="studio-course-enrollments">${enrollments}</span> enrolled</span>
              <span>${formatCoins(coins)} earned</span>
            </div>
          </div>
          <div class="actions">
            <a href=${`/studio/courses/${course.id}`}>Edit</a>
            <a href=${`/studio/courses/${course.id}/stats`} data-testid="studio-stats-link">Stats</a>
            <a href=${`/courses/${course.id}`}>Preview</a>
          </div>
        </li>`;
      })}
    </ul>`;
  }

  private renderForm() {
    const errors = this.formErrors;
    return html`<form
      class="card"
      novalidate
      data-testid="new-course-form"
      aria-labelledby="new-course-heading"
      aria-busy=${this.creating ? "true" : "false"}
      @submit=${this.create}
    >
      <h2 id="new-course-heading" style="margin-top:0">New course</h2>
      ${errorAlert(errors)}
      ${field({ id: "course-title", name: "title", label: "Title", testid: "course-title-input", errors, required: true, maxlength: 200 })}
      ${field({ id: "course-subtitle", name: "subtitle", label: "Subtitle", testid: "course-subtitle-input", errors, maxlength: 300 })}
      ${field({
        id: "course-description",
        name: "description",
        label: "Description",
        hint: "Markdown: **bold**, lists, links.",
        testid: "course-description-input",
        errors,
        multiline: true,
        rows: 5,
      })}
      ${field({
        id: "course-tags",
        name: "tags",
        label: "Skills",
        hint: "Separated by commas, e.g. python, data analysis",
        testid: "course-tags-input",
        errors,
      })}
      <div class="grid">
        <div class="field">
          <label for="course-level">Level</label>
          <select id="course-level" name="level" data-testid="course-level-input">
            ${COURSE_LEVELS.map((l) => html`<option value=${l}>${LEVEL_LABELS[l]}</option>`)}
          </select>
        </div>
        ${field({ id: "course-language", name: "language", label: "Language", testid: "course-language-input", errors, value: "en", hint: "e.g. en, fr, pt-BR" })}
        ${field({ id: "course-price", name: "price", label: "Price (coins)", testid: "course-price-input", errors, type: "number", value: "0", hint: "0 is free" })}
      </div>
      <div class="actions">
        <button type="submit" data-testid="create-course" ?disabled=${this.creating}>
          ${this.creating ? "Creating…" : "Create course"}
        </button>
        ${this.courses?.length
          ? html`<button type="button" class="secondary" @click=${() => (this.showForm = false)}>Cancel</button>`
          : nothing}
      </div>
    </form>`;
  }

  private async create(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.creating) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    this.creating = true;
    this.formErrors = null;
    try {
      const course = await api.createCourse({
        title: formText(data, "title").trim(),
        subtitle: formText(data, "subtitle").trim(),
        description: formText(data, "description"),
        tags: parseTags(formText(data, "tags")),
        level: formText(data, "level") as CourseLevel,
        language: formText(data, "language").trim() || "en",
        price: Math.max(0, Math.floor(Number(formText(data, "price")) || 0)),
      });
      navigate(`/studio/courses/${course.id}`);
    } catch (error) {
      this.formErrors = toFormErrors(error, COURSE_FIELDS);
    } finally {
      this.creating = false;
    }
  }
}

customElements.define("studio-courses-page", StudioCoursesPage);
