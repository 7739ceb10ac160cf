import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import {
  COURSE_LEVELS,
  type Course,
  type CourseLesson,
  type CourseLevel,
  type CourseOrder,
  type CourseSection,
  type LessonKind,
  type Video,
} from "../api/types.ts";
import { AuthController, canUploadVideos } from "../auth.ts";
import { studioNav, studioNavStyles } from "../courses/studio-nav.ts";
import { courseStyles, LEVEL_LABELS, parseTags } from "../courses/view.ts";
import { errorAlert, field, formText, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { shared } from "../styles.ts";
import { formatDuration } from "../videos/format.ts";
import { iconPlay, iconText } from "../icons.ts";

const COURSE_FIELDS = ["title", "subtitle", "description", "tags", "level", "language", "price"] as const;
const LESSON_FIELDS = ["title", "kind", "video_id", "body", "free_preview"] as const;

/** `/studio/courses/:id`: edit a course, build its curriculum, reorder, publish. */
export class CourseEditorPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    studioNavStyles,
    css`
      .head {
        display: flex;
        flex-wrap: wrap;
        justify-content: space-between;
        align-items: flex-start;
        gap: 0.75rem 1.5rem;
      }
      .head h1 {
        overflow-wrap: anywhere;
      }
      form.card,
      .section {
        max-width: 52rem;
      }
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr));
        gap: 0 1rem;
      }
      .section-head {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem;
        margin-bottom: 0.5rem;
      }
      .section-head h3 {
        margin: 0;
        flex: 1 1 auto;
        font-size: 1.05rem;
        overflow-wrap: anywhere;
      }
      .lessons {
        list-style: none;
        margin: 0 0 0.75rem;
        padding: 0;
      }
      .lesson {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.4rem 0.75rem;
        padding: 0.45rem 0;
        border-top: 1px solid var(--border);
      }
      .lesson .name {
        flex: 1 1 12rem;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .lesson .facts {
        color: var(--muted);
        font-size: 0.85rem;
      }
      button.icon {
        padding: 0.2rem 0.55rem;
        min-width: 2.1rem;
      }
      .inline-form {
        border-top: 1px dashed var(--border-strong);
        padding-top: 0.75rem;
        margin-top: 0.5rem;
      }
      .check {
        display: flex;
        align-items: center;
        gap: 0.5rem;
        font-weight: 600;
        margin-bottom: 1rem;
      }
      .check input {
        width: auto;
      }
      .cover-card {
        display: flex;
        flex-wrap: wrap;
        gap: 1rem;
        align-items: center;
        max-width: 52rem;
      }
      .cover-preview {
        width: 12rem;
        aspect-ratio: 16 / 9;
        border-radius: 6px;
        overflow: hidden;
        background: linear-gradient(135deg, var(--accent-soft), var(--hover));
        flex: none;
      }
      .cover-preview img {
        width: 100%;
        height: 100%;
        object-fit: cover;
        display: block;
      }
      .cover-card .field {
        flex: 1 1 16rem;
      }
      .add-section {
        display: flex;
        gap: 0.6rem;
        align-items: flex-end;
        flex-wrap: wrap;
      }
      .add-section .field {
        flex: 1 1 16rem;
        margin: 0;
      }
    `,
  ];

  static override properties = {
    courseId: {},
    course: { state: true },
    videos: { state: true },
    missing: { state: true },
    errors: { state: true },
    notice: { state: true },
    detailErrors: { state: true },
    saving: { state: true },
    publishError: { state: true },
    publishing: { state: true },
    reordering: { state: true },
    sectionErrors: { state: true },
    addingSection: { state: true },
    lessonFormFor: { state: true },
    lessonKind: { state: true },
    lessonErrors: { state: true },
    addingLesson: { state: true },
    coverError: { state: true },
    uploadingCover: { state: true },
    coverVersion: { state: true },
  };

  declare courseId: string;
  declare course: Course | null;
  declare videos: Video[];
  declare missing: boolean;
  declare errors: FormErrors | null;
  declare notice: string | null;
  declare detailErrors: FormErrors | null;
  declare saving: boolean;
  /** Why the hub refused to publish (409). */
  declare publishError: string | null;
  declare publishing: boolean;
  declare reordering: boolean;
  declare sectionErrors: FormErrors | null;
  declare addingSection: boolean;
  /** The section whose "add lesson" form is open. */
  declare lessonFormFor: number | null;
  declare lessonKind: LessonKind;
  declare lessonErrors: FormErrors | null;
  declare addingLesson: boolean;
  declare coverError: string | null;
  declare uploadingCover: boolean;
  /** Bumped after an upload so the preview loads the new image. */
  declare coverVersion: number;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.courseId = "";
    this.course = null;
    this.videos = [];
    this.missing = false;
    this.errors = null;
    this.notice = null;
    this.detailErrors = null;
    this.saving = false;
    this.publishError = null;
    this.publishing = false;
    this.reordering = false;
    this.sectionErrors = null;
    this.addingSection = false;
    this.lessonFormFor = null;
    this.lessonKind = "video";
    this.lessonErrors = null;
    this.addingLesson = false;
    this.coverError = null;
    this.uploadingCover = false;
    this.coverVersion = 0;
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
    try {
      const [course, videos] = await Promise.all([
        api.getCourse(this.courseId, aborter.signal),
        api.listVideos(aborter.signal).catch(() => [] as Video[]),
      ]);
      this.course = course;
      this.videos = videos;
      document.title = `Edit ${course.title} · Cohort`;
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.missing = true;
      else this.errors = toFormErrors(error);
    }
  }

  private async reloadCourse(): Promise<void> {
    try {
      this.course = await api.getCourse(this.courseId);
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    const user = this.session.user;
    if (!user) return nothing;
    if (!canUploadVideos(user)) {
      return html`<h1 tabindex="-1">Course editor</h1>
        <p class="card narrow">Only verified teachers can edit courses. <a href="/teach">Apply to teach</a></p>`;
    }
    if (this.missing) {
      return html`<h1 tabindex="-1">Course not found</h1>
        <p><a href="/studio/courses">Back to your courses</a></p>`;
    }
    const course = this.course;
    if (!course) {
      return html`<h1 tabindex="-1">Course editor</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the course…</p>`}`;
    }
    if (course.owner_id !== user.id && !user.is_admin) {
      return html`<h1 tabindex="-1">Not your course</h1>
        <p><a href=${`/courses/${course.id}`}>See the course page</a></p>`;
    }
    return html`
      ${studioNav("courses")}
      <div class="head">
        <div>
          <p style="margin:0 0 0.25rem"><a href="/studio/courses">← Your courses</a></p>
          <h1 tabindex="-1" data-testid="editor-title">${course.title}</h1>
          <p>
            <span class="badge ${course.status}" data-testid="course-status">${course.status}</span>
          </p>
        </div>
        <div class="actions">
          <a href=${`/courses/${course.id}`} data-testid="preview-link">Preview</a>
          <a href=${`/studio/courses/${course.id}/stats`} data-testid="stats-link">Stats</a>
          ${course.status === "published"
            ? html`<button
                type="button"
                class="secondary"
                data-testid="unpublish-button"
                ?disabled=${this.publishing}
                @click=${this.unpublish}
              >
                ${this.publishing ? "Working…" : "Unpublish"}
              </button>`
            : html`<button type="button" data-testid="publish-button" ?disabled=${this.publishing} @click=${this.publish}>
                ${this.publishing ? "Publishing…" : "Publish"}
              </button>`}
        </div>
      </div>
      ${this.publishError
        ? html`<div class="alert error" role="alert" data-testid="publish-error">
            <strong>Not published:</strong> ${this.publishError}
          </div>`
        : nothing}
      ${errorAlert(this.errors)} ${successNote(this.notice)}
      <h2>Curriculum</h2>
      ${this.renderCurriculum(course)}
      <h2>Details</h2>
      ${this.renderCover(course)} ${this.renderDetails(course)}
    `;
  }

  // ---- details --------------------------------------------------------------------------------

  private renderDetails(course: Course) {
    const errors = this.detailErrors;
    return html`<form
      class="card"
      novalidate
      data-testid="edit-course-form"
      aria-busy=${this.saving ? "true" : "false"}
      @submit=${this.saveDetails}
    >
      ${errorAlert(errors)}
      ${field({ id: "edit-title", name: "title", label: "Title", testid: "edit-title", errors, value: course.title, required: true, maxlength: 200 })}
      ${field({ id: "edit-subtitle", name: "subtitle", label: "Subtitle", testid: "edit-subtitle", errors, value: course.subtitle, maxlength: 300 })}
      ${field({
        id: "edit-description",
        name: "description",
        label: "Description",
        hint: "Markdown: **bold**, lists, links.",
        testid: "edit-description",
        errors,
        value: course.description,
        multiline: true,
        rows: 6,
      })}
      ${field({ id: "edit-tags", name: "tags", label: "Skills", hint: "Separated by commas", testid: "edit-tags", errors, value: course.tags.join(", ") })}
      <div class="grid">
        <div class="field">
          <label for="edit-level">Level</label>
          <select id="edit-level" name="level" data-testid="edit-level">
            ${COURSE_LEVELS.map((l) => html`<option value=${l} ?selected=${l === course.level}>${LEVEL_LABELS[l]}</option>`)}
          </select>
        </div>
        ${field({ id: "edit-language", name: "language", label: "Language", testid: "edit-language", errors, value: course.language })}
        ${field({ id: "edit-price", name: "price", label: "Price (coins)", testid: "edit-price", errors, type: "number", value: String(course.price), hint: "0 is free" })}
      </div>
      <button type="submit" data-testid="save-course" ?disabled=${this.saving}>${this.saving ? "Saving…" : "Save details"}</button>
    </form>`;
  }

  private renderCover(course: Course) {
    const src = course.cover_url ? `${course.cover_url}${course.cover_url.includes("?") ? "&" : "?"}r=${this.coverVersion}` : null;
    return html`<div class="card cover-card">
      <div class="cover-preview" aria-hidden="true">
        ${src ? html`<img src=${src} alt="" @error=${(e: Event) => ((e.target as HTMLElement).hidden = true)} />` : nothing}
      </div>
      <div class="field" style="margin:0">
        <label for="cover-input">Cover image</label>
        <span class="hint" id="cover-hint"
          >JPEG, PNG or WebP, up to 5 MB. Without one, the poster of the first video lesson is used.</span
        >
        <input
          id="cover-input"
          type="file"
          accept="image/jpeg,image/png,image/webp"
          data-testid="cover-input"
          aria-describedby="cover-hint"
          ?disabled=${this.uploadingCover}
          @change=${this.uploadCover}
        />
        ${this.uploadingCover ? html`<span class="hint" role="status">Uploading…</span>` : nothing}
        ${this.coverError ? html`<span class="field-error" role="alert">${this.coverError}</span>` : nothing}
      </div>
    </div>`;
  }

  private async uploadCover(event: Event): Promise<void> {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    const course = this.course;
    if (!file || !course) return;
    this.coverError = null;
    if (file.size > 5 * 1024 * 1024) {
      this.coverError = "That image is larger than 5 MB.";
      input.value = "";
      return;
    }
    this.uploadingCover = true;
    try {
      this.course = await api.uploadCover(course.id, file);
      this.coverVersion += 1;
      this.notice = "Cover updated.";
    } catch (error) {
      this.coverError = toFormErrors(error).message;
    } finally {
      this.uploadingCover = false;
      input.value = "";
    }
  }

  private async saveDetails(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const course = this.course;
    if (!course || this.saving) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    this.saving = true;
    this.detailErrors = null;
    this.notice = null;
    try {
      this.course = await api.updateCourse(course.id, {
        title: formText(data, "title").trim(),
        subtitle: formText(data, "subtitle").trim(),
        description: formText(data, "description"),
        tags: parseTags(formText(data, "tags")),
        level: formText(data, "level") as CourseLevel,
        language: formText(data, "language").trim(),
        price: Math.max(0, Math.floor(Number(formText(data, "price")) || 0)),
      });
      this.notice = "Details saved.";
    } catch (error) {
      this.detailErrors = toFormErrors(error, COURSE_FIELDS);
    } finally {
      this.saving = false;
    }
  }

  // ---- curriculum -----------------------------------------------------------------------------

  private renderCurriculum(course: Course) {
    const sections = course.sections;
    return html`<div data-testid="editor-curriculum" aria-busy=${this.reordering ? "true" : "false"}>
      ${sections.length === 0 ? html`<p class="muted">Start with a section, then add lessons to it.</p>` : nothing}
      ${sections.map((section, index) => this.renderSection(course, section, index))}
      <form class="card add-section" novalidate data-testid="add-section-form" @submit=${this.addSection}>
        <div class="field">
          <label for="section-title">New section</label>
          <input id="section-title" name="title" data-testid="section-title-input" maxlength="200" placeholder="e.g. Getting started" />
          ${this.sectionErrors?.fields["title"] ? html`<span class="field-error">${this.sectionErrors.fields["title"]}</span>` : nothing}
        </div>
        <button type="submit" data-testid="add-section" ?disabled=${this.addingSection}>
          ${this.addingSection ? "Adding…" : "Add section"}
        </button>
      </form>
      ${this.sectionErrors && !this.sectionErrors.fields["title"] ? errorAlert(this.sectionErrors) : nothing}
    </div>`;
  }

  private renderSection(course: Course, section: CourseSection, index: number) {
    const last = course.sections.length - 1;
    return html`<section class="card section" data-testid="editor-section" data-section-id=${section.id} aria-label=${section.title}>
      <div class="section-head">
        <h3>${index + 1}. ${section.title}</h3>
        <button
          type="button"
          class="secondary icon"
          data-testid="section-up"
          aria-label=${`Move section ${section.title} up`}
          ?disabled=${index === 0 || this.reordering}
          @click=${() => this.moveSection(index, -1)}
        >
          ↑
        </button>
        <button
          type="button"
          class="secondary icon"
          data-testid="section-down"
          aria-label=${`Move section ${section.title} down`}
          ?disabled=${index === last || this.reordering}
          @click=${() => this.moveSection(index, 1)}
        >
          ↓
        </button>
      </div>
      ${section.lessons.length
        ? html`<ol class="lessons">
            ${section.lessons.map((lesson, i) => this.renderLesson(section, lesson, i))}
          </ol>`
        : html`<p class="muted">No lessons in this section yet.</p>`}
      ${this.lessonFormFor === section.id
        ? this.renderLessonForm(section)
        : html`<button
            type="button"
            class="secondary"
            data-testid="open-lesson-form"
            @click=${() => this.openLessonForm(section.id)}
          >
            Add lesson
          </button>`}
    </section>`;
  }

  private renderLesson(section: CourseSection, lesson: CourseLesson, index: number) {
    const video = lesson.video_id ? this.videos.find((v) => v.id === lesson.video_id) : undefined;
    const last = section.lessons.length - 1;
    return html`<li class="lesson" data-testid="editor-lesson" data-lesson-id=${lesson.id}>
      <span aria-hidden="true">${lesson.kind === "video" ? iconPlay : iconText}</span>
      <span class="name">
        <span data-testid="editor-lesson-title">${lesson.title}</span>
        <span class="facts">
          ${lesson.kind === "video"
            ? html` · ${video ? html`${video.title}` : "video"}
                ${video && video.status !== "ready" ? html`<span class="badge ${video.status}">${video.status}</span>` : nothing}
                ${formatDuration(lesson.duration) ? html` · ${formatDuration(lesson.duration)}` : nothing}`
            : " · reading"}
        </span>
      </span>
      ${lesson.free_preview ? html`<span class="badge preview">Free preview</span>` : nothing}
      <button
        type="button"
        class="secondary icon"
        data-testid="lesson-up"
        aria-label=${`Move lesson ${lesson.title} up`}
        ?disabled=${index === 0 || this.reordering}
        @click=${() => this.moveLesson(section.id, index, -1)}
      >
        ↑
      </button>
      <button
        type="button"
        class="secondary icon"
        data-testid="lesson-down"
        aria-label=${`Move lesson ${lesson.title} down`}
        ?disabled=${index === last || this.reordering}
        @click=${() => this.moveLesson(section.id, index, 1)}
      >
        ↓
      </button>
    </li>`;
  }

  private renderLessonForm(section: CourseSection) {
    const errors = this.lessonErrors;
    const usable = this.videos.filter((v) => v.status !== "failed");
    const id = (name: string): string => `lesson-${section.id}-${name}`;
    return html`<form class="inline-form" novalidate data-testid="lesson-form" @submit=${(e: SubmitEvent) => this.addLesson(e, section)}>
      <h4 style="margin:0 0 0.75rem">New lesson in “${section.title}”</h4>
      ${errorAlert(errors)}
      ${field({ id: id("title"), name: "title", label: "Title", testid: "lesson-title-input", errors, required: true, maxlength: 200 })}
      <div class="field">
        <label for=${id("kind")}>Kind</label>
        <select
          id=${id("kind")}
          name="kind"
          data-testid="lesson-kind-input"
          @change=${(e: Event) => (this.lessonKind = (e.target as HTMLSelectElement).value as LessonKind)}
        >
          <option value="video" ?selected=${this.lessonKind === "video"}>Video</option>
          <option value="text" ?selected=${this.lessonKind === "text"}>Reading (markdown)</option>
        </select>
      </div>
      ${this.lessonKind === "video"
        ? html`<div class="field">
            <label for=${id("video")}>Video</label>
            ${usable.length
              ? html`<select id=${id("video")} name="video_id" data-testid="lesson-video-input">
                  ${usable.map(
                    (v) => html`<option value=${v.id}>
                      ${v.title || "Untitled"}${v.duration ? ` (${formatDuration(v.duration)})` : ""}${v.status !== "ready"
                        ? ` – ${v.status}`
                        : ""}
                    </option>`,
                  )}
                </select>`
              : html`<p class="muted" style="margin:0">No uploaded videos yet. <a href="/studio">Upload one in the studio</a>.</p>`}
            ${errors?.fields["video_id"] ? html`<span class="field-error">${errors.fields["video_id"]}</span>` : nothing}
          </div>`
        : field({
            id: id("body"),
            name: "body",
            label: "Text",
            hint: "Markdown: headings, lists, code, links.",
            testid: "lesson-body-input",
            errors,
            multiline: true,
            rows: 8,
          })}
      <label class="check">
        <input type="checkbox" name="free_preview" data-testid="lesson-preview-input" />
        Free preview (anyone can open this lesson)
      </label>
      <div class="actions">
        <button type="submit" data-testid="add-lesson" ?disabled=${this.addingLesson}>
          ${this.addingLesson ? "Adding…" : "Add lesson"}
        </button>
        <button type="button" class="secondary" @click=${() => (this.lessonFormFor = null)}>Cancel</button>
      </div>
    </form>`;
  }

  private openLessonForm(sectionId: number): void {
    this.lessonFormFor = sectionId;
    this.lessonErrors = null;
    this.lessonKind = this.videos.some((v) => v.status !== "failed") ? "video" : "text";
  }

  private async addSection(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const course = this.course;
    if (!course || this.addingSection) return;
    const form = event.currentTarget as HTMLFormElement;
    const title = formText(new FormData(form), "title").trim();
    this.sectionErrors = null;
    if (!title) {
      this.sectionErrors = { message: "", extra: [], fields: { title: "Give the section a title." } };
      return;
    }
    this.addingSection = true;
    try {
      const section = await api.addSection(course.id, title);
      form.reset();
      await this.reloadCourse();
      this.openLessonForm(section.id);
    } catch (error) {
      this.sectionErrors = toFormErrors(error, ["title"]);
    } finally {
      this.addingSection = false;
    }
  }

  private async addLesson(event: SubmitEvent, section: CourseSection): Promise<void> {
    event.preventDefault();
    if (this.addingLesson) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const kind = formText(data, "kind") === "text" ? "text" : "video";
    this.addingLesson = true;
    this.lessonErrors = null;
    try {
      await api.addLesson(section.id, {
        title: formText(data, "title").trim(),
        kind,
        ...(kind === "video" ? { video_id: formText(data, "video_id") } : { body: formText(data, "body") }),
        free_preview: data.get("free_preview") === "on",
      });
      this.lessonFormFor = null;
      this.publishError = null;
      await this.reloadCourse();
    } catch (error) {
      this.lessonErrors = toFormErrors(error, LESSON_FIELDS);
    } finally {
      this.addingLesson = false;
    }
  }

  private moveSection(index: number, delta: -1 | 1): void {
    const course = this.course;
    if (!course) return;
    void this.applyOrder({ ...course, sections: moved(course.sections, index, delta) });
  }

  private moveLesson(sectionId: number, index: number, delta: -1 | 1): void {
    const course = this.course;
    if (!course) return;
    void this.applyOrder({
      ...course,
      sections: course.sections.map((s) => (s.id === sectionId ? { ...s, lessons: moved(s.lessons, index, delta) } : s)),
    });
  }

  /** Show the new order at once and send all of it; on failure, show what the hub has. */
  private async applyOrder(next: Course): Promise<void> {
    if (this.reordering) return;
    this.course = next;
    this.reordering = true;
    this.errors = null;
    try {
      this.course = await api.reorderCourse(next.id, orderOf(next));
    } catch (error) {
      this.errors = toFormErrors(error);
      await this.reloadCourse();
    } finally {
      this.reordering = false;
    }
  }

  // ---- publishing -----------------------------------------------------------------------------

  private async publish(): Promise<void> {
    const course = this.course;
    if (!course || this.publishing) return;
    this.publishing = true;
    this.publishError = null;
    this.notice = null;
    try {
      this.course = await api.publishCourse(course.id);
      this.notice = "Published: the course is in the catalog now.";
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) this.publishError = error.problem.detail;
      else this.errors = toFormErrors(error);
    } finally {
      this.publishing = false;
    }
  }

  private async unpublish(): Promise<void> {
    const course = this.course;
    if (!course || this.publishing) return;
    this.publishing = true;
    this.publishError = null;
    this.notice = null;
    try {
      this.course = await api.unpublishCourse(course.id);
      this.notice = "Unpublished: the course is no longer in the catalog.";
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) this.publishError = error.problem.detail;
      else this.errors = toFormErrors(error);
    } finally {
      this.publishing = false;
    }
  }
}

function moved<T>(items: readonly T[], index: number, delta: -1 | 1): T[] {
  const target = index + delta;
  if (target < 0 || target >= items.length) return [...items];
  const next = [...items];
  const [item] = next.splice(index, 1);
  if (item !== undefined) next.splice(target, 0, item);
  return next;
}

function orderOf(course: Course): CourseOrder {
  return {
    sections: course.sections.map((s) => s.id),
    lessons: Object.fromEntries(course.sections.map((s) => [String(s.id), s.lessons.map((l) => l.id)])),
  };
}

customElements.define("course-editor-page", CourseEditorPage);
