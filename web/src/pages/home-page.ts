import { css, html, LitElement } from "lit";
import { AuthController } from "../auth.ts";
import { shared } from "../styles.ts";

export class HomePage extends LitElement {
  static override styles = [
    shared,
    css`
      .grid {
        display: grid;
        gap: 1rem;
        grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr));
        margin-top: 1.5rem;
      }
      .card h2 {
        margin-top: 0;
        font-size: 1.05rem;
      }
    `,
  ];

  private readonly session = new AuthController(this);

  override render() {
    const user = this.session.user;
    if (!user) {
      return html`
        <h1 tabindex="-1">Welcome to Cohort</h1>
        <p class="lead">Learn alongside others, in small groups led by real teachers.</p>
        <div class="actions">
          <a href="/courses">Browse courses</a>
          <span class="muted">·</span>
          <a href="/signup">Create an account</a>
          <span class="muted">or</span>
          <a href="/login">log in</a>
        </div>
      `;
    }
    return html`
      <h1 tabindex="-1">Hello, ${user.display_name}!</h1>
      <p class="lead">Good to see you on Cohort.</p>
      <div class="grid">
        <section class="card">
          <h2>Learn</h2>
          <p>Find a course, or pick up where you left off.</p>
          <div class="actions"><a href="/courses">Browse courses</a> <a href="/learning">My learning</a></div>
        </section>
        <section class="card">
          <h2>Learn together</h2>
          <p>Join communities for your skills, form study groups and message friends.</p>
          <div class="actions">
            <a href="/communities">Communities</a> <a href="/groups">Study groups</a> <a href="/friends">Friends</a>
          </div>
        </section>
        <section class="card">
          <h2>Coins</h2>
          <p>Courses and profile items are paid with coins.</p>
          <div class="actions"><a href="/wallet">Wallet</a> <a href="/shop">Profile shop</a></div>
        </section>
        <section class="card">
          <h2>Your profile</h2>
          <p>Choose how others see you and manage where you are signed in.</p>
          <a href="/profile">Edit profile</a>
        </section>
        <section class="card">
          <h2>${user.is_teacher ? "Teaching" : "Become a teacher"}</h2>
          <p>
            ${user.is_teacher
              ? "You can lead cohorts of your own."
              : "Share what you know: tell us about your experience and apply to teach."}
          </p>
          <div class="actions">
            <a href="/teach">${user.is_teacher ? "Teaching on Cohort" : "Apply to teach"}</a>
            ${user.is_teacher ? html`<a href="/studio/courses">Your courses</a>` : null}
          </div>
        </section>
        ${user.is_admin
          ? html`<section class="card">
              <h2>Administration</h2>
              <p>Review teacher applications waiting for a decision.</p>
              <a href="/admin/applications">Review applications</a>
            </section>`
          : null}
      </div>
    `;
  }
}

customElements.define("home-page", HomePage);
