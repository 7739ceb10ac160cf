import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import { styleMap } from "lit/directives/style-map.js";
import type Hls from "hls.js";
import type { ErrorData, Level } from "hls.js";
// Bundled next to the app (no CDN): hls.js' ESM build transmuxes in this worker when given
// its URL, and on the main thread otherwise.
import hlsWorkerUrl from "hls.js/dist/hls.worker.js?url";
import * as api from "../api/endpoints.ts";
import { formatTime, spokenTime } from "../videos/format.ts";
import { parseStoryboard, storyboardCueAt, type StoryboardCue } from "./storyboard.ts";

type HlsModule = typeof import("hls.js");
let hlsModule: Promise<HlsModule> | null = null;

/** hls.js is large; only pages that actually show a video load it. */
export function loadHls(): Promise<HlsModule> {
  hlsModule ??= import("hls.js");
  return hlsModule;
}

export const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] as const;
const VOLUME_STEP = 0.1;
/** Positions are remembered at most this often while playing (and always on pause). */
const SAVE_EVERY_MS = 5_000;
/** A remembered position this close to the end starts the video from the beginning instead. */
const RESUME_END_MARGIN = 5;
const RENEWALS_PER_MINUTE = 3;
const STORAGE_PREFIX = "cohort.player.position.";

interface PlayerLevel {
  /** Index into hls.levels. */
  index: number;
  /** "720p"; also the quality menu's option value. */
  name: string;
  height: number;
  bitrate: number;
}

interface StoredPosition {
  /** seconds */
  t: number;
  /** duration when saved, 0 if unknown */
  d: number;
  /** epoch ms */
  at: number;
}

interface ResumeAt {
  time: number;
  play: boolean;
}

interface Hover {
  time: number;
  /** Pointer x within the seek bar, px. */
  x: number;
  width: number;
}

const SHORTCUTS: readonly [string, string][] = [
  ["Space or K", "Play or pause"],
  ["J / L", "Back / forward 10 seconds"],
  ["← / →", "Back / forward 5 seconds"],
  ["↑ / ↓", "Volume up / down"],
  ["M", "Mute or unmute"],
  ["F", "Full screen"],
  ["Shift + > / <", "Faster / slower"],
  ["0 – 9", "Jump to 0% – 90%"],
  ["?", "Show or hide these shortcuts"],
  ["Esc", "Close this list"],
];

/**
 * `<cohort-player>`: HLS video with Cohort's own controls.
 *
 * Properties: `src` (master playlist), `poster`, `storyboard` (WebVTT of sprite regions),
 * `videoId` (remembers the position per video and renews expired playback URLs through
 * `GET /api/videos/{id}`), optionally `renewSource` to fetch a fresh URL some other way, and
 * `startAt` to start at a position kept elsewhere (a lesson's progress). Fires `source-renewed` (detail `{src}`) after switching to a fresh URL.
 */
