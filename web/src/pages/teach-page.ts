import { css, html, LitElement, nothing } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { TeacherApplication } from "../api/types.ts";
import { auth, AuthController } from "../auth.ts";
import {
  errorAlert,
  field,
  formatDate,
  formText,
  isAbort,
  linkList,
  statusBadge,
  successNote,
  toFormErrors,
  type FormErrors,
} from "../forms.ts";
import { shared } from "../styles.ts";

const APPLICATION_FIELDS = ["qualifications", "experience", "links"] as const;

export class TeachPage extends LitElement {
  static override styles = [
    shared,
    css`
      .applications {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 48rem;
      }
      .application header {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem 1rem;
        align-items: center;
        margin-bottom: 0.75rem;
      }
      dl {
        margin: 0;
      }
      dt {
        font-weight: 600;
        margin-top: 0.5rem;
      }
      dd {
        margin: 0.15rem 0 0;
      }
      .links {
        margin: 0;
        padding-left: 1.2rem;
        overflow-wrap: anywhere;
      }
    `,
  ];

  static override properties = {
    applications: { state: true },
    errors: { state: true },
    notice: { state: true },
    busy: { state: true },
  };

  /** null while loading. */
  declare applications: TeacherApplication[] | null;
  declare errors: FormErrors | null;
  declare notice: string | null;
  declare busy: boolean;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.applications = null;
    this.errors = null;
    this.notice = null;
    this.busy = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.aborter = new AbortController();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  private async load(): Promise<void> {
    const signal = this.aborter?.signal;
    try {
      // An approval changes the user's roles on the server; fetch both so the page and the
      // navigation badge agree with the decision without a full reload.
      const [applications] = await Promise.all([
        api.listMyApplications(signal),
        auth.reloadUser(signal),
      ]);
      this.applications = newestFirst(applications);
    } catch (error) {
      if (isAbort(error)) return;
      this.applications ??= [];
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    const user = this.session.user;
    if (!user) return nothing;
    const applications = this.applications;
    const pending = applications?.some((a) => a.status === "pending") ?? false;
    return html`
      <h1 tabindex="-1">Teach on Cohort</h1>
      ${errorAlert(this.errors)} ${successNote(this.notice)}
      ${user.is_teacher
        ? html`<div class="card narrow" data-testid="teacher-status">
            <p><strong>You are a teacher on Cohort.</strong></p>
            <p class="muted">Your application was approved, so you can lead cohorts of your own.</p>
          </div>`
        : applications === null
          ? html`<p class="muted" role="status">Loading your applications…</p>`
          : pending
            ? html`<p class="lead">
                Your application is waiting for review. We will update its status here.
              </p>`
            : this.renderForm(applications.length > 0)}
      ${applications && applications.length > 0
        ? html`<h2>Your applications</h2>
            <ul class="applications">
              ${applications.map((a, index) => this.renderApplication(a, index === 0))}
            </ul>`
        : nothing}
    `;
  }

  private renderForm(appliedBefore: boolean) {
    return html`
      <p class="lead">
        ${appliedBefore
          ? "You can apply again. Tell us what has changed since your last application."
          : "Tell us about yourself and an administrator will review your application."}
      </p>
      <form class="card" novalidate @submit=${this.submit} aria-busy=${this.busy ? "true" : "false"}>
        ${field({
          id: "apply-qualifications",
          name: "qualifications",
          label: "Qualifications",
          hint: "Degrees, certificates or other evidence of what you know.",
          testid: "apply-qualifications",
          multiline: true,
          required: true,
          errors: this.errors,
        })}
        ${field({
          id: "apply-experience",
          name: "experience",
          label: "Teaching experience",
          hint: "Where and what you have taught, or mentored, before.",
          testid: "apply-experience",
          multiline: true,
          required: true,
          errors: this.errors,
        })}
        ${field({
          id: "apply-links",
          name: "links",
          label: "Links",
          hint: "Portfolio, profiles or course pages: one http(s) address per line.",
          testid: "apply-links",
          multiline: true,
          rows: 3,
          errors: this.errors,
        })}
        <button type="submit" data-testid="apply-submit" ?disabled=${this.busy}>
          ${this.busy ? "Sending…" : "Send application"}
        </button>
      </form>
    `;
  }

  private renderApplication(application: TeacherApplication, newest: boolean) {
    return html`<li class="card application" data-testid="my-application">
      <header>
        ${statusBadge(application.status, newest ? "application-status" : undefined)}
        <span class="muted">Sent ${formatDate(application.created_at)}</span>
        ${application.decided_at
          ? html`<span class="muted">Decided ${formatDate(application.decided_at)}</span>`
          : nothing}
      </header>
      <dl>
        ${application.status === "rejected" && application.reason
          ? html`<dt>Reason</dt>
              <dd class="prose" data-testid="application-reason">${application.reason}</dd>`
          : nothing}
        <dt>Qualifications</dt>
        <dd class="prose">${application.qualifications}</dd>
        <dt>Experience</dt>
        <dd class="prose">${application.experience}</dd>
        ${application.links.length
          ? html`<dt>Links</dt>
              <dd>${linkList(application.links)}</dd>`
          : nothing}
      </dl>
    </li>`;
  }

  private async submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.busy) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const links = formText(data, "links")
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
    this.busy = true;
    this.errors = null;
    this.notice = null;
    try {
      const created = await api.applyToTeach({
        qualifications: formText(data, "qualifications").trim(),
        experience: formText(data, "experience").trim(),
        links,
      });
      this.applications = newestFirst([created, ...(this.applications ?? [])]);
      this.notice = "Thanks! Your application was sent and is waiting for review.";
    } catch (error) {
      this.errors = toFormErrors(error, APPLICATION_FIELDS);
      // A conflict means the server knows something this page does not (a pending
      // application from another tab, or an approval); show the current state.
      if (error instanceof ApiError && error.status === 409) void this.load();
    } finally {
      this.busy = false;
    }
  }
}

function newestFirst(applications: TeacherApplication[]): TeacherApplication[] {
  // Keyed by id because a reload can race with a just-created application.
  const unique = new Map<number, TeacherApplication>();
  for (const application of applications) {
    if (!unique.has(application.id)) unique.set(application.id, application);
  }
  return [...unique.values()].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id);
}

customElements.define("teach-page", TeachPage);
