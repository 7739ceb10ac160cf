import { css, html, LitElement, nothing, type PropertyValues } from "lit";
import type Hls from "hls.js";
import hlsWorkerUrl from "hls.js/dist/hls.worker.js?url";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { CourseLesson, Person } from "../api/types.ts";
import { AuthController } from "../auth.ts";
import "../components/chat-panel.ts";
import { loadHls } from "../components/cohort-player.ts";
import { errorAlert, toFormErrors, type FormErrors } from "../forms.ts";
import { gateway, GatewayError, type ChannelMessage } from "../realtime/gateway.ts";
import { navigate } from "../router.ts";
import { shared } from "../styles.ts";
import { formatTime } from "../videos/format.ts";
import * as watchApi from "../watch/api.ts";
import type { PlaybackState, WatchParty } from "../watch/api.ts";
import {
  correct,
  expectedPosition,
  INITIAL_SEEK_LEAD,
  INITIAL_START_LATENCY_MS,
  PAUSED_TOLERANCE,
} from "../watch/sync.ts";

const REACTIONS = ["👍", "❤️", "😂", "😮", "👏", "🎉", "🤔", "🔥"] as const;
const RATES = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] as const;
/** How often the player is compared with the room while playing. */
const SYNC_EVERY_MS = 100;
/** Clock bursts while on this page (the gateway's own refresh is once a minute). */
const CLOCK_EVERY_MS = 30_000;
const BURST_MS = 2_000;
const HAVE_FUTURE_DATA = 3;

interface Burst {
  id: number;
  emoji: string;
  /** % from the left */
  x: number;
}

/**
 * `/watch/:id`: a watch party. The hub owns playback (`watch:<id>`, docs/watch-parties.md);
 * this page follows it: it keeps the `<video>` on the room's position (clock offset, rate
 * nudges, seeks only when far off), reports when its player is ready or buffering, and sends
 * the controller's play, pause, seek and speed as commands.
 *
 * Test ids: watch-title, watch-video, watch-play, watch-seek, watch-rate, watch-time,
 * watch-status, watch-member (data-user, data-ready), watch-invite, watch-react, watch-burst,
 * watch-no-wait, watch-start-anyway, watch-hand-control, watch-switch-lesson, watch-end,
 * watch-ended, watch-error.
 */