export class CohortPlayer extends LitElement {
  static override styles = css`
    :host {
      display: block;
      position: relative;
      background: #000;
      color: #fff;
      border-radius: var(--radius, 10px);
      overflow: hidden;
      font-size: 0.9rem;
      line-height: 1.4;
      --player-accent: var(--accent, #4f46e5);
    }
    :host(:focus-visible) {
      outline: 3px solid var(--focus, #f59e0b);
      outline-offset: 2px;
    }
    :host(:fullscreen) {
      border-radius: 0;
      display: flex;
      flex-direction: column;
      width: 100%;
      height: 100%;
    }
    *,
    *::before,
    *::after {
      box-sizing: border-box;
    }
    .stage {
      position: relative;
      background: #000;
      aspect-ratio: 16 / 9;
      width: 100%;
    }
    :host(:fullscreen) .stage {
      aspect-ratio: auto;
      flex: 1 1 auto;
      min-height: 0;
    }
    video {
      display: block;
      width: 100%;
      height: 100%;
      object-fit: contain;
      background: #000;
      cursor: pointer;
    }
    .overlay {
      position: absolute;
      inset: 0;
      display: grid;
      place-items: center;
      pointer-events: none;
      text-align: center;
      padding: 1rem;
    }
    .overlay .note {
      background: rgb(0 0 0 / 0.7);
      border-radius: 8px;
      padding: 0.5rem 0.9rem;
      pointer-events: auto;
    }
    .overlay .note button {
      margin-top: 0.5rem;
    }
    .controls {
      background: #111;
      padding: 0.25rem 0.6rem 0.5rem;
    }
    .row {
      display: flex;
      align-items: center;
      gap: 0.35rem;
      flex-wrap: wrap;
    }
    .spacer {
      flex: 1 1 auto;
    }
    button {
      font: inherit;
      color: inherit;
      background: transparent;
      border: 1px solid transparent;
      border-radius: 6px;
      min-width: 2.25rem;
      height: 2.25rem;
      padding: 0 0.4rem;
      display: inline-grid;
      place-items: center;
      cursor: pointer;
    }
    button:hover {
      background: rgb(255 255 255 / 0.12);
    }
    button:focus-visible,
    select:focus-visible,
    input:focus-visible {
      outline: 2px solid var(--focus, #f59e0b);
      outline-offset: 1px;
    }
    svg {
      width: 1.35rem;
      height: 1.35rem;
      fill: currentColor;
    }
    select {
      font: inherit;
      color: #fff;
      background: #222;
      border: 1px solid #444;
      border-radius: 6px;
      padding: 0.2rem 0.3rem;
      height: 2rem;
    }
    .time {
      font-variant-numeric: tabular-nums;
      white-space: nowrap;
      padding: 0 0.3rem;
    }
    .quality {
      display: inline-flex;
      align-items: center;
      gap: 0.35rem;
    }
    .playing-level {
      font-variant-numeric: tabular-nums;
      color: #cfd3da;
      font-size: 0.8rem;
      min-width: 2.8rem;
      text-align: right;
    }
    input[type="range"].volume {
      width: 5.5rem;
      accent-color: var(--player-accent);
    }
    .seek {
      position: relative;
      height: 1.5rem;
      display: flex;
      align-items: center;
    }
    .rail {
      position: absolute;
      left: 0;
      right: 0;
      top: 50%;
      height: 4px;
      margin-top: -2px;
      background: rgb(255 255 255 / 0.2);
      border-radius: 2px;
      overflow: hidden;
      pointer-events: none;
    }
    .seek:hover .rail {
      height: 6px;
      margin-top: -3px;
    }
    .buffered,
    .played {
      position: absolute;
      top: 0;
      bottom: 0;
    }
    .buffered {
      background: rgb(255 255 255 / 0.4);
    }
    .played {
      left: 0;
      background: var(--player-accent);
    }
    input.seekbar {
      position: relative;
      width: 100%;
      margin: 0;
      height: 1.5rem;
      background: transparent;
      appearance: none;
      -webkit-appearance: none;
      cursor: pointer;
    }
    input.seekbar::-webkit-slider-runnable-track {
      background: transparent;
      height: 100%;
    }
    input.seekbar::-moz-range-track {
      background: transparent;
    }
    input.seekbar::-webkit-slider-thumb {
      -webkit-appearance: none;
      width: 0.85rem;
      height: 0.85rem;
      margin-top: 0.325rem;
      border-radius: 50%;
      background: #fff;
      border: 2px solid var(--player-accent);
    }
    input.seekbar::-moz-range-thumb {
      width: 0.85rem;
      height: 0.85rem;
      border-radius: 50%;
      background: #fff;
      border: 2px solid var(--player-accent);
    }
    .preview {
      position: absolute;
      bottom: 1.6rem;
      display: flex;
      flex-direction: column;
      align-items: center;
      gap: 0.2rem;
      pointer-events: none;
      z-index: 2;
    }
    .thumb {
      border: 2px solid #fff;
      border-radius: 4px;
      background-color: #000;
      background-repeat: no-repeat;
      box-shadow: 0 2px 8px rgb(0 0 0 / 0.6);
    }
    .preview .label {
      background: rgb(0 0 0 / 0.8);
      border-radius: 4px;
      padding: 0 0.35rem;
      font-variant-numeric: tabular-nums;
    }
    .help {
      position: absolute;
      right: 0.5rem;
      bottom: 0.5rem;
      z-index: 3;
      background: rgb(20 20 24 / 0.96);
      border: 1px solid #444;
      border-radius: 8px;
      padding: 0.6rem 0.8rem 0.8rem;
      max-width: calc(100% - 1rem);
      max-height: calc(100% - 1rem);
      overflow: auto;
    }
    .help header {
      display: flex;
      justify-content: space-between;
      align-items: center;
      gap: 1rem;
      font-weight: 600;
      margin-bottom: 0.3rem;
    }
    .help dl {
      display: grid;
      grid-template-columns: auto auto;
      gap: 0.2rem 1rem;
      margin: 0;
    }
    .help dt {
      font-family: ui-monospace, monospace;
      white-space: nowrap;
    }
    .help dd {
      margin: 0;
    }
    .visually-hidden {
      position: absolute;
      width: 1px;
      height: 1px;
      overflow: hidden;
      clip: rect(0 0 0 0);
      white-space: nowrap;
    }
    @media (max-width: 30rem) {
      input[type="range"].volume {
        width: 3.5rem;
      }
      .playing-level {
        display: none;
      }
    }
  `;

  static override properties = {
    src: {},
    poster: {},
    storyboard: {},
    videoId: { attribute: "video-id" },
    renewSource: { attribute: false },
    startAt: { attribute: false },
    paused: { state: true },
    time: { state: true },
    duration: { state: true },
    buffered: { state: true },
    volume: { state: true },
    muted: { state: true },
    rate: { state: true },
    levels: { state: true },
    quality: { state: true },
    playingLevel: { state: true },
    fullscreen: { state: true },
    helpOpen: { state: true },
    waiting: { state: true },
    nativeHeight: { state: true },
    message: { state: true },
    hover: { state: true },
    cues: { state: true },
  };

