import { hasAccessToken, request } from "./client.ts";
import type {
  Appearance,
  AppearanceChoice,
  ApplicationStatus,
  AuthSession,
  Course,
  CourseCard,
  CourseInput,
  CourseOrder,
  CourseQuery,
  CourseStats,
  Enrollment,
  Learning,
  Lesson,
  LessonInput,
  LessonProgress,
  ListEnvelope,
  Paged,
  PublicUser,
  Review,
  ReviewList,
  ShopItem,
  ShopItemId,
  StudioCourseItem,
  TagCount,
  TeacherApplication,
  TokenResponse,
  TopUp,
  UploadInfo,
  User,
  UserEnvelope,
  Video,
  Wallet,
  WalletHistory,
  WatchedRange,
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

// ---- courses ------------------------------------------------------------------------------

/** Public reads still identify a signed-in viewer (enrolled, completion, owned items). */
function asViewer(): { auth: boolean } {
  return { auth: hasAccessToken() };
}

function id(value: string | number): string {
  return encodeURIComponent(String(value));
}

export function searchCourses(query: CourseQuery, signal?: AbortSignal): Promise<Paged<CourseCard>> {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return request<Paged<CourseCard>>(`/api/courses${search ? `?${search}` : ""}`, { signal, auth: false });
}

export async function listTags(signal?: AbortSignal): Promise<TagCount[]> {
  const { items } = await request<ListEnvelope<TagCount>>("/api/tags", { signal, auth: false });
  return items;
}

export function getCourse(courseId: string | number, signal?: AbortSignal): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}`, { signal, ...asViewer() });
}

export function createCourse(input: CourseInput): Promise<Course> {
  return request<Course>("/api/courses", { method: "POST", body: input });
}

export function updateCourse(courseId: number, changes: Partial<CourseInput>): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}`, { method: "PATCH", body: changes });
}

/** JPEG, PNG or WebP, at most 5 MB; the hub stores it re-encoded. */
export function uploadCover(courseId: number, image: Blob): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}/cover`, { method: "PUT", body: image });
}

export function addSection(courseId: number, title: string): Promise<{ id: number; title: string }> {
  return request(`/api/courses/${id(courseId)}/sections`, { method: "POST", body: { title } });
}

export function addLesson(sectionId: number, input: LessonInput): Promise<{ id: number; title: string }> {
  return request(`/api/sections/${id(sectionId)}/lessons`, { method: "POST", body: input });
}

export function reorderCourse(courseId: number, order: CourseOrder): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}/order`, { method: "PUT", body: order });
}

export function publishCourse(courseId: number): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}/publish`, { method: "POST" });
}

export function unpublishCourse(courseId: number): Promise<Course> {
  return request<Course>(`/api/courses/${id(courseId)}/unpublish`, { method: "POST" });
}

/** Pays the price (or enrolls for free); `idempotencyKey` makes a retry of the same attempt safe. */
export async function purchaseCourse(courseId: number, idempotencyKey: string): Promise<Enrollment> {
  const { enrollment } = await request<{ enrollment: Enrollment }>(`/api/courses/${id(courseId)}/purchase`, {
    method: "POST",
    idempotencyKey,
  });
  return enrollment;
}

export function listReviews(courseId: number, cursor: number | null, signal?: AbortSignal): Promise<ReviewList> {
  const query = new URLSearchParams({ limit: "20" });
  if (cursor !== null) query.set("cursor", String(cursor));
  return request<ReviewList>(`/api/courses/${id(courseId)}/reviews?${query}`, { signal, auth: false });
}

export function writeReview(courseId: number, rating: number, comment: string): Promise<Review> {
  return request<Review>(`/api/courses/${id(courseId)}/review`, { method: "PUT", body: { rating, comment } });
}

// ---- learning -----------------------------------------------------------------------------

export function getLesson(lessonId: string | number, signal?: AbortSignal): Promise<Lesson> {
  return request<Lesson>(`/api/lessons/${id(lessonId)}`, { signal });
}

/** A progress heartbeat: where the player is and what it played since the previous one. */
export function sendProgress(
  lessonId: number,
  position: number,
  watched: WatchedRange[],
  options: { keepalive?: boolean } = {},
): Promise<LessonProgress> {
  return request<LessonProgress>(`/api/lessons/${id(lessonId)}/progress`, {
    method: "POST",
    body: { position, watched },
    keepalive: options.keepalive ?? false,
  });
}

export function completeLesson(lessonId: number): Promise<LessonProgress> {
  return request<LessonProgress>(`/api/lessons/${id(lessonId)}/complete`, { method: "POST" });
}

export function myLearning(signal?: AbortSignal): Promise<Learning> {
  return request<Learning>("/api/me/learning", { signal });
}

// ---- studio dashboards --------------------------------------------------------------------

export async function listStudioCourses(signal?: AbortSignal): Promise<StudioCourseItem[]> {
  const { items } = await request<ListEnvelope<StudioCourseItem>>("/api/studio/courses", { signal });
  return items;
}

export function courseStats(courseId: string | number, signal?: AbortSignal): Promise<CourseStats> {
  return request<CourseStats>(`/api/studio/courses/${id(courseId)}/stats`, { signal });
}

// ---- coins --------------------------------------------------------------------------------

export function getWallet(signal?: AbortSignal): Promise<Wallet> {
  return request<Wallet>("/api/wallet", { signal });
}

export function walletHistory(cursor: number | null, limit = 50, signal?: AbortSignal): Promise<WalletHistory> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor !== null) query.set("cursor", String(cursor));
  return request<WalletHistory>(`/api/wallet/transactions?${query}`, { signal });
}

export function startTopUp(pack: string, idempotencyKey: string): Promise<TopUp> {
  return request<TopUp>("/api/wallet/topups", { method: "POST", body: { pack }, idempotencyKey });
}

export function getTopUp(topupId: string, signal?: AbortSignal): Promise<TopUp> {
  return request<TopUp>(`/api/wallet/topups/${id(topupId)}`, { signal });
}

// ---- profile shop -------------------------------------------------------------------------

export async function listShopItems(signal?: AbortSignal): Promise<ShopItem[]> {
  const { items } = await request<ListEnvelope<ShopItem>>("/api/shop/items", { signal, ...asViewer() });
  return items;
}

export function buyShopItem(itemId: ShopItemId, idempotencyKey: string): Promise<{ item: ShopItem; balance: number }> {
  return request(`/api/shop/items/${id(itemId)}/purchase`, { method: "POST", idempotencyKey });
}

export async function setAppearance(choice: AppearanceChoice): Promise<Appearance> {
  const { appearance } = await request<{ appearance: Appearance }>("/api/me/appearance", {
    method: "PUT",
    body: choice,
  });
  return appearance;
}

export async function getUser(userId: string | number, signal?: AbortSignal): Promise<PublicUser> {
  const { user } = await request<{ user: PublicUser }>(`/api/users/${id(userId)}`, { signal, auth: false });
  return user;
}
