import { html, LitElement } from "lit";
import { shared } from "../styles.ts";

export class NotFoundPage extends LitElement {
  static override styles = shared;
  static override properties = { path: {} };

  /** Passed in because the shell reuses this element between two unknown paths. */
  declare path: string;

  constructor() {
    super();
    this.path = "";
  }

  override render() {
    return html`
      <h1 tabindex="-1">Page not found</h1>
      <p class="lead">There is nothing at ${this.path || "this address"}.</p>
      <p><a href="/">Go to the home page</a></p>
    `;
  }
}

customElements.define("not-found-page", NotFoundPage);

export class ForbiddenPage extends LitElement {
  static override styles = shared;

  override render() {
    return html`
      <h1 tabindex="-1">Admins only</h1>
      <p class="lead">This page is for Cohort administrators.</p>
      <p><a href="/">Go to the home page</a></p>
    `;
  }
}

customElements.define("forbidden-page", ForbiddenPage);
