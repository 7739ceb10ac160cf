import { css, html, LitElement, nothing } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Video } from "../api/types.ts";
import { AuthController, canUploadVideos } from "../auth.ts";
import "../components/cohort-player.ts";
import { errorAlert, formatDate, isAbort, successNote, toFormErrors, type FormErrors } from "../forms.ts";
import { studioNav, studioNavStyles } from "../courses/studio-nav.ts";
import { shared } from "../styles.ts";
import { formatBytes, formatDuration, titleFromFileName } from "../videos/format.ts";
import { transcodeStatus, videoStyles } from "../videos/view.ts";
import { isSettled, VideoWatchers, watchVideo } from "../videos/updates.ts";
import {
  UploadController,
  uploads,
  WATERMARK_POSITIONS,
  type UnfinishedUpload,
  type UploadState,
  type WatermarkPosition,
} from "../videos/uploads.ts";

const POSITION_LABELS: Record<WatermarkPosition, string> = {
  "top-left": "Top left",
  "top-right": "Top right",
  "bottom-left": "Bottom left",
  "bottom-right": "Bottom right",
  center: "Center",
};

export class StudioPage extends LitElement {
  static override styles = [
    shared,
    videoStyles,
    studioNavStyles,
    css`
      form.card.upload {
        max-width: 48rem;
      }
      .drop {
        border: 2px dashed var(--border-strong);
        border-radius: var(--radius);
        padding: 1.5rem 1rem;
        text-align: center;
        margin-bottom: 1rem;
        background: var(--bg);
        transition: border-color 0.15s, background 0.15s;
      }
      .drop.over {
        border-color: var(--accent);
        background: var(--accent-soft);
      }
      .drop p {
        margin: 0 0 0.6rem;
      }
      .file-name {
        font-weight: 600;
        overflow-wrap: anywhere;
      }
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr));
        gap: 0 1rem;
      }
      fieldset {
        border: 1px solid var(--border);
        border-radius: var(--radius);
        padding: 0.75rem 1rem 0;
        margin: 0 0 1rem;
      }
      legend {
        font-weight: 600;
        padding: 0 0.3rem;
      }
      input[type="range"] {
        padding: 0;
        accent-color: var(--accent);
      }
      .opacity {
        display: flex;
        align-items: center;
        gap: 0.6rem;
      }
      .opacity output {
        min-width: 2.5rem;
        font-variant-numeric: tabular-nums;
      }
      .transfer {
        border-top: 1px solid var(--border);
        margin-top: 1rem;
        padding-top: 1rem;
      }
      .unfinished {
        max-width: 48rem;
      }
      .unfinished ul {
        margin: 0.4rem 0 0;
        padding-left: 1.2rem;
      }
      .unfinished li {
        margin-bottom: 0.3rem;
      }
      .videos {
        list-style: none;
        padding: 0;
        margin: 0;
        max-width: 48rem;
      }
      .video-row {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1rem;
        padding: 0.9rem 1.1rem;
      }
      .video-row .main {
        flex: 1 1 16rem;
        min-width: 0;
      }
      .video-row .title {
        font-weight: 600;
        overflow-wrap: anywhere;
      }
      .video-row .meta {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.25rem 0.8rem;
        color: var(--muted);
        font-size: 0.9rem;
      }
      .video-row progress {
        width: 100%;
        margin-top: 0.4rem;
      }
      .player {
        margin-top: 1rem;
      }
    `,
  ];

  static override properties = {
    videos: { state: true },
    errors: { state: true },
    notice: { state: true },
    file: { state: true },
    title: { state: true },
    watermarkText: { state: true },
    watermarkPosition: { state: true },
    watermarkOpacity: { state: true },
    dragging: { state: true },
    fileError: { state: true },
    uploadError: { state: true },
    deleting: { state: true },
    current: { state: true },
    playerSrc: { state: true },
    unfinished: { state: true },
  };

