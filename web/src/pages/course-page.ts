import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError, newIdempotencyKey } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Course, CourseLesson, Review } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/buy-dialog.ts";
import "../components/cohort-markdown.ts";
import { canOpen, lessonHref, lessonsInOrder, nextLesson } from "../courses/curriculum.ts";
import { courseStyles, formatLength, LEVEL_LABELS, lessonCount, priceLabel, starGlyphs, stars } from "../courses/view.ts";
import { errorAlert, formatDate, formText, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { shared } from "../styles.ts";
import { formatDuration } from "../videos/format.ts";
import { formatCoins, wallet, WalletController } from "../wallet.ts";
import { iconCheck, iconLock, iconPlay, iconText } from "../icons.ts";

/** `/courses/:id`: what a course teaches, its curriculum and reviews; buy or continue. */
export class CoursePage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 19rem;
        gap: 1.5rem;
        align-items: start;
      }
      @media (max-width: 52rem) {
        .layout {
          grid-template-columns: 1fr;
        }
        .aside {
          order: -1;
        }
      }
      .subtitle {
        font-size: 1.1rem;
        color: var(--muted);
        margin-bottom: 0.75rem;
      }
      .meta {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.35rem 1rem;
        margin-bottom: 1rem;
        color: var(--muted);
      }
      .aside .card {
        padding: 0;
        overflow: hidden;
      }
      .aside .cover {
        font-size: 2.5rem;
      }
      .purchase {
        padding: 1rem 1.25rem 1.25rem;
        display: grid;
        gap: 0.6rem;
      }
      .purchase .price {
        font-size: 1.6rem;
      }
      .purchase button,
      .purchase a.button {
        width: 100%;
      }
      a.button {
        display: inline-block;
        text-align: center;
        font-weight: 600;
        padding: 0.55rem 1.1rem;
        border-radius: 6px;
        background: var(--accent);
        color: var(--on-accent);
        text-decoration: none;
      }
      a.button:hover {
        background: var(--accent-strong);
      }
      a.button.secondary {
        background: transparent;
        color: var(--text);
        border: 1px solid var(--border-strong);
      }
      .section {
        margin-bottom: 1rem;
        padding: 0;
        overflow: hidden;
      }
      .section h3 {
        margin: 0;
        padding: 0.7rem 1rem;
        font-size: 1rem;
        background: var(--hover);
        display: flex;
        justify-content: space-between;
        gap: 1rem;
      }
      .lessons {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .lesson {
        display: flex;
        align-items: center;
        gap: 0.6rem;
        padding: 0.55rem 1rem;
        border-top: 1px solid var(--border);
      }
      .lesson .name {
        flex: 1 1 auto;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .lesson .icon {
        width: 1.3rem;
        text-align: center;
        flex: none;
      }
      .lesson .length {
        color: var(--muted);
        font-variant-numeric: tabular-nums;
        font-size: 0.9rem;
      }
      .done {
        color: var(--success);
        font-weight: 700;
        display: inline-flex;
      }
      .lock {
        color: var(--muted);
        display: inline-flex;
      }
      .icon {
        display: inline-flex;
        justify-content: center;
        color: var(--muted);
      }
      .reviews {
        list-style: none;
        padding: 0;
        margin: 0;
      }
      .review header {
        display: flex;
        flex-wrap: wrap;
        justify-content: space-between;
        gap: 0.5rem;
        margin-bottom: 0.4rem;
      }
      .review p {
        margin: 0;
      }
      .review-form select {
        width: auto;
        min-width: 10rem;
      }
      .rating-summary {
        display: flex;
        align-items: baseline;
        gap: 0.75rem;
        margin-bottom: 1rem;
      }
      .rating-summary .big {
        font-size: 2rem;
        font-weight: 800;
      }
    `,
  ];

  static override properties = {
    courseId: {},
    course: { state: true },
    missing: { state: true },
    errors: { state: true },
    notice: { state: true },
    reviews: { state: true },
    reviewsCursor: { state: true },
    reviewErrors: { state: true },
    reviewSaving: { state: true },
    reviewNotice: { state: true },
    buyOpen: { state: true },
    buyBalance: { state: true },
    buying: { state: true },
    buyError: { state: true },
    buyShort: { state: true },
    enrolling: { state: true },
  };

  /** From the route. */
  declare courseId: string;
  declare course: Course | null;
  declare missing: boolean;
  declare errors: FormErrors | null;
  declare notice: string | null;
  declare reviews: Review[] | null;
  declare reviewsCursor: number | null;
  declare reviewErrors: FormErrors | null;
  declare reviewSaving: boolean;
  declare reviewNotice: string | null;
  declare buyOpen: boolean;
  declare buyBalance: number | null;
  declare buying: boolean;
  declare buyError: string | null;
  declare buyShort: boolean;
  declare enrolling: boolean;

  private readonly session = new AuthController(this);
  private readonly coins = new WalletController(this);
  private aborter: AbortController | null = null;
  /** The Idempotency-Key of the purchase attempt in progress; kept for retries of that attempt. */
  private attemptKey: string | null = null;

  constructor() {
    super();
    this.courseId = "";
    this.course = null;
    this.missing = false;
    this.errors = null;
    this.notice = null;
    this.reviews = null;
    this.reviewsCursor = null;
    this.reviewErrors = null;
    this.reviewSaving = false;
    this.reviewNotice = null;
    this.buyOpen = false;
    this.buyBalance = null;
    this.buying = false;
    this.buyError = null;
    this.buyShort = false;
    this.enrolling = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.courseId) void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("courseId") && changed.get("courseId") !== undefined && this.isConnected) void this.load();
  }

  private async load(): Promise<void> {
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    this.course = null;
    this.missing = false;
    this.errors = null;
    this.notice = null;
    this.reviews = null;
    try {
      await this.loadCourse(aborter.signal);
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.missing = true;
      else this.errors = toFormErrors(error);
      return;
    }
    void this.loadReviews(false, aborter.signal);
  }

  private async loadCourse(signal?: AbortSignal): Promise<void> {
    const course = await api.getCourse(this.courseId, signal);
    this.course = course;
    document.title = `${course.title} · Cohort`;
  }

  private async loadReviews(more: boolean, signal?: AbortSignal): Promise<void> {
    const course = this.course;
    if (!course) return;
    try {
      const list = await api.listReviews(course.id, more ? this.reviewsCursor : null, signal);
      this.reviews = more ? [...(this.reviews ?? []), ...list.items] : list.items;
      this.reviewsCursor = list.next_cursor;
      this.course = { ...course, rating: list.rating };
    } catch (error) {
      if (isAbort(error)) return;
      this.reviews ??= [];
      this.reviewErrors = toFormErrors(error);
    }
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Course not found</h1>
        <p class="lead">This course does not exist or is not published.</p>
        <p><a href="/courses">Browse courses</a></p>`;
    }
    const course = this.course;
    if (!course) {
      return html`<h1 tabindex="-1">Course</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the course…</p>`}`;
    }
    const lessons = lessonsInOrder(course);
    const length = formatLength(lessons.reduce((sum, l) => sum + (l.duration ?? 0), 0));
    return html`
      ${errorAlert(this.errors)} ${successNote(this.notice)}
      <div class="layout">
        <div>
          ${course.status !== "published"
            ? html`<p><span class="badge ${course.status}" data-testid="course-status">${course.status}</span>
                <span class="muted">Only you can see this page until the course is published.</span></p>`
            : nothing}
          <h1 tabindex="-1" data-testid="course-title">${course.title}</h1>
          ${course.subtitle ? html`<p class="subtitle">${course.subtitle}</p>` : nothing}
          <div class="meta">
            ${stars(course.rating, "course-rating")}
            <span
              >by
              <a href=${`/users/${course.owner?.id ?? course.owner_id}`} data-testid="course-teacher"
                >${course.owner?.display_name ?? "the teacher"}</a
              ></span
            >
            <span>${LEVEL_LABELS[course.level] ?? course.level}</span>
            <span>${lessonCount(lessons.length)}${length ? ` · ${length}` : ""}</span>
            ${course.enrollments !== undefined
              ? html`<span data-testid="course-enrollments">${course.enrollments} enrolled</span>`
              : nothing}
          </div>
          ${course.tags.length
            ? html`<ul class="tags" aria-label="Skills">
                ${course.tags.map(
                  (tag) => html`<li><a class="tag" href=${`/courses?tag=${encodeURIComponent(tag)}`}>${tag}</a></li>`,
                )}
              </ul>`
            : nothing}
          ${course.description
            ? html`<h2>About this course</h2>
                <cohort-markdown data-testid="course-description" .source=${course.description}></cohort-markdown>`
            : nothing}
          <h2>Curriculum</h2>
          ${this.renderCurriculum(course)}
          <h2 id="reviews-heading">Reviews</h2>
          ${this.renderReviews(course)}
        </div>
        <aside class="aside" aria-label="Enrollment">
          <div class="card">
            <div class="cover" aria-hidden="true">
              ${course.cover_url ? html`<img src=${course.cover_url} alt="" />` : html`<span>▶</span>`}
            </div>
            <div class="purchase">${this.renderPurchase(course)}</div>
          </div>
        </aside>
      </div>
      <buy-dialog
        .open=${this.buyOpen}
        .itemName=${course.title}
        .price=${course.price}
        .balance=${this.buyBalance}
        .busy=${this.buying}
        .error=${this.buyError}
        .short=${this.buyShort}
        @confirm=${this.confirmBuy}
        @cancel=${this.closeBuy}
      ></buy-dialog>
    `;
  }

  private renderPurchase(course: Course) {
    const user = this.session.user;
    const price = html`<span class="price ${course.price > 0 ? "" : "free"}" data-testid="course-price"
      >${priceLabel(course.price)}</span
    >`;
    if (user && user.id === course.owner_id) {
      return html`${price}
        <p class="muted" style="margin:0">This is your course.</p>
        <a class="button" href=${`/studio/courses/${course.id}`} data-testid="edit-course-link">Edit in the studio</a>
        <a class="button secondary" href=${`/studio/courses/${course.id}/stats`}>See how it does</a>`;
    }
    if (course.enrolled) {
      const next = nextLesson(course);
      return html`<p style="margin:0"><span class="badge approved" data-testid="enrolled-badge">Enrolled</span></p>
        ${next
          ? html`<a class="button" href=${lessonHref(course.id, next.id)} data-testid="continue-button"
              >Continue learning</a
            >`
          : html`<p class="muted">No lessons yet.</p>`}`;
    }
    const balance = this.coins.balance;
    if (course.price === 0) {
      return html`${price}
        <button type="button" data-testid="enroll-button" ?disabled=${this.enrolling} @click=${this.enrollFree}>
          ${this.enrolling ? "Enrolling…" : "Enroll for free"}
        </button>`;
    }
    return html`${price}
      <button type="button" data-testid="buy-button" @click=${this.openBuy}>Buy for ${formatCoins(course.price)}</button>
      ${user && balance !== null
        ? html`<span class="muted">Your balance: <strong data-testid="course-balance">${balance}</strong> coins ·
            <a href="/wallet">Wallet</a></span>`
        : nothing}
      ${!user ? html`<span class="muted">Log in to buy with coins.</span>` : nothing}`;
  }

  private renderCurriculum(course: Course) {
    if (course.sections.length === 0) return html`<p class="muted">No lessons yet.</p>`;
    const user = this.session.user;
    return html`<div data-testid="curriculum">
      ${course.sections.map((section) => {
        const length = formatLength(section.lessons.reduce((sum, l) => sum + (l.duration ?? 0), 0));
        return html`<section class="card section" aria-label=${section.title}>
          <h3>
            <span>${section.title}</span>
            <span class="muted">${lessonCount(section.lessons.length)}${length ? ` · ${length}` : ""}</span>
          </h3>
          <ol class="lessons">
            ${section.lessons.map((lesson) => this.renderLesson(course, lesson, user?.id ?? null, user?.is_admin ?? false))}
          </ol>
        </section>`;
      })}
    </div>`;
  }

  private renderLesson(course: Course, lesson: CourseLesson, viewerId: number | null, isAdmin: boolean) {
    const open = canOpen(course, lesson, viewerId, isAdmin);
    const duration = formatDuration(lesson.duration);
    return html`<li class="lesson" data-testid="lesson-row" data-lesson-id=${lesson.id}>
      <span class="icon" aria-hidden="true">${lesson.kind === "video" ? iconPlay : iconText}</span>
      <span class="name">
        ${open
          ? html`<a href=${lessonHref(course.id, lesson.id)} data-testid="lesson-link">${lesson.title}</a>`
          : html`<span>${lesson.title}</span>`}
        <span class="visually-hidden">${lesson.kind === "video" ? "(video)" : "(reading)"}</span>
      </span>
      ${lesson.free_preview && !course.enrolled
        ? html`<span class="badge preview" data-testid="free-preview">Free preview</span>`
        : nothing}
      ${duration ? html`<span class="length">${duration}</span>` : nothing}
      ${lesson.completed
        ? html`<span class="done" data-testid="lesson-done" role="img" aria-label="Completed">${iconCheck}</span>`
        : nothing}
      ${open ? nothing : html`<span class="lock" role="img" aria-label="Locked" data-testid="lesson-locked">${iconLock}</span>`}
    </li>`;
  }

  private renderReviews(course: Course) {
    const reviews = this.reviews;
    const user = this.session.user;
    const mine = user ? reviews?.find((r) => r.author.id === user.id) : undefined;
    const canReview = !!user && course.enrolled === true && user.id !== course.owner_id;
    return html`
      ${course.rating.average !== null && course.rating.count > 0
        ? html`<div class="rating-summary">
            <span class="big" data-testid="rating-average">${course.rating.average.toFixed(1)}</span>
            ${starGlyphs(course.rating.average)}
            <span class="muted" data-testid="rating-count"
              >${course.rating.count} review${course.rating.count === 1 ? "" : "s"}</span
            >
          </div>`
        : nothing}
      ${canReview ? this.renderReviewForm(mine) : nothing}
      ${reviews === null
        ? html`<p class="muted" role="status">Loading reviews…</p>`
        : reviews.length === 0
          ? html`<p class="muted" data-testid="no-reviews">No reviews yet.</p>`
          : html`<ul class="reviews" aria-labelledby="reviews-heading">
              ${reviews.map(
                (review) => html`<li class="card review" data-testid="review-item">
                  <header>
                    <strong>${review.author.display_name}</strong>
                    ${starGlyphs(review.rating, "review-stars")}
                  </header>
                  ${review.comment ? html`<p class="prose">${review.comment}</p>` : nothing}
                  <span class="muted" style="font-size:0.85rem">${formatDate(review.updated_at)}</span>
                </li>`,
              )}
            </ul>`}
      ${this.reviewsCursor !== null
        ? html`<button type="button" class="secondary" data-testid="reviews-more" @click=${() => this.loadReviews(true)}>
            More reviews
          </button>`
        : nothing}
    `;
  }

  private renderReviewForm(mine: Review | undefined) {
    const errors = this.reviewErrors;
    return html`<form
      class="card review-form"
      data-testid="review-form"
      novalidate
      @submit=${this.saveReview}
      aria-busy=${this.reviewSaving ? "true" : "false"}
    >
      <h3 style="margin-top:0">${mine ? "Edit your review" : "Rate this course"}</h3>
      ${errorAlert(errors)} ${successNote(this.reviewNotice)}
      <div class="field">
        <label for="review-rating">Rating</label>
        <select id="review-rating" name="rating" data-testid="review-rating">
          ${[5, 4, 3, 2, 1].map(
            (n) => html`<option value=${n} ?selected=${(mine?.rating ?? 5) === n}>
              ${"★".repeat(n)}${"☆".repeat(5 - n)} (${n} of 5)
            </option>`,
          )}
        </select>
      </div>
      <div class="field">
        <label for="review-comment">Comment (optional)</label>
        <textarea
          id="review-comment"
          name="comment"
          data-testid="review-comment"
          rows="3"
          maxlength="5000"
          .value=${mine?.comment ?? ""}
        ></textarea>
        ${errors?.fields["comment"] ? html`<span class="field-error">${errors.fields["comment"]}</span>` : nothing}
      </div>
      <button type="submit" data-testid="review-submit" ?disabled=${this.reviewSaving}>
        ${this.reviewSaving ? "Saving…" : mine ? "Update review" : "Post review"}
      </button>
    </form>`;
  }

  private async saveReview(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const course = this.course;
    if (!course || this.reviewSaving) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    this.reviewSaving = true;
    this.reviewErrors = null;
    this.reviewNotice = null;
    try {
      await api.writeReview(course.id, Number(formText(data, "rating")), formText(data, "comment"));
      this.reviewNotice = "Thanks! Your review is saved.";
      await this.loadReviews(false);
    } catch (error) {
      this.reviewErrors = toFormErrors(error, ["rating", "comment"]);
    } finally {
      this.reviewSaving = false;
    }
  }

  // ---- buying ---------------------------------------------------------------------------------

  private goToLogin(): void {
    navigate(`/login?next=${encodeURIComponent(`/courses/${this.courseId}`)}`);
  }

  private async openBuy(): Promise<void> {
    if (!this.session.user) {
      this.goToLogin();
      return;
    }
    this.attemptKey = newIdempotencyKey();
    this.buyError = null;
    this.buyShort = false;
    this.buyBalance = null;
    this.buyOpen = true;
    const balance = await wallet.refresh();
    if (balance === null) this.buyError = "Could not read your balance. Check your connection.";
    this.buyBalance = balance;
  }

  private closeBuy(): void {
    if (this.buying) return;
    this.buyOpen = false;
  }

  private async confirmBuy(): Promise<void> {
    const course = this.course;
    if (!course || this.buying) return;
    this.attemptKey ??= newIdempotencyKey();
    this.buying = true;
    this.buyError = null;
    try {
      await api.purchaseCourse(course.id, this.attemptKey);
      this.attemptKey = null;
      this.buyOpen = false;
      this.notice = `You bought “${course.title}”. Enjoy the course!`;
      await this.afterEnrolling();
    } catch (error) {
      this.onPurchaseError(error);
    } finally {
      this.buying = false;
    }
  }

  private async enrollFree(): Promise<void> {
    const course = this.course;
    if (!course || this.enrolling) return;
    if (!this.session.user) {
      this.goToLogin();
      return;
    }
    this.attemptKey ??= newIdempotencyKey();
    this.enrolling = true;
    this.errors = null;
    try {
      await api.purchaseCourse(course.id, this.attemptKey);
      this.attemptKey = null;
      this.notice = `You are enrolled in “${course.title}”.`;
      await this.afterEnrolling();
    } catch (error) {
      this.onPurchaseError(error);
    } finally {
      this.enrolling = false;
    }
  }

  private onPurchaseError(error: unknown): void {
    if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
      // The hub may or may not have done it: retrying with the same key is safe either way.
      const message = `${toFormErrors(error).message} Trying again will not charge you twice.`;
      if (this.buyOpen) this.buyError = message;
      else this.errors = { message, extra: [], fields: {} };
      return;
    }
    this.attemptKey = null;
    if (error.status === 402) {
      this.buyShort = true;
      this.buyBalance = error.problem.balance ?? this.buyBalance;
      if (typeof error.problem.balance === "number") wallet.set(error.problem.balance);
      return;
    }
    if (error.status === 409) {
      this.buyOpen = false;
      this.errors = { message: error.problem.detail, extra: [], fields: {} };
      void this.loadCourse().catch(() => undefined);
      return;
    }
    if (this.buyOpen) this.buyError = error.problem.detail;
    else this.errors = toFormErrors(error);
  }

  private async afterEnrolling(): Promise<void> {
    void wallet.refresh();
    try {
      await this.loadCourse();
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }
}

customElements.define("course-page", CoursePage);
