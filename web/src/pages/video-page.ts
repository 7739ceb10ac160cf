import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { Video } from "../api/types.ts";
import "../components/cohort-player.ts";
import { errorAlert, formatDate, isAbort, toFormErrors, type FormErrors } from "../forms.ts";
import { shared } from "../styles.ts";
import { formatDuration } from "../videos/format.ts";
import { isSettled, watchVideo } from "../videos/updates.ts";
import { transcodeStatus, videoStyles } from "../videos/view.ts";

export class VideoPage extends LitElement {
  static override styles = [
    shared,
    videoStyles,
    css`
      .player {
        max-width: 60rem;
        margin: 1rem 0;
      }
      .facts {
        display: flex;
        flex-wrap: wrap;
        gap: 0.25rem 1.25rem;
        color: var(--muted);
        margin-bottom: 0.5rem;
      }
      .transcode {
        max-width: 40rem;
      }
      .download {
        display: inline-block;
        font-weight: 600;
        padding: 0.55rem 1.1rem;
        border-radius: 6px;
        border: 1px solid var(--border-strong);
        text-decoration: none;
        color: var(--text);
      }
      .download:hover {
        background: var(--hover);
      }
    `,
  ];

  static override properties = {
    videoId: {},
    video: { state: true },
    errors: { state: true },
    missing: { state: true },
    playerSrc: { state: true },
  };

  /** From the route; the shell reuses this element when only the id changes. */
  declare videoId: string;
  /** null while loading. */
  declare video: Video | null;
  declare errors: FormErrors | null;
  declare missing: boolean;
  /** Kept once known: polls may hand out a fresh signed URL each time. */
  declare playerSrc: string | null;

  private aborter: AbortController | null = null;
  private stopWatching: (() => void) | null = null;

  constructor() {
    super();
    this.videoId = "";
    this.video = null;
    this.errors = null;
    this.missing = false;
    this.playerSrc = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.videoId) void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stop();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("videoId") && changed.get("videoId") !== undefined && this.isConnected) void this.load();
  }

  private stop(): void {
    this.aborter?.abort();
    this.aborter = null;
    this.stopWatching?.();
    this.stopWatching = null;
  }

  private async load(): Promise<void> {
    this.stop();
    const aborter = new AbortController();
    this.aborter = aborter;
    const id = this.videoId;
    this.video = null;
    this.errors = null;
    this.missing = false;
    this.playerSrc = null;
    try {
      this.adopt(await api.getVideo(id, aborter.signal));
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) this.missing = true;
      else this.errors = toFormErrors(error);
      return;
    }
    if (this.video && !isSettled(this.video) && this.aborter === aborter) {
      this.stopWatching = watchVideo(
        id,
        (video) => {
          if (video.id === this.videoId) this.adopt(video);
        },
        (error) => {
          if (error instanceof ApiError && error.status === 404) this.missing = true;
        },
      );
    }
  }

  private adopt(video: Video): void {
    this.video = video;
    this.playerSrc ??= video.playback_url;
    document.title = `${video.title || "Video"} · Cohort`;
  }

  override render() {
    if (this.missing) {
      return html`<h1 tabindex="-1">Video not found</h1>
        <p class="lead">This video does not exist or is not yours to see.</p>
        <p><a href="/studio">Back to the studio</a></p>`;
    }
    const video = this.video;
    if (!video) {
      return html`<h1 tabindex="-1">Video</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the video…</p>`}`;
    }
    const duration = formatDuration(video.duration);
    return html`
      <h1 tabindex="-1" data-testid="video-title">${video.title || "Untitled"}</h1>
      <div class="facts">
        ${duration ? html`<span>${duration}</span>` : nothing}
        ${video.width && video.height ? html`<span>${video.width}×${video.height}</span>` : nothing}
        ${video.renditions.length
          ? html`<span>${video.renditions.map((r) => r.name).join(", ")}</span>`
          : nothing}
        <span>Added ${formatDate(video.created_at)}</span>
      </div>
      ${video.status === "ready"
        ? html`<p>Status: <span class="badge ready" data-testid="video-status">${video.status}</span></p>`
        : transcodeStatus(video)}
      ${this.playerSrc
        ? html`<div class="player">
            <cohort-player
              .src=${this.playerSrc}
              .poster=${video.poster_url}
              .storyboard=${video.storyboard_url}
              .videoId=${video.id}
              @source-renewed=${(e: CustomEvent<{ src: string }>) => (this.playerSrc = e.detail.src)}
            ></cohort-player>
          </div>`
        : video.status !== "failed"
          ? html`<p class="muted">The video can be watched as soon as its first minutes are processed.</p>`
          : nothing}
      ${video.status === "ready" && video.download_url
        ? html`<p>
            <a class="download" href=${video.download_url} download data-testid="download-link"
              >Download MP4</a
            >
          </p>`
        : nothing}
      <p><a href="/studio">Back to the studio</a></p>
    `;
  }
}

customElements.define("video-page", VideoPage);