  /** null while loading. */
  declare videos: Video[] | null;
  declare errors: FormErrors | null;
  declare notice: string | null;
  declare file: File | null;
  declare title: string;
  declare watermarkText: string;
  declare watermarkPosition: WatermarkPosition;
  declare watermarkOpacity: number;
  declare dragging: boolean;
  declare fileError: string | null;
  declare uploadError: string | null;
  declare deleting: ReadonlySet<string>;
  /** The video the latest upload became, kept fresh while it transcodes. */
  declare current: Video | null;
  /** Held once known: polls may hand out a fresh signed URL each time, which must not reload the player. */
  declare playerSrc: string | null;
  declare unfinished: UnfinishedUpload[];

  private readonly session = new AuthController(this);
  private readonly upload = new UploadController(this);
  private aborter: AbortController | null = null;
  /** The title follows the chosen file's name until the teacher types their own. */
  private titleEdited = false;
  private stopCurrent: (() => void) | null = null;
  private currentId: string | null = null;
  private readonly rowWatchers = new VideoWatchers((video) => this.adoptVideo(video));
  private readonly onUploaded = (event: Event): void => {
    const id = (event as CustomEvent<string>).detail;
    if (id) void this.reloadList();
  };

  constructor() {
    super();
    this.videos = null;
    this.errors = null;
    this.notice = null;
    this.file = null;
    this.title = "";
    this.watermarkText = "";
    this.watermarkPosition = "bottom-right";
    this.watermarkOpacity = 0.6;
    this.dragging = false;
    this.fileError = null;
    this.uploadError = null;
    this.deleting = new Set();
    this.current = null;
    this.playerSrc = null;
    this.unfinished = [];
  }

