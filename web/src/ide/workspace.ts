import type { ReactiveController, ReactiveControllerHost } from "lit";
import { ApiError } from "../api/client.ts";
import type { Person, ProjectDetail, User } from "../api/types.ts";
import { ProjectDocument } from "./document.ts";
import { ProjectRuns } from "./runs.ts";

/**
 * What the IDE page and the embeddable editor share: a project's document and its runs, opened
 * while the host is on the page and closed when it leaves, re-rendering the host on every change.
 */
export class ProjectWorkspace implements ReactiveController {
  document: ProjectDocument | null = null;
  runs: ProjectRuns | null = null;
  /** An action's failure (run, interrupt, restart), shown until the next action. */
  actionError: string | null = null;
  busy: "run" | "interrupt" | "restart" | null = null;
  private project: ProjectDetail | null = null;
  private user: User | null = null;
  private readonly update = (): void => this.host.requestUpdate();

  constructor(private readonly host: ReactiveControllerHost) {
    host.addController(this);
  }

  /** Open a project's document and runs (closing whatever was open). */
  open(project: ProjectDetail, user: User): void {
    if (this.project?.id === project.id && this.document) {
      this.project = project;
      return;
    }
    this.close();
    this.project = project;
    this.user = user;
    this.document = new ProjectDocument(project.doc, user);
    this.runs = new ProjectRuns(project.id);
    for (const type of ["status", "sync", "files", "peers"]) this.document.addEventListener(type, this.update);
    this.runs.addEventListener("change", this.update);
    this.host.requestUpdate();
  }

  close(): void {
    if (this.document) {
      for (const type of ["status", "sync", "files", "peers"]) this.document.removeEventListener(type, this.update);
      this.document.destroy();
    }
    this.runs?.removeEventListener("change", this.update);
    this.runs?.close();
    this.document = null;
    this.runs = null;
    this.project = null;
  }

  get canWrite(): boolean {
    return !!this.project && this.project.role !== "viewer";
  }

  /** Members by id (owner and invited), to name who ran what. */
  people(): Map<number, Person> {
    const people = new Map<number, Person>();
    for (const member of this.project?.members ?? []) people.set(member.user.id, member.user);
    for (const peer of this.document?.peers() ?? []) {
      if (peer.id && !people.has(peer.id)) people.set(peer.id, { id: peer.id, display_name: peer.name, avatar_color: peer.color });
    }
    return people;
  }

  run(input: { path: string } | { code: string }): Promise<void> {
    return this.act("run", async (runs) => {
      const me = this.user;
      await runs.start(input, me ? { id: me.id, display_name: me.display_name, avatar_color: me.avatar_color } : undefined);
    });
  }

  interrupt(): Promise<void> {
    return this.act("interrupt", (runs) => runs.interrupt());
  }

  restart(): Promise<void> {
    return this.act("restart", (runs) => runs.restart());
  }

  hostConnected(): void {
    // Reopened by the host's next load.
  }

  hostDisconnected(): void {
    this.close();
  }

  private async act(kind: "run" | "interrupt" | "restart", action: (runs: ProjectRuns) => Promise<void>): Promise<void> {
    const runs = this.runs;
    if (!runs || this.busy) return;
    this.busy = kind;
    this.actionError = null;
    this.host.requestUpdate();
    try {
      await action(runs);
    } catch (error) {
      this.actionError =
        error instanceof ApiError ? error.problem.detail || error.message : "The hub could not be reached. Try again.";
    } finally {
      this.busy = null;
      this.host.requestUpdate();
    }
  }
}
