import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Person, Run, RunOutput, RunStatus } from "../api/types.ts";
import { gateway, type ChannelMessage } from "../realtime/gateway.ts";

/**
 * A project's runs as every member sees them: recent ones from `GET /api/projects/{id}/runs`,
 * then live from the gateway channel `project:<id>` (`{"type":"run","run":{…}}` on status
 * changes, `{"type":"output","run":id,"index":i,"output":{…}}` per output, `{"type":"kernel",
 * "kernel":{state,…}}` when the kernel's state changes). A run that finishes is read
 * once more from the hub, so outputs missed on the wire still show; while the live channel is
 * unavailable, unfinished runs are polled.
 */

const RECENT = 20;
const POLL_MS = 1_500;
/** With the live channel up, a slow safety net in case a final frame went missing. */
const POLL_LIVE_MS = 5_000;
const FINISHED: ReadonlySet<RunStatus> = new Set(["ok", "error", "interrupted", "limit"]);

export function isFinished(run: Run): boolean {
  return FINISHED.has(run.status);
}

export class ProjectRuns extends EventTarget {
  /** Oldest first. */
  runs: Run[] = [];
  kernelState: string | null = null;
  /** Why the recent runs could not be loaded, or null. */
  problem: string | null = null;
  live = false;
  private readonly byId = new Map<string, Run>();
  private stopChannel: (() => void) | null = null;
  private pollTimer: number | undefined;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(readonly projectId: number) {
    super();
    this.stopChannel = gateway.subscribe(`project:${projectId}`, {
      message: (message) => this.onMessage(message),
      subscribed: (info) => {
        this.live = true;
        // Back after a disconnect: what happened meanwhile is in the hub's list.
        if (info.resumed) void this.reload();
        this.emit();
      },
      error: () => {
        this.live = false;
        this.schedulePoll();
        this.emit();
      },
    });
    void this.reload();
    void this.refreshKernel();
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
    this.stopChannel?.();
    window.clearTimeout(this.pollTimer);
  }

  /** Run a file or a piece of code; the run appears at once and fills in live. */
  async start(input: { path: string } | { code: string }, by?: Person): Promise<Run> {
    const started = await api.startRun(this.projectId, input);
    const run: Run = {
      ...started,
      path: "path" in input ? input.path : (started.path ?? null),
      by: started.by ?? by ?? null,
    };
    this.merge(run);
    this.schedulePoll();
    return run;
  }

  async interrupt(): Promise<void> {
    this.kernelState = (await api.interruptKernel(this.projectId)).state;
    this.emit();
  }

  async restart(): Promise<void> {
    this.kernelState = (await api.restartKernel(this.projectId)).state;
    this.emit();
  }

  async refreshKernel(): Promise<void> {
    try {
      this.kernelState = (await api.kernelState(this.projectId, this.abort.signal)).state;
    } catch {
      this.kernelState = null;
    }
    this.emit();
  }

  private async reload(): Promise<void> {
    try {
      const recent = await api.recentRuns(this.projectId, RECENT, this.abort.signal);
      for (const run of recent) this.merge(run, { replaceOutputs: true });
      this.problem = null;
      this.schedulePoll();
    } catch (error) {
      if (this.closed) return;
      this.problem = error instanceof ApiError ? `Could not load the runs: ${error.message}` : "Could not load the runs.";
    }
    this.emit();
  }

  private onMessage(message: ChannelMessage): void {
    const data = message.data;
    if (data["type"] === "run" && data["run"] && typeof data["run"] === "object") {
      const run = data["run"] as Run;
      const before = this.byId.get(String(run.id));
      this.merge(run, { replaceOutputs: Array.isArray(run.outputs) });
      if (isFinished(run) && (!before || !isFinished(before))) void this.fetch(run.id);
    } else if (data["type"] === "output" && data["output"] && data["run"] !== undefined) {
      const id = String(data["run"]);
      let run = this.byId.get(id);
      if (!run) {
        // The run's own frame has not arrived (or came before we subscribed): learn it.
        run = { id: data["run"] as number, status: "running", outputs: [] };
        this.merge(run);
        void this.fetch(run.id);
      }
      const outputs = [...(run.outputs ?? [])];
      const index = data["index"];
      // With its index, an output replayed or already fetched lands on itself, not twice.
      if (typeof index === "number" && index >= 0 && index <= outputs.length) outputs[index] = data["output"] as RunOutput;
      else if (typeof index === "number" && index > outputs.length) void this.fetch(run.id);
      else outputs.push(data["output"] as RunOutput);
      run.outputs = outputs;
      this.runs = [...this.runs];
    } else if (data["type"] === "kernel" && data["kernel"] && typeof data["kernel"] === "object") {
      const state = (data["kernel"] as { state?: unknown }).state;
      if (typeof state === "string") this.kernelState = state;
    } else {
      return;
    }
    this.emit();
  }

  private async fetch(runId: number | string): Promise<void> {
    try {
      const run = await api.getRun(this.projectId, runId, this.abort.signal);
      this.merge(run, { replaceOutputs: true });
      this.emit();
    } catch {
      // The live frames already shown stay; the next reload settles it.
    }
  }

  private merge(run: Run, options: { replaceOutputs?: boolean } = {}): void {
    const key = String(run.id);
    const known = this.byId.get(key);
    if (known) {
      const outputs = options.replaceOutputs && run.outputs ? run.outputs : known.outputs;
      // A late status frame must not move a finished run back to running.
      const status = isFinished(known) && !isFinished(run) ? known.status : run.status;
      Object.assign(known, { ...run, outputs: outputs ?? [], status, path: run.path ?? known.path, by: run.by ?? known.by });
    } else {
      const fresh: Run = { ...run, outputs: run.outputs ?? [] };
      this.byId.set(key, fresh);
      this.runs.push(fresh);
      this.runs.sort(order);
      if (this.runs.length > RECENT * 3) {
        for (const dropped of this.runs.splice(0, this.runs.length - RECENT * 3)) this.byId.delete(String(dropped.id));
      }
    }
    this.runs = [...this.runs];
  }

  /** Unfinished runs are read from the hub until they finish (often without the live channel). */
  private schedulePoll(): void {
    window.clearTimeout(this.pollTimer);
    if (this.closed || !this.runs.some((run) => !isFinished(run))) return;
    this.pollTimer = window.setTimeout(
      async () => {
        await Promise.all(this.runs.filter((run) => !isFinished(run)).map((run) => this.fetch(run.id)));
        this.schedulePoll();
      },
      this.live ? POLL_LIVE_MS : POLL_MS,
    );
  }

  private emit(): void {
    this.dispatchEvent(new Event("change"));
  }
}

function order(a: Run, b: Run): number {
  const at = Date.parse(a.created_at ?? a.started_at ?? "") || 0;
  const bt = Date.parse(b.created_at ?? b.started_at ?? "") || 0;
  if (at && bt && at !== bt) return at - bt;
  const ai = Number(a.id);
  const bi = Number(b.id);
  return Number.isFinite(ai) && Number.isFinite(bi) ? ai - bi : 0;
}
