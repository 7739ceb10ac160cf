import type { ReactiveController, ReactiveControllerHost } from "lit";
import type { DetailedError, HttpRequest, HttpResponse, PreviousUpload, Upload, UploadOptions } from "tus-js-client";
import { ApiError, currentAccessToken, replaceRejectedToken } from "../api/client.ts";
import * as api from "../api/endpoints.ts";

/** tus 1.0 creation endpoint of the hub. */
export const UPLOAD_ENDPOINT = "/api/uploads/";
const CHUNK_SIZE = 8 * 1024 * 1024;
const RETRY_DELAYS = [0, 1_000, 3_000, 5_000, 10_000];
/** The last PATCH's answer names the video the upload became. */
const VIDEO_ID_HEADER = "Cohort-Video-Id";

export const WATERMARK_POSITIONS = ["top-left", "top-right", "bottom-left", "bottom-right", "center"] as const;
export type WatermarkPosition = (typeof WATERMARK_POSITIONS)[number];

export interface UploadRequest {
  file: File;
  title: string;
  watermark?: { text: string; position: WatermarkPosition; opacity: number } | null;
}

export type UploadPhase =
  /** Sending bytes (or waiting for tus to retry after a failed request). */
  | "uploading"
  | "paused"
  /** Stopped because the browser went offline; resumes by itself when it is back. */
  | "offline"
  | "error"
  /** All bytes are on the hub; finding out which video they became. */
  | "finishing"
  | "done";

export interface UploadState {
  /** Changes for every new upload, so views can tell two uploads of the same file apart. */
  readonly key: number;
  readonly fileName: string;
  readonly title: string;
  phase: UploadPhase;
  bytesSent: number;
  bytesTotal: number;
  /** Bytes per second over the last few seconds; null when not measurable. */
  speed: number | null;
  error: string | null;
  /** True when this continues an upload a previous page load started. */
  resumed: boolean;
  /** A request failed and tus will try again shortly. */
  retrying: boolean;
  videoId: string | null;
}

/** An upload that a previous page load started and did not finish (from tus' URL storage). */
export interface UnfinishedUpload {
  key: string;
  fileName: string;
  size: number | null;
  startedAt: Date | null;
  uploadUrl: string | null;
}

type TusModule = typeof import("tus-js-client");
let tusModule: Promise<TusModule> | null = null;

/** tus-js-client is only needed once somebody uploads, so it is not part of the main chunk. */
function loadTus(): Promise<TusModule> {
  tusModule ??= import("tus-js-client");
  return tusModule;
}

const SPEED_WINDOW_MS = 5_000;

/**
 * The one upload this tab is running. Lives outside any view so it keeps going (and keeps
 * its progress) while the teacher visits other pages; views observe it via UploadController.
 */
class UploadManager extends EventTarget {
  current: UploadState | null = null;

  private upload: Upload | null = null;
  private nextKey = 1;
  private samples: { at: number; bytes: number }[] = [];
  /** Token the hub answered 401 to; the next request asks for a replacement first. */
  private rejectedToken: string | null = null;
  private signedOut = false;
  private finishing: AbortController | null = null;

  constructor() {
    super();
    window.addEventListener("online", () => {
      if (this.current?.phase === "offline") this.resume();
    });
    window.addEventListener("beforeunload", (event) => {
      const phase = this.current?.phase;
      if (phase === "uploading" || phase === "paused" || phase === "offline" || phase === "finishing") {
        // The upload can be resumed later, but leaving by accident still loses time.
        event.preventDefault();
      }
    });
  }

  get active(): boolean {
    const phase = this.current?.phase;
    return phase !== undefined && phase !== "done" && phase !== "error";
  }