  /** Master playlist URL. */
  declare src: string | null;
  declare poster: string | null;
  /** WebVTT storyboard URL. */
  declare storyboard: string | null;
  declare videoId: string | null;
  /** Fetches a fresh playback URL when the current one is refused (403). */
  declare renewSource: (() => Promise<string | null>) | null;
  /**
   * Seconds to start a newly set `src` at, e.g. a lesson's saved progress; when set it wins
   * over the position remembered in this browser.
   */
  declare startAt: number | null;

  declare paused: boolean;
  declare time: number;
  declare duration: number;
  declare buffered: readonly [number, number][];
  declare volume: number;
  declare muted: boolean;
  declare rate: number;
  declare levels: readonly PlayerLevel[];
  /** "auto" or a level name. */
  declare quality: string;
  /** hls level index being played, -1 while unknown. */
  declare playingLevel: number;
  declare fullscreen: boolean;
  declare helpOpen: boolean;
  declare waiting: boolean;
  /** Picture height when the browser plays HLS natively (no hls.js levels), else 0. */
  declare nativeHeight: number;
  declare message: string | null;
  declare hover: Hover | null;
  declare cues: readonly StoryboardCue[] | null;

  private hls: Hls | null = null;
  /** Bumped on every (re)load so late async steps of an older load give up. */
  private loadToken = 0;
  private resumeAt: ResumeAt | null = null;
  private playWhenReady = false;
  private canSave = false;
  private lastSave = 0;
  private renewing = false;
  private renewals: number[] = [];
  private mediaErrorRecoveries: number[] = [];
  private storyboardFor: string | null = null;
  /** Native HLS only: where to seek once metadata is known. */
  private nativeStart = 0;

  constructor() {
    super();
    this.src = null;
    this.poster = null;
    this.storyboard = null;
    this.videoId = null;
    this.renewSource = null;
    this.startAt = null;
    this.paused = true;
    this.time = 0;
    this.duration = 0;
    this.buffered = [];
    this.volume = 1;
    this.muted = false;
    this.rate = 1;
    this.levels = [];
    this.quality = "auto";
    this.playingLevel = -1;
    this.fullscreen = false;
    this.helpOpen = false;
    this.waiting = false;
    this.nativeHeight = 0;
    this.message = null;
    this.hover = null;
    this.cues = null;
    this.addEventListener("keydown", this.onKeydown);
  }

  /** The inner `<video>`, e.g. for a watch party to follow or drive playback. */
  get media(): HTMLVideoElement | null {
    return this.renderRoot?.querySelector("video") ?? null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (!this.hasAttribute("tabindex")) this.tabIndex = 0;
    if (!this.hasAttribute("role")) this.setAttribute("role", "region");
    if (!this.hasAttribute("aria-label")) this.setAttribute("aria-label", "Video player");
    document.addEventListener("fullscreenchange", this.onFullscreenChange);
    window.addEventListener("pagehide", this.savePositionNow);
    document.addEventListener("visibilitychange", this.onVisibility);
    // Moved in the DOM (disconnected and connected again): start over where it was.
    if (this.hasUpdated && this.src && !this.hls) {
      const resume = this.resumeAt;
      this.resumeAt = null;
      void this.load(resume ?? undefined);
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    document.removeEventListener("fullscreenchange", this.onFullscreenChange);
    window.removeEventListener("pagehide", this.savePositionNow);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.savePositionNow();
    const media = this.media;
    if (media && this.src) this.resumeAt = { time: media.currentTime, play: false };
    this.loadToken += 1;
    this.teardown();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has("src")) {
      const resume = this.resumeAt;
      this.resumeAt = null;
      void this.load(resume ?? undefined);
    }
    if (changed.has("storyboard") && this.storyboardFor !== this.storyboard) {
      this.cues = null;
      this.storyboardFor = null;
    }
  }

