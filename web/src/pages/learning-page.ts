import type { ChartConfiguration } from "chart.js";
import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { Learning, WalletLine } from "../api/types.ts";
import { baseScales, chartPalette } from "../components/cohort-chart.ts";
import "../components/cohort-chart.ts";
import { lessonHref } from "../courses/curriculum.ts";
import { courseStyles } from "../courses/view.ts";
import { balanceSeries, timeLabel } from "../dashboards/series.ts";
import { errorAlert, formatDate, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { shared } from "../styles.ts";
import { wallet } from "../wallet.ts";

/** Enough history for the coins chart of anyone but the busiest wallets. */
const HISTORY_FOR_CHART = 200;

/** `/learning`: the student's dashboard, progress per course and coins over time. */
export class LearningPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    css`
      .charts {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr));
        gap: 1rem;
        align-items: start;
      }
      .charts .card h2 {
        margin-top: 0;
        font-size: 1.05rem;
      }
      .balance {
        font-size: 1.6rem;
        font-weight: 800;
        font-variant-numeric: tabular-nums;
      }
      .courses {
        list-style: none;
        padding: 0;
        margin: 0;
      }
      .course {
        display: grid;
        grid-template-columns: minmax(0, 1fr) auto;
        gap: 0.4rem 1rem;
        align-items: center;
      }
      .course .title {
        font-weight: 700;
        font-size: 1.05rem;
      }
      .course progress {
        width: 100%;
        grid-column: 1 / -1;
      }
      .course .meta {
        color: var(--muted);
        font-size: 0.9rem;
      }
      a.button {
        display: inline-block;
        font-weight: 600;
        padding: 0.45rem 0.9rem;
        border-radius: 6px;
        background: var(--accent);
        color: var(--on-accent);
        text-decoration: none;
        white-space: nowrap;
      }
      a.button:hover {
        background: var(--accent-strong);
      }
    `,
  ];

  static override properties = {
    learning: { state: true },
    history: { state: true },
    errors: { state: true },
  };

  /** null while loading. */
  declare learning: Learning | null;
  declare history: WalletLine[] | null;
  declare errors: FormErrors | null;

  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.learning = null;
    this.history = null;
    this.errors = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.aborter = new AbortController();
    void this.load(this.aborter.signal);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  private async load(signal: AbortSignal): Promise<void> {
    try {
      const [learning, history] = await Promise.all([
        api.myLearning(signal),
        api.walletHistory(null, HISTORY_FOR_CHART, signal),
      ]);
      this.learning = learning;
      this.history = history.items;
      wallet.set(learning.balance);
    } catch (error) {
      if (isAbort(error)) return;
      this.learning ??= { items: [], balance: 0 };
      this.history ??= [];
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    const learning = this.learning;
    if (!learning) {
      return html`<h1 tabindex="-1">My learning</h1>
        <p class="muted" role="status">Loading your courses…</p>`;
    }
    return html`
      <h1 tabindex="-1">My learning</h1>
      <p class="lead">Pick up where you left off.</p>
      ${errorAlert(this.errors)}
      ${learning.items.length === 0
        ? html`<div class="card narrow" data-testid="learning-empty">
            <p><strong>You are not enrolled in any course yet.</strong></p>
            <p><a href="/courses">Browse the catalog</a></p>
          </div>`
        : this.renderCourses(learning)}
      <div class="charts">
        ${learning.items.length ? this.renderProgressChart(learning) : nothing} ${this.renderCoins(learning)}
      </div>
    `;
  }

  private renderCourses(learning: Learning) {
    return html`<ul class="courses" data-testid="learning-courses">
      ${learning.items.map((item) => {
        const percent = Math.round(item.percent);
        return html`<li class="card course" data-testid="learning-course" data-course-id=${item.course.id}>
          <div>
            <a class="title" href=${`/courses/${item.course.id}`}>${item.course.title}</a>
            <div class="meta">
              <span data-testid="learning-percent">${percent}%</span> complete ·
              ${item.completed_lessons} of ${item.total_lessons} lessons
              ${item.last_activity_at ? html` · last active ${formatDate(item.last_activity_at)}` : nothing}
            </div>
          </div>
          ${item.next_lesson
            ? html`<a
                class="button"
                href=${lessonHref(item.course.id, item.next_lesson.id)}
                data-testid="learning-next"
                aria-label=${`Continue ${item.course.title}: ${item.next_lesson.title}`}
                >${percent > 0 ? "Continue" : "Start"}: ${item.next_lesson.title}</a
              >`
            : html`<span class="badge approved">Finished</span>`}
          <progress max="100" .value=${percent} aria-label=${`${item.course.title}: ${percent}% complete`}></progress>
        </li>`;
      })}
    </ul>`;
  }

  private renderProgressChart(learning: Learning) {
    const palette = chartPalette();
    const labels = learning.items.map((item) => item.course.title);
    const values = learning.items.map((item) => Math.round(item.percent));
    const config: ChartConfiguration<"bar"> = {
      type: "bar",
      data: {
        labels,
        datasets: [
          {
            label: "% complete",
            data: values,
            backgroundColor: palette.accent,
            borderRadius: 4,
            maxBarThickness: 28,
          },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: {
          x: { min: 0, max: 100, ...baseScales(palette), ticks: { color: palette.muted, callback: (v) => `${v}%` } },
          y: { ...baseScales(palette), grid: { display: false } },
        },
      },
    };
    const summary = learning.items.map((item, i) => `${item.course.title} ${values[i]}%`).join(", ");
    return html`<section class="card">
      <h2>Progress per course</h2>
      <cohort-chart
        data-testid="chart-progress"
        style=${`--chart-height:${Math.max(8, 3 + learning.items.length * 2.5)}rem`}
        .config=${config}
        label=${`Progress per course: ${summary}`}
      ></cohort-chart>
    </section>`;
  }

  private renderCoins(learning: Learning) {
    const palette = chartPalette();
    const points = balanceSeries(this.history ?? [], learning.balance);
    const span = points.length ? points[points.length - 1]!.x - points[0]!.x : 0;
    const config: ChartConfiguration<"line", { x: number; y: number }[]> = {
      type: "line",
      data: {
        datasets: [
          {
            label: "Coins",
            data: points,
            stepped: "before",
            borderColor: palette.success,
            backgroundColor: `${palette.success}33`,
            fill: true,
            pointRadius: points.length > 40 ? 0 : 3,
          },
        ],
      },
      options: {
        parsing: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: (items) => timeLabel(items[0]?.parsed.x ?? 0, 0) } },
        },
        scales: {
          x: {
            type: "linear",
            min: points[0]?.x,
            max: points[points.length - 1]?.x,
            ...baseScales(palette),
            ticks: { color: palette.muted, maxTicksLimit: 6, maxRotation: 0, callback: (v) => timeLabel(Number(v), span) },
          },
          y: { beginAtZero: true, ...baseScales(palette), ticks: { color: palette.muted, precision: 0 } },
        },
      },
    };
    return html`<section class="card">
      <h2>Coins</h2>
      <p style="margin-bottom:0.5rem">
        Balance: <span class="balance" data-testid="learning-balance">${learning.balance}</span> coins ·
        <a href="/wallet">Wallet</a>
      </p>
      <cohort-chart
        data-testid="chart-coins"
        .config=${config}
        label=${`Coin balance over time, now ${learning.balance} coins`}
      ></cohort-chart>
    </section>`;
  }
}

customElements.define("learning-page", LearningPage);
