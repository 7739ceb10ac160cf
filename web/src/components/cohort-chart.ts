import { css, html, LitElement, type PropertyValues } from "lit";
import type { Chart, ChartConfiguration } from "chart.js";

type ChartModule = typeof import("./chart-lib.ts");
let chartModule: Promise<ChartModule> | null = null;

/** Chart.js loads with the first page that draws a chart. */
function loadCharts(): Promise<ChartModule> {
  chartModule ??= import("./chart-lib.ts");
  return chartModule;
}

/**
 * `<cohort-chart .config=${...} label="...">`: a Chart.js canvas. `label` becomes the canvas'
 * accessible name (role img), so it should say what the chart shows, with the key figures;
 * pages show the same figures as text next to it.
 */
export class CohortChart extends LitElement {
  static override styles = css`
    :host {
      display: block;
      position: relative;
      height: var(--chart-height, 16rem);
    }
    canvas {
      display: block;
    }
    .failed {
      color: var(--muted);
    }
  `;

  static override properties = {
    config: { attribute: false },
    label: {},
    failed: { state: true },
  };

  declare config: ChartConfiguration | null;
  declare label: string;
  declare failed: boolean;

  private chart: Chart | null = null;
  private drawing = 0;

  constructor() {
    super();
    this.config = null;
    this.label = "";
    this.failed = false;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.drawing += 1;
    this.chart?.destroy();
    this.chart = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.hasUpdated && this.config && !this.chart) void this.draw();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has("config")) void this.draw();
  }

  override render() {
    if (this.failed) return html`<p class="failed" role="img" aria-label=${this.label}>${this.label}</p>`;
    return html`<canvas role="img" aria-label=${this.label}><p>${this.label}</p></canvas>`;
  }

  private async draw(): Promise<void> {
    const token = ++this.drawing;
    const config = this.config;
    const canvas = this.renderRoot.querySelector("canvas");
    if (!config || !canvas) return;
    let Chart: ChartModule["Chart"];
    try {
      ({ Chart } = await loadCharts());
    } catch {
      this.failed = true;
      return;
    }
    if (token !== this.drawing) return;
    this.chart?.destroy();
    this.chart = new Chart(canvas, {
      ...config,
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reducedMotion() ? false : { duration: 250 },
        ...config.options,
      },
    });
  }
}

customElements.define("cohort-chart", CohortChart);

declare global {
  interface HTMLElementTagNameMap {
    "cohort-chart": CohortChart;
  }
}

function reducedMotion(): boolean {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}

/** Colours from the page palette (index.html), so charts follow light and dark mode. */
export function chartPalette(): {
  accent: string;
  accentSoft: string;
  success: string;
  warning: string;
  danger: string;
  muted: string;
  grid: string;
  text: string;
} {
  const style = getComputedStyle(document.documentElement);
  const read = (name: string, fallback: string): string => style.getPropertyValue(name).trim() || fallback;
  return {
    accent: read("--accent", "#4f46e5"),
    accentSoft: read("--accent-soft", "#e8e7fc"),
    success: read("--success", "#2e7d32"),
    warning: read("--warning", "#b7791f"),
    danger: read("--danger", "#c62828"),
    muted: read("--muted", "#5b6470"),
    grid: read("--border", "#e2e5ea"),
    text: read("--text", "#1b1f24"),
  };
}

/** Axis and legend colours shared by every chart. */
export function baseScales(palette: ReturnType<typeof chartPalette>): {
  ticks: { color: string };
  grid: { color: string };
} {
  return { ticks: { color: palette.muted }, grid: { color: palette.grid } };
}