  override connectedCallback(): void {
    super.connectedCallback();
    uploads.addEventListener("uploaded", this.onUploaded);
    if (canUploadVideos(this.session.user)) {
      this.aborter = new AbortController();
      void this.load();
      void this.loadUnfinished();
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    uploads.removeEventListener("uploaded", this.onUploaded);
    this.aborter?.abort();
    this.rowWatchers.clear();
    this.stopCurrent?.();
    this.stopCurrent = null;
    this.currentId = null;
  }

  private async load(): Promise<void> {
    try {
      const videos = await api.listVideos(this.aborter?.signal);
      this.setVideos(videos);
    } catch (error) {
      if (isAbort(error)) return;
      this.videos ??= [];
      this.errors = toFormErrors(error);
    }
  }

  private async reloadList(): Promise<void> {
    try {
      this.setVideos(await api.listVideos(this.aborter?.signal));
    } catch (error) {
      if (!isAbort(error)) this.errors = toFormErrors(error);
    }
  }

  private setVideos(videos: Video[]): void {
    this.videos = videos;
    this.rowWatchers.sync(videos.filter((v) => !isSettled(v)).map((v) => v.id));
  }

  private async loadUnfinished(): Promise<void> {
    this.unfinished = await uploads.unfinished();
  }

  /** A fresher copy of a video from a poll: update its row and, if it is the upload's, the panel. */
  private adoptVideo(video: Video): void {
    if (this.videos) {
      const known = this.videos.some((v) => v.id === video.id);
      this.videos = known ? this.videos.map((v) => (v.id === video.id ? video : v)) : [video, ...this.videos];
    }
    if (video.id === this.currentId) {
      this.current = video;
      this.playerSrc ??= video.playback_url;
    }
  }

  override willUpdate(): void {
    // Follow the upload's video (also after coming back to this page while it transcodes).
    const videoId = this.upload.state?.videoId ?? null;
    const id = this.upload.state?.phase === "done" ? videoId : null;
    if (id !== this.currentId) {
      this.stopCurrent?.();
      this.stopCurrent = null;
      this.currentId = id;
      this.current = null;
      this.playerSrc = null;
      if (id) {
        this.stopCurrent = watchVideo(
          id,
          (video) => this.adoptVideo(video),
          (error) => {
            this.uploadError = toFormErrors(error).message;
          },
        );
      }
    }
  }

  override render() {
    const user = this.session.user;
    if (!user) return nothing;
    if (!canUploadVideos(user)) {
      return html`
        <h1 tabindex="-1">Studio</h1>
        <div class="card narrow" data-testid="studio-not-teacher">
          <p>The studio is where teachers upload and manage their videos.</p>
          <p class="muted">Only verified teachers can upload. Apply to teach and an administrator will review your application.</p>
          <p><a href="/teach">Apply to teach</a></p>
        </div>
      `;
    }
    return html`
      <h1 tabindex="-1">Studio</h1>
      ${studioNav("videos")}
      <p class="lead">Upload lesson videos and follow them while they are prepared for streaming.</p>
      ${errorAlert(this.errors)} ${successNote(this.notice)} ${this.renderUnfinished()} ${this.renderUpload()}
      <h2>Your videos</h2>
      ${this.renderList()}
    `;
  }

  // ---- upload -------------------------------------------------------------------------------

  private renderUpload() {
    const state = this.upload.state;
    const running = uploads.active;
    const locked = running;
    return html`<form class="card upload" novalidate @submit=${this.submit} aria-labelledby="upload-heading">
      <h2 id="upload-heading" style="margin-top:0">Upload a video</h2>
      <div
        class="drop ${this.dragging ? "over" : ""}"
        data-testid="upload-drop"
        @dragenter=${this.onDragOver}
        @dragover=${this.onDragOver}
        @dragleave=${this.onDragLeave}
        @drop=${this.onDrop}
      >
        ${this.file
          ? html`<p>
              <span class="file-name" data-testid="upload-file-name">${this.file.name}</span>
              <span class="muted">(${formatBytes(this.file.size)})</span>
            </p>`
          : html`<p>Drag a video file here, or</p>`}
        <input
          id="upload-input"
          class="visually-hidden"
          type="file"
          accept="video/*"
          tabindex="-1"
          data-testid="upload-input"
          ?disabled=${locked}
          @change=${this.onFileInput}
        />
        <button type="button" class="secondary" ?disabled=${locked} @click=${this.chooseFile}>
          ${this.file ? "Choose another file" : "Choose file"}
        </button>
        ${this.fileError
          ? html`<p class="field-error" role="alert" data-testid="upload-file-error" style="margin-top:0.6rem">
              ${this.fileError}
            </p>`
          : nothing}
      </div>
      <div class="field">
        <label for="upload-title">Title</label>
        <input
          id="upload-title"
          name="title"
          data-testid="upload-title"
          maxlength="200"
          autocomplete="off"
          ?disabled=${locked}
          .value=${this.title}
          @input=${this.onTitleInput}
        />
      </div>
      <fieldset ?disabled=${locked}>
        <legend>Watermark (optional)</legend>
        <div class="field">
          <label for="upload-watermark">Text</label>
          <span class="hint" id="upload-watermark-hint">Burned into every frame, e.g. your name or the course.</span>
          <input
            id="upload-watermark"
            data-testid="upload-watermark-text"
            maxlength="80"
            autocomplete="off"
            aria-describedby="upload-watermark-hint"
            .value=${this.watermarkText}
            @input=${(e: Event) => (this.watermarkText = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="grid">
          <div class="field">
            <label for="upload-watermark-position">Position</label>
            <select
              id="upload-watermark-position"
              data-testid="upload-watermark-position"
              .value=${this.watermarkPosition}
              @change=${(e: Event) =>
                (this.watermarkPosition = (e.target as HTMLSelectElement).value as WatermarkPosition)}
            >
              ${WATERMARK_POSITIONS.map(
                (p) => html`<option value=${p} ?selected=${p === this.watermarkPosition}>${POSITION_LABELS[p]}</option>`,
              )}
            </select>
          </div>
          <div class="field">
            <label for="upload-watermark-opacity">Opacity</label>
            <div class="opacity">
              <input
                id="upload-watermark-opacity"
                data-testid="upload-watermark-opacity"
                type="range"
                min="0.1"
                max="1"
                step="0.05"
                .value=${String(this.watermarkOpacity)}
                aria-valuetext=${`${Math.round(this.watermarkOpacity * 100)}%`}
                @input=${(e: Event) => (this.watermarkOpacity = Number((e.target as HTMLInputElement).value))}
              />
              <output for="upload-watermark-opacity">${Math.round(this.watermarkOpacity * 100)}%</output>
            </div>
          </div>
        </div>
      </fieldset>
      <div class="actions">
        <button type="submit" data-testid="upload-start" ?disabled=${!this.file || locked}>Upload</button>
        ${state && !running
          ? html`<button type="button" class="secondary" data-testid="upload-new" @click=${this.newUpload}>
              Clear
            </button>`
          : nothing}
      </div>
      ${state ? this.renderTransfer(state) : nothing}
    </form>`;
  }

  private renderTransfer(state: UploadState) {
    const percent = state.bytesTotal > 0 ? (state.bytesSent / state.bytesTotal) * 100 : 0;
    const shown = Math.floor(percent);
    const canPause = state.phase === "uploading" || state.phase === "offline";
    const canResume = state.phase === "paused" || state.phase === "error" || state.phase === "offline";
    const canCancel = state.phase !== "done";
    return html`<section class="transfer" aria-labelledby="transfer-heading" data-testid="upload-panel">
      <h3 id="transfer-heading" class="visually-hidden">Upload of ${state.fileName}</h3>
      <div class="progress-line">
        <label for="upload-progress">${uploadPhaseLabel(state)}</label>
        <span data-testid="upload-percent">${shown}%</span>
      </div>
      <progress
        id="upload-progress"
        data-testid="upload-progress"
        max="100"
        .value=${percent}
        aria-valuenow=${shown}
        aria-valuetext=${`${shown}%`}
      ></progress>
      <p class="muted transfer-meta" data-testid="upload-bytes">
        ${formatBytes(state.bytesSent)} of ${formatBytes(state.bytesTotal)}
        ${state.speed !== null && state.phase === "uploading"
          ? html` · <span data-testid="upload-speed">${formatBytes(state.speed)}/s</span>`
          : nothing}
        ${state.resumed ? html` · continuing an earlier upload of this file` : nothing}
      </p>
      ${state.error
        ? html`<div class="alert error" role="alert" data-testid="upload-error">${state.error}</div>`
        : nothing}
      ${state.phase === "offline"
        ? html`<p role="status" data-testid="upload-offline">You are offline. The upload continues when the connection is back.</p>`
        : state.phase === "uploading" && state.retrying
          ? html`<p role="status" data-testid="upload-retrying">The connection was interrupted. Retrying…</p>`
          : nothing}
      ${canPause || canResume || canCancel
        ? html`<div class="actions">
            ${canPause
              ? html`<button type="button" class="secondary" data-testid="upload-pause" @click=${() => uploads.pause()}>
                  Pause
                </button>`
              : nothing}
            ${canResume
              ? html`<button type="button" class="secondary" data-testid="upload-resume" @click=${() => uploads.resume()}>
                  Resume
                </button>`
              : nothing}
            ${canCancel
              ? html`<button type="button" class="secondary" data-testid="upload-cancel" @click=${this.cancelUpload}>
                  Cancel
                </button>`
              : nothing}
          </div>`
        : nothing}
      ${state.phase === "done" ? this.renderProcessing() : nothing}
    </section>`;
  }

  private renderProcessing() {
    const video = this.current;
    if (!video) {
      return html`<p class="muted" role="status">Uploaded. Waiting for processing to start…</p>`;
    }
    return html`
      ${this.uploadError ? html`<div class="alert error" role="alert">${this.uploadError}</div>` : nothing}
      ${transcodeStatus(video)}
      ${this.playerSrc
        ? html`<div class="player">
            <cohort-player
              .src=${this.playerSrc}
              .poster=${video.poster_url}
              .storyboard=${video.storyboard_url}
              .videoId=${video.id}
              @source-renewed=${this.onSourceRenewed}
            ></cohort-player>
          </div>`
        : nothing}
      <p style="margin-top:1rem"><a href=${`/videos/${encodeURIComponent(video.id)}`}>Open the video page</a></p>
    `;
  }

  private onSourceRenewed(event: CustomEvent<{ src: string }>): void {
    this.playerSrc = event.detail.src;
  }

  private chooseFile(): void {
    this.renderRoot.querySelector<HTMLInputElement>("#upload-input")?.click();
  }

  private onFileInput(event: Event): void {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0] ?? null;
    if (file) this.pickFile(file);
  }