  async start(requestInput: UploadRequest): Promise<void> {
    if (this.active) throw new Error("An upload is already running.");
    this.stopCurrent();
    const { file, title, watermark } = requestInput;
    const state: UploadState = {
      key: this.nextKey++,
      fileName: file.name,
      title,
      phase: "uploading",
      bytesSent: 0,
      bytesTotal: file.size,
      speed: null,
      error: null,
      resumed: false,
      retrying: false,
      videoId: null,
    };
    this.current = state;
    this.samples = [];
    this.rejectedToken = null;
    this.signedOut = false;
    this.changed();

    const metadata: Record<string, string> = {
      filename: file.name,
      filetype: file.type || "application/octet-stream",
      title,
    };
    if (watermark && watermark.text.trim()) {
      metadata["watermark_text"] = watermark.text.trim();
      metadata["watermark_position"] = watermark.position;
      metadata["watermark_opacity"] = String(watermark.opacity);
    }

    let tus: TusModule;
    try {
      tus = await loadTus();
    } catch {
      this.fail(state, "The uploader could not be loaded. Check your connection and reload the page.");
      return;
    }
    if (this.current !== state) return;

    const upload = new tus.Upload(file, this.options(state, metadata));
    this.upload = upload;
    try {
      // tus-js-client remembers unfinished uploads by file fingerprint; continue the newest.
      const previous = await upload.findPreviousUploads();
      const newest = newestUpload(previous);
      if (newest && this.current === state) {
        upload.resumeFromPreviousUpload(newest);
        state.resumed = true;
      }
    } catch {
      // Unreadable storage only means starting from scratch.
    }
    if (this.current !== state || this.upload !== upload) return;
    this.markActive(state);
    upload.start();
  }

  pause(): void {
    const state = this.current;
    if (!state || !this.upload || (state.phase !== "uploading" && state.phase !== "offline")) return;
    void this.upload.abort();
    state.phase = "paused";
    state.speed = null;
    this.changed();
  }

  resume(): void {
    const state = this.current;
    if (!state || !this.upload) return;
    if (state.phase !== "paused" && state.phase !== "offline" && state.phase !== "error") return;
    if (state.bytesSent >= state.bytesTotal && this.upload.url && state.phase === "error") {
      // Every byte arrived; only finding the video failed.
      void this.finish(state, null);
      return;
    }
    this.rejectedToken = null;
    this.signedOut = false;
    this.markActive(state);
    this.upload.start();
  }

  /** Stop and delete the upload on the hub (its bytes are useless without the rest). */
  async cancel(): Promise<void> {
    const state = this.current;
    const upload = this.upload;
    this.upload = null;
    this.current = null;
    this.finishing?.abort();
    this.changed();
    if (!state || !upload) return;
    try {
      await upload.abort(state.phase !== "done");
    } catch {
      // The hub expires abandoned uploads; nothing more the page can do.
    }
  }

  /** Forget a finished or failed upload so the form is ready for the next one. */
  dismiss(): void {
    if (this.active) return;
    this.stopCurrent();
    this.current = null;
    this.changed();
  }

  /** Unfinished uploads from earlier page loads that the current one is not continuing. */
  async unfinished(): Promise<UnfinishedUpload[]> {
    try {
      const tus = await loadTus();
      if (!tus.canStoreURLs) return [];
      const stored = await tus.defaultOptions.urlStorage.findAllUploads();
      const endpoint = new URL(UPLOAD_ENDPOINT, window.location.origin).href;
      const running = this.upload?.url ?? null;
      return stored
        .filter((u) => u.uploadUrl && new URL(u.uploadUrl, endpoint).href.startsWith(endpoint))
        .filter((u) => !running || new URL(u.uploadUrl ?? "", endpoint).href !== new URL(running, endpoint).href)
        .map((u) => ({
          key: u.urlStorageKey,
          fileName: u.metadata["filename"] ?? "Untitled",
          size: u.size,
          startedAt: parseDate(u.creationTime),
          uploadUrl: u.uploadUrl,
        }));
    } catch {
      return [];
    }
  }

  /** Delete an unfinished upload on the hub and forget it locally. */
  async discard(unfinished: UnfinishedUpload): Promise<void> {
    const tus = await loadTus();
    if (unfinished.uploadUrl) {
      try {
        await tus.Upload.terminate(unfinished.uploadUrl, {
          retryDelays: [0, 1_000],
          onBeforeRequest: (req) => this.authorize(req),
        });
      } catch {
        // Already gone (404) or unreachable: forgetting it locally is still right.
      }
    }
    await tus.defaultOptions.urlStorage.removeUpload(unfinished.key);
  }

