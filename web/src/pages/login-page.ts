import { html, LitElement } from "lit";
import { auth, AuthController } from "../auth.ts";
import { errorAlert, field, formText, toFormErrors, type FormErrors } from "../forms.ts";
import { currentLocation, navigate, safeNext } from "../router.ts";
import { shared } from "../styles.ts";

export class LoginPage extends LitElement {
  static override styles = shared;
  static override properties = {
    errors: { state: true },
    busy: { state: true },
  };

  declare errors: FormErrors | null;
  declare busy: boolean;
  private readonly session = new AuthController(this);

  constructor() {
    super();
    this.errors = null;
    this.busy = false;
  }

  override render() {
    const next = currentLocation().query.get("next");
    const signupHref = next ? `/signup?next=${encodeURIComponent(next)}` : "/signup";
    return html`
      <h1 tabindex="-1">Log in</h1>
      ${this.session.user
        ? html`<p class="muted">You are signed in as ${this.session.user.display_name}. Logging in again switches account.</p>`
        : html`<p class="lead">Welcome back to Cohort.</p>`}
      ${errorAlert(this.errors)}
      <form class="card" novalidate @submit=${this.submit} aria-busy=${this.busy ? "true" : "false"}>
        ${field({
          id: "login-email",
          name: "email",
          label: "Email",
          type: "email",
          autocomplete: "username",
          testid: "login-email",
          required: true,
          errors: this.errors,
        })}
        ${field({
          id: "login-password",
          name: "password",
          label: "Password",
          type: "password",
          autocomplete: "current-password",
          testid: "login-password",
          required: true,
          errors: this.errors,
        })}
        <div class="actions">
          <button type="submit" data-testid="login-submit" ?disabled=${this.busy}>
            ${this.busy ? "Logging in…" : "Log in"}
          </button>
          <span class="muted">New here? <a href=${signupHref}>Create an account</a></span>
        </div>
      </form>
    `;
  }

  private async submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.busy) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    this.busy = true;
    this.errors = null;
    try {
      await auth.login(formText(data, "email").trim(), formText(data, "password"));
      navigate(safeNext(currentLocation().query.get("next")), { replace: true });
    } catch (error) {
      this.errors = toFormErrors(error, ["email", "password"]);
    } finally {
      this.busy = false;
    }
  }
}

customElements.define("login-page", LoginPage);
