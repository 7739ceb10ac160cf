/**
 * `<cohort-call party-id="…">`: a watch party's video call (docs/watch-parties.md, "Call").
 *
 * Signalling goes through the hub on `call:<id>`; offers, answers and ICE candidates addressed
 * to this tab arrive on its own inbox `call:<id>:<peer>` (the peer id is random per tab, so one
 * user may be in the call from two tabs). Up to the roster's `mesh_max` peers each pair has an
 * RTCPeerConnection (perfect negotiation, the smaller id making the first offer: `MeshLink`); above
 * it the hub moves the call to Janus and hands this tab a room and a token: the tab publishes
 * its camera there and subscribes to every other publisher, over Janus's HTTP API.
 */

import { LitElement, css, html, nothing } from "lit";

import { gateway, GatewayError, type ChannelMessage } from "../realtime/gateway.ts";

interface Media {
  audio: boolean;
  video: boolean;
}

interface Participant {
  peer: string;
  user: { id: number; display_name: string };
  media: Media;
}

interface Roster {
  type: "roster";
  mode: "mesh" | "sfu";
  mesh_max: number;
  participants: Participant[];
  sfu?: { url: string; room: number; token?: string };
}

interface Signal {
  type: "offer" | "answer" | "ice";
  from: string;
  sdp?: string;
  candidate?: RTCIceCandidateInit | null;
}

function randomPeerId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One mesh link, negotiated with the W3C "perfect negotiation" pattern
 * (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): the peer with the larger id is
 * polite (on colliding offers it rolls its own back and answers), the other one ignores the
 * colliding offer. Three rules on top keep the pair from getting stuck:
 *
 * - The first offer is the impolite peer's alone. Both ends create the link from the same roster
 *   at about the same time, so if both offered, every join would be glare, and Chromium, rolling
 *   back an offer it was still setting, could then answer without gathering a single ICE
 *   candidate: the link never connected. The polite end's tracks ride on that first offer (its
 *   `addTrack` transceivers are matched to the offer's m-lines); anything left over, it offers
 *   once the first exchange is done (the browser fires `negotiationneeded` again then).
 *   tests/rooms/call_peer.py (aiortc) follows the same rule: the smaller id offers.
 * - Signals are handled one at a time in arrival order, so a candidate is never added while the
 *   description it belongs to is still being set; candidates that arrive before any remote
 *   description wait for it, and those of an ignored offer are dropped.
 * - When ICE fails (a network change), the link restarts ICE.
 */
class MeshLink {
  readonly pc: RTCPeerConnection;
  private makingOffer = false;
  private ignoreOffer = false;
  /** One offer/answer exchange has completed: until then the polite end only answers. */
  private negotiated = false;
  /** The local offer being set, if any (a polite rollback waits for it). */
  private offering: Promise<unknown> = Promise.resolve();
  private signals: Promise<void> = Promise.resolve();
  private readonly earlyCandidates: (RTCIceCandidateInit | null)[] = [];
  private closed = false;