  private options(state: UploadState, metadata: Record<string, string>): UploadOptions {
    return {
      endpoint: UPLOAD_ENDPOINT,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      metadata,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      // The bearer token goes on every request from here rather than from `headers`: the
      // access token is renewed every few minutes and a long upload must use the fresh one,
      // and XHR's setRequestHeader appends, so setting it in both would send two tokens.
      onBeforeRequest: (req) => this.authorize(req),
      onAfterResponse: (req, res) => {
        if (this.current !== state) return;
        if (res.getStatus() === 401) {
          this.rejectedToken = bearerOf(req);
          return;
        }
        const videoId = res.getHeader(VIDEO_ID_HEADER);
        if (videoId) state.videoId = videoId;
      },
      onShouldRetry: (error, attempt) => {
        const retry = this.shouldRetry(error, attempt);
        if (retry && this.current === state && !state.retrying) {
          state.retrying = true;
          state.speed = null;
          this.samples = [];
          this.changed();
        }
        return retry;
      },
      onProgress: (sent, total) => {
        if (this.current !== state) return;
        this.progress(state, sent, total);
      },
      onSuccess: ({ lastResponse }) => {
        if (this.current !== state) return;
        void this.finish(state, lastResponse);
      },
      onError: (error) => {
        if (this.current !== state) return;
        if (!navigator.onLine && !this.signedOut && !isClientError(error)) {
          state.phase = "offline";
          state.retrying = false;
          state.speed = null;
          state.error = null;
          this.changed();
          return;
        }
        this.fail(state, this.describe(error));
      },
    };
  }

  private async authorize(req: HttpRequest): Promise<void> {
    const rejected = this.rejectedToken;
    this.rejectedToken = null;
    const token = rejected ? await replaceRejectedToken(rejected) : await currentAccessToken();
    if (token === null) {
      this.signedOut = true;
      throw new Error("Not signed in");
    }
    req.setHeader("Authorization", `Bearer ${token}`);
  }

  private shouldRetry(error: DetailedError, attempt: number): boolean {
    if (this.signedOut) return false;
    const status = error.originalResponse?.getStatus() ?? 0;
    // A token that expired mid-upload is replaced before the retry (see authorize); one
    // retry per attempt counter is enough, a second 401 means the session really ended.
    if (status === 401) return attempt < 2;
    if (status === 409 || status === 423 || status === 429) return true;
    // Network failures (status 0) and server errors are retried even while the browser
    // reports being offline; when the delays run out the upload waits for `online`.
    return status === 0 || status >= 500;
  }

  private progress(state: UploadState, sent: number, total: number): void {
    const now = performance.now();
    if (this.samples.length && sent < (this.samples[this.samples.length - 1]?.bytes ?? 0)) {
      // A retried chunk starts again from the last acknowledged offset.
      this.samples = [];
    }
    this.samples.push({ at: now, bytes: sent });
    while (this.samples.length > 2 && now - (this.samples[0]?.at ?? now) > SPEED_WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const elapsed = first ? (now - first.at) / 1000 : 0;
    state.speed = first && elapsed >= 0.5 ? (sent - first.bytes) / elapsed : state.speed;
    state.bytesSent = sent;
    state.bytesTotal = total;
    state.retrying = false;
    if (state.phase !== "uploading") state.phase = "uploading";
    this.changed();
  }

  private async finish(state: UploadState, lastResponse: HttpResponse | null): Promise<void> {
    state.phase = "finishing";
    state.bytesSent = state.bytesTotal;
    state.speed = null;
    state.error = null;
    const fromHeader = lastResponse?.getHeader(VIDEO_ID_HEADER);
    if (fromHeader) state.videoId = fromHeader;
    this.changed();
    if (state.videoId) {
      this.complete(state);
      return;
    }
    // Fallback: the upload resource says which video it became. The hub may still be
    // creating it for a moment after the last byte, so ask a few times.
    const url = this.upload?.url;
    if (!url) {
      this.fail(state, "The upload finished, but the hub did not say which video it became.");
      return;
    }
    this.finishing?.abort();
    const aborter = new AbortController();
    this.finishing = aborter;
    for (let attempt = 0; attempt < 30; attempt++) {
      try {
        const info = await api.getUploadInfo(url, aborter.signal);
        if (this.current !== state || aborter.signal.aborted) return;
        if (info.video_id) {
          state.videoId = info.video_id;
          this.complete(state);
          return;
        }
      } catch (error) {
        if (this.current !== state || aborter.signal.aborted) return;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
          this.fail(state, error.problem.detail);
          return;
        }
      }
      await sleep(attempt < 5 ? 1_000 : 2_000);
      if (this.current !== state || aborter.signal.aborted) return;
    }
    this.fail(state, "The upload finished, but the video did not appear. Reload the page in a minute.");
  }

