import type { ReactiveController, ReactiveControllerHost } from "lit";
import * as api from "./api/endpoints.ts";
import { auth } from "./auth.ts";

/**
 * The signed-in user's coin balance as this page last saw it; the navigation shows it and
 * pages that move coins (purchases, top-ups) hand it the new figure or ask for a refresh.
 */
class WalletStore extends EventTarget {
  /** null while unknown or signed out. */
  balance: number | null = null;
  private userId: number | null = null;
  private inflight: Promise<number | null> | null = null;

  constructor() {
    super();
    // Auth emits on every token renewal; only a change of user means a different wallet.
    auth.addEventListener("change", () => {
      const id = auth.user?.id ?? null;
      if (id === this.userId) return;
      this.userId = id;
      this.set(null);
      if (id !== null) void this.refresh();
    });
  }

  /** Fetch the balance anew; resolves to null when it could not be read. */
  refresh(): Promise<number | null> {
    this.inflight ??= api
      .getWallet()
      .then(
        (wallet) => {
          if (auth.user?.id === this.userId) this.set(wallet.balance);
          return wallet.balance;
        },
        () => null,
      )
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  set(balance: number | null): void {
    if (balance === this.balance) return;
    this.balance = balance;
    this.dispatchEvent(new Event("change"));
  }
}

export const wallet = new WalletStore();

/** Re-renders its host whenever the known balance changes. */
export class WalletController implements ReactiveController {
  private readonly host: ReactiveControllerHost;
  private readonly onChange = (): void => this.host.requestUpdate();

  constructor(host: ReactiveControllerHost) {
    this.host = host;
    host.addController(this);
  }

  get balance(): number | null {
    return wallet.balance;
  }

  hostConnected(): void {
    wallet.addEventListener("change", this.onChange);
  }

  hostDisconnected(): void {
    wallet.removeEventListener("change", this.onChange);
  }
}

/** "1,250 coins", "1 coin". */
export function formatCoins(amount: number): string {
  return `${new Intl.NumberFormat().format(amount)} coin${Math.abs(amount) === 1 ? "" : "s"}`;
}

/** "+100", "−30" (a real minus sign), "0". */
export function signedCoins(amount: number): string {
  const digits = new Intl.NumberFormat().format(Math.abs(amount));
  return amount > 0 ? `+${digits}` : amount < 0 ? `−${digits}` : "0";
}
