import { hasAccessToken, request } from "./client.ts";
import type {
  Appearance,
  AppearanceChoice,
  ApplicationStatus,
  AuthSession,
  BlockedUser,
  ChatHistory,
  Community,
  CommunityBan,
  CommunityChannel,
  CommunityInput,
  CommunityMembers,
  CommunityQuery,
  CommunityRole,
  Course,
  CourseCard,
  CourseInput,
  CourseOrder,
  CourseQuery,
  CourseStats,
  Enrollment,
  Friend,
  Friends,
  GroupInvitation,
  GroupMember,
  JoinResult,
  KernelState,
  Learning,
  Lesson,
  LessonInput,
  LessonProgress,
  ListEnvelope,
  NotificationList,
  NotificationPreferences,
  Paged,
  Project,
  ProjectDetail,
  ProjectMember,
  ProjectRole,
  PublicUser,
  Review,
  ReviewList,
  Run,
  ShopItem,
  ShopItemId,
  StudioCourseItem,
  StudyGroup,
  TagCount,
  TeacherApplication,
  TokenResponse,
  TopUp,
  UnreadCounts,
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

// ---- real-time gateway --------------------------------------------------------------------

/** A single-use ticket (30 s) that opens `/ws?ticket=…`. */
export function realtimeTicket(signal?: AbortSignal): Promise<{ ticket: string; expires_in: number }> {
  return request("/api/realtime/ticket", { method: "POST", signal });
}

/** A single-use ticket that opens `/yjs/{doc}` once, within 30 seconds. */
export function documentTicket(doc: string, signal?: AbortSignal): Promise<{ ticket: string; expires_in: number }> {
  return request("/api/realtime/ticket", { method: "POST", body: { doc }, signal });
}

// ---- communities --------------------------------------------------------------------------

function querystring(query: object): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return search ? `?${search}` : "";
}

export function searchCommunities(query: CommunityQuery, signal?: AbortSignal): Promise<Paged<Community>> {
  return request<Paged<Community>>(`/api/communities${querystring(query)}`, { signal, ...asViewer() });
}

export function createCommunity(input: CommunityInput): Promise<Community> {
  return request<Community>("/api/communities", { method: "POST", body: input });
}

export function getCommunityBySlug(slug: string, signal?: AbortSignal): Promise<Community> {
  return request<Community>(`/api/communities/by-slug/${id(slug)}`, { signal, ...asViewer() });
}

export function getCommunity(communityId: number, signal?: AbortSignal): Promise<Community> {
  return request<Community>(`/api/communities/${id(communityId)}`, { signal, ...asViewer() });
}

export function joinCommunity(communityId: number): Promise<JoinResult> {
  return request<JoinResult>(`/api/communities/${id(communityId)}/join`, { method: "POST" });
}

export function leaveCommunity(communityId: number): Promise<void> {
  return request<void>(`/api/communities/${id(communityId)}/leave`, { method: "POST" });
}

export function communityMembers(
  communityId: number,
  cursor: string | number | null,
  limit = 50,
  signal?: AbortSignal,
): Promise<CommunityMembers> {
  return request<CommunityMembers>(
    `/api/communities/${id(communityId)}/members${querystring({ cursor, limit })}`,
    { signal, ...asViewer() },
  );
}

export function setCommunityRole(
  communityId: number,
  userId: number,
  role: Exclude<CommunityRole, "owner">,
): Promise<unknown> {
  return request(`/api/communities/${id(communityId)}/members/${id(userId)}/role`, {
    method: "PUT",
    body: { role },
  });
}

/** 0 minutes unmutes. */
export function muteCommunityMember(communityId: number, userId: number, minutes: number): Promise<unknown> {
  return request(`/api/communities/${id(communityId)}/members/${id(userId)}/mute`, {
    method: "POST",
    body: { minutes },
  });
}

export function banFromCommunity(communityId: number, userId: number, reason: string): Promise<unknown> {
  return request(`/api/communities/${id(communityId)}/bans`, {
    method: "POST",
    body: { user_id: userId, reason },
  });
}

export function liftCommunityBan(communityId: number, userId: number): Promise<void> {
  return request<void>(`/api/communities/${id(communityId)}/bans/${id(userId)}`, { method: "DELETE" });
}

export async function communityBans(communityId: number, signal?: AbortSignal): Promise<CommunityBan[]> {
  const body = await request<ListEnvelope<CommunityBan> | CommunityBan[]>(
    `/api/communities/${id(communityId)}/bans`,
    { signal },
  );
  return Array.isArray(body) ? body : body.items;
}

