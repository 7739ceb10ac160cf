import type { FieldProblem, Problem, TokenResponse } from "./types.ts";

/** An HTTP failure carrying the hub's problem details (or a synthesised equivalent). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  /** Seconds to wait before retrying, from `Retry-After` or `retry_after`. */
  readonly retryAfter: number | null;

  constructor(problem: Problem, retryAfter: number | null = null) {
    super(problem.detail || problem.title);
    this.name = "ApiError";
    this.status = problem.status;
    this.problem = problem;
    this.retryAfter = retryAfter ?? problem.retry_after ?? null;
  }

  get fieldErrors(): FieldProblem[] {
    return this.problem.errors ?? [];
  }
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  /** Sent as JSON, or as it is when a Blob (with the Blob's type). */
  body?: unknown;
  /** Send the bearer token and recover from an expired one. Defaults to true. */
  auth?: boolean;
  signal?: AbortSignal;
  /**
   * Makes a money-moving POST safe to retry: the hub answers a repeated key with the first
   * response instead of doing it again. Reuse the key only for retries of the same attempt.
   */
  idempotencyKey?: string;
  /** Let the request outlive the page (progress heartbeats sent on `pagehide`). */
  keepalive?: boolean;
}

export type SessionListener = (session: TokenResponse | null) => void;

// The access token is deliberately kept in module scope only: anything in Web Storage
// is readable by any script that manages to run on the origin, and it would outlive logout.
let accessToken: string | null = null;
let expiresAt = 0;
let refreshTimer: number | undefined;
let inflightRefresh: Promise<TokenResponse | null> | null = null;
/** Bumped whenever the token is replaced or dropped, so late 401s can tell it already happened. */
let generation = 0;
const listeners = new Set<SessionListener>();

/** Refresh this long before expiry so a request never leaves with a token that dies in flight. */
const EXPIRY_MARGIN_MS = 5_000;
const REFRESH_TIMEOUT_MS = 15_000;

export function onSessionChange(listener: SessionListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function hasAccessToken(): boolean {
  return accessToken !== null;
}

/** Adopt a token response from login or refresh and schedule its renewal. */
export function setSession(session: TokenResponse): void {
  accessToken = session.access_token;
  generation += 1;
  const lifetimeMs = Math.max(0, session.expires_in * 1000);
  expiresAt = Date.now() + lifetimeMs;
  window.clearTimeout(refreshTimer);
  // Renew at 80% of the lifetime (at most a minute early) so active users are never
  // bounced by a 401; a floor keeps very short test lifetimes from spinning.
  const lead = Math.min(60_000, lifetimeMs * 0.2);
  const delay = Math.max(1_000, lifetimeMs - lead);
  refreshTimer = window.setTimeout(() => {
    // A failed background renewal is not fatal: the next call recovers through the 401 path.
    refreshSession().catch(() => undefined);
  }, delay);
  emit(session);
}

export function clearSession(): void {
  const hadSession = accessToken !== null;
  accessToken = null;
  generation += 1;
  expiresAt = 0;
  window.clearTimeout(refreshTimer);
  refreshTimer = undefined;
  if (hadSession) emit(null);
}

function emit(session: TokenResponse | null): void {
  for (const listener of listeners) listener(session);
}

/**
 * Exchange the refresh cookie for a new access token.
 *
 * Every caller shares one in-flight request: the server rotates the refresh cookie on use,
 * so two concurrent refreshes would present the same cookie twice and the second would fail
 * (or look like token theft). Resolves to null when there is no valid session.
 */
export function refreshSession(): Promise<TokenResponse | null> {
  inflightRefresh ??= withCrossTabLock(performRefresh).finally(() => {
    inflightRefresh = null;
  });
  return inflightRefresh;
}

async function performRefresh(): Promise<TokenResponse | null> {
  const response = await send("/api/auth/refresh", {
    method: "POST",
    headers: { Accept: "application/json" },
    signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
  });
  if (response.status === 401) {
    clearSession();
    return null;
  }
  if (!response.ok) throw await toApiError(response);
  const session = (await response.json()) as TokenResponse;
  setSession(session);
  return session;
}

/**
 * Other tabs of the app share the refresh cookie, so they must not rotate it at the same
 * moment either; the Web Locks API serialises them where the browser has it.
 */
async function withCrossTabLock<T>(task: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  if (!locks) return task();
  return locks.request("cohort-auth-refresh", task) as Promise<T>;
}

/** Tell the hub to end this device's session, then forget the token whatever it answered. */
export async function endSession(): Promise<void> {
  const headers: Record<string, string> = {};
  if (accessToken) headers["Authorization"] = `Bearer ${accessToken}`;
  try {
    await send("/api/auth/logout", { method: "POST", headers });
  } catch {
    // The local sign-out must happen even when the hub is unreachable.
  } finally {
    clearSession();
  }
}

/** JSON request to the hub; rejects with ApiError for any non-2xx answer. */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { auth = true } = options;

  if (!auth) return parse<T>(await send(path, init(options, null)));

  const token = await usableToken();
  if (token === null) throw notSignedIn();
  const sentWith = generation;
  const response = await send(path, init(options, token));
  if (response.status !== 401) return parse<T>(response);

  // If the session changed while this call was in flight (another call already renewed it,
  // or it ended), act on that outcome instead of spending the rotated refresh cookie again.
  const retryToken =
    generation === sentWith ? ((await refreshSession())?.access_token ?? null) : accessToken;
  if (retryToken === null) throw await toApiError(response);
  return parse<T>(await send(path, init(options, retryToken)));
}

