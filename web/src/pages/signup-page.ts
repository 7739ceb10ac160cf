import { html, LitElement } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import { auth } from "../auth.ts";
import { errorAlert, field, formText, toFormErrors, type FormErrors } from "../forms.ts";
import { currentLocation, navigate, safeNext } from "../router.ts";
import { shared } from "../styles.ts";

export class SignupPage extends LitElement {
  static override styles = shared;
  static override properties = {
    errors: { state: true },
    busy: { state: true },
  };

  declare errors: FormErrors | null;
  declare busy: boolean;

  constructor() {
    super();
    this.errors = null;
    this.busy = false;
  }

  override render() {
    return html`
      <h1 tabindex="-1">Create your account</h1>
      <p class="lead">Join Cohort to learn together, and apply to teach when you are ready.</p>
      ${errorAlert(this.errors)}
      <form class="card" novalidate @submit=${this.submit} aria-busy=${this.busy ? "true" : "false"}>
        ${field({
          id: "signup-email",
          name: "email",
          label: "Email",
          type: "email",
          autocomplete: "email",
          testid: "signup-email",
          required: true,
          errors: this.errors,
        })}
        ${field({
          id: "signup-name",
          name: "display_name",
          label: "Display name",
          autocomplete: "nickname",
          hint: "Shown to other learners.",
          testid: "signup-name",
          required: true,
          errors: this.errors,
        })}
        ${field({
          id: "signup-password",
          name: "password",
          label: "Password",
          type: "password",
          autocomplete: "new-password",
          hint: "At least 10 characters; a mix of letters, numbers and symbols is stronger.",
          testid: "signup-password",
          required: true,
          errors: this.errors,
        })}
        <div class="actions">
          <button type="submit" data-testid="signup-submit" ?disabled=${this.busy}>
            ${this.busy ? "Creating account…" : "Sign up"}
          </button>
          <span class="muted">Already have an account? <a href="/login">Log in</a></span>
        </div>
      </form>
    `;
  }

  private async submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    if (this.busy) return;
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const email = formText(data, "email").trim();
    const password = formText(data, "password");
    const displayName = formText(data, "display_name").trim();
    this.busy = true;
    this.errors = null;
    try {
      await api.register({ email, password, display_name: displayName });
    } catch (error) {
      this.errors = toFormErrors(error, ["email", "password", "display_name"]);
      this.busy = false;
      return;
    }
    try {
      await auth.login(email, password);
      navigate(safeNext(currentLocation().query.get("next")), { replace: true });
    } catch (error) {
      // The account exists now; say so, so the visitor does not try to register twice.
      const errors = toFormErrors(error);
      const retry = error instanceof ApiError && error.status === 429 ? " Please log in shortly." : "";
      this.errors = {
        ...errors,
        message: `Your account was created, but signing you in failed: ${errors.message}${retry}`,
      };
    } finally {
      this.busy = false;
    }
  }
}

customElements.define("signup-page", SignupPage);