  override render() {
    const duration = this.duration;
    const progress = duration > 0 ? Math.min(100, (this.time / duration) * 100) : 0;
    const playingName =
      this.levels.find((l) => l.index === this.playingLevel)?.name ?? (this.nativeHeight ? `${this.nativeHeight}p` : "");
    const autoLabel = this.quality === "auto" && playingName ? `Auto (${playingName})` : "Auto";
    return html`
      <div class="stage">
        <video
          data-testid="player-video"
          playsinline
          preload="metadata"
          poster=${this.poster ?? nothing}
          @click=${this.togglePlay}
          @dblclick=${this.toggleFullscreen}
          @play=${this.onMediaState}
          @pause=${this.onPause}
          @playing=${this.onPlaying}
          @waiting=${this.onWaiting}
          @canplay=${this.onCanPlay}
          @loadedmetadata=${this.onLoadedMetadata}
          @timeupdate=${this.onTimeUpdate}
          @durationchange=${this.onMediaState}
          @progress=${this.onMediaState}
          @seeked=${this.onMediaState}
          @volumechange=${this.onMediaState}
          @ratechange=${this.onMediaState}
          @resize=${this.onMediaState}
          @ended=${this.onEnded}
        ></video>
        ${this.message
          ? html`<div class="overlay">
              <div class="note" role="alert" data-testid="player-message">
                <div>${this.message}</div>
                <button type="button" data-testid="player-retry" @click=${this.retry}>Try again</button>
              </div>
            </div>`
          : this.waiting && !this.paused
            ? html`<div class="overlay"><div class="note" role="status">Loading…</div></div>`
            : nothing}
        ${this.helpOpen ? this.renderHelp() : nothing}
      </div>
      <div class="controls">
        <div class="seek" @pointermove=${this.onSeekHover} @pointerleave=${this.endSeekHover}>
          <div class="rail" aria-hidden="true">
            ${duration > 0
              ? this.buffered.map(
                  ([start, end]) =>
                    html`<div
                      class="buffered"
                      style=${styleMap({
                        left: `${(start / duration) * 100}%`,
                        width: `${(Math.max(0, end - start) / duration) * 100}%`,
                      })}
                    ></div>`,
                )
              : nothing}
            <div class="played" style=${styleMap({ width: `${progress}%` })}></div>
          </div>
          <input
            class="seekbar"
            type="range"
            data-testid="seek"
            aria-label="Seek"
            min="0"
            max=${duration > 0 ? duration : 0}
            step="any"
            .value=${String(Math.min(this.time, duration || 0))}
            aria-valuetext=${`${spokenTime(this.time)} of ${spokenTime(duration)}`}
            ?disabled=${!(duration > 0)}
            @input=${this.onSeekInput}
          />
          ${this.hover ? this.renderPreview(this.hover) : nothing}
        </div>
        <div class="row">
          <button
            type="button"
            data-testid="play"
            aria-label=${this.paused ? "Play" : "Pause"}
            title=${this.paused ? "Play (k)" : "Pause (k)"}
            @click=${this.togglePlay}
          >
            ${this.paused ? ICON_PLAY : ICON_PAUSE}
          </button>
          <button
            type="button"
            data-testid="mute"
            aria-label=${this.muted ? "Unmute" : "Mute"}
            title=${this.muted ? "Unmute (m)" : "Mute (m)"}
            @click=${this.toggleMute}
          >
            ${this.muted || this.volume === 0 ? ICON_MUTED : ICON_VOLUME}
          </button>
          <input
            class="volume"
            type="range"
            data-testid="volume"
            aria-label="Volume"
            min="0"
            max="1"
            step="0.05"
            .value=${String(this.muted ? 0 : this.volume)}
            aria-valuetext=${this.muted ? "Muted" : `${Math.round(this.volume * 100)}%`}
            @input=${this.onVolumeInput}
          />
          <span class="time" aria-hidden="true">
            <span data-testid="current-time">${formatTime(this.time)}</span> /
            <span data-testid="duration">${formatTime(duration)}</span>
          </span>
          <span class="spacer"></span>
          <span class="quality">
            <span class="playing-level" data-testid="current-quality" title="Quality playing now"
              >${playingName}</span
            >
            <label class="visually-hidden" for="quality">Quality</label>
            <select
              id="quality"
              data-testid="quality-menu"
              ?disabled=${this.levels.length === 0}
              .value=${this.quality}
              @change=${this.onQualityChange}
            >
              <option value="auto" ?selected=${this.quality === "auto"}>${autoLabel}</option>
              ${this.levels.map(
                (level) =>
                  html`<option value=${level.name} ?selected=${this.quality === level.name}>${level.name}</option>`,
              )}
            </select>
          </span>
          <label class="visually-hidden" for="speed">Playback speed</label>
          <select id="speed" data-testid="speed-menu" .value=${String(this.rate)} @change=${this.onSpeedChange}>
            ${speedOptions(this.rate).map(
              (speed) =>
                html`<option value=${String(speed)} ?selected=${speed === this.rate}>${speed}×</option>`,
            )}
          </select>
          <button
            type="button"
            data-testid="shortcuts"
            aria-label="Keyboard shortcuts"
            aria-expanded=${this.helpOpen ? "true" : "false"}
            aria-controls="help"
            title="Keyboard shortcuts (?)"
            @click=${this.toggleHelp}
          >
            ?
          </button>
          <button
            type="button"
            data-testid="fullscreen"
            aria-label=${this.fullscreen ? "Exit full screen" : "Full screen"}
            title=${this.fullscreen ? "Exit full screen (f)" : "Full screen (f)"}
            @click=${this.toggleFullscreen}
          >
            ${this.fullscreen ? ICON_EXIT_FULLSCREEN : ICON_FULLSCREEN}
          </button>
        </div>
      </div>
    `;
  }