  private onDragOver(event: DragEvent): void {
    if (uploads.active || !event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    this.dragging = true;
  }

  private onDragLeave(event: DragEvent): void {
    const to = event.relatedTarget;
    if (to instanceof Node && (event.currentTarget as HTMLElement).contains(to)) return;
    this.dragging = false;
  }

  private onDrop(event: DragEvent): void {
    event.preventDefault();
    this.dragging = false;
    if (uploads.active) return;
    const file = event.dataTransfer?.files[0];
    if (file) this.pickFile(file);
  }

  private pickFile(file: File): void {
    if (!looksLikeVideo(file)) {
      this.fileError = `“${file.name}” does not look like a video file.`;
      return;
    }
    this.fileError = null;
    this.file = file;
    if (!this.titleEdited || !this.title.trim()) {
      this.title = titleFromFileName(file.name);
      this.titleEdited = false;
    }
  }

  private onTitleInput(event: Event): void {
    this.title = (event.target as HTMLInputElement).value;
    this.titleEdited = this.title.trim().length > 0;
  }

  private async submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const file = this.file;
    if (!file || uploads.active) return;
    const title = this.title.trim() || titleFromFileName(file.name);
    this.title = title;
    this.notice = null;
    this.uploadError = null;
    this.fileError = null;
    const text = this.watermarkText.trim();
    try {
      await uploads.start({
        file,
        title,
        watermark: text
          ? { text, position: this.watermarkPosition, opacity: this.watermarkOpacity }
          : null,
      });
    } catch (error) {
      this.errors = toFormErrors(error);
    }
    // Whatever happened, the unfinished list no longer includes this file.
    void this.loadUnfinished();
  }

