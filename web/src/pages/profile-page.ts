import { css, html, LitElement, nothing } from "lit";
import * as api from "../api/endpoints.ts";
import type { AuthSession } from "../api/types.ts";
import { auth, AuthController } from "../auth.ts";
import {
  errorAlert,
  field,
  formatDate,
  formText,
  isAbort,
  successNote,
  toFormErrors,
  type FormErrors,
} from "../forms.ts";
import { appearanceStyles, profileCard } from "../profile/appearance.ts";
import { shared } from "../styles.ts";

const PROFILE_FIELDS = ["display_name", "bio", "avatar_color"] as const;

export class ProfilePage extends LitElement {
  static override styles = [
    shared,
    appearanceStyles,
    css`
      .colour-row {
        display: flex;
        align-items: center;
        gap: 0.75rem;
      }
      .sessions {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 48rem;
      }
      .session {
        display: flex;
        flex-wrap: wrap;
        justify-content: space-between;
        align-items: center;
        gap: 0.75rem;
      }
      .session strong {
        overflow-wrap: anywhere;
      }
      .session .meta {
        font-size: 0.9rem;
      }
    `,
  ];

  static override properties = {
    errors: { state: true },
    saved: { state: true },
    saving: { state: true },
    sessions: { state: true },
    ending: { state: true },
  };

  declare errors: FormErrors | null;
  declare saved: string | null;
  declare saving: boolean;
  /** null while the list is loading. */
  declare sessions: AuthSession[] | null;
  declare ending: ReadonlySet<string>;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.errors = null;
    this.saved = null;
    this.saving = false;
    this.sessions = null;
    this.ending = new Set();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.aborter = new AbortController();
    // The copy of the user held since login may predate edits made on another device.
    auth.reloadUser(this.aborter.signal).catch(() => undefined);
    void this.loadSessions();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  override render() {
    const user = this.session.user;
    if (!user) return nothing;
    return html`
      <h1 tabindex="-1">Your profile</h1>
      <p class="lead">Signed in as ${user.email}.</p>
      ${errorAlert(this.errors)} ${successNote(this.saved)}
      <h2 style="margin-top:0">How others see you</h2>
      ${profileCard(user, { testid: "own-profile-card" })}
      <p class="actions">
        <a href=${`/users/${user.id}`} data-testid="public-profile-link">Your public profile</a>
        <a href="/shop" data-testid="shop-link">Themes, badges and frames in the shop</a>
      </p>
      <h2>Edit your profile</h2>
      <form class="card" novalidate @submit=${this.save} aria-busy=${this.saving ? "true" : "false"}>
        ${field({
          id: "profile-display-name",
          name: "display_name",
          label: "Display name",
          testid: "profile-display-name",
          autocomplete: "nickname",
          required: true,
          value: user.display_name,
          errors: this.errors,
        })}
        ${field({
          id: "profile-bio",
          name: "bio",
          label: "Bio",
          hint: "A few words about you and what you want to learn.",
          testid: "profile-bio",
          multiline: true,
          rows: 4,
          value: user.bio,
          errors: this.errors,
        })}
        <div class="field">
          <label for="profile-color">Avatar colour</label>
          <div class="colour-row">
            <input
              id="profile-color"
              name="avatar_color"
              type="color"
              data-testid="profile-color"
              aria-invalid=${this.errors?.fields["avatar_color"] ? "true" : "false"}
              aria-describedby=${this.errors?.fields["avatar_color"] ? "profile-color-error" : nothing}
              .value=${normaliseColour(user.avatar_color)}
            />
            <span class="muted">Used for your avatar dot in the navigation.</span>
          </div>
          ${this.errors?.fields["avatar_color"]
            ? html`<span class="field-error" id="profile-color-error"
                >${this.errors.fields["avatar_color"]}</span
              >`
            : nothing}
        </div>
        <button type="submit" data-testid="profile-save" ?disabled=${this.saving}>
          ${this.saving ? "Saving…" : "Save profile"}
        </button>
      </form>

      <h2>Where you are signed in</h2>
      ${this.renderSessions()}
    `;
  }

  private renderSessions() {
    if (this.sessions === null) return html`<p class="muted" role="status">Loading sessions…</p>`;
    if (this.sessions.length === 0) return html`<p class="muted">No active sessions.</p>`;
    return html`<ul class="sessions">
      ${this.sessions.map(
        (s) => html`<li class="card session" data-testid="session-row" data-current=${String(s.current)}>
          <div>
            <strong>${s.device || "Unknown device"}</strong>
            ${s.current
              ? html` <span class="badge approved" data-testid="session-current">This device</span>`
              : nothing}
            <div class="meta muted">
              ${s.ip ? html`${s.ip} · ` : nothing}Signed in ${formatDate(s.created_at)} · Last active
              ${formatDate(s.last_used_at)}
            </div>
          </div>
          ${s.current
            ? nothing
            : html`<button
                type="button"
                class="secondary"
                data-testid="end-session"
                aria-label=${`End session on ${s.device || "unknown device"}`}
                ?disabled=${this.ending.has(s.id)}
                @click=${() => this.endSession(s)}
              >
                ${this.ending.has(s.id) ? "Ending…" : "End session"}
              </button>`}
        </li>`,
      )}
    </ul>`;
  }

  private async loadSessions(): Promise<void> {
    try {
      this.sessions = await api.listSessions(this.aborter?.signal);
    } catch (error) {
      if (isAbort(error)) return;
      this.sessions = [];
      this.errors = toFormErrors(error);
    }
  }

  private async save(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.saving) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    this.saving = true;
    this.errors = null;
    this.saved = null;
    try {
      const user = await api.updateMe({
        display_name: formText(data, "display_name").trim(),
        bio: formText(data, "bio"),
        avatar_color: formText(data, "avatar_color").toLowerCase(),
      });
      auth.setUser(user);
      this.saved = "Profile saved.";
    } catch (error) {
      this.errors = toFormErrors(error, PROFILE_FIELDS);
    } finally {
      this.saving = false;
    }
  }

  private async endSession(target: AuthSession): Promise<void> {
    this.ending = new Set([...this.ending, target.id]);
    this.errors = null;
    this.saved = null;
    try {
      await api.endOtherSession(target.id);
      this.sessions = (this.sessions ?? []).filter((s) => s.id !== target.id);
      this.saved = `Ended the session on ${target.device || "that device"}.`;
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      const ending = new Set(this.ending);
      ending.delete(target.id);
      this.ending = ending;
    }
  }
}

/** `<input type=color>` only accepts lowercase #rrggbb and silently shows black otherwise. */
function normaliseColour(value: string): string {
  return /^#[0-9a-f]{6}$/i.test(value) ? value.toLowerCase() : "#6366f1";
}

customElements.define("profile-page", ProfilePage);
