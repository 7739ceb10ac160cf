import DOMPurify from "dompurify";
import { css, html, LitElement, nothing, type TemplateResult } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { unsafeHTML } from "lit/directives/unsafe-html.js";
import type { Person, Run, RunOutput } from "../api/types.ts";
import { shared } from "../styles.ts";

const purify = DOMPurify();

// CSI sequences (colours, cursor moves) and the rarer OSC ones that IPython's tracebacks carry.
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** HTML from a kernel, made safe to insert: no scripts, handlers, forms, frames or styles. */
export function safeRichHtml(source: string): string {
  return purify.sanitize(source, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "link", "meta"],
    FORBID_ATTR: ["style"],
  });
}

const STATUS_LABEL: Record<string, string> = {
  queued: "Queued",
  running: "Running…",
  ok: "Done",
  error: "Error",
  interrupted: "Interrupted",
  limit: "Stopped: limit reached",
};

/**
 * `<run-output>`: the shared output panel. Every run (whoever started it) with its outputs:
 * stream text, rich results (image, sanitised HTML, plain text) and tracebacks without ANSI
 * codes. Properties: `runs` (oldest first), `people` (id → person, to name who ran a run when
 * the hub sends only an id).
 *
 * Test ids: run-output, run-item (data-run, data-status), run-by, run-status, run-stream,
 * run-result, run-error.
 */
export class RunOutputPanel extends LitElement {
  static override styles = [
    shared,
    css`
      :host {
        display: block;
        min-height: 0;
      }
      .log {
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
        font-size: 0.85rem;
        overflow: auto;
        max-height: var(--run-output-height, 22rem);
        background: var(--surface);
        border: 1px solid var(--border);
        border-radius: var(--radius);
        padding: 0.5rem 0.75rem;
      }
      .run + .run {
        border-top: 1px dashed var(--border);
        margin-top: 0.5rem;
        padding-top: 0.5rem;
      }
      .head {
        display: flex;
        gap: 0.5rem;
        align-items: baseline;
        flex-wrap: wrap;
        font-family: var(--font);
        font-size: 0.8rem;
        color: var(--muted);
      }
      .who {
        font-weight: 700;
      }
      .status.error,
      .status.limit {
        color: var(--danger);
      }
      .status.ok {
        color: var(--success);
      }
      pre {
        margin: 0.2rem 0 0;
        white-space: pre-wrap;
        overflow-wrap: anywhere;
      }
      pre.stderr,
      pre.error {
        color: var(--danger);
      }
      .rich {
        margin-top: 0.2rem;
        overflow-x: auto;
      }
      .rich img {
        max-width: 100%;
        height: auto;
        background: #fff;
      }
      .empty {
        color: var(--muted);
        font-family: var(--font);
      }
    `,
  ];

  static override properties = {
    runs: { attribute: false },
    people: { attribute: false },
  };

  declare runs: readonly Run[];
  declare people: ReadonlyMap<number, Person>;

  private stickToBottom = true;

  constructor() {
    super();
    this.runs = [];
    this.people = new Map();
  }

  override render() {
    return html`<div class="log" data-testid="run-output" role="log" aria-live="polite" aria-label="Output" @scroll=${this.onScroll}>
      ${this.runs.length
        ? repeat(
            this.runs,
            (run) => String(run.id),
            (run) => this.renderRun(run),
          )
        : html`<p class="empty">Nothing has run yet. Press Run to run the current file.</p>`}
    </div>`;
  }

  protected override updated(): void {
    const log = this.renderRoot.querySelector(".log");
    if (log && this.stickToBottom) log.scrollTop = log.scrollHeight;
  }

  private onScroll(event: Event): void {
    const log = event.currentTarget as HTMLElement;
    this.stickToBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  private renderRun(run: Run): TemplateResult {
    const by = this.who(run);
    const what = run.path ? run.path : "selection";
    return html`<section class="run" data-testid="run-item" data-run=${String(run.id)} data-status=${run.status}>
      <div class="head">
        <span class="who" data-testid="run-by">${by}</span>
        <span>ran ${what}</span>
        <span class="status ${run.status}" data-testid="run-status">${STATUS_LABEL[run.status] ?? run.status}</span>
      </div>
      ${mergeStreams(run.outputs ?? []).map((output) => renderOutput(output))}
    </section>`;
  }

  private who(run: Run): string {
    const by = run.by;
    if (by && typeof by === "object") return by.display_name;
    if (typeof by === "number") return this.people.get(by)?.display_name ?? `User ${by}`;
    return "Someone";
  }
}

/** Consecutive stream chunks of one stream read as one block, as in a terminal. */
function mergeStreams(outputs: readonly RunOutput[]): RunOutput[] {
  const merged: RunOutput[] = [];
  for (const output of outputs) {
    const last = merged[merged.length - 1];
    if (output.output_type === "stream" && last?.output_type === "stream" && last.name === output.name) {
      merged[merged.length - 1] = { ...last, text: last.text + output.text };
    } else {
      merged.push(output);
    }
  }
  return merged;
}

/** A MIME bundle's value: a string, or (as notebooks store them) a list of lines. */
function mimeText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((line) => typeof line === "string")) return value.join("");
  return null;
}

function renderOutput(output: RunOutput): TemplateResult | typeof nothing {
  switch (output.output_type) {
    case "stream":
      return html`<pre class=${output.name === "stderr" ? "stderr" : "stdout"} data-testid="run-stream">${stripAnsi(mimeText(output.text) ?? "")}</pre>`;
    case "execute_result":
    case "display_data": {
      const data = output.data ?? {};
      const png = mimeText(data["image/png"]);
      if (png !== null) {
        return html`<div class="rich" data-testid="run-result"><img alt="Figure" src=${`data:image/png;base64,${png.replace(/\s/g, "")}`} /></div>`;
      }
      const markup = mimeText(data["text/html"]);
      if (markup !== null) {
        return html`<div class="rich" data-testid="run-result">${unsafeHTML(safeRichHtml(markup))}</div>`;
      }
      const plain = mimeText(data["text/plain"]);
      if (plain !== null) return html`<pre data-testid="run-result">${stripAnsi(plain)}</pre>`;
      return nothing;
    }
    case "error": {
      const trace = output.traceback?.length ? output.traceback.join("\n") : `${output.ename}: ${output.evalue}`;
      return html`<pre class="error" data-testid="run-error">${stripAnsi(trace)}</pre>`;
    }
    default:
      return nothing;
  }
}

customElements.define("run-output", RunOutputPanel);