  private async cancelUpload(): Promise<void> {
    if (!window.confirm("Cancel this upload? The part already sent will be deleted.")) return;
    await uploads.cancel();
    this.resetForm();
    void this.loadUnfinished();
  }

  private newUpload(): void {
    uploads.dismiss();
    this.resetForm();
  }

  private resetForm(): void {
    this.file = null;
    this.title = "";
    this.titleEdited = false;
    this.uploadError = null;
    const input = this.renderRoot.querySelector<HTMLInputElement>("#upload-input");
    if (input) input.value = "";
  }

  private renderUnfinished() {
    if (this.unfinished.length === 0 || uploads.active) return nothing;
    return html`<div class="alert unfinished" role="status" data-testid="unfinished-uploads">
      <strong>Unfinished uploads.</strong> Choose the same file again to continue where it stopped.
      <ul>
        ${this.unfinished.map(
          (u) => html`<li>
            <span class="file-name">${u.fileName}</span>
            ${u.size ? html`<span class="muted">(${formatBytes(u.size)})</span>` : nothing}
            ${u.startedAt ? html`<span class="muted">, started ${formatDate(u.startedAt.toISOString())}</span>` : nothing}
            <button type="button" class="secondary" style="padding:0.1rem 0.6rem;margin-left:0.4rem" @click=${() => this.discardUnfinished(u)}>
              Discard
            </button>
          </li>`,
        )}
      </ul>
    </div>`;
  }

  private async discardUnfinished(unfinished: UnfinishedUpload): Promise<void> {
    try {
      await uploads.discard(unfinished);
    } finally {
      void this.loadUnfinished();
    }
  }

  // ---- list ---------------------------------------------------------------------------------