/**
 * The access token for a request sent outside `request()` (the tus uploader's XHRs), renewed
 * first when it is about to expire. Null when nobody is signed in.
 */
export function currentAccessToken(): Promise<string | null> {
  return usableToken();
}

/**
 * A replacement after the hub answered 401 to a request sent with `rejected`. Shares the
 * refresh with every other caller, and does not spend the rotated refresh cookie again when
 * the token was already replaced in the meantime. Null when the session has ended.
 */
export async function replaceRejectedToken(rejected: string): Promise<string | null> {
  if (accessToken !== null && accessToken !== rejected) return accessToken;
  return (await refreshSession())?.access_token ?? null;
}

async function usableToken(): Promise<string | null> {
  // Timers in background tabs are throttled, so the scheduled renewal may not have run yet.
  if (accessToken === null || Date.now() >= expiresAt - EXPIRY_MARGIN_MS) {
    return (await refreshSession())?.access_token ?? null;
  }
  return accessToken;
}

function notSignedIn(): ApiError {
  return new ApiError({
    type: "about:blank",
    title: "Unauthorized",
    status: 401,
    detail: "Please log in to continue.",
    code: "not_authenticated",
  });
}

function init(options: RequestOptions, token: string | null): RequestInit {
  const { method = "GET", body, signal, idempotencyKey, keepalive } = options;
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json" };
  // A Blob (an image file) goes as it is; anything else as JSON.
  const raw = body instanceof Blob;
  if (body !== undefined) headers["Content-Type"] = raw ? body.type || "application/octet-stream" : "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  return {
    method,
    headers,
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    signal: signal ?? null,
    ...(keepalive ? { keepalive: true } : {}),
  };
}

async function send(path: string, requestInit: RequestInit): Promise<Response> {
  try {
    // The refresh cookie is scoped to /api/auth and httpOnly; same-origin is all it needs.
    return await fetch(path, { ...requestInit, credentials: "same-origin" });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError({
      type: "about:blank",
      title: "Network error",
      status: 0,
      detail: "Could not reach Cohort. Check your connection and try again.",
      code: "network_error",
    });
  }
}

async function parse<T>(response: Response): Promise<T> {
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  // The hub is the trust boundary for response shapes; callers name the type they expect.
  return (text ? JSON.parse(text) : undefined) as T;
}

async function toApiError(response: Response): Promise<ApiError> {
  const retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
  let payload: Partial<Problem> = {};
  try {
    const contentType = response.headers.get("Content-Type") ?? "";
    if (contentType.includes("json")) payload = (await response.json()) as Partial<Problem>;
  } catch {
    // A proxy error page is not a problem document; fall back to the status line below.
  }
  const title = payload.title || response.statusText || `HTTP ${response.status}`;
  const problem: Problem = {
    type: payload.type ?? "about:blank",
    title,
    status: payload.status ?? response.status,
    detail: payload.detail || fallbackDetail(response.status, title),
    code: payload.code ?? `http_${response.status}`,
    ...(payload.request_id ? { request_id: payload.request_id } : {}),
    ...(Array.isArray(payload.errors) ? { errors: payload.errors } : {}),
    ...(typeof payload.retry_after === "number" ? { retry_after: payload.retry_after } : {}),
    // A 402 says what the wallet holds and what was needed.
    ...(typeof payload.balance === "number" ? { balance: payload.balance } : {}),
    ...(typeof payload.price === "number" ? { price: payload.price } : {}),
  };
  return new ApiError(problem, retryAfter);
}

function fallbackDetail(status: number, title: string): string {
  if (status >= 500) return "Something went wrong on our side. Please try again in a moment.";
  if (status === 429) return "Too many attempts. Please wait a moment and try again.";
  return title;
}

function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/**
 * A fresh `Idempotency-Key`. `crypto.randomUUID` exists only in secure contexts (not on a
 * plain-http LAN address), while `getRandomValues` exists everywhere.
 */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function" && window.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
