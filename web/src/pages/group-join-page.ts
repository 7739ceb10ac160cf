import { html, LitElement } from "lit";
import * as api from "../api/endpoints.ts";
import { errorAlert, toFormErrors, type FormErrors } from "../forms.ts";
import { navigate } from "../router.ts";
import { unread } from "../social/unread.ts";
import { shared } from "../styles.ts";

/** `/groups/join/:code`: where an invite link leads; joining takes one click. */
export class GroupJoinPage extends LitElement {
  static override styles = [shared];

  static override properties = {
    code: {},
    busy: { state: true },
    errors: { state: true },
  };

  declare code: string;
  declare busy: boolean;
  declare errors: FormErrors | null;

  constructor() {
    super();
    this.code = "";
    this.busy = false;
    this.errors = null;
  }

  override render() {
    return html`
      <h1 tabindex="-1">Join a study group</h1>
      <div class="card narrow">
        <p>You were invited to a study group on Cohort. Join to meet its members and chat with them.</p>
        ${errorAlert(this.errors)}
        <div class="actions">
          <button type="button" data-testid="group-join" ?disabled=${this.busy} @click=${this.join}>
            ${this.busy ? "Joining…" : "Join the group"}
          </button>
          <a href="/groups">Not now</a>
        </div>
      </div>
    `;
  }

  private async join(): Promise<void> {
    this.busy = true;
    this.errors = null;
    try {
      const group = await api.joinGroupByCode(this.code);
      unread.track(group.channel);
      navigate(`/groups/${group.id}`, { replace: true });
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      this.busy = false;
    }
  }
}

customElements.define("group-join-page", GroupJoinPage);