  private renderPreview(hover: Hover) {
    const cue = this.cues ? storyboardCueAt(this.cues, hover.time) : null;
    const width = cue?.w ?? 64;
    const left = Math.max(0, Math.min(hover.width - width, hover.x - width / 2));
    return html`<div class="preview" data-testid="seek-preview" style=${styleMap({ left: `${left}px`, width: `${width}px` })}>
      ${cue
        ? html`<div
            class="thumb"
            data-testid="storyboard-thumb"
            style=${styleMap({
              width: `${cue.w}px`,
              height: `${cue.h}px`,
              backgroundImage: `url("${cue.image.replace(/["\\]/g, "\\$&")}")`,
              backgroundPosition: `-${cue.x}px -${cue.y}px`,
            })}
          ></div>`
        : nothing}
      <span class="label">${formatTime(hover.time)}</span>
    </div>`;
  }

  private renderHelp() {
    return html`<div class="help" id="help" role="dialog" aria-label="Keyboard shortcuts" data-testid="shortcuts-help">
      <header>
        <span>Keyboard shortcuts</span>
        <button type="button" aria-label="Close keyboard shortcuts" @click=${this.toggleHelp}>✕</button>
      </header>
      <dl>
        ${SHORTCUTS.map(([keys, action]) => html`<dt>${keys}</dt><dd>${action}</dd>`)}
      </dl>
    </div>`;
  }

  // ---- loading -------------------------------------------------------------------------

