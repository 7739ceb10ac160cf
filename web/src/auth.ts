import type { ReactiveController, ReactiveControllerHost } from "lit";
import { endSession, onSessionChange, refreshSession, setSession } from "./api/client.ts";
import * as api from "./api/endpoints.ts";
import type { User } from "./api/types.ts";

export type AuthStatus = "unknown" | "signed-in" | "signed-out";

/** Who is signed in, as far as this page knows; components observe it via AuthController. */
class AuthStore extends EventTarget {
  status: AuthStatus = "unknown";
  user: User | null = null;
  private started: Promise<void> | null = null;

  constructor() {
    super();
    // Background renewals and failed refreshes change the session without any page asking.
    onSessionChange((session) => this.set(session?.user ?? null));
  }

  /** Restore the session from the refresh cookie; safe to call repeatedly. */
  start(): Promise<void> {
    this.started ??= refreshSession().then(
      (session) => {
        if (!session) this.set(null);
      },
      () => {
        // An unreachable hub at start-up leaves the visitor signed out rather than stuck loading.
        this.set(null);
      },
    );
    return this.started;
  }

  async login(email: string, password: string): Promise<User> {
    const session = await api.login(email, password);
    setSession(session);
    return session.user;
  }

  async logout(): Promise<void> {
    await endSession();
    this.set(null);
  }

  /** Adopt a fresher copy of the user, e.g. after a profile edit or a role change. */
  setUser(user: User): void {
    this.set(user);
  }

  async reloadUser(signal?: AbortSignal): Promise<User> {
    const user = await api.fetchMe(signal);
    this.set(user);
    return user;
  }

  private set(user: User | null): void {
    this.user = user;
    this.status = user ? "signed-in" : "signed-out";
    this.dispatchEvent(new Event("change"));
  }
}

export const auth = new AuthStore();

/** Verified teachers and admins may upload videos and use the studio. */
export function canUploadVideos(user: User | null): boolean {
  return !!user && (user.is_teacher || user.is_admin);
}

/** Re-renders its host whenever the signed-in user changes. */
export class AuthController implements ReactiveController {
  private readonly host: ReactiveControllerHost;
  private readonly onChange = (): void => this.host.requestUpdate();

  constructor(host: ReactiveControllerHost) {
    this.host = host;
    host.addController(this);
  }

  get user(): User | null {
    return auth.user;
  }

  get status(): AuthStatus {
    return auth.status;
  }

  hostConnected(): void {
    auth.addEventListener("change", this.onChange);
  }

  hostDisconnected(): void {
    auth.removeEventListener("change", this.onChange);
  }
}
