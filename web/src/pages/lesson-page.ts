import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Course, Lesson, LessonProgress, Video } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/cohort-markdown.ts";
import "../components/cohort-player.ts";
import type { CohortPlayer } from "../components/cohort-player.ts";
import { lessonHref } from "../courses/curriculum.ts";
import { courseStyles } from "../courses/view.ts";
import { WatchTracker } from "../courses/watch-tracker.ts";
import { errorAlert, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { shared } from "../styles.ts";
import { formatDuration } from "../videos/format.ts";
import { iconCheck, iconLock, iconPlay, iconText } from "../icons.ts";

/** How often a playing video reports progress. */
const HEARTBEAT_MS = 10_000;
/** A saved position this close to the end starts the lesson from the beginning. */
const RESUME_END_MARGIN = 5;

/**
 * `/learn/:courseId/:lessonId`: one lesson, with the course's curriculum beside it.
 *
 * Video lessons report what was actually played (`POST /api/lessons/{id}/progress`) every
 * 10 s while playing, on pause, at the end and when the page goes away; text lessons have a
 * "Mark as done" button.
 */
export class LessonPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 18rem;
        gap: 1.5rem;
        align-items: start;
      }
      @media (max-width: 56rem) {
        .layout {
          grid-template-columns: 1fr;
        }
      }
      .crumbs {
        font-size: 0.9rem;
        margin-bottom: 0.5rem;
      }
      .status-line {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1rem;
        margin: 0.75rem 0 1rem;
      }
      .completed {
        color: var(--success);
        font-weight: 700;
      }
      .player {
        margin: 0.5rem 0 0.75rem;
      }
      .text-lesson {
        max-width: 48rem;
      }
      .nav-buttons {
        display: flex;
        justify-content: space-between;
        gap: 0.75rem;
        margin-top: 1.5rem;
      }
      a.button {
        display: inline-block;
        font-weight: 600;
        padding: 0.55rem 1.1rem;
        border-radius: 6px;
        border: 1px solid var(--border-strong);
        color: var(--text);
        text-decoration: none;
      }
      a.button:hover {
        background: var(--hover);
      }
      a.button.primary {
        background: var(--accent);
        border-color: var(--accent);
        color: var(--on-accent);
      }
      .sidebar {
        padding: 0;
        overflow: hidden;
        position: sticky;
        top: 1rem;
        max-height: calc(100vh - 2rem);
        overflow-y: auto;
      }
      .sidebar h2 {
        font-size: 1rem;
        margin: 0;
        padding: 0.75rem 1rem;
        border-bottom: 1px solid var(--border);
      }
      .sidebar h3 {
        font-size: 0.85rem;
        text-transform: uppercase;
        letter-spacing: 0.04em;
        color: var(--muted);
        margin: 0;
        padding: 0.6rem 1rem 0.3rem;
      }
      .sidebar ol {
        list-style: none;
        margin: 0;
        padding: 0 0 0.4rem;
      }
      .sidebar li a,
      .sidebar li .locked {
        display: flex;
        gap: 0.5rem;
        align-items: baseline;
        padding: 0.35rem 1rem;
        color: var(--text);
        text-decoration: none;
        font-size: 0.95rem;
      }
      .sidebar li a:hover {
        background: var(--hover);
      }
      .sidebar li a[aria-current="page"] {
        background: var(--accent-soft);
        color: var(--accent-strong);
        font-weight: 600;
      }
      .sidebar .mark {
        width: 1.1rem;
        flex: none;
        text-align: center;
      }
      .sidebar .mark.done {
        color: var(--success);
        font-weight: 700;
      }
      .sidebar .name {
        flex: 1 1 auto;
        overflow-wrap: anywhere;
      }
      .sidebar .length {
        color: var(--muted);
        font-size: 0.8rem;
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  static override properties = {
    courseId: {},
    lessonId: {},
    course: { state: true },
    lesson: { state: true },
    video: { state: true },
    playerSrc: { state: true },
    errors: { state: true },
    locked: { state: true },
    completing: { state: true },
    tracking: { state: true },
    startingParty: { state: true },
  };

  declare courseId: string;
  declare lessonId: string;
  declare course: Course | null;
  declare lesson: Lesson | null;
  declare video: Video | null;
  declare playerSrc: string | null;
  declare errors: FormErrors | null;
  /** The hub refused the lesson (403): its reason. */
  declare locked: string | null;
  declare completing: boolean;
  /** Whether this viewer's progress is recorded (enrolled students only). */
  declare tracking: boolean;
  /** "Watch together" was clicked: the party is being created. */
  declare startingParty: boolean;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;
  private tracker = new WatchTracker();
  private boundMedia: HTMLVideoElement | null = null;
  private heartbeatTimer: number | undefined;
  private sending = false;
  private sendAgain = false;
  private lastSentPosition: number | null = null;

  constructor() {
    super();
    this.courseId = "";
    this.lessonId = "";
    this.course = null;
    this.lesson = null;
    this.video = null;
    this.playerSrc = null;
    this.errors = null;
    this.locked = null;
    this.completing = false;
    this.tracking = false;
    this.startingParty = false;
  }

  /** Start a watch party on this lesson and go to it. */
  private watchTogether = async (): Promise<void> => {
    if (!this.lesson) return;
    this.startingParty = true;
    this.errors = null;
    try {
      const { createParty } = await import("../watch/api.ts");
      const party = await createParty(this.lesson.id);
      navigate(`/watch/${party.id}`);
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      this.startingParty = false;
    }
  };

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("pagehide", this.onPageHide);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.heartbeatTimer = window.setInterval(() => this.onInterval(), HEARTBEAT_MS);
    if (this.lessonId) void this.load(true);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("pagehide", this.onPageHide);
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.clearInterval(this.heartbeatTimer);
    this.flush();
    this.unbindMedia();
    this.aborter?.abort();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    const lessonChanged = changed.has("lessonId") && changed.get("lessonId") !== undefined;
    const courseChanged = changed.has("courseId") && changed.get("courseId") !== undefined;
    if ((lessonChanged || courseChanged) && this.isConnected) {
      // Report the lesson being left before this element takes on the next one.
      this.flush();
      void this.load(courseChanged || this.course?.id !== Number(this.courseId));
    }
  }

  protected override async updated(): Promise<void> {
    const player = this.renderRoot.querySelector<CohortPlayer>("cohort-player");
    if (!player) {
      this.unbindMedia();
      return;
    }
    await player.updateComplete;
    const media = player.media;
    if (media !== this.boundMedia) {
      this.unbindMedia();
      if (media) this.bindMedia(media);
    }
  }

  // ---- loading --------------------------------------------------------------------------------

  private async load(withCourse: boolean): Promise<void> {
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    const { signal } = aborter;
    this.lesson = null;
    this.video = null;
    this.playerSrc = null;
    this.errors = null;
    this.locked = null;
    this.tracker = new WatchTracker();
    this.lastSentPosition = null;
    if (withCourse) {
      this.course = null;
      this.tracking = false;
      void this.loadCourse(signal);
    }
    try {
      const lesson = await api.getLesson(this.lessonId, signal);
      this.lesson = lesson;
      if (lesson.enrolled !== undefined) this.tracking = lesson.enrolled;
      document.title = `${lesson.title} · Cohort`;
      if (lesson.kind === "video" && lesson.video_id) {
        const video = await api.getVideo(lesson.video_id, signal);
        this.video = video;
        this.playerSrc = video.playback_url;
      }
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 403) this.locked = error.problem.detail;
      else this.errors = toFormErrors(error);
    }
  }

  private async loadCourse(signal: AbortSignal): Promise<void> {
    try {
      const course = await api.getCourse(this.courseId, signal);
      this.course = course;
      // The lesson says for itself whether progress is recorded; older hubs only tell it here.
      if (this.lesson?.enrolled === undefined) this.tracking = course.enrolled === true;
    } catch (error) {
      if (isAbort(error)) return;
      // The lesson itself may still be shown; only the sidebar is missing.
      this.course = null;
    }
  }

  // ---- render ---------------------------------------------------------------------------------

  override render() {
    const lesson = this.lesson;
    const course = this.course;
    return html`
      <p class="crumbs">
        <a href=${`/courses/${encodeURIComponent(this.courseId)}`} data-testid="lesson-course-link"
          >${course?.title ?? "Back to the course"}</a
        >
      </p>
      <div class="layout">
        <div>${this.renderMain(lesson)}</div>
        ${course ? this.renderSidebar(course) : nothing}
      </div>
    `;
  }

  private renderMain(lesson: Lesson | null) {
    if (this.locked !== null) {
      return html`<h1 tabindex="-1">This lesson is locked</h1>
        <div class="alert error" role="alert" data-testid="lesson-locked">${this.locked}</div>
        <p><a href=${`/courses/${encodeURIComponent(this.courseId)}`}>See the course and enroll</a></p>`;
    }
    if (!lesson) {
      return html`<h1 tabindex="-1">Lesson</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the lesson…</p>`}`;
    }
    return html`
      <h1 tabindex="-1" data-testid="lesson-title">${lesson.title}</h1>
      ${errorAlert(this.errors)}
      ${lesson.kind === "video" ? this.renderVideo(lesson) : this.renderText(lesson)}
      ${this.renderStatus(lesson)}
      <nav class="nav-buttons" aria-label="Lessons">
        ${lesson.prev_lesson_id !== null
          ? html`<a class="button" href=${lessonHref(lesson.course_id, lesson.prev_lesson_id)} data-testid="lesson-prev"
              >← Previous</a
            >`
          : html`<span></span>`}
        ${lesson.next_lesson_id !== null
          ? html`<a
              class="button ${lesson.progress?.completed ? "primary" : ""}"
              href=${lessonHref(lesson.course_id, lesson.next_lesson_id)}
              data-testid="lesson-next"
              >Next →</a
            >`
          : nothing}
      </nav>
    `;
  }

  private renderVideo(lesson: Lesson) {
    const video = this.video;
    if (!video) return html`<p class="muted" role="status">Loading the video…</p>`;
    if (!this.playerSrc) return html`<p class="muted">This video is not ready to play yet.</p>`;
    const position = lesson.progress?.position ?? null;
    const duration = lesson.duration ?? video.duration ?? 0;
    const startAt = position === null ? null : duration > 0 && position >= duration - RESUME_END_MARGIN ? 0 : position;
    return html`<div class="player">
      <cohort-player
        data-testid="lesson-player"
        aria-label=${`Video: ${lesson.title}`}
        .src=${this.playerSrc}
        .poster=${video.poster_url}
        .storyboard=${video.storyboard_url}
        .videoId=${video.id}
        .startAt=${startAt}
        @source-renewed=${(e: CustomEvent<{ src: string }>) => (this.playerSrc = e.detail.src)}
      ></cohort-player>
    </div>`;
  }

  private renderText(lesson: Lesson) {
    return html`<article class="card text-lesson" data-testid="lesson-body">
      <cohort-markdown .source=${lesson.body ?? ""}></cohort-markdown>
    </article>`;
  }

  private renderStatus(lesson: Lesson) {
    const progress = lesson.progress;
    const completed = progress?.completed === true;
    const showDone = lesson.kind === "text" && this.tracking && !completed;
    return html`<div class="status-line" aria-live="polite">
      ${completed
        ? html`<span class="completed" data-testid="lesson-completed">Completed ✓</span>`
        : lesson.kind === "video" && progress
          ? html`<span class="muted"
              >Watched <span data-testid="lesson-percent">${Math.floor(progress.percent)}</span>%</span
            >`
          : nothing}
      ${lesson.kind === "video" && this.playerSrc
        ? html`<button type="button" data-testid="watch-together" ?disabled=${this.startingParty} @click=${this.watchTogether}>
            ${this.startingParty ? "Starting…" : "Watch together"}
          </button>`
        : nothing}
      ${showDone
        ? html`<button type="button" data-testid="mark-done" ?disabled=${this.completing} @click=${this.markDone}>
            ${this.completing ? "Saving…" : "Mark as done"}
          </button>`
        : nothing}
      ${!this.tracking && this.course && !completed
        ? html`<span class="muted" data-testid="lesson-preview-note"
            >${this.course.enrolled ? "" : "Preview: enroll to keep track of your progress."}</span
          >`
        : nothing}
    </div>`;
  }

  private renderSidebar(course: Course) {
    const current = Number(this.lessonId);
    const user = this.session.user;
    const mine = user?.id === course.owner_id || user?.is_admin === true;
    return html`<aside class="card sidebar" aria-labelledby="curriculum-heading" data-testid="lesson-sidebar">
      <h2 id="curriculum-heading">Curriculum</h2>
      ${course.sections.map(
        (section) => html`<h3>${section.title}</h3>
          <ol>
            ${section.lessons.map((lesson) => {
              const open = lesson.free_preview || course.enrolled === true || mine;
              const done = lesson.completed === true;
              const inner = html`<span class="mark ${done ? "done" : ""}" aria-hidden="true"
                  >${done ? iconCheck : open ? (lesson.kind === "video" ? iconPlay : iconText) : iconLock}</span
                >
                <span class="name">${lesson.title}${done ? html`<span class="visually-hidden"> (completed)</span>` : nothing}</span>
                <span class="length">${formatDuration(lesson.duration)}</span>`;
              return html`<li data-testid="sidebar-lesson" data-lesson-id=${lesson.id} data-completed=${String(done)}>
                ${open
                  ? html`<a href=${lessonHref(course.id, lesson.id)} aria-current=${lesson.id === current ? "page" : nothing}
                      >${inner}</a
                    >`
                  : html`<span class="locked">${inner}<span class="visually-hidden"> (locked)</span></span>`}
              </li>`;
            })}
          </ol>`,
      )}
    </aside>`;
  }

  // ---- completion -----------------------------------------------------------------------------

  private async markDone(): Promise<void> {
    const lesson = this.lesson;
    if (!lesson || this.completing) return;
    this.completing = true;
    this.errors = null;
    try {
      this.adoptProgress(lesson.id, await api.completeLesson(lesson.id));
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      this.completing = false;
    }
  }

  private adoptProgress(lessonId: number, progress: LessonProgress): void {
    if (this.lesson?.id === lessonId) this.lesson = { ...this.lesson, progress };
    const course = this.course;
    if (course && progress.completed) {
      this.course = {
        ...course,
        sections: course.sections.map((section) => ({
          ...section,
          lessons: section.lessons.map((l) => (l.id === lessonId ? { ...l, completed: true } : l)),
        })),
      };
    }
  }

  // ---- progress heartbeats --------------------------------------------------------------------

  private bindMedia(media: HTMLVideoElement): void {
    this.boundMedia = media;
    media.addEventListener("playing", this.onPlaying);
    media.addEventListener("timeupdate", this.onTimeUpdate);
    media.addEventListener("seeking", this.onSeeking);
    media.addEventListener("pause", this.onPause);
    media.addEventListener("ended", this.onEnded);
  }

  private unbindMedia(): void {
    const media = this.boundMedia;
    if (!media) return;
    media.removeEventListener("playing", this.onPlaying);
    media.removeEventListener("timeupdate", this.onTimeUpdate);
    media.removeEventListener("seeking", this.onSeeking);
    media.removeEventListener("pause", this.onPause);
    media.removeEventListener("ended", this.onEnded);
    this.boundMedia = null;
  }

  private readonly onPlaying = (event: Event): void => {
    const media = event.target as HTMLVideoElement;
    this.tracker.playing(media.currentTime, media.playbackRate);
  };

  private readonly onTimeUpdate = (event: Event): void => {
    const media = event.target as HTMLVideoElement;
    if (media.paused || media.seeking || media.ended) return;
    this.tracker.playing(media.currentTime, media.playbackRate);
  };

  private readonly onSeeking = (): void => {
    // The stretch before the seek counts; the jump itself credits nothing.
    this.tracker.stop();
  };

  private readonly onPause = (event: Event): void => {
    const media = event.target as HTMLVideoElement;
    if (!media.seeking) this.tracker.stop(media.currentTime);
    void this.heartbeat();
  };

  private readonly onEnded = (event: Event): void => {
    const media = event.target as HTMLVideoElement;
    this.tracker.stop(media.currentTime);
    void this.heartbeat();
  };

  private onInterval(): void {
    const media = this.boundMedia;
    if (media && !media.paused) void this.heartbeat();
  }

  private readonly onPageHide = (): void => {
    const media = this.boundMedia;
    if (media && !media.paused) this.tracker.stop(media.currentTime);
    // The page is going: this one cannot wait for a heartbeat still in flight.
    void this.heartbeat(true, true);
  };

  private readonly onVisibility = (): void => {
    // Mobile browsers may discard a hidden tab without a pagehide.
    if (document.visibilityState === "hidden") void this.heartbeat(true, true);
  };

  /** Send what is pending now (leaving this lesson): never waits on a heartbeat in flight. */
  private flush(): void {
    const media = this.boundMedia;
    if (media && !media.paused) this.tracker.stop(media.currentTime);
    void this.heartbeat(true, true);
  }

  /**
   * One heartbeat: the position and the ranges played since the last one. One at a time;
   * a failed one hands its ranges back for the next, except when the hub refused them.
   */
  private async heartbeat(keepalive = false, force = false): Promise<void> {
    const lesson = this.lesson;
    const media = this.boundMedia;
    if (!this.tracking || !lesson || lesson.kind !== "video" || !media) return;
    if (this.sending && !force) {
      this.sendAgain = true;
      return;
    }
    const lessonDuration = lesson.duration ?? Number.POSITIVE_INFINITY;
    const mediaDuration = Number.isFinite(media.duration) ? media.duration : Number.POSITIVE_INFINITY;
    const duration = Math.min(lessonDuration, mediaDuration);
    const watched = this.tracker.take(Number.isFinite(duration) ? duration : null);
    const position = Math.round(Math.min(media.currentTime, Number.isFinite(duration) ? duration : media.currentTime) * 10) / 10;
    if (watched.length === 0 && position === this.lastSentPosition) return;
    this.lastSentPosition = position;
    const tracker = this.tracker;
    this.sending = true;
    try {
      const progress = await api.sendProgress(lesson.id, position, watched, { keepalive });
      this.adoptProgress(lesson.id, progress);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
        this.tracking = false;
      } else if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
        tracker.restore(watched);
        this.lastSentPosition = null;
      }
      // Any other refusal (422: ranges the hub would not take) is dropped, not retried forever.
    } finally {
      this.sending = false;
      if (this.sendAgain) {
        this.sendAgain = false;
        void this.heartbeat();
      }
    }
  }
}

customElements.define("lesson-page", LessonPage);