export class WatchPage extends LitElement {
  static override styles = [
    shared,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 20rem;
        gap: 1.25rem;
        align-items: start;
      }
      @media (max-width: 60rem) {
        .layout {
          grid-template-columns: 1fr;
        }
      }
      .stage {
        position: relative;
        background: #000;
        border-radius: var(--radius, 10px);
        overflow: hidden;
        aspect-ratio: 16 / 9;
      }
      video {
        display: block;
        width: 100%;
        height: 100%;
        object-fit: contain;
      }
      .bursts {
        position: absolute;
        inset: 0;
        pointer-events: none;
        overflow: hidden;
      }
      .burst {
        position: absolute;
        bottom: 0.5rem;
        font-size: 2rem;
        animation: rise 2s ease-out forwards;
      }
      @keyframes rise {
        from {
          transform: translateY(0) scale(0.8);
          opacity: 1;
        }
        to {
          transform: translateY(-14rem) scale(1.4);
          opacity: 0;
        }
      }
      @media (prefers-reduced-motion: reduce) {
        .burst {
          animation: fade 2s linear forwards;
        }
        @keyframes fade {
          to {
            opacity: 0;
          }
        }
      }
      .overlay {
        position: absolute;
        inset: auto 0 0 0;
        padding: 0.4rem 0.75rem;
        background: rgb(0 0 0 / 0.65);
        color: #fff;
        font-size: 0.9rem;
      }
      .controls {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 0.75rem;
        margin: 0.6rem 0;
      }
      .controls input[type="range"] {
        flex: 1 1 12rem;
      }
      .time {
        font-variant-numeric: tabular-nums;
      }
      .reactions {
        display: flex;
        flex-wrap: wrap;
        gap: 0.3rem;
      }
      .reactions button {
        font-size: 1.2rem;
        padding: 0.2rem 0.45rem;
      }
      .side > * + * {
        margin-top: 1rem;
      }
      .members {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      .members li {
        display: flex;
        align-items: center;
        gap: 0.5rem;
        padding: 0.25rem 0;
      }
      .dot {
        width: 0.7rem;
        height: 0.7rem;
        border-radius: 50%;
        flex: none;
      }
      .badge {
        font-size: 0.75rem;
        border: 1px solid var(--border-strong);
        border-radius: 999px;
        padding: 0 0.45rem;
        color: var(--muted);
      }
      .badge.buffering {
        color: var(--warning, #b45309);
        border-color: currentColor;
      }
      .invite {
        display: flex;
        gap: 0.5rem;
      }
      .invite input {
        flex: 1;
        min-width: 0;
      }
      .host-menu {
        display: grid;
        gap: 0.5rem;
      }
      .host-menu .row {
        display: flex;
        gap: 0.5rem;
      }
      .host-menu select {
        flex: 1;
        min-width: 0;
      }
      chat-panel {
        display: block;
        height: 24rem;
      }
    `,
  ];

  static override properties = {
    partyId: {},
    party: { state: true },
    state: { state: true },
    online: { state: true },
    lessons: { state: true },
    errors: { state: true },
    notice: { state: true },
    ended: { state: true },
    bursts: { state: true },
    needsUnmute: { state: true },
    localTime: { state: true },
    callReady: { state: true },
    canJoin: { state: true },
  };

  declare partyId: string;
  declare party: WatchParty | null;
  declare state: PlaybackState | null;
  declare online: Person[];
  declare lessons: CourseLesson[];
  declare errors: FormErrors | null;
  /** A command refused (not in control, stale …): shown briefly. */
  declare notice: string | null;
  declare ended: string | null;
  declare bursts: Burst[];
  declare needsUnmute: boolean;
  declare localTime: number;
  declare callReady: boolean;
  declare canJoin: boolean;

  private readonly session = new AuthController(this);
  private aborter: AbortController | null = null;
  private unsubscribe: (() => void) | null = null;
  private hls: Hls | null = null;
  private loadedLesson: number | null = null;
  private loadToken = 0;
  private syncTimer: number | undefined;
  private clockTimer: number | undefined;
  private nudging = false;
  private freshVersion = 0;
  private seekLead = INITIAL_SEEK_LEAD;
  private seekStartedAt: number | null = null;
  private reportedReady: boolean | null = null;
  private reportedAt = 0;
  private startTimer: number | undefined;
  private startFor = 0;
  /** ms from play() to playing, learned. */
  private startLatency = INITIAL_START_LATENCY_MS;
  private playCalledAt: number | null = null;
  /** The controller is dragging the seek bar: do not move it under their pointer. */
  private dragging = false;
  private refreshing = false;
  private loadedFor: string | null = null;
  private reporting = false;
  private burstId = 0;
  private duration = 0;

  constructor() {
    super();
    this.partyId = "";
    this.party = null;
    this.state = null;
    this.online = [];
    this.lessons = [];
    this.errors = null;
    this.notice = null;
    this.ended = null;
    this.bursts = [];
    this.needsUnmute = false;
    this.localTime = 0;
    this.callReady = false;
    this.canJoin = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.syncTimer = window.setInterval(() => this.tick(), SYNC_EVERY_MS);
    this.clockTimer = window.setInterval(() => void gateway.refreshClock(4).catch(() => undefined), CLOCK_EVERY_MS);
    void gateway.refreshClock(8).catch(() => undefined);
    if (this.partyId && this.partyId !== this.loadedFor) void this.load();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearInterval(this.syncTimer);
    window.clearInterval(this.clockTimer);
    window.clearTimeout(this.startTimer);
    this.loadedFor = null;
    this.leave();
    this.aborter?.abort();
    this.teardownVideo();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    // A lazily defined element gets its id at its first update, after connectedCallback.
    if (changed.has("partyId") && this.partyId && this.partyId !== this.loadedFor && this.isConnected) void this.load();
  }

  protected override updated(): void {
    const state = this.state;
    if (this.party && state && state.lesson !== this.loadedLesson) void this.loadLesson(state.lesson);
  }

  /** For tests and the sync benchmark: the player and the hub's clock read together. */
  sample(): {
    serverNow: number;
    currentTime: number;
    paused: boolean;
    rate: number;
    version: number;
    expected: number | null;
    playing: boolean;
    waiting: number;
    clockRtt: number | null;
  } {
    const video = this.video;
    const serverNow = gateway.serverNow();
    const state = this.state;
    return {
      serverNow,
      currentTime: video?.currentTime ?? 0,
      paused: video?.paused ?? true,
      rate: video?.playbackRate ?? 1,
      version: state?.version ?? 0,
      expected: state ? expectedPosition(state, serverNow) : null,
      playing: state?.playing ?? false,
      waiting: state?.waiting_for.length ?? 0,
      clockRtt: gateway.clockRtt,
    };
  }

  private get video(): HTMLVideoElement | null {
    return this.renderRoot?.querySelector("video") ?? null;
  }

  private get me(): number | null {
    return this.session.user?.id ?? null;
  }

  private get canControl(): boolean {
    const state = this.state;
    const me = this.me;
    if (!state || me === null || this.ended) return false;
    return state.control === "everyone" || me === state.host || me === state.controller;
  }

  private get isHost(): boolean {
    return this.party !== null && this.me === this.party.host.id;
  }

  // ---- loading ---------------------------------------------------------------------------

  private async load(): Promise<void> {
    this.loadedFor = this.partyId;
    this.aborter?.abort();
    const aborter = new AbortController();
    this.aborter = aborter;
    this.leave();
    this.party = null;
    this.state = null;
    this.errors = null;
    this.ended = null;
    try {
      const party = await watchApi.getParty(this.partyId, aborter.signal);
      this.party = party;
      document.title = `Watch party: ${party.lesson.title} · Cohort`;
      if (party.status === "ended") {
        this.ended = "This watch party has ended.";
        return;
      }
      this.subscribe(party);
      void this.loadLessons(party.course_id, aborter.signal);
      void this.loadCall();
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") return;
      this.errors = toFormErrors(error);
    }
  }

  private async loadLessons(courseId: number, signal: AbortSignal): Promise<void> {
    try {
      const course = await api.getCourse(courseId, signal);
      this.lessons = course.sections.flatMap((s) => s.lessons).filter((l) => l.kind === "video");
    } catch {
      this.lessons = [];
    }
  }

  /** The colleague's call tiles mount here when their module is part of the build. */
  private async loadCall(): Promise<void> {
    const modules = import.meta.glob("../watch/call.ts");
    const load = modules["../watch/call.ts"];
    if (!load) return;
    try {
      await load();
      this.callReady = true;
    } catch (error) {
      console.warn("watch party: the call could not be loaded", error);
    }
  }

  private subscribe(party: WatchParty): void {
    this.unsubscribe = gateway.subscribe(party.channel, {
      message: (message) => this.onMessage(message),
      presence: (online) => {
        this.online = [...online];
        // Someone joined since the party was read: read it again (chat mentions, host menu).
        const known = new Set(this.party?.members.map((m) => m.id));
        if (online.some((p) => !known.has(p.id))) void this.refreshParty();
      },
      subscribed: () => {
        // A (re)subscription makes the hub wait for this player again: report afresh.
        this.reportedReady = null;
      },
      error: (error) => this.onChannelError(error),
    });
  }

  private async refreshParty(): Promise<void> {
    const party = this.party;
    if (!party || this.refreshing) return;
    this.refreshing = true;
    try {
      this.party = await watchApi.getParty(party.id);
    } catch {
      // The next presence change tries again.
    } finally {
      this.refreshing = false;
    }
  }

  private leave(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  private onChannelError(error: GatewayError): void {
    if (error.code === "evicted") this.ended = error.message || "This watch party has ended.";
    else {
      this.errors = { message: error.message, extra: [], fields: {} };
      // A study group's member sees the party before joining it: offer to join here.
      this.canJoin = error.code === "forbidden" && !!this.party && !this.party.members.some((m) => m.id === this.me);
    }
  }

  private joinHere = async (): Promise<void> => {
    const party = this.party;
    if (!party) return;
    try {
      this.party = await watchApi.joinParty(party.invite_code);
      this.errors = null;
      this.canJoin = false;
      this.leave();
      this.subscribe(this.party);
    } catch (error) {
      this.errors = toFormErrors(error);
    }
  };

  private onMessage(message: ChannelMessage): void {
    const data = message.data;
    if (data["type"] === "state") {
      const state = data as unknown as PlaybackState;
      if (this.state && state.version <= this.state.version) return;
      const previous = this.state;
      this.state = state;
      if (
        !previous ||
        previous.position !== state.position ||
        previous.playing !== state.playing ||
        previous.rate !== state.rate ||
        previous.at !== state.at
      ) {
        this.freshVersion = state.version;
      }
      this.tick();
      this.report();
    } else if (data["type"] === "reaction") {
      this.addBurst(String(data["emoji"] ?? ""));
    } else if (data["type"] === "ended") {
      this.ended = String(data["reason"] ?? "This watch party has ended.");
      this.video?.pause();
    }
  }

  private async loadLesson(lessonId: number): Promise<void> {
    const token = ++this.loadToken;
    this.loadedLesson = lessonId;
    this.teardownVideo();
    this.reportedReady = null;
    let party = this.party;
    if (party && party.lesson.id !== lessonId) {
      party = await watchApi.getParty(party.id).catch(() => party);
      if (token !== this.loadToken) return;
      this.party = party;
    }
    const videoId = party?.lesson.video_id;
    if (!videoId) return;
    try {
      const [video, module] = await Promise.all([api.getVideo(videoId), loadHls()]);
      if (token !== this.loadToken) return;
      const media = this.video;
      const src = video.playback_url;
      if (!media || !src) {
        this.errors = { message: "This video cannot be played yet.", extra: [], fields: {} };
        return;
      }
      this.duration = video.duration ?? 0;
      const start = this.state ? expectedPosition(this.state, gateway.serverNow()) : 0;
      const HlsClass = module.default;
      if (HlsClass.isSupported()) {
        const hls = new HlsClass({ workerPath: hlsWorkerUrl, startPosition: start });
        this.hls = hls;
        hls.attachMedia(media);
        hls.loadSource(src);
      } else {
        media.src = src;
        media.currentTime = start;
      }
    } catch (error) {
      if (token !== this.loadToken) return;
      this.errors = error instanceof ApiError ? toFormErrors(error) : { message: "The video could not be loaded.", extra: [], fields: {} };
    }
  }

  private teardownVideo(): void {
    this.hls?.destroy();
    this.hls = null;
    const media = this.video;
    if (media?.hasAttribute("src")) {
      media.removeAttribute("src");
      media.load();
    }
  }

  // ---- following the room -----------------------------------------------------------------

  /** Bring the player to the room's state (called on every state and every 100 ms). */
  private tick(): void {
    const state = this.state;
    const video = this.video;
    if (!video) return;
    if (!this.dragging) this.localTime = video.currentTime;
    if (!state || this.ended || state.lesson !== this.loadedLesson || video.readyState === 0) return;
    const duration = this.duration || video.duration || undefined;
    if (!state.playing) {
      if (!video.paused) video.pause();
      this.nudging = false;
      if (video.playbackRate !== state.rate) video.playbackRate = state.rate;
      const target = Math.min(state.position, duration ?? state.position);
      if (!video.seeking && Math.abs(video.currentTime - target) > PAUSED_TOLERANCE) this.seek(target);
      this.report();
      return;
    }
    const expected = expectedPosition(state, gateway.serverNow(), duration);
    if (video.seeking || video.ended) return;
    const fresh = this.freshVersion === state.version;
    const drift = video.currentTime - expected;
    if (video.paused) {
      video.playbackRate = state.rate;
      // The hub names a start instant a little ahead: start then, early by how long this
      // player takes to start; what is left over the nudge takes from there.
      const wait = state.at - gateway.serverNow() - this.startLatency;
      if (wait > 4) {
        if (this.startFor !== state.version) {
          this.startFor = state.version;
          window.clearTimeout(this.startTimer);
          this.startTimer = window.setTimeout(() => this.startNow(state), wait);
        }
        return;
      }
      if (Math.abs(drift) > 0.25) this.seek(expected + this.seekLead * state.rate);
      this.startNow(state);
      this.freshVersion = 0;
      return;
    }
    const decision = correct(drift, expected, state.rate, this.nudging, fresh, this.seekLead);
    this.freshVersion = 0;
    if (decision.kind === "seek") {
      this.nudging = false;
      video.playbackRate = state.rate;
      this.seek(decision.to);
    } else {
      this.nudging = decision.kind === "nudge";
      if (Math.abs(video.playbackRate - decision.rate) > 1e-4) video.playbackRate = decision.rate;
    }
    this.report();
  }

  private startNow(state: PlaybackState): void {
    const video = this.video;
    if (!video || this.state !== state || !video.paused) return;
    this.playCalledAt = performance.now();
    void this.play(video);
  }

  private onPlaying = (): void => {
    if (this.playCalledAt !== null) {
      // Learn how long this player takes from play() to moving, to call it that much early.
      const took = performance.now() - this.playCalledAt;
      this.startLatency = Math.min(500, Math.max(0, 0.7 * this.startLatency + 0.3 * took));
      this.playCalledAt = null;
    }
    this.report();
  };

  private seek(to: number): void {
    const video = this.video;
    if (!video) return;
    this.seekStartedAt = performance.now();
    video.currentTime = Math.max(0, to);
  }

  private onSeeked = (): void => {
    const video = this.video;
    if (this.seekStartedAt !== null && video && !video.paused) {
      // Learn how long a seek takes while playing, to land there on time next time.
      const took = (performance.now() - this.seekStartedAt) / 1000;
      this.seekLead = Math.min(1, Math.max(0.02, 0.7 * this.seekLead + 0.3 * took));
    }
    this.seekStartedAt = null;
    this.report();
  };

  private async play(video: HTMLVideoElement): Promise<void> {
    try {
      await video.play();
    } catch (error) {
      if (error instanceof DOMException && error.name === "NotAllowedError" && !video.muted) {
        // Autoplay with sound needs a gesture first: play muted and offer to unmute.
        video.muted = true;
        this.needsUnmute = true;
        await video.play().catch(() => undefined);
      }
    }
  }

  /** Tell the room when this player becomes ready (buffered here) or starts buffering. */
  private report(): void {
    const state = this.state;
    const video = this.video;
    const me = this.me;
    if (!state || !video || me === null || this.ended || !this.party || this.reporting) return;
    const mine = state.members.find((m) => m.id === me);
    if (!mine) return;
    const onLesson = state.lesson === this.loadedLesson;
    const target = state.playing ? null : state.position;
    const ready =
      onLesson &&
      video.readyState >= HAVE_FUTURE_DATA &&
      !video.seeking &&
      (target === null || Math.abs(video.currentTime - target) <= 0.25);
    if (ready === mine.ready) {
      this.reportedReady = ready;
      return;
    }
    // Sent already for this state: the next state says whether it arrived.
    if (ready === this.reportedReady && this.reportedAt === state.version) return;
    this.reportedReady = ready;
    this.reportedAt = state.version;
    this.reporting = true;
    gateway
      .publish(this.party.channel, { cmd: "ready", ready }, { timeoutMs: 5_000 })
      .catch(() => {
        this.reportedReady = null;
      })
      .finally(() => {
        this.reporting = false;
      });
  }

  // ---- commands ---------------------------------------------------------------------------

  private async command(data: Record<string, unknown>): Promise<void> {
    const party = this.party;
    if (!party) return;
    this.notice = null;
    try {
      await gateway.publish(party.channel, data);
    } catch (error) {
      if (error instanceof GatewayError) {
        this.notice =
          error.code === "stale" ? "Someone changed playback just before you: try again." : error.message;
      }
    }
  }

  private playback(cmd: "play" | "pause" | "seek" | "rate", extra: Record<string, unknown> = {}): void {
    const state = this.state;
    if (!state) return;
    void this.command({ cmd, version: state.version, ...extra });
  }

  private togglePlay = (): void => {
    const state = this.state;
    if (!state) return;
    this.playback(state.resume ? "pause" : "play");
  };

  private onSeek = (event: Event): void => {
    this.dragging = false;
    const value = Number((event.target as HTMLInputElement).value);
    if (Number.isFinite(value)) this.playback("seek", { position: value });
  };

  private onRate = (event: Event): void => {
    this.playback("rate", { rate: Number((event.target as HTMLSelectElement).value) });
  };

  private react(emoji: string): void {
    void this.command({ cmd: "react", emoji });
  }

  private addBurst(emoji: string): void {
    if (!REACTIONS.includes(emoji as (typeof REACTIONS)[number])) return;
    const burst = { id: ++this.burstId, emoji, x: 10 + Math.random() * 80 };
    this.bursts = [...this.bursts.slice(-20), burst];
    window.setTimeout(() => {
      this.bursts = this.bursts.filter((b) => b.id !== burst.id);
    }, BURST_MS);
  }

  private onNoWait = (event: Event): void => {
    void this.command({ cmd: "no_wait", value: (event.target as HTMLInputElement).checked });
  };

  private async hostAction(action: () => Promise<WatchParty>): Promise<void> {
    this.notice = null;
    try {
      this.party = await action();
    } catch (error) {
      this.notice = toFormErrors(error).message;
    }
  }

  private handControl = (): void => {
    const select = this.renderRoot.querySelector<HTMLSelectElement>("[data-testid=watch-control-to]");
    const party = this.party;
    if (!select || !party) return;
    void this.hostAction(() => watchApi.handControl(party.id, Number(select.value)));
  };

  private switchLesson = (): void => {
    const select = this.renderRoot.querySelector<HTMLSelectElement>("[data-testid=watch-lesson-to]");
    const party = this.party;
    if (!select || !party) return;
    void this.hostAction(() => watchApi.switchLesson(party.id, Number(select.value)));
  };

  private end = (): void => {
    const party = this.party;
    if (!party || !window.confirm("End the watch party for everyone?")) return;
    void this.hostAction(() => watchApi.endParty(party.id));
  };

  private copyInvite = (): void => {
    const party = this.party;
    if (party) void navigator.clipboard?.writeText(new URL(party.invite_url, window.location.origin).href);
  };

  // ---- render -----------------------------------------------------------------------------

  override render() {
    const party = this.party;
    if (!party) {
      return html`<h1 tabindex="-1">Watch party</h1>
        ${this.errors ? errorAlert(this.errors) : html`<p class="muted" role="status">Loading the party…</p>`}`;
    }
    return html`
      <h1 tabindex="-1" data-testid="watch-title">Watching: ${party.lesson.title}</h1>
      ${errorAlert(this.errors)}
      ${this.canJoin ? html`<p><button type="button" data-testid="watch-join-here" @click=${this.joinHere}>Join the party</button></p>` : nothing}
      ${this.ended ? html`<div class="alert" role="status" data-testid="watch-ended">${this.ended}</div>` : nothing}
      <div class="layout">
        <div>
          <div class="stage">
            <video
              data-testid="watch-video"
              playsinline
              preload="auto"
              @seeked=${this.onSeeked}
              @canplay=${() => this.report()}
              @canplaythrough=${() => this.report()}
              @waiting=${() => this.report()}
              @playing=${this.onPlaying}
              @loadeddata=${() => this.tick()}
            ></video>
            <div class="bursts" aria-hidden="true">
              ${this.bursts.map(
                (b) => html`<span class="burst" data-testid="watch-burst" style="left:${b.x}%">${b.emoji}</span>`,
              )}
            </div>
            ${this.renderStatus()}
          </div>
          ${this.renderControls()}
          <div class="reactions" role="group" aria-label="Reactions">
            ${REACTIONS.map(
              (emoji) =>
                html`<button type="button" data-testid="watch-react" data-emoji=${emoji} aria-label=${`React ${emoji}`}
                  ?disabled=${!!this.ended} @click=${() => this.react(emoji)}>${emoji}</button>`,
            )}
          </div>
          <section aria-label="Call" class="call">
            <div id="call-tiles" data-testid="call-tiles">
              ${this.callReady && !this.ended ? html`<cohort-call party-id=${String(party.id)}></cohort-call>` : nothing}
            </div>
          </section>
        </div>
        <div class="side">${this.renderMembers(party)} ${this.renderHostMenu(party)}
          <section aria-label="Chat">
            <h2>Chat</h2>
            <chat-panel .channel=${party.chat_channel} .label=${"Watch party chat"} .members=${party.members}></chat-panel>
          </section>
        </div>
      </div>
    `;
  }

  private renderStatus() {
    const state = this.state;
    if (!state || this.ended) return nothing;
    let text: string | null = null;
    if (state.waiting_for.length) {
      const names = state.waiting_for.map((id) => this.nameOf(id));
      text = `Waiting for ${names.join(", ")} to load…`;
    } else if (this.needsUnmute) {
      return html`<div class="overlay"><button type="button" @click=${this.unmute}>Unmute</button></div>`;
    }
    return text ? html`<div class="overlay" role="status" data-testid="watch-status">${text}</div>` : nothing;
  }

  private unmute = (): void => {
    const video = this.video;
    if (video) video.muted = false;
    this.needsUnmute = false;
  };

  private renderControls() {
    const state = this.state;
    const enabled = this.canControl;
    const duration = this.duration || this.party?.lesson.duration || 0;
    const playingIntent = state?.resume ?? false;
    return html`
      <div class="controls">
        <button type="button" data-testid="watch-play" ?disabled=${!enabled} @click=${this.togglePlay}>
          ${playingIntent ? "Pause" : "Play"}
        </button>
        <input
          type="range"
          data-testid="watch-seek"
          aria-label="Position"
          min="0"
          max=${String(Math.max(1, Math.floor(duration)))}
          step="1"
          .value=${String(Math.floor(this.localTime))}
          ?disabled=${!enabled}
          @pointerdown=${() => (this.dragging = true)}
          @pointerup=${() => (this.dragging = false)}
          @change=${this.onSeek}
        />
        <span class="time" data-testid="watch-time">${formatTime(this.localTime)} / ${formatTime(duration)}</span>
        <label
          >Speed
          <select data-testid="watch-rate" ?disabled=${!enabled} @change=${this.onRate}>
            ${RATES.map((r) => html`<option value=${String(r)} ?selected=${state?.rate === r}>${r}×</option>`)}
          </select></label
        >
        ${enabled ? nothing : html`<span class="muted">${this.nameOf(state?.controller ?? null)} has control</span>`}
        ${this.notice ? html`<span class="alert error" role="alert" data-testid="watch-error">${this.notice}</span>` : nothing}
      </div>
    `;
  }

  private nameOf(id: number | null): string {
    if (id === null) return "Nobody";
    if (id === this.me) return "You";
    return (
      this.online.find((p) => p.id === id)?.display_name ??
      this.party?.members.find((p) => p.id === id)?.display_name ??
      `Member ${id}`
    );
  }

  private renderMembers(party: WatchParty) {
    const state = this.state;
    const people = new Map<number, Person>();
    for (const p of this.online) people.set(p.id, p);
    const mine = state?.members.find((m) => m.id === this.me);
    return html`
      <section aria-label="Participants">
        <h2>Watching (${people.size})</h2>
        <ul class="members">
          ${[...people.values()].map((p) => {
            const m = state?.members.find((x) => x.id === p.id);
            const waitedFor = state?.waiting_for.includes(p.id) ?? false;
            return html`<li data-testid="watch-member" data-user=${String(p.id)} data-ready=${String(m?.ready ?? false)}>
              <span class="dot" style="background:${p.avatar_color ?? "#888"}"></span>
              <span>${p.display_name}${p.id === this.me ? " (you)" : ""}</span>
              ${p.id === party.host.id ? html`<span class="badge">host</span>` : nothing}
              ${state && (state.controller === p.id || state.control === "everyone") ? html`<span class="badge">controls</span>` : nothing}
              ${m && !m.ready ? html`<span class="badge buffering">${waitedFor ? "loading" : "buffering"}</span>` : nothing}
              ${m?.no_wait || m?.exempt ? html`<span class="badge" title="The room does not wait for them">not waited for</span>` : nothing}
            </li>`;
          })}
        </ul>
        <label><input type="checkbox" data-testid="watch-no-wait" .checked=${mine?.no_wait ?? false} @change=${this.onNoWait} />
          Don't wait for me</label>
        <div class="invite">
          <input readonly aria-label="Invite link" data-testid="watch-invite" .value=${new URL(party.invite_url, window.location.origin).href} />
          <button type="button" @click=${this.copyInvite}>Copy</button>
        </div>
      </section>
    `;
  }

  private renderHostMenu(party: WatchParty) {
    if (!this.isHost || this.ended) return nothing;
    const state = this.state;
    return html`
      <section aria-label="Host" class="host-menu">
        <h2>Host</h2>
        ${state?.waiting_for.length
          ? html`<button type="button" data-testid="watch-start-anyway" @click=${() => void this.command({ cmd: "start_anyway" })}>
              Start anyway
            </button>`
          : nothing}
        <div class="row">
          <select data-testid="watch-control-to" aria-label="Give control to">
            ${party.members.map(
              (m) => html`<option value=${String(m.id)} ?selected=${state?.controller === m.id}>${m.display_name}</option>`,
            )}
          </select>
          <button type="button" data-testid="watch-hand-control" @click=${this.handControl}>Give control</button>
        </div>
        <div class="row">
          <select data-testid="watch-lesson-to" aria-label="Switch to lesson">
            ${this.lessons.map(
              (l) => html`<option value=${String(l.id)} ?selected=${l.id === state?.lesson}>${l.title}</option>`,
            )}
          </select>
          <button type="button" data-testid="watch-switch-lesson" @click=${this.switchLesson}>Switch lesson</button>
        </div>
        <button type="button" class="danger" data-testid="watch-end" @click=${this.end}>End the party</button>
      </section>
    `;
  }
}

customElements.define("watch-page", WatchPage);

/** `/watch/join/:code`: where an invite link leads; joining takes one click. */
export class WatchJoinPage extends LitElement {
  static override styles = [shared];

  static override properties = {
    code: {},
    busy: { state: true },
    errors: { state: true },
  };

  declare code: string;
  declare busy: boolean;
  declare errors: FormErrors | null;

  constructor() {
    super();
    this.code = "";
    this.busy = false;
    this.errors = null;
  }

  override render() {
    return html`
      <h1 tabindex="-1">Join a watch party</h1>
      <div class="card narrow">
        <p>You were invited to watch a lesson together: the video plays in sync for everyone, with a chat beside it.</p>
        ${errorAlert(this.errors)}
        <div class="actions">
          <button type="button" data-testid="watch-join" ?disabled=${this.busy} @click=${this.join}>
            ${this.busy ? "Joining…" : "Join the party"}
          </button>
          <a href="/learning">Not now</a>
        </div>
      </div>
    `;
  }

  private join = async (): Promise<void> => {
    this.busy = true;
    this.errors = null;
    try {
      const party = await watchApi.joinParty(this.code);
      navigate(`/watch/${party.id}`, { replace: true });
    } catch (error) {
      this.errors = toFormErrors(error);
    } finally {
      this.busy = false;
    }
  };
}

customElements.define("watch-join-page", WatchJoinPage);