  private async load(resume?: ResumeAt): Promise<void> {
    const token = ++this.loadToken;
    this.teardown();
    this.message = null;
    this.levels = [];
    this.playingLevel = -1;
    this.time = resume?.time ?? 0;
    this.duration = 0;
    this.buffered = [];
    this.waiting = false;
    this.canSave = false;
    this.playWhenReady = resume?.play ?? false;
    this.nativeHeight = 0;
    const src = this.src;
    const video = this.media;
    if (!src || !video || token !== this.loadToken) return;
    const start = resume?.time ?? this.startAt ?? this.storedPosition();
    this.time = start;

    let Hls: HlsModule["default"];
    try {
      Hls = (await loadHls()).default;
    } catch {
      if (token === this.loadToken) this.message = "The video player could not be loaded. Check your connection.";
      return;
    }
    if (token !== this.loadToken) return;

    if (Hls.isSupported()) {
      const hls = new Hls({ workerPath: hlsWorkerUrl, startPosition: start });
      this.hls = hls;
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        if (this.hls !== hls) return;
        this.levels = describeLevels(hls.levels);
        const wanted = this.levels.find((l) => l.name === this.quality);
        if (wanted) hls.currentLevel = wanted.index;
        else this.quality = "auto";
        if (this.playWhenReady) this.startPlayback();
      });
      hls.on(Hls.Events.LEVELS_UPDATED, () => {
        if (this.hls === hls) this.levels = describeLevels(hls.levels);
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
        if (this.hls === hls) this.playingLevel = data.level;
      });
      hls.on(Hls.Events.ERROR, (_event, data) => this.onHlsError(hls, Hls, data));
      hls.attachMedia(video);
      hls.loadSource(src);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      // No MediaSource (older iPhones): the browser plays HLS itself, picking the quality.
      this.nativeStart = start;
      video.src = src;
      video.load();
    } else {
      this.message = "This browser cannot play this video.";
    }
  }

  private teardown(): void {
    const hls = this.hls;
    this.hls = null;
    if (hls) hls.destroy();
    const video = this.media;
    if (video && video.hasAttribute("src")) {
      video.removeAttribute("src");
      video.load();
    }
  }

  private onHlsError(hls: Hls, Hls: HlsModule["default"], data: ErrorData): void {
    if (this.hls !== hls) return;
    const status = data.response?.code ?? networkStatus(data.networkDetails);
    if (status === 403 && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      // Playback URLs carry an expiring grant in their path: get a fresh one and carry on.
      void this.renew();
      return;
    }
    if (this.renewing || !data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      const now = Date.now();
      this.mediaErrorRecoveries = this.mediaErrorRecoveries.filter((t) => now - t < 10_000);
      if (this.mediaErrorRecoveries.length < 2) {
        this.mediaErrorRecoveries.push(now);
        if (this.mediaErrorRecoveries.length === 2) hls.swapAudioCodec();
        hls.recoverMediaError();
        return;
      }
    }
    hls.stopLoad();
    this.message =
      data.type === Hls.ErrorTypes.NETWORK_ERROR
        ? status === 404
          ? "This video is not available (any more)."
          : "The video could not be loaded. Check your connection."
        : "This video could not be played.";
  }

  private async renew(): Promise<void> {
    if (this.renewing) return;
    const video = this.media;
    const now = Date.now();
    this.renewals = this.renewals.filter((t) => now - t < 60_000);
    if (this.renewals.length >= RENEWALS_PER_MINUTE) {
      this.hls?.stopLoad();
      this.message = "Access to this video was refused.";
      return;
    }
    this.renewals.push(now);
    this.renewing = true;
    const resume: ResumeAt = {
      time: video?.currentTime ?? this.time,
      play: this.playWhenReady || (video ? !video.paused : false),
    };
    this.hls?.stopLoad();
    const token = this.loadToken;
    let fresh: string | null = null;
    try {
      fresh = await (this.renewSource ?? this.defaultRenewSource)();
    } catch {
      fresh = null;
    } finally {
      this.renewing = false;
    }
    if (token !== this.loadToken) return;
    if (!fresh) {
      this.message = "Access to this video has expired. Reload the page to continue.";
      return;
    }
    if (fresh === this.src) {
      void this.load(resume);
    } else {
      this.resumeAt = resume;
      this.src = fresh;
    }
    this.dispatchEvent(new CustomEvent("source-renewed", { detail: { src: fresh }, bubbles: true, composed: true }));
  }

  private readonly defaultRenewSource = async (): Promise<string | null> => {
    if (!this.videoId) return null;
    return (await api.getVideo(this.videoId)).playback_url;
  };

  private retry(): void {
    const video = this.media;
    this.renewals = [];
    this.mediaErrorRecoveries = [];
    void this.load({ time: video?.currentTime || this.time, play: true });
  }

  private startPlayback(): void {
    this.playWhenReady = false;
    this.media?.play().catch(() => {
      // Autoplay refused (no user gesture yet): stay paused, the play button still works.
    });
  }

  // ---- media events ------------------------------------------------------------------------

  private readonly onMediaState = (): void => {
    const video = this.media;
    if (!video) return;
    this.paused = video.paused;
    this.volume = video.volume;
    this.muted = video.muted;
    this.rate = video.playbackRate;
    this.duration = mediaDuration(video);
    this.time = video.currentTime;
    const ranges: [number, number][] = [];
    for (let i = 0; i < video.buffered.length; i++) ranges.push([video.buffered.start(i), video.buffered.end(i)]);
    this.buffered = ranges;
    // Native HLS has no level list, but the picture height still says what is playing.
    this.nativeHeight = this.hls ? 0 : video.videoHeight;
  };

  private readonly onTimeUpdate = (): void => {
    this.onMediaState();
    if (this.canSave && Date.now() - this.lastSave >= SAVE_EVERY_MS) this.savePosition();
  };

  private readonly onPause = (): void => {
    this.onMediaState();
    this.savePositionNow();
  };

  private readonly onPlaying = (): void => {
    this.waiting = false;
    this.message = null;
    this.canSave = true;
    this.onMediaState();
  };

  private readonly onWaiting = (): void => {
    this.waiting = true;
    this.onMediaState();
  };

  private readonly onCanPlay = (): void => {
    this.waiting = false;
    this.canSave = true;
    this.onMediaState();
  };

  private readonly onLoadedMetadata = (): void => {
    const video = this.media;
    if (video && !this.hls && this.nativeStart > 0) {
      video.currentTime = this.nativeStart;
      this.nativeStart = 0;
      if (this.playWhenReady) this.startPlayback();
    }
    this.onMediaState();
  };

  private readonly onEnded = (): void => {
    this.onMediaState();
    // Finished: next time starts from the beginning.
    this.clearPosition();
  };

  private readonly onFullscreenChange = (): void => {
    this.fullscreen = this.isFullscreen();
  };

  /** document.fullscreenElement is retargeted to the outermost shadow host, so ask the element. */
  private isFullscreen(): boolean {
    try {
      return this.matches(":fullscreen");
    } catch {
      return false;
    }
  }

  private readonly onVisibility = (): void => {
    if (document.visibilityState === "hidden") this.savePositionNow();
  };

  // ---- controls ------------------------------------------------------------------------------

  private readonly togglePlay = (): void => {
    const video = this.media;
    if (!video || !this.src) return;
    if (video.paused || video.ended) {
      video.play().catch(() => undefined);
    } else {
      video.pause();
    }
  };

  private readonly toggleMute = (): void => {
    const video = this.media;
    if (!video) return;
    if (video.muted || video.volume === 0) {
      video.muted = false;
      if (video.volume === 0) video.volume = 0.5;
    } else {
      video.muted = true;
    }
  };

  private readonly toggleFullscreen = async (): Promise<void> => {
    const video = this.media;
    try {
      if (this.isFullscreen()) {
        await document.exitFullscreen();
      } else if (document.fullscreenEnabled && this.requestFullscreen) {
        await this.requestFullscreen();
      } else {
        // iPhone Safari only lets the video element itself go full screen.
        (video as (HTMLVideoElement & { webkitEnterFullscreen?: () => void }) | null)?.webkitEnterFullscreen?.();
      }
    } catch {
      // Refused (e.g. not triggered by a user gesture); nothing to undo.
    }
  };

  private readonly toggleHelp = (): void => {
    this.helpOpen = !this.helpOpen;
  };

  private onSeekInput(event: Event): void {
    const value = Number((event.target as HTMLInputElement).value);
    this.seekTo(value);
  }

  private onVolumeInput(event: Event): void {
    const video = this.media;
    if (!video) return;
    const value = Number((event.target as HTMLInputElement).value);
    video.volume = clamp(value, 0, 1);
    video.muted = value === 0;
  }

  private onQualityChange(event: Event): void {
    const value = (event.target as HTMLSelectElement).value;
    this.quality = value;
    const hls = this.hls;
    if (!hls) return;
    const level = this.levels.find((l) => l.name === value);
    // Auto hands the choice back to hls.js' bandwidth estimate.
    hls.currentLevel = level ? level.index : -1;
  }

  private onSpeedChange(event: Event): void {
    this.setRate(Number((event.target as HTMLSelectElement).value));
  }

  private setRate(rate: number): void {
    const video = this.media;
    if (!video || !Number.isFinite(rate) || rate <= 0) return;
    video.playbackRate = rate;
  }

  private stepRate(direction: 1 | -1): void {
    const current = this.media?.playbackRate ?? this.rate;
    const next =
      direction > 0 ? SPEEDS.find((s) => s > current + 1e-9) : [...SPEEDS].reverse().find((s) => s < current - 1e-9);
    if (next !== undefined) this.setRate(next);
  }

  private seekTo(seconds: number): void {
    const video = this.media;
    if (!video || !Number.isFinite(seconds)) return;
    const end = mediaDuration(video);
    const target = clamp(seconds, 0, end > 0 ? Math.max(0, end - 0.05) : seconds);
    video.currentTime = target;
    this.time = target;
  }

  private skip(seconds: number): void {
    const video = this.media;
    if (video) this.seekTo(video.currentTime + seconds);
  }

  private changeVolume(delta: number): void {
    const video = this.media;
    if (!video) return;
    const next = Math.round(clamp((video.muted ? 0 : video.volume) + delta, 0, 1) * 100) / 100;
    video.volume = next;
    video.muted = next === 0;
  }

  // ---- storyboard ----------------------------------------------------------------------------

  private onSeekHover(event: PointerEvent): void {
    const bar = event.currentTarget as HTMLElement;
    const rect = bar.getBoundingClientRect();
    if (!(this.duration > 0) || rect.width <= 0) return;
    const x = clamp(event.clientX - rect.left, 0, rect.width);
    this.hover = { time: (x / rect.width) * this.duration, x, width: rect.width };
    void this.loadStoryboard();
  }

  private endSeekHover(): void {
    this.hover = null;
  }

  /** Fetch and parse the storyboard once per URL; without one the preview shows only the time. */
  private async loadStoryboard(): Promise<void> {
    const url = this.storyboard;
    if (!url || this.storyboardFor === url) return;
    this.storyboardFor = url;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const base = new URL(response.url || url, window.location.href).href;
      const cues = parseStoryboard(await response.text(), base);
      if (this.storyboardFor !== url) return;
      this.cues = cues;
      // Warm the sprite sheets so the first hover over each does not flash empty.
      for (const image of new Set(cues.map((c) => c.image))) new Image().src = image;
    } catch {
      if (this.storyboardFor === url) this.cues = [];
    }
  }

  // ---- keyboard ------------------------------------------------------------------------------

  private readonly onKeydown = (event: KeyboardEvent): void => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.composedPath()[0];
    const element = target instanceof HTMLElement ? target : null;
    const tag = element?.tagName ?? "";
    // Menus keep their own keys (arrows, type-ahead); so does the volume slider's arrows.
    if (tag === "SELECT") return;
    const onButton = tag === "BUTTON";
    const onVolume = element?.classList.contains("volume") ?? false;
    const key = event.key;
    switch (key) {
      case " ":
      case "Spacebar":
        if (onButton) return;
        this.togglePlay();
        break;
      case "k":
      case "K":
        this.togglePlay();
        break;
      case "j":
      case "J":
        this.skip(-10);
        break;
      case "l":
      case "L":
        this.skip(10);
        break;
      case "ArrowLeft":
        if (onVolume) return;
        this.skip(-5);
        break;
      case "ArrowRight":
        if (onVolume) return;
        this.skip(5);
        break;
      case "ArrowUp":
        if (onVolume) return;
        this.changeVolume(VOLUME_STEP);
        break;
      case "ArrowDown":
        if (onVolume) return;
        this.changeVolume(-VOLUME_STEP);
        break;
      case "m":
      case "M":
        this.toggleMute();
        break;
      case "f":
      case "F":
        void this.toggleFullscreen();
        break;
      case ">":
        this.stepRate(1);
        break;
      case "<":
        this.stepRate(-1);
        break;
      case "?":
        this.toggleHelp();
        break;
      case "Escape":
        if (!this.helpOpen) return;
        this.helpOpen = false;
        break;
      default:
        if (/^[0-9]$/.test(key)) {
          const video = this.media;
          const duration = video ? mediaDuration(video) : 0;
          if (duration > 0) this.seekTo((duration * Number(key)) / 10);
          break;
        }
        return;
    }
    event.preventDefault();
    event.stopPropagation();
  };

  // ---- remembered position -------------------------------------------------------------------

  private storageKey(): string | null {
    return this.videoId ? `${STORAGE_PREFIX}${this.videoId}` : null;
  }

  private storedPosition(): number {
    const key = this.storageKey();
    if (!key) return 0;
    try {
      const raw = window.localStorage.getItem(key);
      if (!raw) return 0;
      const stored = JSON.parse(raw) as Partial<StoredPosition>;
      const t = typeof stored.t === "number" && Number.isFinite(stored.t) ? stored.t : 0;
      const d = typeof stored.d === "number" && Number.isFinite(stored.d) ? stored.d : 0;
      if (t < 1 || (d > 0 && t >= d - RESUME_END_MARGIN)) return 0;
      return t;
    } catch {
      return 0;
    }
  }

  private savePosition(): void {
    const key = this.storageKey();
    const video = this.media;
    if (!key || !video || !this.canSave || !this.src) return;
    this.lastSave = Date.now();
    const duration = mediaDuration(video);
    const position: StoredPosition = { t: Math.round(video.currentTime * 10) / 10, d: duration, at: this.lastSave };
    try {
      if (duration > 0 && position.t >= duration - RESUME_END_MARGIN) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, JSON.stringify(position));
    } catch {
      // Storage full or disabled: resuming is a convenience.
    }
  }

  private readonly savePositionNow = (): void => this.savePosition();

  private clearPosition(): void {
    const key = this.storageKey();
    if (!key) return;
    try {
      window.localStorage.removeItem(key);
    } catch {
      // See savePosition.
    }
  }
}

