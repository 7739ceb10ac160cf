import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import { APPLICATION_STATUSES, type ApplicationStatus, type TeacherApplication } from "../api/types.ts";
import {
  errorAlert,
  formatDate,
  isAbort,
  linkList,
  statusBadge,
  successNote,
  toFormErrors,
  type FormErrors,
} from "../forms.ts";
import { currentLocation, navigate, onRouteChange } from "../router.ts";
import { shared } from "../styles.ts";

export class AdminApplicationsPage extends LitElement {
  static override styles = [
    shared,
    css`
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.6rem;
        margin-bottom: 1.25rem;
      }
      .toolbar select {
        width: auto;
        min-width: 10rem;
      }
      .list {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 52rem;
      }
      .application header {
        display: flex;
        flex-wrap: wrap;
        justify-content: space-between;
        gap: 0.5rem 1rem;
        margin-bottom: 0.75rem;
      }
      .applicant {
        font-weight: 600;
        font-size: 1.05rem;
      }
      .email {
        overflow-wrap: anywhere;
      }
      dl {
        margin: 0 0 1rem;
      }
      dt {
        font-weight: 600;
        margin-top: 0.6rem;
      }
      dd {
        margin: 0.15rem 0 0;
      }
      .links {
        margin: 0;
        padding-left: 1.2rem;
        overflow-wrap: anywhere;
      }
      .decision {
        border-top: 1px solid var(--border);
        padding-top: 1rem;
        display: grid;
        gap: 0.75rem;
      }
      .reject-row {
        display: flex;
        flex-wrap: wrap;
        gap: 0.6rem;
        align-items: flex-end;
      }
      .reject-row .field {
        flex: 1 1 16rem;
        margin: 0;
      }
    `,
  ];

  static override properties = {
    status: { state: true },
    applications: { state: true },
    errors: { state: true },
    notice: { state: true },
    busy: { state: true },
    reasonErrors: { state: true },
  };

  declare status: ApplicationStatus;
  /** null while loading. */
  declare applications: TeacherApplication[] | null;
  declare errors: FormErrors | null;
  declare notice: string | null;
  /** Applications with a decision in flight. */
  declare busy: ReadonlySet<number>;
  declare reasonErrors: ReadonlyMap<number, string>;

  private aborter: AbortController | null = null;
  private stopListening: (() => void) | null = null;
  /** Typed reasons survive re-renders without re-rendering on every keystroke. */
  private readonly reasons = new Map<number, string>();

  constructor() {
    super();
    this.status = statusFromUrl();
    this.applications = null;
    this.errors = null;
    this.notice = null;
    this.busy = new Set();
    this.reasonErrors = new Map();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    // The filter lives in the URL so back/forward and reloads keep it; the router reuses
    // this element when only the query changes, so follow route changes here.
    this.stopListening = onRouteChange(() => {
      const status = statusFromUrl();
      if (status !== this.status) {
        this.status = status;
        void this.load();
      }
    });
    this.status = statusFromUrl();
    void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopListening?.();
    this.aborter?.abort();
  }

