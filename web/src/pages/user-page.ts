import { html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { PublicUser } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import { errorAlert, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { appearanceStyles, profileCard } from "../profile/appearance.ts";
import { shared } from "../styles.ts";

/** `/users/:id`: a public profile with the theme, badge and frame its owner applied. */
export class UserPage extends LitElement {
  static override styles = [shared, appearanceStyles];

  static override properties = {
    userId: {},
    user: { state: true },
    missing: { state: true },
    errors: { state: true },
  };

  declare userId: string;
  declare user: PublicUser | null;
  declare missing: boolean;
  declare errors: FormErrors | null;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;

  constructor() {
    super();
    this.userId = "";
    this.user = null;
    this.missing = false;
    this.errors = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.userId) void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("userId") && changed.get("userId") !== undefined && this.isConnected) void this.load();
  }

  private async load(): Promise<void> {
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    this.user = null;
    this.missing = false;
    this.errors = null;
    try {
      this.user = await api.getUser(this.userId, aborter.signal);
      document.title = `${this.user.display_name} · Cohort`;
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.missing = true;
      else this.errors = toFormErrors(error);
    }
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Profile not found</h1>
        <p class="lead">There is no one with this profile.</p>`;
    }
    const user = this.user;
    if (!user) {
      return html`<h1 tabindex="-1">Profile</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the profile…</p>`}`;
    }
    const mine = this.session.user?.id === user.id;
    return html`
      <h1 tabindex="-1" class="visually-hidden">${user.display_name}</h1>
      ${profileCard(user, { testid: "public-profile" })}
      ${mine
        ? html`<p class="actions"><a href="/profile">Edit your profile</a> <a href="/shop">Profile shop</a></p>`
        : nothing}
    `;
  }
}

customElements.define("user-page", UserPage);
