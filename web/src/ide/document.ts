import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { ApiError } from "../api/client.ts";
import * as api from "../api/endpoints.ts";
import type { User } from "../api/types.ts";

/**
 * A project's shared document (layout and protocol: docs/documents.md), kept in sync over
 * `/yjs/{doc}` by a stock y-websocket provider.
 *
 * Tickets open the document once, so the provider never reconnects by itself: when a socket
 * closes, this class stops y-websocket's own retry, fetches a fresh ticket, puts it in
 * `provider.params` and connects again (with backoff). File operations follow the layout's rules:
 * a new `Y.Text` per file, rename = new key + delete old key in one transaction.
 */

export type DocumentStatus = "connecting" | "connected" | "offline" | "refused";

/** What remote cursors and the presence list show about someone (y-codemirror.next's fields). */
export interface AwarenessUser {
  id: number;
  name: string;
  color: string;
  colorLight: string;
}

export interface Peer extends AwarenessUser {
  clientId: number;
  /** This tab. */
  self: boolean;
}

const BACKOFF_BASE_MS = 300;
const BACKOFF_MAX_MS = 10_000;

export function awarenessUser(user: User): AwarenessUser {
  const color = /^#[0-9a-f]{6}$/i.test(user.avatar_color) ? user.avatar_color : "#4f46e5";
  // y-codemirror.next paints selections in colorLight: the colour at ~20% opacity.
  return { id: user.id, name: user.display_name, color, colorLight: `${color}33` };
}

/** A file path as the layout wants it: `/`-separated, no leading `/`, no empty or dot parts. */
export function normalisePath(raw: string): string | null {
  const parts = raw.trim().replace(/\\/g, "/").split("/").filter((part) => part !== "");
  if (!parts.length || parts.some((part) => part === "." || part === "..")) return null;
  const path = parts.join("/");
  return path.length > 200 ? null : path;
}

export class ProjectDocument extends EventTarget {
  readonly doc = new Y.Doc();
  readonly files: Y.Map<Y.Text>;
  readonly provider: WebsocketProvider;
  status: DocumentStatus = "connecting";
  /** The hub's answer when it refused us for good (no access, no such document). */
  refusal: string | null = null;
  synced = false;
  /**
   * Synced at least once: the files are known. Stays true while the socket reconnects, so the
   * editor stays on screen and what is typed meanwhile is kept (and sent on the next sync).
   */
  loaded = false;
  private running = true;
  private attempt = 0;
  private retryTimer: number | undefined;
  private abort = new AbortController();

  constructor(
    readonly name: string,
    user: User,
  ) {
    super();
    this.files = this.doc.getMap<Y.Text>("files");
    const url = new URL("/yjs", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.provider = new WebsocketProvider(url.href.replace(/\/$/, ""), name, this.doc, {
      connect: false,
      // Every edit goes through the hub, which knows who may write; other tabs get it from there.
      disableBc: true,
      maxBackoffTime: BACKOFF_MAX_MS,
    });
    this.provider.awareness.setLocalStateField("user", awarenessUser(user));
    this.provider.on("status", ({ status }) => {
      if (status === "connected") this.attempt = 0;
      this.setStatus(status === "connected" ? "connected" : status === "connecting" ? "connecting" : "offline");
    });
    this.provider.on("sync", (synced: boolean) => {
      this.synced = synced;
      if (synced) this.loaded = true;
      this.emit("sync");
    });
    this.provider.on("connection-close", (event) => {
      // The ticket in `params` is spent: keep y-websocket's scheduled retry from reusing it.
      this.provider.shouldConnect = false;
      if (!this.running) return;
      if (event && event.code >= 4400 && event.code < 4500) {
        this.refuse(event.reason || `The hub closed the document (${event.code}).`);
        return;
      }
      this.scheduleConnect();
    });
    this.provider.awareness.on("change", () => this.emit("peers"));
    this.files.observe(() => this.emit("files"));
    void this.connect();
  }

  get awareness() {
    return this.provider.awareness;
  }

  /** Everyone with the document open (this tab included), one entry per tab. */
  peers(): Peer[] {
    const peers: Peer[] = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      const user = (state as { user?: Partial<AwarenessUser> }).user;
      if (!user || typeof user.name !== "string") continue;
      peers.push({
        clientId,
        id: typeof user.id === "number" ? user.id : 0,
        name: user.name,
        color: typeof user.color === "string" ? user.color : "#8a94a6",
        colorLight: typeof user.colorLight === "string" ? user.colorLight : "#8a94a633",
        self: clientId === this.doc.clientID,
      });
    }
    return peers;
  }

  paths(): string[] {
    return [...this.files.keys()].sort((a, b) => a.localeCompare(b));
  }

  text(path: string): Y.Text | undefined {
    const value = this.files.get(path);
    return value instanceof Y.Text ? value : undefined;
  }

  /** Add an empty file; false when the path is taken. */
  addFile(path: string): boolean {
    if (this.files.has(path)) return false;
    this.files.set(path, new Y.Text());
    return true;
  }

  /** Move a file's content to a new path in one transaction; false when the target is taken. */
  renameFile(from: string, to: string): boolean {
    const source = this.text(from);
    if (!source || from === to || this.files.has(to)) return false;
    this.doc.transact(() => {
      this.files.set(to, new Y.Text(source.toString()));
      this.files.delete(from);
    });
    return true;
  }

  deleteFile(path: string): void {
    this.files.delete(path);
  }

  destroy(): void {
    this.running = false;
    this.abort.abort();
    window.clearTimeout(this.retryTimer);
    this.provider.destroy();
    this.doc.destroy();
  }

  private async connect(): Promise<void> {
    if (!this.running) return;
    this.setStatus("connecting");
    let ticket: string;
    try {
      ({ ticket } = await api.documentTicket(this.name, this.abort.signal));
    } catch (error) {
      if (!this.running) return;
      if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
        this.refuse(error.problem.detail || error.message);
        return;
      }
      this.scheduleConnect();
      return;
    }
    if (!this.running) return;
    this.provider.params = { ticket };
    this.provider.connect();
  }

  private scheduleConnect(): void {
    window.clearTimeout(this.retryTimer);
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.setStatus("offline");
    this.retryTimer = window.setTimeout(() => void this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private refuse(reason: string): void {
    this.running = false;
    this.refusal = reason;
    this.setStatus("refused");
  }

  private setStatus(status: DocumentStatus): void {
    if (this.status === "refused" || status === this.status) return;
    this.status = status;
    this.emit("status");
  }

  private emit(type: string): void {
    this.dispatchEvent(new Event(type));
  }
}