  constructor(
    private readonly polite: boolean,
    stream: MediaStream,
    private readonly send: (data: Record<string, unknown>) => Promise<unknown>,
    onStream: (stream: MediaStream) => void,
  ) {
    this.pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    this.pc.ontrack = (event) => onStream(event.streams[0] ?? new MediaStream([event.track]));
    this.pc.onicecandidate = ({ candidate }) => {
      void this.send({ type: "ice", candidate: candidate ? candidate.toJSON() : null }).catch(() => undefined);
    };
    this.pc.onnegotiationneeded = () => void this.offer();
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === "failed") this.pc.restartIce();
    };
  }

  private async offer(): Promise<void> {
    if (this.polite && !this.negotiated) return;
    let sdp: string | undefined;
    this.makingOffer = true;
    try {
      const setting = this.pc.setLocalDescription();
      this.offering = setting.catch(() => undefined);
      await setting;
      // In "stable" the argument-less call makes an offer; anything else means a remote offer
      // overtook this one and has been answered.
      if (this.pc.localDescription?.type === "offer") sdp = this.pc.localDescription.sdp;
    } catch (error) {
      if (!this.closed) console.warn("call: offer failed", error);
    } finally {
      this.makingOffer = false;
    }
    if (sdp) await this.send({ type: "offer", sdp }).catch(() => undefined);
  }

  /** Take a signal from the other end; it is handled after those that came before it. */
  receive(signal: Signal): void {
    this.signals = this.signals
      .then(() => this.handle(signal))
      .catch((error: unknown) => {
        if (!this.closed) console.warn("call: signal failed", error);
      });
  }

  private async handle(signal: Signal): Promise<void> {
    if (this.closed) return;
    if (signal.type === "ice") {
      if (this.ignoreOffer) return;
      if (this.pc.remoteDescription) await this.addCandidate(signal.candidate ?? null);
      else this.earlyCandidates.push(signal.candidate ?? null);
      return;
    }
    const description = { type: signal.type, sdp: signal.sdp ?? "" } as RTCSessionDescriptionInit;
    const collision = description.type === "offer" && (this.makingOffer || this.pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    // Polite and colliding: setRemoteDescription rolls our offer back; let it finish being set.
    if (collision) await this.offering;
    await this.pc.setRemoteDescription(description);
    if (description.type === "offer") {
      await this.pc.setLocalDescription();
      void this.send({ type: "answer", sdp: this.pc.localDescription?.sdp }).catch(() => undefined);
    }
    this.negotiated = true;
    for (const candidate of this.earlyCandidates.splice(0)) await this.addCandidate(candidate);
  }

  private async addCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      // A candidate of an earlier ICE generation (before a restart) no longer applies.
      if (!this.closed) console.warn("call: bad candidate", error);
    }
  }

  close(): void {
    this.closed = true;
    this.pc.close();
  }
}

/** Janus's VideoRoom over its HTTP API: one session, long-polled for events. */
class JanusRoom {
  private session = 0;
  private closed = false;
  private readonly waiting = new Map<string, (event: Record<string, unknown>) => void>();
  private readonly handles = new Map<number, (event: Record<string, unknown>) => void>();
  private readonly subscribed = new Set<number>();
  private publisherId = 0;
  private readonly pcs: RTCPeerConnection[] = [];

  constructor(
    private readonly url: string,
    private readonly room: number,
    private readonly token: string,
    private readonly display: string,
    private readonly stream: MediaStream,
    private readonly onStream: (peer: string, stream: MediaStream | null) => void,
  ) {}

