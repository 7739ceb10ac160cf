import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { shared } from "../styles.ts";
import { formatCoins } from "../wallet.ts";

/**
 * `<buy-dialog>`: asks before coins are spent. "Buy for N coins? Your balance: B → B−N".
 *
 * Properties: `open`, `itemName`, `price`, `balance` (null while loading), `busy`, `error`
 * (message), `short` (the hub said 402: show the top-up link even if the balance looked enough).
 * Fires `confirm` and `cancel`. Test ids: buy-dialog, buy-balance, buy-after, buy-confirm,
 * buy-cancel, buy-insufficient, buy-error.
 */
export class BuyDialog extends LitElement {
  static override styles = [
    shared,
    css`
      dialog {
        border: 1px solid var(--border);
        border-radius: var(--radius);
        background: var(--surface);
        color: var(--text);
        padding: 1.25rem 1.5rem;
        max-width: min(28rem, calc(100vw - 2rem));
        box-shadow: 0 10px 40px rgb(0 0 0 / 0.25);
      }
      dialog::backdrop {
        background: rgb(0 0 0 / 0.45);
      }
      h2 {
        margin: 0 0 0.75rem;
      }
      .sums {
        font-variant-numeric: tabular-nums;
      }
      .actions {
        justify-content: flex-end;
        margin-top: 1rem;
      }
    `,
  ];

  static override properties = {
    open: { type: Boolean },
    itemName: {},
    price: { type: Number },
    balance: { attribute: false },
    busy: { type: Boolean },
    error: {},
    short: { type: Boolean },
  };

  declare open: boolean;
  declare itemName: string;
  declare price: number;
  declare balance: number | null;
  declare busy: boolean;
  declare error: string | null;
  declare short: boolean;

  constructor() {
    super();
    this.open = false;
    this.itemName = "";
    this.price = 0;
    this.balance = null;
    this.busy = false;
    this.error = null;
    this.short = false;
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has("open")) return;
    const dialog = this.renderRoot.querySelector("dialog");
    if (!dialog) return;
    if (this.open && !dialog.open) dialog.showModal();
    if (!this.open && dialog.open) dialog.close();
  }

  override render() {
    const balance = this.balance;
    const after = balance === null ? null : balance - this.price;
    const insufficient = this.short || (after !== null && after < 0);
    return html`<dialog
      data-testid="buy-dialog"
      aria-labelledby="buy-heading"
      @cancel=${this.onCancel}
      @close=${this.onClose}
    >
      <h2 id="buy-heading">Buy “${this.itemName}”?</h2>
      <p>Buy for <strong>${formatCoins(this.price)}</strong>?</p>
      <p class="sums">
        Your balance:
        ${balance === null
          ? html`<span class="muted" role="status">checking…</span>`
          : html`<strong data-testid="buy-balance">${balance}</strong> →
              <strong data-testid="buy-after">${after}</strong> coins`}
      </p>
      ${insufficient
        ? html`<div class="alert error" role="alert" data-testid="buy-insufficient">
            Not enough coins: this costs ${formatCoins(this.price)}${balance !== null
              ? html` and your wallet holds ${formatCoins(balance)}`
              : nothing}.
            <a href="/wallet" @click=${this.onCancel}>Top up your wallet</a>
          </div>`
        : nothing}
      ${this.error && !insufficient
        ? html`<div class="alert error" role="alert" data-testid="buy-error">${this.error}</div>`
        : nothing}
      <div class="actions">
        <button type="button" class="secondary" data-testid="buy-cancel" @click=${this.onCancel}>Cancel</button>
        <button
          type="button"
          data-testid="buy-confirm"
          ?disabled=${this.busy || balance === null || insufficient}
          @click=${this.onConfirm}
        >
          ${this.busy ? "Buying…" : `Buy for ${formatCoins(this.price)}`}
        </button>
      </div>
    </dialog>`;
  }

  private readonly onConfirm = (): void => {
    this.dispatchEvent(new Event("confirm"));
  };

  private readonly onCancel = (event?: Event): void => {
    // Esc closes the dialog natively; the owner decides, through `open`.
    if (event?.type === "cancel") event.preventDefault();
    if (!this.busy) this.dispatchEvent(new Event("cancel"));
  };

  private readonly onClose = (): void => {
    if (this.open && !this.busy) this.dispatchEvent(new Event("cancel"));
  };
}

customElements.define("buy-dialog", BuyDialog);

declare global {
  interface HTMLElementTagNameMap {
    "buy-dialog": BuyDialog;
  }
}
