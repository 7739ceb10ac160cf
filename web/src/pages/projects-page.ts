import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { Project, StudyGroup } from "../api/types.ts";
import { errorAlert, field, formatDate, formText, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { socialStyles } from "../social/view.ts";
import { shared } from "../styles.ts";

/** `/projects`: the projects I own, was invited to or share through a study group; a new one. */
export class ProjectsPage extends LitElement {
  static override styles = [
    shared,
    socialStyles,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 20rem;
        gap: 1.5rem;
        align-items: start;
      }
      @media (max-width: 52rem) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      h2:first-child {
        margin-top: 0;
      }
    `,
  ];

  static override properties = {
    projects: { state: true },
    groups: { state: true },
    errors: { state: true },
    createErrors: { state: true },
    creating: { state: true },
  };

  declare projects: Project[] | null;
  declare groups: StudyGroup[];
  declare errors: FormErrors | null;
  declare createErrors: FormErrors | null;
  declare creating: boolean;

  private abort: AbortController | null = null;

  constructor() {
    super();
    this.projects = null;
    this.groups = [];
    this.errors = null;
    this.createErrors = null;
    this.creating = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.abort?.abort();
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      this.projects = await api.myProjects(abort.signal);
      this.errors = null;
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    }
    // Groups only feed the optional "share with" choice: the list works without them.
    api.myGroups(abort.signal).then(
      (groups) => (this.groups = groups),
      () => undefined,
    );
  }

  override render() {
    return html`
      <h1 tabindex="-1">Projects</h1>
      <p class="lead">Write Python together: one editor, everyone's cursors, one shared kernel.</p>
      ${errorAlert(this.errors)}
      <div class="layout">
        <section aria-label="Your projects">
          ${this.projects === null
            ? html`<p class="muted" role="status">${this.errors ? "" : "Loading…"}</p>`
            : this.projects.length
              ? html`<ul class="list" data-testid="project-list">
                  ${this.projects.map(
                    (p) => html`<li class="list-item" data-testid="project-item" data-project=${p.id}>
                      <div class="grow">
                        <h3><a href="/projects/${p.id}" data-testid="project-link">${p.name}</a></h3>
                        <p class="muted">
                          ${p.role === "owner" ? "Yours" : `${p.owner.display_name}'s · you are ${p.role === "editor" ? "an editor" : "a viewer"}`}
                          ${p.group_id ? html` · shared with a study group` : nothing} · ${formatDate(p.created_at)}
                        </p>
                      </div>
                    </li>`,
                  )}
                </ul>`
              : html`<p class="empty" data-testid="project-empty">No projects yet. Start one, or ask a friend to invite you to theirs.</p>`}
        </section>
        <form class="card" data-testid="project-create" @submit=${this.create} novalidate>
          <h2>New project</h2>
          ${errorAlert(this.createErrors)}
          ${field({ id: "project-name", name: "name", label: "Name", testid: "project-name", errors: this.createErrors, required: true, maxlength: 100 })}
          <div class="field">
            <label for="project-group">Share with a study group</label>
            <select id="project-group" name="group_id" data-testid="project-group">
              <option value="">Nobody yet (invite people later)</option>
              ${this.groups.map((g) => html`<option value=${g.id}>${g.name}</option>`)}
            </select>
            <span class="hint">Every member of the group can edit it, and the group's chat shows below the editor.</span>
          </div>
          <button type="submit" data-testid="project-create-submit" ?disabled=${this.creating}>
            ${this.creating ? "Creating…" : "Create project"}
          </button>
        </form>
      </div>
    `;
  }

  private async create(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const name = formText(data, "name").trim();
    const group = Number(formText(data, "group_id")) || null;
    if (!name) {
      this.createErrors = { message: "Give the project a name.", extra: [], fields: { name: "Required." } };
      return;
    }
    this.creating = true;
    this.createErrors = null;
    try {
      const project = await api.createProject({ name, group_id: group });
      navigate(`/projects/${project.id}`);
    } catch (error) {
      this.createErrors = toFormErrors(error, ["name", "group_id"]);
    } finally {
      this.creating = false;
    }
  }
}

customElements.define("projects-page", ProjectsPage);
