import { css, html, LitElement, nothing } from "lit";
import { styleMap } from "lit/directives/style-map.js";
import { ApiError, newIdempotencyKey } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import { SHOP_ITEM_KINDS, type AppearanceChoice, type ShopItem, type ShopItemKind } from "../api/types.ts";
import { auth, AuthController } from "../auth.ts";
import "../components/buy-dialog.ts";
import { courseStyles, priceLabel } from "../courses/view.ts";
import { errorAlert, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { appearanceStyles, frameStyle, themeStyle } from "../profile/appearance.ts";
import { navigate } from "../router.ts";
import { shared } from "../styles.ts";
import { wallet, WalletController } from "../wallet.ts";

const KIND_HEADINGS: Record<ShopItemKind, string> = {
  theme: "Profile themes",
  badge: "Badges",
  frame: "Avatar frames",
};

/** `/shop`: profile themes, badges and avatar frames, bought with coins and applied. */
export class ShopPage extends LitElement {
  static override styles = [
    shared,
    courseStyles,
    appearanceStyles,
    css`
      .items {
        list-style: none;
        padding: 0;
        margin: 0;
        display: grid;
        gap: 1rem;
        grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr));
      }
      .item {
        margin: 0;
        padding: 0;
        overflow: hidden;
        display: flex;
        flex-direction: column;
      }
      .item.applied {
        border-color: var(--accent);
        box-shadow: 0 0 0 2px var(--accent-soft);
      }
      .item-preview {
        height: 6rem;
        display: grid;
        place-items: center;
        background: var(--hover);
        border-bottom: 1px solid var(--border);
      }
      .item-preview .avatar-big {
        width: 3.5rem;
        height: 3.5rem;
      }
      .item .body {
        padding: 0.75rem 1rem 1rem;
        display: flex;
        flex-direction: column;
        gap: 0.3rem;
        flex: 1 1 auto;
      }
      .item .name {
        font-weight: 700;
      }
      .item .description {
        color: var(--muted);
        font-size: 0.9rem;
      }
      .item .actions {
        margin-top: auto;
        padding-top: 0.5rem;
      }
      .item button {
        padding: 0.4rem 0.85rem;
      }
      .swatch {
        width: 100%;
        height: 100%;
        display: grid;
        place-items: center;
      }
      .swatch span {
        background: var(--accent);
        color: #fff;
        font-weight: 700;
        font-size: 0.8rem;
        padding: 0.2rem 0.6rem;
        border-radius: 999px;
      }
      .big-emoji {
        font-size: 1.4rem;
        padding: 0.3rem 0.8rem;
      }
    `,
  ];

  static override properties = {
    items: { state: true },
    errors: { state: true },
    notice: { state: true },
    buying: { state: true },
    buyBalance: { state: true },
    buyBusy: { state: true },
    buyError: { state: true },
    buyShort: { state: true },
    applying: { state: true },
  };

  /** null while loading. */
  declare items: ShopItem[] | null;
  declare errors: FormErrors | null;
  declare notice: string | null;
  /** The item in the confirmation dialog. */
  declare buying: ShopItem | null;
  declare buyBalance: number | null;
  declare buyBusy: boolean;
  declare buyError: string | null;
  declare buyShort: boolean;
  declare applying: boolean;

  private readonly session = new AuthController(this);
  private readonly coins = new WalletController(this);
  private aborter: AbortController | null = null;
  private attemptKey: string | null = null;

  constructor() {
    super();
    this.items = null;
    this.errors = null;
    this.notice = null;
    this.buying = null;
    this.buyBalance = null;
    this.buyBusy = false;
    this.buyError = null;
    this.buyShort = false;
    this.applying = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.aborter = new AbortController();
    void this.load();
    if (this.session.user) {
      void wallet.refresh();
      auth.reloadUser(this.aborter.signal).catch(() => undefined);
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.aborter?.abort();
  }

  private async load(): Promise<void> {
    try {
      this.items = await api.listShopItems(this.aborter?.signal);
    } catch (error) {
      if (isAbort(error)) return;
      this.items ??= [];
      this.errors = toFormErrors(error);
    }
  }

  override render() {
    const items = this.items;
    const user = this.session.user;
    const balance = this.coins.balance;
    return html`
      <h1 tabindex="-1">Profile shop</h1>
      <p class="lead">Make your profile yours: themes, badges and avatar frames, paid with coins.</p>
      ${user && balance !== null
        ? html`<p>Your balance: <strong data-testid="shop-balance">${balance}</strong> coins · <a href="/wallet">Top up</a> ·
            <a href=${`/users/${user.id}`}>See your public profile</a></p>`
        : nothing}
      ${!user ? html`<p class="muted"><a href="/login?next=/shop">Log in</a> to buy and apply items.</p>` : nothing}
      ${errorAlert(this.errors)} ${successNote(this.notice)}
      ${items === null
        ? html`<p class="muted" role="status">Loading the shop…</p>`
        : items.length === 0
          ? html`<p class="muted">The shop is empty for now.</p>`
          : SHOP_ITEM_KINDS.map((kind) => this.renderKind(kind, items.filter((i) => i.kind === kind)))}
      <buy-dialog
        .open=${this.buying !== null}
        .itemName=${this.buying?.name ?? ""}
        .price=${this.buying?.price ?? 0}
        .balance=${this.buyBalance}
        .busy=${this.buyBusy}
        .error=${this.buyError}
        .short=${this.buyShort}
        @confirm=${this.confirmBuy}
        @cancel=${() => {
          if (!this.buyBusy) this.buying = null;
        }}
      ></buy-dialog>
    `;
  }

  private renderKind(kind: ShopItemKind, items: ShopItem[]) {
    if (items.length === 0) return nothing;
    return html`<h2 id=${`shop-${kind}`}>${KIND_HEADINGS[kind]}</h2>
      <ul class="items" aria-labelledby=${`shop-${kind}`}>
        ${items.map((item) => this.renderItem(item))}
      </ul>`;
  }

  private renderItem(item: ShopItem) {
    const applied = this.isApplied(item);
    const signedIn = this.session.user !== null;
    return html`<li
      class="card item ${applied ? "applied" : ""}"
      data-testid="shop-item"
      data-item-id=${String(item.id)}
      data-kind=${item.kind}
      data-owned=${String(item.owned)}
    >
      <div class="item-preview" aria-hidden="true">${this.renderPreview(item)}</div>
      <div class="body">
        <span class="name">${item.name}</span>
        ${item.description ? html`<span class="description">${item.description}</span>` : nothing}
        <span class="price ${item.price > 0 ? "" : "free"}">${priceLabel(item.price)}</span>
        <div class="actions">
          ${item.owned
            ? html`<span class="badge approved" data-testid="shop-owned">Owned</span>
                ${applied
                  ? html`<span class="badge preview" data-testid="shop-applied">In use</span>
                      <button
                        type="button"
                        class="secondary"
                        data-testid="shop-remove"
                        aria-label=${`Stop using ${item.name}`}
                        ?disabled=${this.applying}
                        @click=${() => this.apply(item, false)}
                      >
                        Remove
                      </button>`
                  : html`<button
                      type="button"
                      data-testid="shop-apply"
                      aria-label=${`Use ${item.name}`}
                      ?disabled=${this.applying}
                      @click=${() => this.apply(item, true)}
                    >
                      Apply
                    </button>`}`
            : html`<button
                type="button"
                data-testid="shop-buy"
                aria-label=${`Buy ${item.name} for ${priceLabel(item.price)}`}
                @click=${() => this.openBuy(item)}
              >
                ${signedIn ? "Buy" : "Log in to buy"}
              </button>`}
        </div>
      </div>
    </li>`;
  }

  private renderPreview(item: ShopItem) {
    const style = item.style;
    switch (item.kind) {
      case "theme":
        return html`<div class="swatch" style=${styleMap(themeStyle(style))}><span>Aa</span></div>`;
      case "badge":
        return html`<span class="shop-badge big-emoji" style=${styleMap({ background: style.color ?? "var(--accent-soft)" })}
          >${style.emoji ?? "★"}</span
        >`;
      case "frame":
        return html`<span
          class="avatar-big"
          style=${styleMap({
            background: this.session.user?.avatar_color ?? "#6366f1",
            ...frameStyle(style),
          })}
        ></span>`;
    }
  }

  private isApplied(item: ShopItem): boolean {
    const applied = this.session.user?.appearance?.[item.kind];
    return !!applied && String(applied.id) === String(item.id);
  }

  private async openBuy(item: ShopItem): Promise<void> {
    if (!this.session.user) {
      navigate("/login?next=/shop");
      return;
    }
    this.attemptKey = newIdempotencyKey();
    this.buyError = null;
    this.buyShort = false;
    this.buyBalance = null;
    this.buying = item;
    const balance = await wallet.refresh();
    if (balance === null) this.buyError = "Could not read your balance. Check your connection.";
    this.buyBalance = balance;
  }

  private async confirmBuy(): Promise<void> {
    const item = this.buying;
    if (!item || this.buyBusy) return;
    this.attemptKey ??= newIdempotencyKey();
    this.buyBusy = true;
    this.buyError = null;
    this.notice = null;
    try {
      const result = await api.buyShopItem(item.id, this.attemptKey);
      this.attemptKey = null;
      wallet.set(result.balance);
      this.markOwned(item);
      this.buying = null;
      this.notice = `You bought “${item.name}”. Apply it to show it on your profile.`;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
        this.buyError = `${toFormErrors(error).message} Trying again will not charge you twice.`;
        return;
      }
      this.attemptKey = null;
      if (error.status === 402) {
        this.buyShort = true;
        if (typeof error.problem.balance === "number") {
          this.buyBalance = error.problem.balance;
          wallet.set(error.problem.balance);
        }
      } else if (error.status === 409) {
        this.buying = null;
        this.errors = { message: error.problem.detail, extra: [], fields: {} };
        void this.load();
      } else {
        this.buyError = error.problem.detail;
      }
    } finally {
      this.buyBusy = false;
    }
  }

  private markOwned(item: ShopItem): void {
    this.items = (this.items ?? []).map((i) => (String(i.id) === String(item.id) ? { ...i, owned: true } : i));
  }

  private async apply(item: ShopItem, use: boolean): Promise<void> {
    const user = this.session.user;
    if (!user || this.applying) return;
    const current = user.appearance;
    const choice: AppearanceChoice = {
      theme: current?.theme?.id ?? null,
      badge: current?.badge?.id ?? null,
      frame: current?.frame?.id ?? null,
    };
    choice[item.kind] = use ? item.id : null;
    this.applying = true;
    this.errors = null;
    this.notice = null;
    try {
      const appearance = await api.setAppearance(choice);
      auth.setUser({ ...user, appearance });
      this.notice = use ? `“${item.name}” is on your profile now.` : `Removed “${item.name}” from your profile.`;
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      this.applying = false;
    }
  }
}

customElements.define("shop-page", ShopPage);
