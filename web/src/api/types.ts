export type Role = "student" | "teacher" | "admin";

export interface User {
  id: number;
  email: string;
  display_name: string;
  bio: string;
  /** "#rrggbb" */
  avatar_color: string;
  roles: string[];
  is_teacher: boolean;
  is_admin: boolean;
  created_at: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  /** Lifetime of access_token in seconds. */
  expires_in: number;
  user: User;
}

export interface UserEnvelope {
  user: User;
}

export interface ListEnvelope<T> {
  items: T[];
}

export interface AuthSession {
  id: string;
  device: string;
  ip: string | null;
  created_at: string;
  last_used_at: string;
  current: boolean;
}

export type ApplicationStatus = "pending" | "approved" | "rejected";

export const APPLICATION_STATUSES: readonly ApplicationStatus[] = ["pending", "approved", "rejected"];

export interface TeacherApplication {
  id: number;
  status: ApplicationStatus;
  qualifications: string;
  experience: string;
  links: string[];
  reason: string | null;
  created_at: string;
  decided_at: string | null;
  applicant: { id: number; display_name: string; email: string };
}

export interface FieldProblem {
  field: string;
  message: string;
  code: string;
}

/** RFC 9457 problem details as the hub sends them. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id?: string;
  errors?: FieldProblem[];
  retry_after?: number;
}

export type VideoStatus = "queued" | "processing" | "ready" | "failed";

export interface Rendition {
  /** e.g. "1080p" */
  name: string;
  height: number;
  /** bits per second */
  bandwidth: number;
}

export interface Video {
  id: string;
  title: string;
  status: VideoStatus;
  /** 0..100 */
  progress: number;
  /** e.g. "queued", "probing", "transcoding", "packaging", "done" */
  stage: string;
  error: string | null;
  /** seconds */
  duration: number | null;
  width: number | null;
  height: number | null;
  renditions: Rendition[];
  /**
   * HLS master playlist. Carries its authorisation in the path and expires (hours); set as soon
   * as the first segments exist, even while the video is still processing.
   */
  playback_url: string | null;
  poster_url: string | null;
  /** WebVTT whose cues are "sprite.jpg#xywh=x,y,w,h", relative to the VTT's own URL. */
  storyboard_url: string | null;
  /** MP4 */
  download_url: string | null;
  created_at: string;
}

/** `GET <tus upload url>` with `Accept: application/json`. */
export interface UploadInfo {
  id: string;
  offset: number;
  length: number;
  video_id: string | null;
}