  private renderList() {
    const videos = this.videos;
    if (videos === null) return html`<p class="muted" role="status">Loading your videos…</p>`;
    if (videos.length === 0) return html`<p class="muted" data-testid="no-videos">No videos yet. Upload your first one above.</p>`;
    return html`<ul class="videos" data-testid="video-list">
      ${videos.map((video) => this.renderRow(video))}
    </ul>`;
  }

  private renderRow(video: Video) {
    const busy = this.deleting.has(video.id);
    const titleId = `video-title-${video.id}`;
    const processing = video.status === "queued" || video.status === "processing";
    const duration = formatDuration(video.duration);
    return html`<li
      class="card video-row"
      data-testid="video-row"
      data-video-id=${video.id}
      data-status=${video.status}
      aria-labelledby=${titleId}
      aria-busy=${busy ? "true" : "false"}
    >
      <div class="main">
        <a class="title" id=${titleId} href=${`/videos/${encodeURIComponent(video.id)}`} data-testid="video-link"
          >${video.title || "Untitled"}</a
        >
        <div class="meta">
          <span class="badge ${video.status}" data-testid="row-status">${video.status}</span>
          ${processing ? html`<span>${video.stage}</span>` : nothing}
          ${duration ? html`<span data-testid="row-duration">${duration}</span>` : nothing}
          <span>Added ${formatDate(video.created_at)}</span>
        </div>
        ${processing
          ? html`<progress
              data-testid="row-progress"
              max="100"
              .value=${video.progress}
              aria-valuenow=${Math.round(video.progress)}
              aria-label=${`Processing ${video.title}`}
            ></progress>`
          : nothing}
        ${video.status === "failed" && video.error
          ? html`<div class="field-error" data-testid="row-error">${video.error}</div>`
          : nothing}
      </div>
      <button
        type="button"
        class="danger"
        data-testid="delete-video"
        aria-label=${`Delete ${video.title}`}
        ?disabled=${busy}
        @click=${() => this.deleteVideo(video)}
      >
        ${busy ? "Deleting…" : "Delete"}
      </button>
    </li>`;
  }

  private async deleteVideo(video: Video): Promise<void> {
    if (!window.confirm(`Delete “${video.title}”? This cannot be undone.`)) return;
    this.deleting = new Set([...this.deleting, video.id]);
    this.errors = null;
    this.notice = null;
    try {
      await api.deleteVideo(video.id);
      this.removeVideo(video.id);
      this.notice = `Deleted “${video.title}”.`;
    } catch (error) {
      const errors = toFormErrors(error);
      if (error instanceof ApiError && error.status === 404) {
        // Already gone (another tab): the list just catches up.
        this.removeVideo(video.id);
      } else {
        this.errors = { ...errors, message: `Could not delete “${video.title}”: ${errors.message}` };
      }
    } finally {
      const deleting = new Set(this.deleting);
      deleting.delete(video.id);
      this.deleting = deleting;
    }
  }

  private removeVideo(id: string): void {
    this.setVideos((this.videos ?? []).filter((v) => v.id !== id));
    if (id === this.currentId) this.newUpload();
  }
}

function uploadPhaseLabel(state: UploadState): string {
  switch (state.phase) {
    case "uploading":
      return `Uploading ${state.fileName}`;
    case "paused":
      return `Paused: ${state.fileName}`;
    case "offline":
      return `Waiting for the network: ${state.fileName}`;
    case "error":
      return `Upload stopped: ${state.fileName}`;
    case "finishing":
      return `Uploaded ${state.fileName}, finishing…`;
    case "done":
      return `Uploaded ${state.fileName}`;
  }
}

const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|mkv|webm|avi|wmv|flv|mpe?g|3gp|ts|mts|m2ts|ogv)$/i;

/** Browsers leave `type` empty or generic for some containers (e.g. .mkv), so the name counts too. */
function looksLikeVideo(file: File): boolean {
  return file.type.startsWith("video/") || VIDEO_EXTENSIONS.test(file.name);
}

customElements.define("studio-page", StudioPage);
