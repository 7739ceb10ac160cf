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
import * as editing from "../courses/editing.ts";
import { studioNav, studioNavStyles } from "../courses/studio-nav.ts";
import { courseStyles, LEVEL_LABELS, parseTags } from "../courses/view.ts";
import { errorAlert, field, formText, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { shared } from "../styles.ts";
import { formatDuration } from "../videos/format.ts";
import { iconPlay, iconText } from "../icons.ts";

const COURSE_FIELDS = ["title", "subtitle", "description", "tags", "level", "language", "price"] as const;
const LESSON_FIELDS = ["title", "kind", "video_id", "body", "free_preview"] as const;
const LESSON_EDIT_FIELDS = ["title", "video_id", "body", "free_preview", "section_id"] as const;

/** A refusal shown next to the row it is about. */
interface RowError {
  id: number;
  message: string;
}

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
      .lesson > .row-note,
      .lesson > form {
        flex: 1 1 100%;
      }
      .lesson > form {
        margin-top: 0;
        padding-top: 0.25rem;
        border-top: none;
      }
      .confirm {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.4rem 0.6rem;
      }
      button.small {
        padding: 0.25rem 0.7rem;
        font-size: 0.9rem;
      }
      .row-note {
        color: var(--danger);
        font-size: 0.875rem;
        margin: 0.25rem 0 0;
      }
      .rename {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem;
        flex: 1 1 16rem;
      }
      .rename input {
        flex: 1 1 12rem;
        width: auto;
      }
      .rename .field-error {
        flex: 1 1 100%;
      }
      .archive-confirm {
        max-width: 52rem;
      }
      .archive-confirm p {
        margin-bottom: 0.75rem;
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
    editingLessonId: { state: true },
    editingBody: { state: true },
    lessonEditErrors: { state: true },
    savingLesson: { state: true },
    confirmingDeleteLesson: { state: true },
    lessonRowError: { state: true },
    busyLessonId: { state: true },
    renamingSectionId: { state: true },
    renameErrors: { state: true },
    sectionRowError: { state: true },
    busySectionId: { state: true },
    confirmingArchive: { state: true },
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
  /** The lesson whose row is an edit form. */
  declare editingLessonId: number | null;
  /** The markdown of the text lesson being edited; null until it has loaded. */
  declare editingBody: string | null;
  declare lessonEditErrors: FormErrors | null;
  declare savingLesson: boolean;
  /** The lesson whose row asks "really delete?". */
  declare confirmingDeleteLesson: number | null;
  declare lessonRowError: RowError | null;
  /** A lesson being deleted. */
  declare busyLessonId: number | null;
  /** The section whose title is an inline rename form. */
  declare renamingSectionId: number | null;
  declare renameErrors: FormErrors | null;
  declare sectionRowError: RowError | null;
  /** A section being renamed or deleted. */
  declare busySectionId: number | null;
  declare confirmingArchive: boolean;

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
    this.editingLessonId = null;
    this.editingBody = null;
    this.lessonEditErrors = null;
    this.savingLesson = false;
    this.confirmingDeleteLesson = null;
    this.lessonRowError = null;
    this.busyLessonId = null;
    this.renamingSectionId = null;
    this.renameErrors = null;
    this.sectionRowError = null;
    this.busySectionId = null;
    this.confirmingArchive = false;
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
    this.resetRowState();
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
                ${this.publishing ? "Publishing…" : course.status === "archived" ? "Publish again" : "Publish"}
              </button>`}
          ${course.status === "archived"
            ? nothing
            : html`<button
                type="button"
                class="secondary"
                data-testid="archive-button"
                aria-expanded=${this.confirmingArchive ? "true" : "false"}
                ?disabled=${this.publishing}
                @click=${this.askArchive}
              >
                Archive course
              </button>`}
        </div>
      </div>
      ${this.confirmingArchive && course.status !== "archived" ? this.renderArchiveConfirm(course) : nothing}
      ${course.status === "archived"
        ? html`<p class="muted" data-testid="archived-note">
            Archived: not in the catalog and not for sale. Enrolled students keep their access. Publish it again
            to bring it back.
          </p>`
        : nothing}
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

  private renderArchiveConfirm(course: Course) {
    return html`<div class="alert error archive-confirm" role="alertdialog" aria-labelledby="archive-q" data-testid="archive-confirm">
      <p id="archive-q">
        <strong>Archive “${course.title}”?</strong> It leaves the catalog and can no longer be bought. Students
        who enrolled keep it. You can publish it again later.
      </p>
      <div class="actions">
        <button type="button" class="danger small" data-testid="archive-confirm-yes" ?disabled=${this.publishing} @click=${this.archive}>
          ${this.publishing ? "Archiving…" : "Archive course"}
        </button>
        <button type="button" class="secondary small" data-testid="archive-confirm-no" @click=${this.closeArchive}>
          Keep it
        </button>
      </div>
    </div>`;
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
    const empty = section.lessons.length === 0;
    const busy = this.busySectionId === section.id;
    const rowError = this.sectionRowError?.id === section.id ? this.sectionRowError.message : null;
    return html`<section class="card section" data-testid="editor-section" data-section-id=${section.id} aria-label=${section.title}>
      <div class="section-head">
        ${this.renamingSectionId === section.id
          ? this.renderRenameForm(section, index)
          : html`<h3 data-testid="editor-section-title">${index + 1}. ${section.title}</h3>
              <button
                type="button"
                class="secondary small"
                data-testid="section-rename"
                aria-label=${`Rename section ${section.title}`}
                ?disabled=${busy}
                @click=${() => this.openRename(section.id)}
              >
                Rename
              </button>
              <button
                type="button"
                class="secondary small"
                data-testid="section-delete"
                aria-label=${`Delete section ${section.title}`}
                title=${empty ? "Delete this empty section" : "Delete or move its lessons first"}
                ?disabled=${!empty || busy}
                @click=${() => this.deleteSection(section)}
              >
                ${busy ? "Deleting…" : "Delete"}
              </button>`}
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
      ${rowError ? html`<p class="row-note" role="alert" data-testid="section-error">${rowError}</p>` : nothing}
      ${section.lessons.length
        ? html`<ol class="lessons">
            ${section.lessons.map((lesson, i) => this.renderLesson(course, section, lesson, i))}
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

  private renderLesson(course: Course, section: CourseSection, lesson: CourseLesson, index: number) {
    if (this.editingLessonId === lesson.id) {
      return html`<li class="lesson" data-testid="editor-lesson" data-lesson-id=${lesson.id}>
        ${this.renderLessonEditForm(course, section, lesson)}
      </li>`;
    }
    const video = lesson.video_id ? this.videos.find((v) => v.id === lesson.video_id) : undefined;
    const last = section.lessons.length - 1;
    const rowError = this.lessonRowError?.id === lesson.id ? this.lessonRowError.message : null;
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
      ${this.confirmingDeleteLesson === lesson.id
        ? html`<span class="confirm" role="group" aria-label=${`Delete lesson ${lesson.title}?`}>
            <span>Really delete?</span>
            <button
              type="button"
              class="danger small"
              data-testid="lesson-delete-confirm"
              ?disabled=${this.busyLessonId === lesson.id}
              @click=${() => this.deleteLesson(lesson)}
            >
              ${this.busyLessonId === lesson.id ? "Deleting…" : "Yes, delete"}
            </button>
            <button
              type="button"
              class="secondary small"
              data-testid="lesson-delete-cancel"
              ?disabled=${this.busyLessonId === lesson.id}
              @click=${() => this.cancelDeleteLesson(lesson.id)}
            >
              No
            </button>
          </span>`
        : html`<button
              type="button"
              class="secondary small"
              data-testid="lesson-edit"
              aria-label=${`Edit lesson ${lesson.title}`}
              @click=${() => void this.openLessonEdit(lesson)}
            >
              Edit
            </button>
            <button
              type="button"
              class="secondary small"
              data-testid="lesson-delete"
              aria-label=${`Delete lesson ${lesson.title}`}
              @click=${() => this.askDeleteLesson(lesson.id)}
            >
              Delete
            </button>`}
      ${rowError ? html`<p class="row-note" role="alert" data-testid="lesson-error">${rowError}</p>` : nothing}
    </li>`;
  }

  private renderRenameForm(section: CourseSection, index: number) {
    const error = this.renameErrors?.fields["title"];
    const inputId = `rename-${section.id}`;
    return html`<form class="rename" novalidate data-testid="section-rename-form" @submit=${(e: SubmitEvent) => this.renameSection(e, section)}>
      <label class="visually-hidden" for=${inputId}>Title of section ${index + 1}</label>
      <input
        id=${inputId}
        name="title"
        data-testid="section-rename-input"
        maxlength="200"
        required
        .value=${section.title}
        aria-invalid=${error ? "true" : "false"}
        aria-describedby=${error ? `${inputId}-error` : nothing}
        @keydown=${(e: KeyboardEvent) => {
          if (e.key === "Escape") this.closeRename(section.id);
        }}
      />
      <button type="submit" class="small" data-testid="section-rename-save" ?disabled=${this.busySectionId === section.id}>
        ${this.busySectionId === section.id ? "Saving…" : "Save"}
      </button>
      <button type="button" class="secondary small" data-testid="section-rename-cancel" @click=${() => this.closeRename(section.id)}>
        Cancel
      </button>
      ${error ? html`<span class="field-error" id=${`${inputId}-error`}>${error}</span>` : nothing}
      ${this.renameErrors && !error
        ? html`<span class="field-error" role="alert">${[this.renameErrors.message, ...this.renameErrors.extra].join(" ")}</span>`
        : nothing}
    </form>`;
  }

  /** The video lessons' choices: what the add-lesson form offers, plus the lesson's own video. */
  private videoChoices(current: string | null): Video[] {
    const usable = this.videos.filter((v) => v.status !== "failed");
    const own = current ? this.videos.find((v) => v.id === current) : undefined;
    return own && !usable.includes(own) ? [own, ...usable] : usable;
  }

  private renderLessonEditForm(course: Course, section: CourseSection, lesson: CourseLesson) {
    const errors = this.lessonEditErrors;
    const id = (name: string): string => `edit-lesson-${lesson.id}-${name}`;
    const choices = lesson.kind === "video" ? this.videoChoices(lesson.video_id) : [];
    // When the text failed to load, the rest of the lesson can still be edited.
    const bodyLoading = lesson.kind === "text" && this.editingBody === null && this.lessonEditErrors === null;
    return html`<form
      class="inline-form"
      novalidate
      data-testid="lesson-edit-form"
      aria-busy=${this.savingLesson || bodyLoading ? "true" : "false"}
      aria-label=${`Edit lesson ${lesson.title}`}
      @submit=${(e: SubmitEvent) => this.saveLesson(e, section, lesson)}
      @keydown=${(e: KeyboardEvent) => {
        if (e.key === "Escape") this.closeLessonEdit(lesson.id);
      }}
    >
      ${errorAlert(errors)}
      ${field({ id: id("title"), name: "title", label: "Title", testid: "lesson-edit-title", errors, value: lesson.title, required: true, maxlength: 200 })}
      ${lesson.kind === "video"
        ? html`<div class="field">
            <label for=${id("video")}>Video</label>
            ${choices.length
              ? html`<select
                  id=${id("video")}
                  name="video_id"
                  data-testid="lesson-edit-video"
                  aria-invalid=${errors?.fields["video_id"] ? "true" : "false"}
                >
                  ${choices.map(
                    (v) => html`<option value=${v.id} ?selected=${v.id === lesson.video_id}>
                      ${v.title || "Untitled"}${v.duration ? ` (${formatDuration(v.duration)})` : ""}${v.status !== "ready"
                        ? ` – ${v.status}`
                        : ""}
                    </option>`,
                  )}
                </select>`
              : html`<p class="muted" style="margin:0">No uploaded videos to choose from.</p>`}
            ${course.status === "published" ? html`<span class="hint">A published course takes ready videos only.</span>` : nothing}
            ${errors?.fields["video_id"] ? html`<span class="field-error">${errors.fields["video_id"]}</span>` : nothing}
          </div>`
        : bodyLoading
          ? html`<p class="muted" role="status">Loading the text…</p>`
          : field({
              id: id("body"),
              name: "body",
              label: "Text",
              hint: "Markdown: headings, lists, code, links.",
              testid: "lesson-edit-body",
              errors,
              value: this.editingBody ?? "",
              multiline: true,
              rows: 10,
            })}
      <div class="field">
        <label for=${id("section")}>Section</label>
        <select
          id=${id("section")}
          name="section_id"
          data-testid="lesson-edit-section"
          aria-describedby=${id("section-hint")}
          aria-invalid=${errors?.fields["section_id"] ? "true" : "false"}
        >
          ${course.sections.map(
            (s, i) => html`<option value=${String(s.id)} ?selected=${s.id === section.id}>${i + 1}. ${s.title}</option>`,
          )}
        </select>
        <span class="hint" id=${id("section-hint")}>Moving it puts it at the end of the other section.</span>
        ${errors?.fields["section_id"] ? html`<span class="field-error">${errors.fields["section_id"]}</span>` : nothing}
      </div>
      <label class="check">
        <input type="checkbox" name="free_preview" data-testid="lesson-edit-preview" .checked=${lesson.free_preview} />
        Free preview (anyone can open this lesson)
      </label>
      ${errors?.fields["free_preview"] ? html`<span class="field-error">${errors.fields["free_preview"]}</span>` : nothing}
      <div class="actions">
        <button type="submit" data-testid="lesson-edit-save" ?disabled=${this.savingLesson || bodyLoading}>
          ${this.savingLesson ? "Saving…" : "Save"}
        </button>
        <button type="button" class="secondary" data-testid="lesson-edit-cancel" @click=${() => this.closeLessonEdit(lesson.id)}>
          Cancel
        </button>
      </div>
    </form>`;
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

  // ---- editing sections and lessons -----------------------------------------------------------

  private resetRowState(): void {
    this.editingLessonId = null;
    this.editingBody = null;
    this.lessonEditErrors = null;
    this.confirmingDeleteLesson = null;
    this.lessonRowError = null;
    this.renamingSectionId = null;
    this.renameErrors = null;
    this.sectionRowError = null;
    this.confirmingArchive = false;
  }

  /** Put focus back on a control once the row it belongs to has re-rendered. */
  private async focusLater(selector: string): Promise<void> {
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>(selector)?.focus();
  }

  private async openLessonEdit(lesson: CourseLesson): Promise<void> {
    this.editingLessonId = lesson.id;
    this.editingBody = null;
    this.lessonEditErrors = null;
    this.confirmingDeleteLesson = null;
    this.lessonRowError = null;
    void this.focusLater(`[data-lesson-id="${lesson.id}"] [data-testid="lesson-edit-title"]`);
    if (lesson.kind !== "text") return;
    // The curriculum carries no lesson bodies; the owner may read any lesson in full.
    try {
      const full = await api.getLesson(lesson.id);
      if (this.editingLessonId === lesson.id) this.editingBody = full.body ?? "";
    } catch (error) {
      if (this.editingLessonId === lesson.id) this.lessonEditErrors = toFormErrors(error);
    }
  }

  private closeLessonEdit(lessonId: number): void {
    this.editingLessonId = null;
    this.editingBody = null;
    this.lessonEditErrors = null;
    void this.focusLater(`[data-lesson-id="${lessonId}"] [data-testid="lesson-edit"]`);
  }

  private async saveLesson(event: SubmitEvent, section: CourseSection, lesson: CourseLesson): Promise<void> {
    event.preventDefault();
    if (this.savingLesson) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const videoId = formText(data, "video_id");
    const changes = editing.lessonChanges(lesson, section.id, this.editingBody, {
      title: formText(data, "title").trim(),
      free_preview: data.get("free_preview") === "on",
      section_id: Number(formText(data, "section_id")) || section.id,
      ...(videoId ? { video_id: videoId } : {}),
      ...(data.has("body") ? { body: formText(data, "body") } : {}),
    });
    if (Object.keys(changes).length === 0) {
      this.closeLessonEdit(lesson.id);
      return;
    }
    this.savingLesson = true;
    this.lessonEditErrors = null;
    this.notice = null;
    try {
      await editing.editLesson(lesson.id, changes);
      await this.reloadCourse();
      const moved = changes.section_id !== undefined;
      this.notice = moved ? `“${changes.title ?? lesson.title}” moved to the end of its new section.` : "Lesson saved.";
      this.closeLessonEdit(lesson.id);
    } catch (error) {
      this.lessonEditErrors = toFormErrors(error, LESSON_EDIT_FIELDS);
    } finally {
      this.savingLesson = false;
    }
  }

  private askDeleteLesson(lessonId: number): void {
    this.confirmingDeleteLesson = lessonId;
    this.lessonRowError = null;
    void this.focusLater(`[data-lesson-id="${lessonId}"] [data-testid="lesson-delete-cancel"]`);
  }

  private cancelDeleteLesson(lessonId: number): void {
    this.confirmingDeleteLesson = null;
    void this.focusLater(`[data-lesson-id="${lessonId}"] [data-testid="lesson-delete"]`);
  }

  private async deleteLesson(lesson: CourseLesson): Promise<void> {
    if (this.busyLessonId !== null) return;
    this.busyLessonId = lesson.id;
    this.lessonRowError = null;
    this.notice = null;
    try {
      await editing.deleteLesson(lesson.id);
      this.confirmingDeleteLesson = null;
      await this.reloadCourse();
      this.notice = `Lesson “${lesson.title}” deleted.`;
    } catch (error) {
      // A 409 (the last lesson of a published course) carries its reason in the detail.
      this.lessonRowError = { id: lesson.id, message: toFormErrors(error).message };
      this.cancelDeleteLesson(lesson.id);
      if (error instanceof ApiError && error.status === 404) await this.reloadCourse();
    } finally {
      this.busyLessonId = null;
    }
  }

  private openRename(sectionId: number): void {
    this.renamingSectionId = sectionId;
    this.renameErrors = null;
    this.sectionRowError = null;
    void this.focusLater(`[data-section-id="${sectionId}"] [data-testid="section-rename-input"]`);
  }

  private closeRename(sectionId: number): void {
    this.renamingSectionId = null;
    this.renameErrors = null;
    void this.focusLater(`[data-section-id="${sectionId}"] [data-testid="section-rename"]`);
  }

  private async renameSection(event: SubmitEvent, section: CourseSection): Promise<void> {
    event.preventDefault();
    if (this.busySectionId !== null) return;
    const title = formText(new FormData(event.currentTarget as HTMLFormElement), "title").trim();
    if (!title) {
      this.renameErrors = { message: "", extra: [], fields: { title: "Give the section a title." } };
      return;
    }
    if (title === section.title) {
      this.closeRename(section.id);
      return;
    }
    this.busySectionId = section.id;
    this.renameErrors = null;
    this.notice = null;
    try {
      await editing.renameSection(section.id, title);
      await this.reloadCourse();
      this.closeRename(section.id);
    } catch (error) {
      this.renameErrors = toFormErrors(error, ["title"]);
    } finally {
      this.busySectionId = null;
    }
  }

  private async deleteSection(section: CourseSection): Promise<void> {
    if (this.busySectionId !== null) return;
    this.busySectionId = section.id;
    this.sectionRowError = null;
    this.notice = null;
    try {
      await editing.deleteSection(section.id);
      if (this.lessonFormFor === section.id) this.lessonFormFor = null;
      await this.reloadCourse();
      this.notice = `Section “${section.title}” deleted.`;
    } catch (error) {
      // 409: it has lessons after all (added from another tab); show why and what is there now.
      this.sectionRowError = { id: section.id, message: toFormErrors(error).message };
      await this.reloadCourse();
    } finally {
      this.busySectionId = null;
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

  private askArchive(): void {
    this.confirmingArchive = true;
    this.notice = null;
    void this.focusLater('[data-testid="archive-confirm-no"]');
  }

  private closeArchive(): void {
    this.confirmingArchive = false;
    void this.focusLater('[data-testid="archive-button"]');
  }

  private async archive(): Promise<void> {
    const course = this.course;
    if (!course || this.publishing) return;
    this.publishing = true;
    this.publishError = null;
    this.notice = null;
    try {
      this.course = await editing.archiveCourse(course.id);
      this.confirmingArchive = false;
      this.notice = "Course archived.";
    } catch (error) {
      this.errors = toFormErrors(error);
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