  private async load(): Promise<void> {
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    this.applications = null;
    this.errors = null;
    this.notice = null;
    try {
      this.applications = await api.listApplications(this.status, aborter.signal);
    } catch (error) {
      if (isAbort(error)) return;
      this.applications = [];
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    return html`
      <h1 tabindex="-1">Teacher applications</h1>
      <p class="lead">Review who wants to teach on Cohort.</p>
      <div class="toolbar">
        <label for="status-filter">Show</label>
        <select
          id="status-filter"
          data-testid="status-filter"
          .value=${this.status}
          @change=${this.changeStatus}
        >
          ${APPLICATION_STATUSES.map(
            (status) =>
              html`<option value=${status} ?selected=${status === this.status}>
                ${statusLabel(status)}
              </option>`,
          )}
        </select>
      </div>
      ${errorAlert(this.errors)} ${successNote(this.notice)} ${this.renderList()}
    `;
  }

  private renderList() {
    const applications = this.applications;
    if (applications === null) {
      return html`<p class="muted" role="status">Loading applications…</p>`;
    }
    if (applications.length === 0) {
      return html`<p class="muted">No ${this.status} applications.</p>`;
    }
    return html`<ul class="list">
      ${applications.map((a) => this.renderApplication(a))}
    </ul>`;
  }

  private renderApplication(application: TeacherApplication) {
    const { applicant } = application;
    const busy = this.busy.has(application.id);
    const reasonId = `reject-reason-${application.id}`;
    const reasonError = this.reasonErrors.get(application.id);
    return html`<li
      class="card application"
      data-testid="admin-application"
      data-email=${applicant.email}
      data-status=${application.status}
      aria-labelledby=${`applicant-${application.id}`}
    >
      <header>
        <div>
          <div class="applicant" id=${`applicant-${application.id}`}>${applicant.display_name}</div>
          <div class="email muted">${applicant.email}</div>
        </div>
        <div>
          ${statusBadge(application.status)}
          <span class="muted">Sent ${formatDate(application.created_at)}</span>
        </div>
      </header>
      <dl>
        <dt>Qualifications</dt>
        <dd class="prose">${application.qualifications}</dd>
        <dt>Experience</dt>
        <dd class="prose">${application.experience}</dd>
        <dt>Links</dt>
        <dd>${application.links.length ? linkList(application.links) : html`<span class="muted">None given</span>`}</dd>
        ${application.decided_at
          ? html`<dt>Decided</dt>
              <dd>${formatDate(application.decided_at)}</dd>`
          : nothing}
        ${application.reason
          ? html`<dt>Reason</dt>
              <dd class="prose">${application.reason}</dd>`
          : nothing}
      </dl>
      ${application.status === "pending"
        ? html`<div class="decision" aria-busy=${busy ? "true" : "false"}>
            <div class="actions">
              <button
                type="button"
                data-testid="approve"
                ?disabled=${busy}
                aria-label=${`Approve ${applicant.display_name}`}
                @click=${() => this.approve(application)}
              >
                Approve
              </button>
            </div>
            <div class="reject-row">
              <div class="field">
                <label for=${reasonId}>Reason for rejection</label>
                <input
                  id=${reasonId}
                  type="text"
                  data-testid="reject-reason"
                  maxlength="2000"
                  aria-invalid=${reasonError ? "true" : "false"}
                  aria-describedby=${reasonError ? `${reasonId}-error` : nothing}
                  .value=${this.reasons.get(application.id) ?? ""}
                  @input=${(event: InputEvent) =>
                    this.reasons.set(application.id, (event.target as HTMLInputElement).value)}
                />
                ${reasonError
                  ? html`<span class="field-error" id=${`${reasonId}-error`}>${reasonError}</span>`
                  : nothing}
              </div>
              <button
                type="button"
                class="danger"
                data-testid="reject"
                ?disabled=${busy}
                aria-label=${`Reject ${applicant.display_name}`}
                @click=${() => this.reject(application)}
              >
                Reject
              </button>
            </div>
          </div>`
        : nothing}
    </li>`;
  }

  private changeStatus(event: Event): void {
    const value = (event.target as HTMLSelectElement).value;
    navigate(`/admin/applications?status=${encodeURIComponent(value)}`);
  }

  private approve(application: TeacherApplication): Promise<void> {
    return this.decide(application, () => api.approveApplication(application.id), "Approved");
  }

  private reject(application: TeacherApplication): Promise<void> {
    const reason = (this.reasons.get(application.id) ?? "").trim();
    return this.decide(application, () => api.rejectApplication(application.id, reason), "Rejected");
  }

  private async decide(
    application: TeacherApplication,
    action: () => Promise<TeacherApplication>,
    verb: string,
  ): Promise<void> {
    const id = application.id;
    this.busy = new Set([...this.busy, id]);
    this.errors = null;
    this.notice = null;
    this.setReasonError(id, null);
    try {
      const decided = await action();
      // Keep the card in place, showing its new status, so the reviewer sees what happened
      // and the list does not shift under the pointer; the filter reload drops it later.
      this.applications = (this.applications ?? []).map((a) => (a.id === id ? decided : a));
      this.reasons.delete(id);
      this.notice = `${verb} the application from ${application.applicant.display_name}.`;
    } catch (error) {
      const errors = toFormErrors(error, ["reason"]);
      this.setReasonError(id, errors.fields["reason"] ?? null);
      this.errors = {
        ...errors,
        message: `Could not update the application from ${application.applicant.display_name}: ${errors.message}`,
      };
    } finally {
      const busy = new Set(this.busy);
      busy.delete(id);
      this.busy = busy;
    }
  }

  private setReasonError(id: number, message: string | null): void {
    const next = new Map(this.reasonErrors);
    if (message) next.set(id, message);
    else next.delete(id);
    this.reasonErrors = next;
  }
}

function statusFromUrl(): ApplicationStatus {
  const value = currentLocation().query.get("status");
  return APPLICATION_STATUSES.find((s) => s === value) ?? "pending";
}

function statusLabel(status: ApplicationStatus): string {
  return status === "pending" ? "Pending" : status === "approved" ? "Approved" : "Rejected";
}

customElements.define("admin-applications-page", AdminApplicationsPage);