/** Menu entries, highest first; names are "720p", made unique by bitrate when heights repeat. */
function describeLevels(levels: readonly Level[]): PlayerLevel[] {
  const heights = new Map<number, number>();
  for (const level of levels) heights.set(level.height, (heights.get(level.height) ?? 0) + 1);
  return levels
    .map((level, index) => {
      const kbps = Math.round(level.bitrate / 1000);
      const base = level.height > 0 ? `${level.height}p` : `${kbps} kbps`;
      const name = level.height > 0 && (heights.get(level.height) ?? 0) > 1 ? `${base} ${kbps}k` : base;
      return { index, name, height: level.height, bitrate: level.bitrate };
    })
    .sort((a, b) => b.height - a.height || b.bitrate - a.bitrate);
}

function speedOptions(current: number): number[] {
  const speeds: number[] = [...SPEEDS];
  // A rate set from outside (e.g. a watch party) is still shown truthfully.
  if (!speeds.includes(current) && current > 0) speeds.push(current);
  return speeds.sort((a, b) => a - b);
}

/** Duration, or for a still-growing (EVENT) playlist the end of what can be seeked to. */
function mediaDuration(video: HTMLVideoElement): number {
  if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
  if (video.seekable.length > 0) return video.seekable.end(video.seekable.length - 1);
  return 0;
}

