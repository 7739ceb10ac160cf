import { css, html, LitElement, nothing } from "lit";
import { ApiError, newIdempotencyKey } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { TopUp, WalletLine } from "../api/types.ts";
import { errorAlert, formatDate, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { currentLocation, navigate, onRouteChange } from "../router.ts";
import { shared } from "../styles.ts";
import { formatCoins, signedCoins, wallet, WalletController } from "../wallet.ts";

interface CoinPack {
  id: string;
  coins: number;
  price: string;
  note: string;
}

/** The hub's packs (docs/payments.md); the checkout shows the authoritative price. */
const PACKS: readonly CoinPack[] = [
  { id: "starter", coins: 100, price: "0.99 USD", note: "Try a short course" },
  { id: "plus", coins: 550, price: "4.99 USD", note: "10% bonus" },
  { id: "pro", coins: 1200, price: "9.99 USD", note: "20% bonus" },
];

const POLL_MS = 1_000;
const POLL_FOR_MS = 60_000;
const HISTORY_PAGE = 20;

const KIND_LABELS: Record<string, string> = {
  signup_grant: "Welcome gift",
  grant: "Gift",
  topup: "Top-up",
  purchase: "Course",
  course_purchase: "Course",
  course_sale: "Course sale",
  sale: "Sale",
  shop_purchase: "Shop",
  refund: "Refund",
  correction: "Correction",
};

/** `/wallet`: balance, history and buying coins through the payment provider's checkout. */
export class WalletPage extends LitElement {
  static override styles = [
    shared,
    css`
      .balance {
        display: flex;
        align-items: baseline;
        gap: 0.6rem;
        flex-wrap: wrap;
      }
      .balance .amount {
        font-size: 2.5rem;
        font-weight: 800;
        font-variant-numeric: tabular-nums;
      }
      .packs {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr));
        gap: 1rem;
        max-width: 48rem;
      }
      .pack {
        display: flex;
        flex-direction: column;
        gap: 0.3rem;
        margin: 0;
      }
      .pack .coins {
        font-size: 1.4rem;
        font-weight: 800;
      }
      .pack button {
        margin-top: 0.5rem;
      }
      .history {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 48rem;
      }
      .line {
        display: flex;
        align-items: center;
        gap: 0.5rem 1rem;
        padding: 0.7rem 1rem;
        margin-bottom: 0.5rem;
      }
      .line .what {
        flex: 1 1 auto;
        min-width: 0;
      }
      .line .memo {
        overflow-wrap: anywhere;
      }
      .line .when {
        color: var(--muted);
        font-size: 0.85rem;
      }
      .amount-in {
        color: var(--success);
        font-weight: 700;
        font-variant-numeric: tabular-nums;
        white-space: nowrap;
      }
      .amount-out {
        color: var(--danger);
        font-weight: 700;
        font-variant-numeric: tabular-nums;
        white-space: nowrap;
      }
    `,
  ];

  static override properties = {
    history: { state: true },
    cursor: { state: true },
    loadingMore: { state: true },
    errors: { state: true },
    starting: { state: true },
    topup: { state: true },
    topupTimedOut: { state: true },
  };

  /** null while loading. */
  declare history: WalletLine[] | null;
  declare cursor: number | null;
  declare loadingMore: boolean;
  declare errors: FormErrors | null;
  /** The pack whose checkout is being started. */
  declare starting: string | null;
  /** The top-up the checkout came back with (`?topup=`), while and after it settles. */
  declare topup: TopUp | null;
  declare topupTimedOut: boolean;

  private readonly coins = new WalletController(this);
  private aborter: AbortController | null = null;
  private stopListening: (() => void) | null = null;
  private pollTimer: number | undefined;
  private watchedTopUp: string | null = null;
  /** One key per pack choice, reused if the same start is retried after a network failure. */
  private readonly packKeys = new Map<string, string>();

  constructor() {
    super();
    this.history = null;
    this.cursor = null;
    this.loadingMore = false;
    this.errors = null;
    this.starting = null;
    this.topup = null;
    this.topupTimedOut = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.aborter = new AbortController();
    this.stopListening = onRouteChange(() => this.followTopUp());
    window.addEventListener("pageshow", this.onPageShow);
    void wallet.refresh();
    void this.loadHistory(false);
    this.followTopUp();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopListening?.();
    window.removeEventListener("pageshow", this.onPageShow);
    this.aborter?.abort();
    window.clearTimeout(this.pollTimer);
  }

  /** Back from the checkout through the back/forward cache: the page is as it was left. */
  private readonly onPageShow = (event: PageTransitionEvent): void => {
    if (!event.persisted) return;
    this.starting = null;
    void wallet.refresh();
  };

  private async loadHistory(more: boolean): Promise<void> {
    if (more) this.loadingMore = true;
    try {
      const page = await api.walletHistory(more ? this.cursor : null, HISTORY_PAGE, this.aborter?.signal);
      this.history = more ? [...(this.history ?? []), ...page.items] : page.items;
      this.cursor = page.next_cursor;
    } catch (error) {
      if (isAbort(error)) return;
      this.history ??= [];
      this.errors = toFormErrors(error);
    } finally {
      this.loadingMore = false;
    }
  }

  /** Coming back from the checkout (`/wallet?topup=<id>`): wait for the provider's verdict. */
  private followTopUp(): void {
    const location = currentLocation();
    if (location.path !== "/wallet") return;
    const id = location.query.get("topup");
    if (!id || id === this.watchedTopUp) return;
    this.watchedTopUp = id;
    this.topup = null;
    this.topupTimedOut = false;
    window.clearTimeout(this.pollTimer);
    void this.poll(id, Date.now() + POLL_FOR_MS);
  }

  private async poll(id: string, until: number): Promise<void> {
    try {
      const topup = await api.getTopUp(id, this.aborter?.signal);
      if (this.watchedTopUp !== id) return;
      this.topup = topup;
      if (topup.status !== "pending") {
        void wallet.refresh();
        void this.loadHistory(false);
        return;
      }
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) {
        this.errors = { message: "That top-up was not found.", extra: [], fields: {} };
        return;
      }
      // A passing network problem: keep trying until the deadline.
    }
    if (Date.now() >= until) {
      this.topupTimedOut = true;
      return;
    }
    this.pollTimer = window.setTimeout(() => void this.poll(id, until), POLL_MS);
  }

  override render() {
    const balance = this.coins.balance;
    return html`
      <h1 tabindex="-1">Wallet</h1>
      <p class="lead">Coins buy courses and profile items. They never expire.</p>
      ${errorAlert(this.errors)} ${this.renderTopUpState()}
      <section class="card narrow" aria-labelledby="balance-heading">
        <h2 id="balance-heading" style="margin-top:0">Balance</h2>
        <p class="balance" style="margin:0">
          ${balance === null
            ? html`<span class="muted" role="status">Loading…</span>`
            : html`<span class="amount" data-testid="wallet-balance">${balance}</span>
                <span>coin${balance === 1 ? "" : "s"}</span>`}
        </p>
      </section>

      <h2 id="packs-heading">Buy coins</h2>
      <p class="muted">You pay on the payment provider's checkout page and come back here.</p>
      <ul class="packs" aria-labelledby="packs-heading" style="list-style:none;padding:0">
        ${PACKS.map(
          (pack) => html`<li class="card pack" data-testid="topup-pack" data-pack=${pack.id}>
            <span class="coins">${formatCoins(pack.coins)}</span>
            <span>${pack.price}</span>
            <span class="muted">${pack.note}</span>
            <button
              type="button"
              data-testid=${`topup-${pack.id}`}
              aria-label=${`Buy ${pack.coins} coins for ${pack.price}`}
              ?disabled=${this.starting !== null}
              @click=${() => this.startTopUp(pack)}
            >
              ${this.starting === pack.id ? "Opening checkout…" : `Buy ${pack.coins} coins`}
            </button>
          </li>`,
        )}
      </ul>

      <h2 id="history-heading">History</h2>
      ${this.renderHistory()}
    `;
  }

  private renderTopUpState() {
    if (!this.watchedTopUp) return nothing;
    const topup = this.topup;
    if (this.topupTimedOut && topup?.status !== "paid" && topup?.status !== "declined") {
      return html`<div class="alert error" role="status" data-testid="topup-status" data-status="pending">
        The payment is still being confirmed. Your coins will appear here as soon as it is;
        <a href="/wallet" @click=${this.clearTopUp}>refresh</a> in a moment.
      </div>`;
    }
    if (!topup || topup.status === "pending") {
      return html`<div class="alert" role="status" data-testid="topup-status" data-status="pending">
        Waiting for the payment to be confirmed…
      </div>`;
    }
    if (topup.status === "paid") {
      return html`<div class="alert success" role="status" data-testid="topup-status" data-status="paid">
        Payment received: ${formatCoins(topup.coins)} added to your wallet.
      </div>`;
    }
    return html`<div class="alert error" role="alert" data-testid="topup-status" data-status="declined">
      The payment was declined; no coins were added and nothing was charged.
    </div>`;
  }

  private clearTopUp(event: Event): void {
    event.preventDefault();
    this.watchedTopUp = null;
    this.topup = null;
    navigate("/wallet", { replace: true });
    void wallet.refresh();
    void this.loadHistory(false);
  }

  private renderHistory() {
    const history = this.history;
    if (history === null) return html`<p class="muted" role="status">Loading your history…</p>`;
    if (history.length === 0) return html`<p class="muted" data-testid="no-transactions">No coin movements yet.</p>`;
    return html`<ol class="history" aria-labelledby="history-heading" data-testid="transactions">
        ${history.map(
          (line) => html`<li class="card line" data-testid="transaction-row" data-kind=${line.kind}>
            <div class="what">
              <div class="memo">${line.memo || KIND_LABELS[line.kind] || line.kind}</div>
              <div class="when">${KIND_LABELS[line.kind] ?? line.kind} · ${formatDate(line.created_at)}</div>
            </div>
            <span
              class=${line.amount >= 0 ? "amount-in" : "amount-out"}
              data-testid="transaction-amount"
              aria-label=${`${line.amount >= 0 ? "In" : "Out"}: ${formatCoins(Math.abs(line.amount))}`}
              >${signedCoins(line.amount)}</span
            >
          </li>`,
        )}
      </ol>
      ${this.cursor !== null
        ? html`<button
            type="button"
            class="secondary"
            data-testid="transactions-more"
            ?disabled=${this.loadingMore}
            @click=${() => this.loadHistory(true)}
          >
            ${this.loadingMore ? "Loading…" : "Show older"}
          </button>`
        : nothing}`;
  }

  private async startTopUp(pack: CoinPack): Promise<void> {
    if (this.starting) return;
    const key = this.packKeys.get(pack.id) ?? newIdempotencyKey();
    this.packKeys.set(pack.id, key);
    this.starting = pack.id;
    this.errors = null;
    try {
      const topup = await api.startTopUp(pack.id, key);
      this.packKeys.delete(pack.id);
      if (!topup.checkout_url) throw new Error("The payment provider gave no checkout page.");
      // The checkout is the provider's page, not a view of this app: a real navigation.
      window.location.assign(topup.checkout_url);
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status > 0 && error.status < 500) this.packKeys.delete(pack.id);
      this.errors = toFormErrors(error);
    }
    this.starting = null;
  }
}

customElements.define("wallet-page", WalletPage);
