import { css, html, LitElement, nothing, type PropertyValues, type TemplateResult } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { styleMap } from "lit/directives/style-map.js";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { ProjectDetail } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/chat-panel.ts";
import { errorAlert, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import type { CodeEditor } from "../ide/code-editor.ts";
import "../ide/code-editor.ts";
import { normalisePath, type Peer } from "../ide/document.ts";
import { ideStyles, runToolbar } from "../ide/view.ts";
import "../ide/run-output.ts";
import { ProjectWorkspace } from "../ide/workspace.ts";
import { currentLocation } from "../router.ts";
import { socialStyles } from "../social/view.ts";
import { shared } from "../styles.ts";

type FileAction = { kind: "add" } | { kind: "rename"; path: string } | { kind: "delete"; path: string };

/**
 * `/projects/:id`: the IDE. File tree, editor and presence come from the project's shared
 * document (`files`: path → Y.Text, edited live by every member); Run / Interrupt / Restart
 * drive the project's one kernel and the output panel shows every member's runs; the study
 * group's chat sits below when the project belongs to a group.
 *
 * Test ids: ide, ide-status, file-tree, file (data-path, aria-current), file-add, file-path,
 * file-save, file-rename, file-delete, file-delete-confirm, presence, peer (data-user),
 * run, run-selection, interrupt, restart, kernel-state, ide-readonly, project-invite-*.
 */
export class ProjectPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    ideStyles,
    css`
      .hero {
        display: flex;
        justify-content: space-between;
        flex-wrap: wrap;
        gap: 0.5rem 1rem;
        align-items: baseline;
      }
      .ide {
        display: grid;
        grid-template-columns: 14rem minmax(0, 1fr);
        gap: 1rem;
        align-items: start;
      }
      @media (max-width: 48rem) {
        .ide {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      aside {
        display: flex;
        flex-direction: column;
        gap: 1rem;
      }
      aside section {
        background: var(--surface);
        border: 1px solid var(--border);
        border-radius: var(--radius);
        padding: 0.6rem;
      }
      aside h2 {
        margin: 0 0 0.4rem;
        font-size: 0.95rem;
        display: flex;
        justify-content: space-between;
        align-items: center;
      }
      .files {
        list-style: none;
        margin: 0;
        padding: 0;
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
        font-size: 0.85rem;
      }
      .files li {
        display: flex;
        align-items: center;
        gap: 0.2rem;
        border-radius: 6px;
      }
      .files li[aria-current="true"] {
        background: var(--accent-soft);
      }
      .files button.open {
        all: unset;
        cursor: pointer;
        flex: 1 1 auto;
        min-width: 0;
        padding: 0.25rem 0.4rem;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .files button.open:focus-visible {
        outline: 2px solid var(--focus);
      }
      .files .tools {
        display: none;
      }
      .files li:hover .tools,
      .files li:focus-within .tools,
      .files li[aria-current="true"] .tools {
        display: flex;
      }
      button.icon {
        padding: 0.1rem 0.35rem;
        font-size: 0.75rem;
        background: transparent;
        color: var(--muted);
        border: 1px solid transparent;
      }
      button.icon:hover:not(:disabled) {
        background: var(--hover);
        color: var(--text);
      }
      form.file-form {
        display: flex;
        flex-direction: column;
        gap: 0.3rem;
        margin-top: 0.4rem;
      }
      form.file-form input {
        padding: 0.3rem 0.45rem;
        font-size: 0.85rem;
      }
      .peers {
        list-style: none;
        margin: 0;
        padding: 0;
        font-size: 0.9rem;
      }
      .peers li {
        display: flex;
        gap: 0.4rem;
        align-items: center;
        padding: 0.15rem 0;
      }
      .peers .swatch {
        flex: none;
        width: 0.7rem;
        height: 0.7rem;
        border-radius: 50%;
      }
      .peers small {
        color: var(--muted);
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .work {
        display: flex;
        flex-direction: column;
        gap: 0.6rem;
        min-width: 0;
      }
      code-editor {
        height: 24rem;
      }
      .chat {
        margin-top: 1.5rem;
      }
      .invite {
        display: flex;
        gap: 0.3rem;
        flex-wrap: wrap;
        margin-top: 0.4rem;
      }
      .invite input,
      .invite select {
        padding: 0.25rem 0.4rem;
        font-size: 0.85rem;
        width: auto;
        flex: 1 1 4rem;
      }
    `,
  ];

  static override properties = {
    projectId: {},
    project: { state: true },
    selected: { state: true },
    fileAction: { state: true },
    fileError: { state: true },
    hasSelection: { state: true },
    errors: { state: true },
    missing: { state: true },
    inviteNote: { state: true },
    inviteErrors: { state: true },
  };

  declare projectId: string;
  declare project: ProjectDetail | null;
  declare selected: string | null;
  declare fileAction: FileAction | null;
  declare fileError: string | null;
  declare hasSelection: boolean;
  declare errors: FormErrors | null;
  declare missing: boolean;
  declare inviteNote: string | null;
  declare inviteErrors: FormErrors | null;

  private readonly session = new AuthController(this);
  private readonly workspace = new ProjectWorkspace(this);
  private abort: AbortController | null = null;

  constructor() {
    super();
    this.projectId = "";
    this.project = null;
    this.selected = null;
    this.fileAction = null;
    this.fileError = null;
    this.hasSelection = false;
    this.errors = null;
    this.missing = false;
    this.inviteNote = null;
    this.inviteErrors = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.hasUpdated && this.projectId) void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("projectId") && this.projectId) void this.load();
    this.pickFile();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.missing = false;
    try {
      const project = await api.getProject(this.projectId, abort.signal);
      const user = this.session.user;
      if (!user) return;
      if (this.project?.id !== project.id) {
        this.selected = null;
        this.fileAction = null;
      }
      this.project = project;
      this.errors = null;
      this.workspace.open(project, user);
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) this.missing = true;
      else this.errors = toFormErrors(error);
    }
  }

  /** Keep a file open: the one asked for, else main.py, else the first; follow deletions. */
  private pickFile(): void {
    const doc = this.workspace.document;
    if (!doc?.loaded) return;
    const paths = doc.paths();
    if (this.selected && paths.includes(this.selected)) return;
    const wanted = currentLocation().query.get("file");
    const next = (wanted && paths.includes(wanted) ? wanted : null) ?? (paths.includes("main.py") ? "main.py" : (paths[0] ?? null));
    if (next !== this.selected) this.select(next);
  }

  private select(path: string | null): void {
    this.selected = path;
    this.workspace.document?.awareness.setLocalStateField("file", path);
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Project not found</h1>
        <p class="lead">It does not exist, or it is not shared with you. Ask its owner to invite you.</p>
        <a href="/projects">Your projects</a>`;
    }
    const p = this.project;
    const doc = this.workspace.document;
    if (!p || !doc) return html`${errorAlert(this.errors)}<p class="muted" role="status">${this.errors ? "" : "Loading…"}</p>`;
    const readonly = !this.workspace.canWrite;
    const ytext = this.selected ? (doc.text(this.selected) ?? null) : null;
    return html`
      <div class="hero">
        <h1 tabindex="-1">${p.name}</h1>
        <p class="muted">
          ${p.role === "owner" ? "Your project" : `${p.owner.display_name}'s project`} ·
          <span data-testid="ide-status" data-status=${doc.status} data-synced=${doc.synced ? "true" : "false"}>${this.statusText()}</span>
        </p>
      </div>
      ${readonly
        ? html`<p class="alert" role="note" data-testid="ide-readonly">You are a viewer: you can read along and run nothing; others see your cursor.</p>`
        : nothing}
      ${doc.refusal ? html`<div class="alert error" role="alert" data-testid="error">${doc.refusal}</div>` : nothing}
      <div class="ide" data-testid="ide">
        <aside>
          ${this.renderFiles(readonly)} ${this.renderPresence()} ${p.role === "owner" ? this.renderInvite() : nothing}
        </aside>
        <div class="work">
          ${runToolbar({
            workspace: this.workspace,
            canRun: !readonly && !!this.selected,
            hasSelection: this.hasSelection,
            label: this.selected ?? "",
            onRun: () => this.runFile(),
            onRunSelection: () => this.runSelection(),
          })}
          ${doc.loaded
            ? ytext
              ? html`<code-editor
                  .ytext=${ytext}
                  .awareness=${doc.awareness}
                  .readonly=${readonly}
                  .label=${`Code of ${this.selected}`}
                  @run=${() => void this.runFile()}
                  @selection-change=${(e: CustomEvent<{ empty: boolean }>) => (this.hasSelection = !e.detail.empty)}
                ></code-editor>`
              : html`<p class="empty card">No files. ${readonly ? "" : "Add one with “+ File”."}</p>`
            : html`<p class="muted card" role="status">Opening the project…</p>`}
          <run-output .runs=${this.workspace.runs?.runs ?? []} .people=${this.workspace.people()}></run-output>
          ${this.workspace.runs?.problem ? html`<p class="muted" data-testid="runs-problem">${this.workspace.runs.problem}</p>` : nothing}
        </div>
      </div>
      <section class="chat" aria-label="Chat">
        <h2>Chat</h2>
        ${p.group_id
          ? html`<chat-panel
              .channel=${`chat:group:${p.group_id}`}
              .label=${`${p.name} chat`}
              .members=${p.members.map((m) => m.user)}
            ></chat-panel>`
          : html`<p class="muted" data-testid="ide-no-chat">
              This project has no chat: it is not shared with a study group. Create a project from a
              <a href="/groups">study group</a> to talk beside the code.
            </p>`}
      </section>
    `;
  }

  private statusText(): string {
    const doc = this.workspace.document;
    if (!doc) return "";
    switch (doc.status) {
      case "connected":
        return doc.synced ? "Live" : "Syncing…";
      case "connecting":
        return "Connecting…";
      case "offline":
        return "Offline: reconnecting (your edits are kept)";
      case "refused":
        return "Closed";
    }
  }

  private renderFiles(readonly: boolean): TemplateResult {
    const doc = this.workspace.document;
    const paths = doc?.loaded ? doc.paths() : [];
    const action = this.fileAction;
    return html`<section aria-label="Files">
      <h2>
        Files
        ${readonly ? nothing : html`<button type="button" class="icon" data-testid="file-add" @click=${() => this.startAction({ kind: "add" })}>+ File</button>`}
      </h2>
      <ul class="files" data-testid="file-tree">
        ${repeat(
          paths,
          (path) => path,
          (path) => html`<li data-testid="file" data-path=${path} aria-current=${path === this.selected ? "true" : "false"}>
            <button type="button" class="open" title=${path} @click=${() => this.select(path)}>${path}</button>
            ${readonly
              ? nothing
              : html`<span class="tools">
                  <button type="button" class="icon" data-testid="file-rename" aria-label=${`Rename ${path}`} @click=${() => this.startAction({ kind: "rename", path })}>✎</button>
                  <button type="button" class="icon" data-testid="file-delete" aria-label=${`Delete ${path}`} @click=${() => this.startAction({ kind: "delete", path })}>✕</button>
                </span>`}
          </li>`,
        )}
      </ul>
      ${action?.kind === "delete"
        ? html`<div class="file-form" role="group" aria-label="Delete a file">
            <p>Delete <strong>${action.path}</strong> for everyone?</p>
            <div class="actions">
              <button type="button" class="danger small" data-testid="file-delete-confirm" @click=${() => this.deleteFile(action.path)}>Delete</button>
              <button type="button" class="secondary small" @click=${() => (this.fileAction = null)}>Cancel</button>
            </div>
          </div>`
        : action
          ? html`<form class="file-form" @submit=${this.saveFile} aria-label=${action.kind === "add" ? "New file" : "Rename a file"}>
              <label for="file-path">${action.kind === "add" ? "New file" : `Rename ${action.path}`}</label>
              <input
                id="file-path"
                name="path"
                data-testid="file-path"
                autocomplete="off"
                spellcheck="false"
                placeholder="lib/util.py"
                .value=${action.kind === "rename" ? action.path : ""}
                aria-invalid=${this.fileError ? "true" : "false"}
                aria-describedby=${this.fileError ? "file-error" : nothing}
              />
              ${this.fileError ? html`<span class="field-error" id="file-error">${this.fileError}</span>` : nothing}
              <div class="actions">
                <button type="submit" class="small" data-testid="file-save">${action.kind === "add" ? "Add" : "Rename"}</button>
                <button type="button" class="secondary small" @click=${() => (this.fileAction = null)}>Cancel</button>
              </div>
            </form>`
          : nothing}
    </section>`;
  }

  private renderPresence(): TemplateResult {
    const peers = this.workspace.document?.peers() ?? [];
    // One row per person (several tabs of one person are one row), this tab first.
    const rows = new Map<string, Peer>();
    for (const peer of [...peers].sort((a, b) => Number(b.self) - Number(a.self))) {
      const key = peer.id ? `u${peer.id}` : `c${peer.clientId}`;
      if (!rows.has(key)) rows.set(key, peer);
    }
    const states = this.workspace.document?.awareness.getStates();
    return html`<section aria-label="Here now">
      <h2>Here now <span class="muted" data-testid="presence-count">${rows.size}</span></h2>
      <ul class="peers" data-testid="presence">
        ${[...rows.values()].map((peer) => {
          const file = (states?.get(peer.clientId) as { file?: unknown } | undefined)?.file;
          return html`<li data-testid="peer" data-user=${peer.id}>
            <span class="swatch" style=${styleMap({ background: peer.color })} aria-hidden="true"></span>
            <span>${peer.name}${peer.self ? html` <span class="muted">(you)</span>` : nothing}</span>
            ${typeof file === "string" ? html`<small>${file}</small>` : nothing}
          </li>`;
        })}
      </ul>
    </section>`;
  }

  private renderInvite(): TemplateResult {
    return html`<section aria-label="Invite">
      <h2>Invite</h2>
      ${successNote(this.inviteNote)} ${errorAlert(this.inviteErrors)}
      <form class="invite" @submit=${this.invite}>
        <label class="visually-hidden" for="invite-user">User id</label>
        <input id="invite-user" name="user_id" placeholder="User id" inputmode="numeric" pattern="[0-9]+" required data-testid="project-invite-user" />
        <label class="visually-hidden" for="invite-role">Role</label>
        <select id="invite-role" name="role" data-testid="project-invite-role">
          <option value="editor">Editor</option>
          <option value="viewer">Viewer</option>
        </select>
        <button type="submit" class="small" data-testid="project-invite-submit">Invite</button>
      </form>
    </section>`;
  }

  private startAction(action: FileAction): void {
    this.fileAction = action;
    this.fileError = null;
    if (action.kind !== "delete") {
      void this.updateComplete.then(() => {
        const input = this.renderRoot.querySelector<HTMLInputElement>("#file-path");
        input?.focus();
        input?.select();
      });
    }
  }

  private saveFile(event: SubmitEvent): void {
    event.preventDefault();
    const doc = this.workspace.document;
    const action = this.fileAction;
    if (!doc || !action || action.kind === "delete") return;
    const raw = new FormData(event.target as HTMLFormElement).get("path");
    const path = normalisePath(typeof raw === "string" ? raw : "");
    if (!path) {
      this.fileError = "A path like main.py or lib/util.py.";
      return;
    }
    if (action.kind === "rename" && path === action.path) {
      this.fileAction = null;
      return;
    }
    const done = action.kind === "add" ? doc.addFile(path) : doc.renameFile(action.path, path);
    if (!done) {
      this.fileError = `${path} already exists.`;
      return;
    }
    this.fileAction = null;
    this.select(path);
  }

  private deleteFile(path: string): void {
    this.workspace.document?.deleteFile(path);
    this.fileAction = null;
    if (this.selected === path) this.select(null);
  }

  private async runFile(): Promise<void> {
    if (!this.selected || !this.workspace.canWrite) return;
    await this.workspace.run({ path: this.selected });
  }

  private async runSelection(): Promise<void> {
    const code = this.renderRoot.querySelector<CodeEditor>("code-editor")?.selectionText ?? "";
    if (!code.trim() || !this.workspace.canWrite) return;
    await this.workspace.run({ code });
  }

  private async invite(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    const userId = Number(data.get("user_id"));
    const role = data.get("role") === "viewer" ? "viewer" : "editor";
    this.inviteNote = null;
    this.inviteErrors = null;
    try {
      const member = await api.addProjectMember(Number(this.projectId), userId, role);
      this.inviteNote = `${member.user.display_name} can now ${role === "viewer" ? "read along" : "edit"}.`;
      form.reset();
      this.project = await api.getProject(this.projectId);
    } catch (error) {
      this.inviteErrors = toFormErrors(error);
    }
  }
}

customElements.define("project-page", ProjectPage);