  private complete(state: UploadState): void {
    state.phase = "done";
    this.changed();
    this.dispatchEvent(new CustomEvent<string>("uploaded", { detail: state.videoId ?? "" }));
  }

  private markActive(state: UploadState): void {
    state.phase = "uploading";
    state.retrying = false;
    state.error = null;
    state.speed = null;
    this.samples = [];
    this.changed();
  }

  private fail(state: UploadState, message: string): void {
    state.phase = "error";
    state.retrying = false;
    state.error = message;
    state.speed = null;
    this.changed();
  }

  private describe(error: Error | DetailedError): string {
    if (this.signedOut) {
      return "Your session has ended. Log in again, then choose the same file to continue the upload.";
    }
    const response = "originalResponse" in error ? error.originalResponse : null;
    const status = response?.getStatus() ?? 0;
    const detail = response ? problemDetail(response) : null;
    if (status === 0) {
      return "The connection to Cohort was lost. Check your network, then resume the upload.";
    }
    if (status === 401) return "Your session has ended. Log in again, then resume the upload.";
    if (status === 403) return detail ?? "Only verified teachers can upload videos.";
    if (status === 413) return detail ?? "This file is larger than Cohort accepts.";
    if (status === 415) return detail ?? "Cohort does not accept this type of file.";
    if (status >= 500) return detail ?? "Something went wrong on our side. Resume the upload in a moment.";
    return detail ?? `The upload failed (HTTP ${status}).`;
  }

  private stopCurrent(): void {
    this.finishing?.abort();
    this.finishing = null;
    if (this.upload) void this.upload.abort();
    this.upload = null;
  }

  private changed(): void {
    this.dispatchEvent(new Event("change"));
  }
}

export const uploads = new UploadManager();

/** Re-renders its host whenever the running upload changes. */
export class UploadController implements ReactiveController {
  private readonly onChange = (): void => this.host.requestUpdate();

  constructor(private readonly host: ReactiveControllerHost) {
    host.addController(this);
  }

  get state(): UploadState | null {
    return uploads.current;
  }

  hostConnected(): void {
    uploads.addEventListener("change", this.onChange);
  }

  hostDisconnected(): void {
    uploads.removeEventListener("change", this.onChange);
  }
}

function newestUpload(previous: PreviousUpload[]): PreviousUpload | null {
  let best: PreviousUpload | null = null;
  let bestAt = -Infinity;
  for (const candidate of previous) {
    if (!candidate.uploadUrl) continue;
    const at = parseDate(candidate.creationTime)?.getTime() ?? 0;
    if (at >= bestAt) {
      best = candidate;
      bestAt = at;
    }
  }
  return best;
}

function parseDate(value: string): Date | null {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function bearerOf(req: HttpRequest): string | null {
  const header = req.getHeader("Authorization") ?? "";
  return header.startsWith("Bearer ") ? header.slice("Bearer ".length) : null;
}

function isClientError(error: Error | DetailedError): boolean {
  const status = "originalResponse" in error ? (error.originalResponse?.getStatus() ?? 0) : 0;
  return status >= 400 && status < 500;
}

/** The hub's problem+json `detail`, when the response carries one. */
function problemDetail(response: HttpResponse): string | null {
  try {
    const body = response.getBody();
    if (!body) return null;
    const parsed = JSON.parse(body) as { detail?: unknown; title?: unknown; errors?: unknown };
    // A 422 names the metadata fields it rejected (title, watermark_text, ...).
    const fields = Array.isArray(parsed.errors)
      ? parsed.errors
          .map((e: { field?: unknown; message?: unknown }) =>
            typeof e?.message === "string" ? `${typeof e.field === "string" ? `${e.field}: ` : ""}${e.message}` : "",
          )
          .filter(Boolean)
      : [];
    const detail = typeof parsed.detail === "string" && parsed.detail ? parsed.detail : null;
    const missing = fields.filter((f) => !detail?.includes(f.replace(/^[^:]*: /, "")));
    if (missing.length) return `${detail ?? "Some details were not accepted."} ${missing.join("; ")}.`;
    if (detail) return detail;
    if (typeof parsed.title === "string" && parsed.title) return parsed.title;
  } catch {
    // Not JSON (a proxy's error page, for instance).
  }
  return null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}
