import { css, html, nothing, type TemplateResult } from "lit";
import type { ProjectWorkspace } from "./workspace.ts";

/** Styles the IDE page and the embeddable editor share. */
export const ideStyles = css`
  .toolbar {
    display: flex;
    flex-wrap: wrap;
    gap: 0.4rem;
    align-items: center;
  }
  .toolbar button {
    padding: 0.35rem 0.8rem;
    font-size: 0.9rem;
  }
  .toolbar .kernel {
    margin-left: auto;
    font-size: 0.8rem;
    color: var(--muted);
  }
  .toolbar .error {
    flex-basis: 100%;
    color: var(--danger);
    font-size: 0.85rem;
  }
  kbd {
    font-size: 0.75rem;
    opacity: 0.8;
  }
`;

const KERNEL_LABEL: Record<string, string> = {
  none: "not started",
  starting: "starting…",
  idle: "idle",
  busy: "busy",
  dead: "stopped (Restart to start again)",
};

export interface RunToolbarOptions {
  workspace: ProjectWorkspace;
  canRun: boolean;
  hasSelection: boolean;
  /** What Run runs (the file's path). */
  label: string;
  onRun: () => void;
  onRunSelection: () => void;
}

/** Run (the file), Run selection, Interrupt, Restart and the kernel's state. */
export function runToolbar(options: RunToolbarOptions): TemplateResult {
  const { workspace, canRun, hasSelection } = options;
  const runs = workspace.runs;
  const busy = workspace.busy;
  const state = runs?.kernelState;
  return html`<div class="toolbar" role="toolbar" aria-label="Run">
    <button
      type="button"
      data-testid="run"
      ?disabled=${!canRun || busy !== null}
      title=${options.label ? `Run ${options.label} (Ctrl+Enter)` : "Run"}
      @click=${options.onRun}
    >
      ${busy === "run" ? "Starting…" : "▶ Run"}
    </button>
    <button
      type="button"
      class="secondary"
      data-testid="run-selection"
      ?disabled=${!canRun || !hasSelection || busy !== null}
      @click=${options.onRunSelection}
    >
      Run selection
    </button>
    <button type="button" class="secondary" data-testid="interrupt" ?disabled=${!canRun || busy !== null} @click=${() => void workspace.interrupt()}>
      ■ Interrupt
    </button>
    <button type="button" class="secondary" data-testid="restart" ?disabled=${!canRun || busy !== null} @click=${() => void workspace.restart()}>
      ↻ Restart
    </button>
    ${state ? html`<span class="kernel" data-testid="kernel-state" data-state=${state}>Kernel: ${KERNEL_LABEL[state] ?? state}</span>` : nothing}
    ${workspace.actionError ? html`<span class="error" role="alert" data-testid="run-error-message">${workspace.actionError}</span>` : nothing}
  </div>`;
}