export function createCommunityChannel(
  communityId: number,
  input: { name: string; slug: string; slow_mode_seconds: number },
): Promise<CommunityChannel> {
  return request<CommunityChannel>(`/api/communities/${id(communityId)}/channels`, {
    method: "POST",
    body: input,
  });
}

export function updateCommunityChannel(
  communityId: number,
  slug: string,
  changes: { name?: string; slow_mode_seconds?: number },
): Promise<CommunityChannel> {
  return request<CommunityChannel>(`/api/communities/${id(communityId)}/channels/${id(slug)}`, {
    method: "PATCH",
    body: changes,
  });
}

// ---- study groups -------------------------------------------------------------------------

/** Lists come as `{items}` or as a bare array; both are accepted. */
function itemsOf<T>(body: ListEnvelope<T> | T[]): T[] {
  return Array.isArray(body) ? body : body.items;
}

export function createGroup(input: { name: string; description: string; community_id?: number | null }): Promise<StudyGroup> {
  const body: Record<string, unknown> = { name: input.name, description: input.description };
  if (input.community_id) body["community_id"] = input.community_id;
  return request<StudyGroup>("/api/groups", { method: "POST", body });
}

export function getGroup(groupId: number | string, signal?: AbortSignal): Promise<StudyGroup> {
  return request<StudyGroup>(`/api/groups/${id(groupId)}`, { signal });
}

export async function myGroups(signal?: AbortSignal): Promise<StudyGroup[]> {
  return itemsOf(await request<ListEnvelope<StudyGroup> | StudyGroup[]>("/api/me/groups", { signal }));
}

export async function communityGroups(communityId: number, signal?: AbortSignal): Promise<StudyGroup[]> {
  return itemsOf(
    await request<ListEnvelope<StudyGroup> | StudyGroup[]>(`/api/communities/${id(communityId)}/groups`, {
      signal,
      ...asViewer(),
    }),
  );
}

export async function groupMembers(groupId: number, signal?: AbortSignal): Promise<GroupMember[]> {
  return itemsOf(await request<ListEnvelope<GroupMember> | GroupMember[]>(`/api/groups/${id(groupId)}/members`, { signal }));
}

export function joinGroupByCode(code: string): Promise<StudyGroup> {
  return request<StudyGroup>("/api/groups/join", { method: "POST", body: { code } });
}

export function inviteToGroup(groupId: number, userId: number): Promise<GroupInvitation> {
  return request<GroupInvitation>(`/api/groups/${id(groupId)}/invitations`, {
    method: "POST",
    body: { user_id: userId },
  });
}

export async function myGroupInvitations(signal?: AbortSignal): Promise<GroupInvitation[]> {
  return itemsOf(
    await request<ListEnvelope<GroupInvitation> | GroupInvitation[]>("/api/me/group-invitations", { signal }),
  );
}

export function acceptGroupInvitation(invitationId: number): Promise<StudyGroup> {
  return request<StudyGroup>(`/api/group-invitations/${id(invitationId)}/accept`, { method: "POST" });
}

export function declineGroupInvitation(invitationId: number): Promise<void> {
  return request<void>(`/api/group-invitations/${id(invitationId)}/decline`, { method: "POST" });
}

export function leaveGroup(groupId: number): Promise<void> {
  return request<void>(`/api/groups/${id(groupId)}/leave`, { method: "POST" });
}

// ---- friends ------------------------------------------------------------------------------

export function listFriends(signal?: AbortSignal): Promise<Friends> {
  return request<Friends>("/api/friends", { signal });
}

export function requestFriend(userId: number): Promise<{ status: "pending" | "accepted" }> {
  return request("/api/friends/requests", { method: "POST", body: { user_id: userId } });
}

export function acceptFriend(userId: number): Promise<Friend> {
  return request<Friend>(`/api/friends/requests/${id(userId)}/accept`, { method: "POST" });
}

export function declineFriend(userId: number): Promise<void> {
  return request<void>(`/api/friends/requests/${id(userId)}/decline`, { method: "POST" });
}

/** Removes a friend or cancels a request. */
export function removeFriend(userId: number): Promise<void> {
  return request<void>(`/api/friends/${id(userId)}`, { method: "DELETE" });
}

export function blockUser(userId: number): Promise<unknown> {
  return request("/api/blocks", { method: "POST", body: { user_id: userId } });
}

export function unblockUser(userId: number): Promise<void> {
  return request<void>(`/api/blocks/${id(userId)}`, { method: "DELETE" });
}

