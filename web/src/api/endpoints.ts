import { request } from "./client.ts";
import type {
  ApplicationStatus,
  AuthSession,
  ListEnvelope,
  TeacherApplication,
  TokenResponse,
  UploadInfo,
  User,
  UserEnvelope,
  Video,
} from "./types.ts";

export interface RegisterInput {
  email: string;
  password: string;
  display_name: string;
}

export interface ProfileChanges {
  display_name?: string;
  bio?: string;
  avatar_color?: string;
}

export interface ApplicationInput {
  qualifications: string;
  experience: string;
  links: string[];
}

export async function register(input: RegisterInput): Promise<User> {
  const { user } = await request<UserEnvelope>("/api/auth/register", {
    method: "POST",
    body: input,
    auth: false,
  });
  return user;
}

export function login(email: string, password: string): Promise<TokenResponse> {
  return request<TokenResponse>("/api/auth/login", {
    method: "POST",
    body: { email, password },
    auth: false,
  });
}

export async function listSessions(signal?: AbortSignal): Promise<AuthSession[]> {
  const { items } = await request<ListEnvelope<AuthSession>>("/api/auth/sessions", { signal });
  return items;
}

export function endOtherSession(id: string): Promise<void> {
  return request<void>(`/api/auth/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export async function fetchMe(signal?: AbortSignal): Promise<User> {
  const { user } = await request<UserEnvelope>("/api/me", { signal });
  return user;
}

export async function updateMe(changes: ProfileChanges): Promise<User> {
  const { user } = await request<UserEnvelope>("/api/me", { method: "PATCH", body: changes });
  return user;
}

export async function listMyApplications(signal?: AbortSignal): Promise<TeacherApplication[]> {
  const { items } = await request<ListEnvelope<TeacherApplication>>(
    "/api/teacher-applications",
    { signal },
  );
  return items;
}

export function applyToTeach(input: ApplicationInput): Promise<TeacherApplication> {
  return request<TeacherApplication>("/api/teacher-applications", { method: "POST", body: input });
}

export async function listApplications(
  status: ApplicationStatus,
  signal?: AbortSignal,
): Promise<TeacherApplication[]> {
  const query = new URLSearchParams({ status });
  const { items } = await request<ListEnvelope<TeacherApplication>>(
    `/api/admin/teacher-applications?${query}`,
    { signal },
  );
  return items;
}

export function approveApplication(id: number): Promise<TeacherApplication> {
  return request<TeacherApplication>(`/api/admin/teacher-applications/${id}/approve`, {
    method: "POST",
  });
}

export function rejectApplication(id: number, reason: string): Promise<TeacherApplication> {
  return request<TeacherApplication>(`/api/admin/teacher-applications/${id}/reject`, {
    method: "POST",
    body: { reason },
  });
}

/** The signed-in teacher's own videos, newest first. */
export async function listVideos(signal?: AbortSignal): Promise<Video[]> {
  const { items } = await request<ListEnvelope<Video>>("/api/videos", { signal });
  return items;
}

export function getVideo(id: string, signal?: AbortSignal): Promise<Video> {
  return request<Video>(`/api/videos/${encodeURIComponent(id)}`, { signal });
}

export function deleteVideo(id: string): Promise<void> {
  return request<void>(`/api/videos/${encodeURIComponent(id)}`, { method: "DELETE" });
}

/** State of a tus upload, by the URL the tus server assigned to it (same origin). */
export function getUploadInfo(uploadUrl: string, signal?: AbortSignal): Promise<UploadInfo> {
  return request<UploadInfo>(uploadUrl, { signal });
}
