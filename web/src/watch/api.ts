import { request } from "../api/client.ts";
import type { Person } from "../api/types.ts";

/** A member as `GET /api/watch-parties/{id}` lists them. */
export interface PartyPerson extends Person {
  /** Connected to the party's channel now. */
  online: boolean;
}

/** `POST /api/watch-parties`, `GET /api/watch-parties/{id}` (docs/watch-parties.md). */
export interface WatchParty {
  id: number;
  lesson: { id: number; title: string; video_id: string | null; duration: number | null };
  course_id: number;
  group_id: number | null;
  host: PartyPerson;
  controller: PartyPerson | null;
  control: "host" | "everyone";
  invite_code: string;
  /** Path of the page that joins with the code. */
  invite_url: string;
  /** `watch:<id>`: playback state and commands. */
  channel: string;
  /** `chat:party:<id>`. */
  chat_channel: string;
  /** `call:<id>`: the call's signalling. */
  call_channel: string;
  members: PartyPerson[];
  status: "live" | "ended";
  created_at: string;
  ended_at: string | null;
}

/** One member's player as the room sees it. */
export interface MemberState {
  id: number;
  ready: boolean;
  no_wait: boolean;
  /** Held the room too often lately: not waited for. */
  exempt: boolean;
}

/** `{"type": "state"}` on `watch:<id>`. */
export interface PlaybackState {
  type: "state";
  lesson: number;
  /** Advancing now. */
  playing: boolean;
  /** Meant to play: while the room waits for someone, `playing` is false and this true. */
  resume: boolean;
  /** Seconds at server time `at`. */
  position: number;
  rate: number;
  /** Server time (Unix ms) that `position` refers to. */
  at: number;
  version: number;
  waiting_for: number[];
  controller: number | null;
  control: "host" | "everyone";
  host: number;
  members: MemberState[];
}

export function createParty(lessonId: number, control: "host" | "everyone" = "host", groupId?: number): Promise<WatchParty> {
  const body: Record<string, unknown> = { lesson_id: lessonId, control };
  if (groupId !== undefined) body["group_id"] = groupId;
  return request<WatchParty>("/api/watch-parties", { method: "POST", body });
}

export function getParty(partyId: number | string, signal?: AbortSignal): Promise<WatchParty> {
  return request<WatchParty>(`/api/watch-parties/${encodeURIComponent(String(partyId))}`, { signal });
}

export function joinParty(code: string): Promise<WatchParty> {
  return request<WatchParty>("/api/watch-parties/join", { method: "POST", body: { code } });
}

export function handControl(partyId: number, userId: number): Promise<WatchParty> {
  return request<WatchParty>(`/api/watch-parties/${partyId}/control`, { method: "POST", body: { user_id: userId } });
}

export function switchLesson(partyId: number, lessonId: number): Promise<WatchParty> {
  return request<WatchParty>(`/api/watch-parties/${partyId}/lesson`, { method: "POST", body: { lesson_id: lessonId } });
}

export function endParty(partyId: number): Promise<WatchParty> {
  return request<WatchParty>(`/api/watch-parties/${partyId}/end`, { method: "POST" });
}
