import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { ProjectDetail } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import { shared } from "../styles.ts";
import type { CodeEditor } from "./code-editor.ts";
import "./code-editor.ts";
import "./run-output.ts";
import { ideStyles, runToolbar } from "./view.ts";
import { ProjectWorkspace } from "./workspace.ts";

/**
 * `<cohort-editor project="12" file="main.py">`: one file of a shared project, live, with Run
 * and the shared output, and no other chrome: for lesson pages and `/embed/projects/{id}`.
 * The visitor must be signed in on this origin and be a member of the project; viewers get a
 * read-only editor. The file is created (empty) when it does not exist and the visitor may
 * write.
 *
 * Attributes: `project` (id), `file` (path, default `main.py`), `output` (`"false"` hides the
 * output panel). Test ids: cohort-editor (data-state), plus those of `<code-editor>`,
 * `<run-output>` and the run toolbar.
 */
export class CohortEditor extends LitElement {
  static override styles = [
    shared,
    ideStyles,
    css`
      :host {
        display: block;
      }
      .frame {
        display: flex;
        flex-direction: column;
        gap: 0.5rem;
      }
      code-editor {
        height: var(--cohort-editor-height, 18rem);
      }
      run-output {
        --run-output-height: var(--cohort-output-height, 12rem);
      }
      .file {
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
        font-size: 0.8rem;
        color: var(--muted);
      }
    `,
  ];

  static override properties = {
    project: {},
    file: {},
    output: {},
    info: { state: true },
    problem: { state: true },
    hasSelection: { state: true },
  };

  declare project: string;
  declare file: string;
  declare output: string;
  declare info: ProjectDetail | null;
  declare problem: string | null;
  declare hasSelection: boolean;

  private readonly session = new AuthController(this);
  private readonly workspace = new ProjectWorkspace(this);
  private abort: AbortController | null = null;
  private loadedFor: string | null = null;

  constructor() {
    super();
    this.project = "";
    this.file = "main.py";
    this.output = "true";
    this.info = null;
    this.problem = null;
    this.hasSelection = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.loadedFor = null;
    this.requestUpdate();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
  }

  protected override willUpdate(_changed: PropertyValues<this>): void {
    const user = this.session.user;
    const key = user && this.project ? `${user.id}:${this.project}` : null;
    if (key !== this.loadedFor && this.session.status !== "unknown") {
      this.loadedFor = key;
      void this.load();
    }
    this.ensureFile();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    this.workspace.close();
    this.info = null;
    this.problem = null;
    const user = this.session.user;
    if (!user || !/^\d+$/.test(this.project)) {
      this.problem = user ? "No such project." : "signed-out";
      return;
    }
    const abort = new AbortController();
    this.abort = abort;
    try {
      const project = await api.getProject(this.project, abort.signal);
      this.info = project;
      this.workspace.open(project, user);
    } catch (error) {
      if (abort.signal.aborted) return;
      this.problem =
        error instanceof ApiError && (error.status === 403 || error.status === 404)
          ? "This project is not shared with you."
          : "The project could not be loaded.";
    }
  }

  /** An editor of a project that lacks the file starts it, as the layout prescribes. */
  private ensureFile(): void {
    const doc = this.workspace.document;
    if (!doc) return;
    if (doc.awareness.getLocalState()?.["file"] !== this.file) doc.awareness.setLocalStateField("file", this.file);
    if (!doc.synced || !this.workspace.canWrite || !this.file) return;
    if (!doc.text(this.file)) doc.addFile(this.file);
  }

  override render() {
    if (this.problem === "signed-out") {
      const next = encodeURIComponent(this.returnPath());
      return html`<p data-testid="cohort-editor" data-state="signed-out">
        <a href="/login?next=${next}" target="_top">Log in</a> to open this project's editor.
      </p>`;
    }
    if (this.problem) return html`<p class="alert error" role="alert" data-testid="cohort-editor" data-state="error">${this.problem}</p>`;
    const doc = this.workspace.document;
    if (!this.info || !doc) return html`<p class="muted" role="status" data-testid="cohort-editor" data-state="loading">Loading…</p>`;
    const readonly = !this.workspace.canWrite;
    const ytext = doc.loaded ? (doc.text(this.file) ?? null) : null;
    return html`<div class="frame" data-testid="cohort-editor" data-state=${doc.synced ? "ready" : "syncing"}>
      ${runToolbar({
        workspace: this.workspace,
        canRun: !readonly && !!ytext,
        hasSelection: this.hasSelection,
        label: this.file,
        onRun: () => void this.workspace.run({ path: this.file }),
        onRunSelection: () => this.runSelection(),
      })}
      <span class="file">${this.info.name} / ${this.file}${readonly ? " (read only)" : ""}</span>
      ${ytext
        ? html`<code-editor
            .ytext=${ytext}
            .awareness=${doc.awareness}
            .readonly=${readonly}
            .label=${`Code of ${this.file}`}
            @run=${() => {
              if (!readonly) void this.workspace.run({ path: this.file });
            }}
            @selection-change=${(e: CustomEvent<{ empty: boolean }>) => (this.hasSelection = !e.detail.empty)}
          ></code-editor>`
        : html`<p class="muted" role="status">${doc.loaded ? `${this.file} does not exist in this project.` : "Opening…"}</p>`}
      ${this.output === "false"
        ? nothing
        : html`<run-output .runs=${this.workspace.runs?.runs ?? []} .people=${this.workspace.people()}></run-output>`}
    </div>`;
  }

  /** Where login should bring the visitor back: the page around the iframe, or the IDE. */
  private returnPath(): string {
    try {
      const top = window.top?.location;
      if (top && top.origin === window.location.origin && !top.pathname.startsWith("/embed/")) return top.pathname + top.search;
    } catch {
      // A page on another origin embeds us: its address is not ours to read.
    }
    return `/projects/${this.project}`;
  }

  private runSelection(): void {
    const code = this.renderRoot.querySelector<CodeEditor>("code-editor")?.selectionText ?? "";
    if (code.trim()) void this.workspace.run({ code });
  }
}

customElements.define("cohort-editor", CohortEditor);