function networkStatus(details: unknown): number | undefined {
  if (details instanceof XMLHttpRequest) return details.status;
  if (details instanceof Response) return details.status;
  return undefined;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

const ICON_PLAY = html`<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M8 5v14l11-7z" /></svg>`;
const ICON_PAUSE = html`<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 5h4v14H6zm8 0h4v14h-4z" /></svg>`;
const ICON_VOLUME = html`<svg viewBox="0 0 24 24" aria-hidden="true">
  <path d="M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z" />
</svg>`;
const ICON_MUTED = html`<svg viewBox="0 0 24 24" aria-hidden="true">
  <path d="M3 9v6h4l5 5V4L7 9H3zm18.6 3 2.1-2.1-1.4-1.4-2.1 2.1-2.1-2.1-1.4 1.4 2.1 2.1-2.1 2.1 1.4 1.4 2.1-2.1 2.1 2.1 1.4-1.4z" />
</svg>`;
const ICON_FULLSCREEN = html`<svg viewBox="0 0 24 24" aria-hidden="true">
  <path d="M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z" />
</svg>`;
const ICON_EXIT_FULLSCREEN = html`<svg viewBox="0 0 24 24" aria-hidden="true">
  <path d="M5 16h3v3h2v-5H5v2zm3-8H5v2h5V5H8v3zm6 11h2v-3h3v-2h-5v5zm2-11V5h-2v5h5V8h-3z" />
</svg>`;

customElements.define("cohort-player", CohortPlayer);

declare global {
  interface HTMLElementTagNameMap {
    "cohort-player": CohortPlayer;
  }
}
