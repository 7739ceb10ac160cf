import type { ChartConfiguration } from "chart.js";
import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Course, CourseStats, LessonStats } from "../api/types.ts";
import { baseScales, chartPalette } from "../components/cohort-chart.ts";
import "../components/cohort-chart.ts";
import { studioNav, studioNavStyles } from "../courses/studio-nav.ts";
import { dayLabel, fillDays } from "../dashboards/series.ts";
import { errorAlert, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { shared } from "../styles.ts";
import { formatTime } from "../videos/format.ts";
import { formatCoins } from "../wallet.ts";

/** `/studio/courses/:id/stats`: how a course does, as charts with the key figures as text. */
export class CourseStatsPage extends LitElement {
  static override styles = [
    shared,
    studioNavStyles,
    css`
      .figures {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr));
        gap: 1rem;
        margin-bottom: 1rem;
      }
      .figure {
        margin: 0;
      }
      .figure .number {
        display: block;
        font-size: 2rem;
        font-weight: 800;
        font-variant-numeric: tabular-nums;
      }
      .charts {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr));
        gap: 1rem;
      }
      .charts .card {
        margin: 0;
        min-width: 0;
      }
      .charts h2 {
        margin-top: 0;
        font-size: 1.05rem;
      }
      .wide {
        grid-column: 1 / -1;
      }
      .legend {
        list-style: none;
        padding: 0;
        margin: 0.75rem 0 0;
        display: grid;
        gap: 0.2rem;
        font-size: 0.9rem;
      }
      .legend li {
        display: flex;
        gap: 0.75rem;
        justify-content: space-between;
        border-bottom: 1px dotted var(--border);
        padding: 0.15rem 0;
      }
      .legend .name {
        overflow-wrap: anywhere;
      }
      .legend .nums {
        color: var(--muted);
        white-space: nowrap;
        font-variant-numeric: tabular-nums;
      }
      .pick {
        display: flex;
        align-items: center;
        gap: 0.6rem;
        flex-wrap: wrap;
        margin-bottom: 0.5rem;
      }
      .pick select {
        width: auto;
        max-width: 100%;
      }
    `,
  ];

  static override properties = {
    courseId: {},
    course: { state: true },
    stats: { state: true },
    errors: { state: true },
    missing: { state: true },
    dropoffLesson: { state: true },
  };

  declare courseId: string;
  declare course: Course | null;
  declare stats: CourseStats | null;
  declare errors: FormErrors | null;
  declare missing: boolean;
  /** The video lesson whose drop-off is shown. */
  declare dropoffLesson: number | null;

  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.courseId = "";
    this.course = null;
    this.stats = null;
    this.errors = null;
    this.missing = false;
    this.dropoffLesson = null;
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
    this.stats = null;
    this.errors = null;
    this.missing = false;
    try {
      const [course, stats] = await Promise.all([
        api.getCourse(this.courseId, aborter.signal),
        api.courseStats(this.courseId, aborter.signal),
      ]);
      this.course = course;
      this.stats = stats;
      document.title = `Stats: ${course.title} · Cohort`;
      const videos = stats.lessons.filter((l) => l.kind === "video");
      // Start with the video most people watched: its curve says the most.
      const busiest = [...videos].sort((a, b) => b.viewers - a.viewers)[0];
      this.dropoffLesson = busiest?.id ?? null;
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.missing = true;
      else this.errors = toFormErrors(error);
    }
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Course not found</h1>
        <p><a href="/studio/courses">Back to your courses</a></p>`;
    }
    const stats = this.stats;
    const course = this.course;
    if (!stats || !course) {
      return html`${studioNav("courses")}
        <h1 tabindex="-1">Course stats</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the figures…</p>`}`;
    }
    const lessons = stats.lessons;
    const viewers = Math.max(0, ...lessons.map((l) => l.viewers));
    return html`
      ${studioNav("courses")}
      <p style="margin:0 0 0.25rem"><a href=${`/studio/courses/${course.id}`}>← Edit course</a></p>
      <h1 tabindex="-1">${course.title}: stats</h1>
      ${errorAlert(this.errors)}
      <div class="figures">
        <p class="card figure">
          <span class="number" data-testid="stats-enrollments-total">${stats.enrollments.total}</span>
          enrollment${stats.enrollments.total === 1 ? "" : "s"}
        </p>
        <p class="card figure">
          <span class="number" data-testid="stats-coins-earned">${stats.coins_earned}</span>
          coins earned
        </p>
        <p class="card figure">
          <span class="number" data-testid="stats-viewers">${viewers}</span>
          viewer${viewers === 1 ? "" : "s"} of the most watched lesson
        </p>
      </div>
      <div class="charts">
        ${this.renderEnrollments(stats)} ${this.renderCoins(stats)} ${this.renderCompletion(lessons)}
        ${this.renderDropoff(lessons)}
      </div>
    `;
  }

  private renderEnrollments(stats: CourseStats) {
    const palette = chartPalette();
    const days = fillDays(stats.enrollments.by_day.map((d) => ({ date: d.date, value: d.count })));
    const config: ChartConfiguration<"bar"> = {
      type: "bar",
      data: {
        labels: days.map((d) => dayLabel(d.date)),
        datasets: [{ label: "Enrollments", data: days.map((d) => d.value), backgroundColor: palette.accent, borderRadius: 3 }],
      },
      options: {
        plugins: { legend: { display: false } },
        scales: {
          x: { ...baseScales(palette), grid: { display: false }, ticks: { color: palette.muted, maxTicksLimit: 8 } },
          y: { beginAtZero: true, ...baseScales(palette), ticks: { color: palette.muted, precision: 0 } },
        },
      },
    };
    return html`<section class="card">
      <h2>Enrollments over time</h2>
      <cohort-chart
        data-testid="chart-enrollments"
        .config=${config}
        label=${`Enrollments per day over the last ${days.length} days; ${stats.enrollments.total} in total`}
      ></cohort-chart>
    </section>`;
  }

  private renderCoins(stats: CourseStats) {
    const palette = chartPalette();
    const days = fillDays(stats.coins_by_day.map((d) => ({ date: d.date, value: d.coins })));
    let running = stats.coins_earned - days.reduce((sum, d) => sum + d.value, 0);
    const cumulative = days.map((d) => (running += d.value));
    const config: ChartConfiguration<"line"> = {
      type: "line",
      data: {
        labels: days.map((d) => dayLabel(d.date)),
        datasets: [
          {
            label: "Coins earned (total)",
            data: cumulative,
            borderColor: palette.success,
            backgroundColor: `${palette.success}33`,
            fill: true,
            tension: 0.2,
            pointRadius: days.length > 40 ? 0 : 2,
          },
          {
            label: "Coins per day",
            data: days.map((d) => d.value),
            borderColor: palette.warning,
            borderDash: [4, 4],
            pointRadius: 0,
          },
        ],
      },
      options: {
        plugins: { legend: { labels: { color: palette.text } } },
        scales: {
          x: { ...baseScales(palette), ticks: { color: palette.muted, maxTicksLimit: 8 } },
          y: { beginAtZero: true, ...baseScales(palette), ticks: { color: palette.muted, precision: 0 } },
        },
      },
    };
    return html`<section class="card">
      <h2>Coins earned</h2>
      <cohort-chart
        data-testid="chart-coins"
        .config=${config}
        label=${`Coins earned over time: ${formatCoins(stats.coins_earned)} in total`}
      ></cohort-chart>
    </section>`;
  }

  private renderCompletion(lessons: readonly LessonStats[]) {
    const palette = chartPalette();
    const config: ChartConfiguration<"bar"> = {
      type: "bar",
      data: {
        labels: lessons.map((l, i) => `${i + 1}. ${shorten(l.title)}`),
        datasets: [
          {
            label: "Completion rate",
            data: lessons.map((l) => Math.round(l.completion_rate * 100)),
            backgroundColor: palette.success,
            borderRadius: 3,
            maxBarThickness: 26,
          },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const lesson = lessons[item.dataIndex];
                return lesson ? `${item.formattedValue}% · ${lesson.completed} of ${lesson.viewers} viewers` : "";
              },
            },
          },
        },
        scales: {
          x: { min: 0, max: 100, ...baseScales(palette), ticks: { color: palette.muted, callback: (v) => `${v}%` } },
          y: { ...baseScales(palette), grid: { display: false } },
        },
      },
    };
    const summary = lessons.map((l) => `${l.title} ${Math.round(l.completion_rate * 100)}%`).join(", ");
    return html`<section class="card wide">
      <h2>Completion per lesson</h2>
      <cohort-chart
        data-testid="chart-completion"
        style=${`--chart-height:${Math.max(10, 3 + lessons.length * 2.2)}rem`}
        .config=${config}
        label=${`Completion rate per lesson: ${summary || "no lessons"}`}
      ></cohort-chart>
      <ul class="legend" aria-label="Viewers and completions per lesson">
        ${lessons.map(
          (l, i) => html`<li data-testid="lesson-stat" data-lesson-id=${l.id}>
            <span class="name">${i + 1}. ${l.title}</span>
            <span class="nums"
              ><span data-testid="lesson-viewers">${l.viewers}</span> viewer${l.viewers === 1 ? "" : "s"} ·
              <span data-testid="lesson-completions">${l.completed}</span> completed ·
              <span data-testid="lesson-completion-rate">${Math.round(l.completion_rate * 100)}%</span></span
            >
          </li>`,
        )}
      </ul>
    </section>`;
  }

  private renderDropoff(lessons: readonly LessonStats[]) {
    const videos = lessons.filter((l) => l.kind === "video");
    if (videos.length === 0) return nothing;
    const lesson = videos.find((l) => l.id === this.dropoffLesson) ?? videos[0]!;
    const palette = chartPalette();
    const bucket = lesson.dropoff?.bucket_seconds ?? 5;
    const counts = lesson.dropoff?.counts ?? [];
    const config: ChartConfiguration<"line"> = {
      type: "line",
      data: {
        labels: counts.map((_, i) => formatTime(i * bucket)),
        datasets: [
          {
            label: "Students watching",
            data: counts,
            borderColor: palette.accent,
            backgroundColor: `${palette.accent}33`,
            fill: true,
            tension: 0.2,
            pointRadius: counts.length > 60 ? 0 : 3,
          },
        ],
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => {
                const i = items[0]?.dataIndex ?? 0;
                return `${formatTime(i * bucket)}–${formatTime((i + 1) * bucket)}`;
              },
            },
          },
        },
        scales: {
          x: {
            ...baseScales(palette),
            title: { display: true, text: "Position in the video", color: palette.muted },
            ticks: { color: palette.muted, maxTicksLimit: 10 },
          },
          y: {
            beginAtZero: true,
            ...baseScales(palette),
            title: { display: true, text: "Students", color: palette.muted },
            ticks: { color: palette.muted, precision: 0 },
          },
        },
      },
    };
    const peak = Math.max(0, ...counts);
    const lastWatched = lastNonZero(counts);
    return html`<section class="card wide">
      <h2>Where viewers drop off</h2>
      <div class="pick">
        <label for="dropoff-lesson">Video lesson</label>
        <select
          id="dropoff-lesson"
          data-testid="dropoff-lesson"
          @change=${(e: Event) => (this.dropoffLesson = Number((e.target as HTMLSelectElement).value))}
        >
          ${videos.map((l) => html`<option value=${l.id} ?selected=${l.id === lesson.id}>${l.title}</option>`)}
        </select>
      </div>
      <cohort-chart
        data-testid="chart-dropoff"
        .config=${config}
        label=${`Students watching each ${bucket}-second stretch of ${lesson.title}; at most ${peak}`}
      ></cohort-chart>
      <p class="muted" style="margin:0.5rem 0 0" data-testid="dropoff-caption">
        ${counts.length === 0 || peak === 0
          ? "Nobody has watched this video yet."
          : html`Up to <span data-testid="dropoff-peak">${peak}</span> student${peak === 1 ? "" : "s"} per ${bucket}-second
              stretch; watched up to ${formatTime(Math.min((lastWatched + 1) * bucket, lesson.duration ?? Infinity))}.`}
      </p>
    </section>`;
  }
}

function shorten(title: string): string {
  return title.length > 32 ? `${title.slice(0, 31)}…` : title;
}

function lastNonZero(counts: readonly number[]): number {
  for (let i = counts.length - 1; i >= 0; i--) if ((counts[i] ?? 0) > 0) return i;
  return -1;
}

customElements.define("course-stats-page", CourseStatsPage);