export async function listBlocks(signal?: AbortSignal): Promise<BlockedUser[]> {
  return itemsOf(await request<ListEnvelope<BlockedUser> | BlockedUser[]>("/api/blocks", { signal }));
}

// ---- chat ---------------------------------------------------------------------------------

/** Newest first; `before` is a sequence number (exclusive). */
export function channelHistory(
  channel: string,
  before: number | null,
  limit = 30,
  signal?: AbortSignal,
): Promise<ChatHistory> {
  return request<ChatHistory>(`/api/channels/${id(channel)}/messages${querystring({ before, limit })}`, { signal });
}

export function markChannelRead(channel: string, seq: number, options: { keepalive?: boolean } = {}): Promise<{ unread: number }> {
  return request(`/api/channels/${id(channel)}/read`, { method: "POST", body: { seq }, keepalive: options.keepalive ?? false });
}

export function myUnread(signal?: AbortSignal): Promise<UnreadCounts> {
  return request<UnreadCounts>("/api/me/unread", { signal });
}

// ---- notifications ------------------------------------------------------------------------

export function listNotifications(
  query: { cursor?: number | null; limit?: number; unread?: boolean },
  signal?: AbortSignal,
): Promise<NotificationList> {
  return request<NotificationList>(`/api/notifications${querystring({ ...query, unread: query.unread ? "true" : "" })}`, {
    signal,
  });
}

export function unreadNotificationCount(signal?: AbortSignal): Promise<{ unread: number }> {
  return request("/api/notifications/unread-count", { signal });
}

export function markNotificationRead(notificationId: number): Promise<{ unread: number }> {
  return request(`/api/notifications/${id(notificationId)}/read`, { method: "POST" });
}

export function markAllNotificationsRead(): Promise<{ unread: number }> {
  return request("/api/notifications/read-all", { method: "POST" });
}

export function notificationPreferences(signal?: AbortSignal): Promise<NotificationPreferences> {
  return request<NotificationPreferences>("/api/notifications/preferences", { signal });
}

export function setNotificationPreferences(muted: Record<string, boolean>): Promise<NotificationPreferences> {
  return request<NotificationPreferences>("/api/notifications/preferences", { method: "PUT", body: { muted } });
}

// ---- projects (the IDE) -------------------------------------------------------------------

export async function myProjects(signal?: AbortSignal): Promise<Project[]> {
  return (await request<{ items: Project[] }>("/api/me/projects", { signal })).items;
}

export function createProject(input: { name: string; group_id?: number | null }): Promise<ProjectDetail> {
  const body: Record<string, unknown> = { name: input.name };
  if (input.group_id) body["group_id"] = input.group_id;
  return request<ProjectDetail>("/api/projects", { method: "POST", body });
}

export function getProject(projectId: string | number, signal?: AbortSignal): Promise<ProjectDetail> {
  return request<ProjectDetail>(`/api/projects/${id(projectId)}`, { signal });
}

export function addProjectMember(projectId: number, userId: number, role: Exclude<ProjectRole, "owner">): Promise<ProjectMember> {
  return request<ProjectMember>(`/api/projects/${id(projectId)}/members`, { method: "POST", body: { user_id: userId, role } });
}

/** Run a file (`{path}`) or a piece of code (`{code}`) in the project's shared kernel. */
export function startRun(projectId: number, input: { path: string } | { code: string }): Promise<Run> {
  return request<Run>(`/api/projects/${id(projectId)}/runs`, { method: "POST", body: input });
}

export function getRun(projectId: number, runId: number | string, signal?: AbortSignal): Promise<Run> {
  return request<Run>(`/api/projects/${id(projectId)}/runs/${id(runId)}`, { signal });
}

/** Recent runs with their outputs, newest first. */
export async function recentRuns(projectId: number, limit = 20, signal?: AbortSignal): Promise<Run[]> {
  return (await request<ListEnvelope<Run>>(`/api/projects/${id(projectId)}/runs?limit=${limit}`, { signal })).items;
}

export function interruptKernel(projectId: number): Promise<KernelState> {
  return request<KernelState>(`/api/projects/${id(projectId)}/kernel/interrupt`, { method: "POST" });
}

export function restartKernel(projectId: number): Promise<KernelState> {
  return request<KernelState>(`/api/projects/${id(projectId)}/kernel/restart`, { method: "POST" });
}

export function kernelState(projectId: number, signal?: AbortSignal): Promise<KernelState> {
  return request<KernelState>(`/api/projects/${id(projectId)}/kernel`, { signal });
}