  private async post(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const transaction = randomPeerId();
    const response = await fetch(this.url + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, transaction }),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    if (answer["janus"] === "error") throw new Error(`janus: ${JSON.stringify(answer["error"])}`);
    if (answer["janus"] === "ack") {
      return await new Promise((resolve) => this.waiting.set(transaction, resolve));
    }
    return answer;
  }

  private async poll(): Promise<void> {
    while (!this.closed) {
      try {
        const response = await fetch(`${this.url}/${this.session}?maxev=10&rid=${Date.now()}`);
        const body = (await response.json()) as unknown;
        for (const event of Array.isArray(body) ? body : [body]) this.dispatch(event as Record<string, unknown>);
      } catch (error) {
        if (this.closed) return;
        console.warn("call: janus poll failed", error);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private dispatch(event: Record<string, unknown>): void {
    const transaction = event["transaction"];
    if (typeof transaction === "string" && this.waiting.has(transaction)) {
      this.waiting.get(transaction)?.(event);
      this.waiting.delete(transaction);
      return;
    }
    const sender = event["sender"];
    if (typeof sender === "number") this.handles.get(sender)?.(event);
  }

  private async attach(onEvent: (event: Record<string, unknown>) => void): Promise<number> {
    const answer = await this.post(`/${this.session}`, { janus: "attach", plugin: "janus.plugin.videoroom" });
    const handle = (answer["data"] as { id: number }).id;
    this.handles.set(handle, onEvent);
    return handle;
  }

  private trickle(handle: number, pc: RTCPeerConnection): void {
    pc.onicecandidate = ({ candidate }) => {
      void this.post(`/${this.session}/${handle}`, {
        janus: "trickle",
        candidate: candidate ? candidate.toJSON() : { completed: true },
      }).catch(() => undefined);
    };
  }

  async start(): Promise<void> {
    const created = await this.post("", { janus: "create" });
    this.session = (created["data"] as { id: number }).id;
    void this.poll();
    const handle = await this.attach((event) => this.onPublisherEvent(event));
    const joined = await this.post(`/${this.session}/${handle}`, {
      janus: "message",
      body: { request: "join", ptype: "publisher", room: this.room, token: this.token, display: this.display },
    });
    const data = pluginData(joined);
    if (data["videoroom"] !== "joined") throw new Error(`janus refused: ${String(data["error"])}`);
    this.publisherId = Number(data["id"]);
    this.onPublishers(data);
    const pc = new RTCPeerConnection();
    this.pcs.push(pc);
    this.trickle(handle, pc);
    for (const track of this.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await this.post(`/${this.session}/${handle}`, {
      janus: "message",
      body: { request: "publish" },
      jsep: { type: "offer", sdp: pc.localDescription?.sdp },
    });
    const jsep = answer["jsep"] as RTCSessionDescriptionInit | undefined;
    if (jsep) await pc.setRemoteDescription(jsep);
  }

  private onPublisherEvent(event: Record<string, unknown>): void {
    const data = pluginData(event);
    this.onPublishers(data);
    const gone = data["unpublished"] ?? data["leaving"];
    if (typeof gone === "number") this.onStream(String(gone), null);
  }

  private onPublishers(data: Record<string, unknown>): void {
    const publishers = data["publishers"];
    if (!Array.isArray(publishers)) return;
    for (const publisher of publishers as { id: number; display?: string }[]) {
      if (publisher.id === this.publisherId || this.subscribed.has(publisher.id)) continue;
      this.subscribed.add(publisher.id);
      void this.subscribe(publisher.id, publisher.display ?? String(publisher.id)).catch((error: unknown) => {
        this.subscribed.delete(publisher.id);
        console.warn("call: janus subscribe failed", error);
      });
    }
  }

  private async subscribe(feed: number, display: string): Promise<void> {
    const handle = await this.attach(() => undefined);
    const attached = await this.post(`/${this.session}/${handle}`, {
      janus: "message",
      body: { request: "join", ptype: "subscriber", room: this.room, token: this.token, streams: [{ feed }] },
    });
    const offer = attached["jsep"] as RTCSessionDescriptionInit | undefined;
    if (!offer) throw new Error(`janus: no offer for feed ${feed}`);
    const pc = new RTCPeerConnection();
    this.pcs.push(pc);
    this.trickle(handle, pc);
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      this.onStream(display, stream);
    };
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await this.post(`/${this.session}/${handle}`, {
      janus: "message",
      body: { request: "start", room: this.room },
      jsep: { type: "answer", sdp: pc.localDescription?.sdp },
    });
  }

  close(): void {
    this.closed = true;
    for (const pc of this.pcs) pc.close();
    if (this.session) void this.post(`/${this.session}`, { janus: "destroy" }).catch(() => undefined);
  }
}

function pluginData(event: Record<string, unknown>): Record<string, unknown> {
  const plugin = event["plugindata"] as { data?: Record<string, unknown> } | undefined;
  return plugin?.data ?? {};
}

export class CohortCall extends LitElement {
  static override properties = {
    partyId: { attribute: "party-id" },
    joined: { state: true },
    busy: { state: true },
    audio: { state: true },
    video: { state: true },
    roster: { state: true },
    problem: { state: true },
    tiles: { state: true },
  };

  declare partyId: string;
  declare joined: boolean;
  declare busy: boolean;
  declare audio: boolean;
  declare video: boolean;
  declare roster: Roster | null;
  declare problem: string | null;
  /** Remote video elements by peer id (mesh) or by the publisher's peer id (SFU). */
  declare tiles: Map<string, HTMLVideoElement>;

  readonly peer = randomPeerId();
  private stream: MediaStream | null = null;
  private readonly links = new Map<string, MeshLink>();
  private janus: JanusRoom | null = null;
  private stops: (() => void)[] = [];
  private readonly local = document.createElement("video");

  constructor() {
    super();
    this.partyId = "";
    this.joined = false;
    this.busy = false;
    this.audio = true;
    this.video = true;
    this.roster = null;
    this.problem = null;
    this.tiles = new Map();
    this.local.muted = true;
    this.local.autoplay = true;
    this.local.playsInline = true;
    this.local.dataset["testid"] = "call-local";
  }

  private get channel(): string {
    return `call:${this.partyId}`;
  }

  private get inbox(): string {
    return `call:${this.partyId}:${this.peer}`;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.hangUp(false);
  }

  private send(data: Record<string, unknown>): Promise<unknown> {
    return gateway.publish(this.channel, { ...data, peer: this.peer });
  }

  private async join(): Promise<void> {
    this.busy = true;
    this.problem = null;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: this.audio, video: this.video });
      this.local.srcObject = this.stream;
      // The inbox first: the hub sends nothing addressed to this tab before it exists.
      await this.listen(this.inbox, (m) => this.onInbox(m));
      await this.listen(this.channel, (m) => this.onRoster(m));
      await this.send({ type: "join", media: { audio: this.audio, video: this.video } });
      this.joined = true;
    } catch (error) {
      this.problem = error instanceof GatewayError || error instanceof Error ? error.message : String(error);
      this.hangUp(false);
    } finally {
      this.busy = false;
    }
  }

  private listen(channel: string, onMessage: (message: ChannelMessage) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let first = true;
      const stop = gateway.subscribe(channel, {
        message: onMessage,
        subscribed: (info) => {
          if (first) {
            first = false;
            resolve();
          } else if (info.resumed && this.joined && channel === this.inbox) {
            // A new socket: the hub dropped this peer with the old one; come back.
            for (const link of this.links.values()) link.close();
            this.links.clear();
            void this.send({ type: "join", media: { audio: this.audio, video: this.video } }).catch(() => undefined);
          }
        },
        error: (error) => {
          if (first) reject(error);
          else if (error.code === "evicted") {
            // The party ended (or this member lost access): the hub ended the call for us.
            this.hangUp(false);
            this.problem = error.message;
          }
        },
      });
      this.stops.push(stop);
    });
  }

  private hangUp(announce: boolean): void {
    if (announce && this.joined) void this.send({ type: "leave" }).catch(() => undefined);
    for (const stop of this.stops.splice(0)) stop();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.janus?.close();
    this.janus = null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.local.srcObject = null;
    this.tiles = new Map();
    this.joined = false;
    this.roster = null;
  }

  private onRoster(message: ChannelMessage): void {
    const data = message.data as unknown as Roster;
    if (data.type !== "roster") return;
    this.roster = data;
    if (!this.joined && !this.stream) return;
    if (data.mode === "mesh") this.mesh(data);
  }

  private onInbox(message: ChannelMessage): void {
    const data = message.data as unknown as Signal | Roster;
    if (data.type === "roster") {
      this.roster = data;
      if (data.mode === "sfu" && data.sfu?.token) this.toSfu(data.sfu.url, data.sfu.room, data.sfu.token);
      return;
    }
    if (!this.stream || this.roster?.mode !== "mesh") return;
    // Only an offer opens a link: answers and candidates still on their way from a peer whose
    // link was closed (it left) must not bring it back.
    const link = data.type === "offer" ? this.link(data.from) : this.links.get(data.from);
    link?.receive(data);
  }

  private mesh(roster: Roster): void {
    if (!this.stream) return;
    const present = new Set(roster.participants.map((p) => p.peer));
    // Signals from a peer the hub does not list yet are refused: wait to be in the roster.
    if (!present.has(this.peer)) return;
    for (const peer of present) if (peer !== this.peer) this.link(peer);
    for (const [peer, link] of this.links) {
      if (!present.has(peer)) {
        link.close();
        this.links.delete(peer);
        this.setTile(peer, null);
      }
    }
  }

  private link(other: string): MeshLink {
    let link = this.links.get(other);
    if (!link && this.stream) {
      link = new MeshLink(
        this.peer > other,
        this.stream,
        (data) => this.send({ ...data, to: other }),
        (stream) => this.setTile(other, stream),
      );
      this.links.set(other, link);
    }
    return link as MeshLink;
  }

  private toSfu(url: string, room: number, token: string): void {
    if (this.janus || !this.stream) return;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.tiles = new Map();
    this.janus = new JanusRoom(url, room, token, this.peer, this.stream, (peer, stream) => this.setTile(peer, stream));
    void this.janus.start().catch((error: unknown) => {
      this.problem = `The call server refused: ${String(error)}`;
    });
  }

  private setTile(peer: string, stream: MediaStream | null): void {
    const tiles = new Map(this.tiles);
    if (stream === null) {
      tiles.delete(peer);
    } else {
      let video = tiles.get(peer);
      if (!video) {
        video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.className = "remote";
        video.dataset["peer"] = peer;
        video.dataset["testid"] = "call-remote";
        tiles.set(peer, video);
      }
      if (video.srcObject !== stream) video.srcObject = stream;
    }
    this.tiles = tiles;
  }

  private async toggle(kind: "audio" | "video"): Promise<void> {
    const on = kind === "audio" ? !this.audio : !this.video;
    if (kind === "audio") this.audio = on;
    else this.video = on;
    for (const track of kind === "audio" ? (this.stream?.getAudioTracks() ?? []) : (this.stream?.getVideoTracks() ?? [])) {
      track.enabled = on;
    }
    if (this.joined) {
      await this.send({ type: "join", media: { audio: this.audio, video: this.video } }).catch(() => undefined);
    }
  }

  private nameOf(peer: string): string {
    return this.roster?.participants.find((p) => p.peer === peer)?.user.display_name ?? "Someone";
  }

  override render(): unknown {
    const count = this.roster?.participants.length ?? 0;
    return html`
      <div class="bar">
        ${this.joined
          ? html`
              <button type="button" aria-pressed=${String(!this.audio)} @click=${() => void this.toggle("audio")}>
                ${this.audio ? "Mute" : "Unmute"}
              </button>
              <button type="button" aria-pressed=${String(!this.video)} @click=${() => void this.toggle("video")}>
                ${this.video ? "Camera off" : "Camera on"}
              </button>
              <button type="button" class="leave" @click=${() => this.hangUp(true)}>Leave call</button>
            `
          : html`
              <label><input type="checkbox" .checked=${this.video} @change=${() => (this.video = !this.video)} /> Camera</label>
              <label><input type="checkbox" .checked=${this.audio} @change=${() => (this.audio = !this.audio)} /> Microphone</label>
              <button type="button" ?disabled=${this.busy || (!this.audio && !this.video)} @click=${() => void this.join()}>
                Join call
              </button>
            `}
        <span class="count">${count ? `${count} in the call${this.roster?.mode === "sfu" ? " (relayed)" : ""}` : nothing}</span>
      </div>
      ${this.problem ? html`<p role="alert">${this.problem}</p>` : nothing}
      <div class="tiles">
        ${this.joined ? html`<figure class="tile">${this.local}<figcaption>You</figcaption></figure>` : nothing}
        ${[...this.tiles].map(
          ([peer, video]) => html`<figure class="tile">${video}<figcaption>${this.nameOf(peer)}</figcaption></figure>`,
        )}
      </div>
    `;
  }

  static override styles = css`
    :host {
      display: block;
    }
    .bar {
      display: flex;
      flex-wrap: wrap;
      gap: 0.5rem;
      align-items: center;
    }
    .tiles {
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(10rem, 1fr));
      gap: 0.5rem;
      margin-top: 0.5rem;
    }
    .tile {
      margin: 0;
      position: relative;
    }
    video {
      width: 100%;
      aspect-ratio: 4 / 3;
      background: #111;
      border-radius: 0.4rem;
      object-fit: cover;
    }
    figcaption {
      font-size: 0.8rem;
    }
    .leave {
      color: #b00020;
    }
  `;
}

customElements.define("cohort-call", CohortCall);

declare global {
  interface HTMLElementTagNameMap {
    "cohort-call": CohortCall;
  }
}
