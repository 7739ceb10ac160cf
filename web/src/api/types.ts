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
  /** What the user applied from the profile shop. */
  appearance?: Appearance;
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
  /** 402: coins in the wallet and coins needed. */
  balance?: number;
  price?: number;
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

// ---- courses ------------------------------------------------------------------------------

export type CourseLevel = "beginner" | "intermediate" | "advanced";
export const COURSE_LEVELS: readonly CourseLevel[] = ["beginner", "intermediate", "advanced"];
export type CourseStatus = "draft" | "published" | "archived";
export type LessonKind = "video" | "text";
export type CourseSort = "relevance" | "popular" | "newest" | "rating" | "price" | "price_desc";

export interface UserRef {
  id: number;
  display_name: string;
}

export interface Rating {
  /** 1 to 5; null before the first review. */
  average: number | null;
  count: number;
}

/** A course as the catalog lists it. */
export interface CourseCard {
  id: number;
  slug: string;
  title: string;
  subtitle: string;
  tags: string[];
  level: CourseLevel;
  language: string;
  /** coins; 0 is free */
  price: number;
  owner: UserRef;
  rating: Rating;
  enrollments: number;
  lesson_count: number;
  /** seconds of video */
  duration: number;
  cover_url: string | null;
  published_at: string | null;
}

export interface Paged<T> {
  items: T[];
  page: number;
  page_size: number;
  total: number;
}

export interface CourseQuery {
  q?: string;
  tag?: string;
  level?: CourseLevel | "";
  sort?: CourseSort | "";
  page?: number;
  page_size?: number;
}

export interface TagCount {
  tag: string;
  count: number;
}

export interface CourseLesson {
  id: number;
  title: string;
  kind: LessonKind;
  free_preview: boolean;
  /** seconds, for video lessons */
  duration: number | null;
  /** Only for the owner. */
  video_id: string | null;
  /** The viewer's completion; null when not signed in or not enrolled. */
  completed?: boolean | null;
}

export interface CourseSection {
  id: number;
  title: string;
  lessons: CourseLesson[];
}

/** `GET /api/courses/{id}`: a course with its curriculum. */
export interface Course {
  id: number;
  slug: string;
  title: string;
  subtitle: string;
  description: string;
  tags: string[];
  level: CourseLevel;
  language: string;
  price: number;
  status: CourseStatus;
  owner_id: number;
  owner?: UserRef;
  enrollments?: number;
  cover_url?: string | null;
  /** The viewer is enrolled. */
  enrolled?: boolean;
  created_at: string;
  published_at: string | null;
  rating: Rating;
  sections: CourseSection[];
}

export interface CourseInput {
  title: string;
  subtitle: string;
  description: string;
  tags: string[];
  level: CourseLevel;
  language: string;
  price: number;
}

export interface LessonInput {
  title: string;
  kind: LessonKind;
  video_id?: string;
  body?: string;
  free_preview: boolean;
}

export interface CourseOrder {
  sections: number[];
  lessons: Record<string, number[]>;
}

export interface Enrollment {
  id: number;
  course_id: number;
  price_paid: number;
  created_at: string;
}

export interface Review {
  id: number;
  rating: number;
  comment: string;
  author: UserRef;
  created_at: string;
  updated_at: string;
}

export interface ReviewList {
  items: Review[];
  rating: Rating;
  next_cursor: number | null;
}

export interface LessonProgress {
  /** seconds */
  position: number;
  watched_seconds: number;
  /** 0..100 */
  percent: number;
  completed: boolean;
  completed_at: string | null;
}

/** `GET /api/lessons/{id}`; body and video_id only for users entitled to the lesson. */
export interface Lesson {
  id: number;
  course_id: number;
  section_id: number;
  title: string;
  kind: LessonKind;
  free_preview: boolean;
  duration: number | null;
  body?: string | null;
  video_id?: string | null;
  /** The viewer is enrolled in the lesson's course (only then is progress recorded). */
  enrolled?: boolean;
  progress: LessonProgress | null;
  prev_lesson_id: number | null;
  next_lesson_id: number | null;
}

/** A played stretch of a video, [from, to] in seconds. */
export type WatchedRange = [number, number];

export interface LearningItem {
  course: CourseCard;
  enrolled_at: string;
  /** 0..100 */
  percent: number;
  completed_lessons: number;
  total_lessons: number;
  next_lesson: { id: number; title: string } | null;
  last_activity_at: string | null;
}

export interface Learning {
  items: LearningItem[];
  balance: number;
}

/** A teacher's own course in the studio list, in any status. */
export interface StudioCourse extends Partial<CourseCard> {
  id: number;
  title: string;
  status: CourseStatus;
  enrollments: number;
  coins_earned?: number;
}

export interface StudioCourseItem {
  course: StudioCourse;
  coins_earned?: number;
  enrollments?: number;
}

export interface LessonStats {
  id: number;
  title: string;
  kind: LessonKind;
  duration: number | null;
  viewers: number;
  completed: number;
  /** 0..1 */
  completion_rate: number;
  dropoff: { bucket_seconds: number; counts: number[] } | null;
}

export interface CourseStats {
  course_id: number;
  enrollments: { total: number; by_day: { date: string; count: number }[] };
  coins_earned: number;
  coins_by_day: { date: string; coins: number }[];
  lessons: LessonStats[];
}

// ---- coins --------------------------------------------------------------------------------

export interface Wallet {
  balance: number;
  currency: string;
}

export interface WalletLine {
  id: number;
  kind: string;
  /** Signed from the wallet's side: coins in are positive. */
  amount: number;
  memo: string;
  reference: Record<string, unknown>;
  created_at: string;
}

export interface WalletHistory {
  items: WalletLine[];
  next_cursor: number | null;
}

export type TopUpStatus = "pending" | "paid" | "declined";

export interface TopUp {
  id: string;
  pack: string;
  coins: number;
  price_cents: number;
  currency: string;
  status: TopUpStatus;
  checkout_url?: string | null;
}

// ---- profile shop -------------------------------------------------------------------------

export type ShopItemKind = "theme" | "badge" | "frame";
export const SHOP_ITEM_KINDS: readonly ShopItemKind[] = ["theme", "badge", "frame"];

/**
 * What the web applies: a theme's {background, accent, text}, a badge's {emoji, color}, a
 * frame's {border, shadow}.
 */
export interface ItemStyle {
  background?: string;
  accent?: string;
  text?: string;
  emoji?: string;
  color?: string;
  border?: string;
  shadow?: string;
}

/** Shop item ids, e.g. "theme-ocean". */
export type ShopItemId = string;

export interface ShopItem {
  id: ShopItemId;
  kind: ShopItemKind;
  name: string;
  description: string;
  price: number;
  style: ItemStyle;
  owned: boolean;
}

export interface AppliedItem {
  id: ShopItemId;
  name: string;
  style: ItemStyle;
}

export interface Appearance {
  theme: AppliedItem | null;
  badge: AppliedItem | null;
  frame: AppliedItem | null;
}

export interface AppearanceChoice {
  theme: ShopItemId | null;
  badge: ShopItemId | null;
  frame: ShopItemId | null;
}

export interface PublicUser {
  id: number;
  display_name: string;
  bio: string;
  avatar_color: string;
  roles: string[];
  appearance: Appearance;
}

// ---- social (docs/social.md) ----------------------------------------------------------------

/** Who someone is, as chat, presence and notifications show them. */
export interface Person {
  id: number;
  display_name: string;
  /** "#rrggbb"; absent where the hub only sends a name. */
  avatar_color?: string;
}

export type CommunityRole = "owner" | "admin" | "moderator" | "member";
export const COMMUNITY_ROLES: readonly CommunityRole[] = ["owner", "admin", "moderator", "member"];

export interface CommunityChannel {
  name: string;
  slug: string;
  /** Gateway channel: `chat:community:<id>` (default) or `chat:community:<id>:<slug>`. */
  channel: string;
  slow_mode_seconds: number;
}

export interface Community {
  id: number;
  slug: string;
  name: string;
  description: string;
  skills: string[];
  owner: Person;
  member_count: number;
  /** The default channel first. */
  channels: CommunityChannel[];
  my_role: CommunityRole | null;
  muted_until: string | null;
}

export interface CommunityInput {
  name: string;
  slug: string;
  skills: string[];
  description: string;
}

export interface CommunityQuery {
  q?: string;
  skill?: string;
  page?: number;
  page_size?: number;
}

export interface CommunityMember {
  user: Person;
  role: CommunityRole;
  joined_at: string;
  muted_until: string | null;
}

export interface CommunityMembers {
  items: CommunityMember[];
  next_cursor: string | number | null;
}

export interface CommunityBan {
  user: Person;
  reason: string;
  created_at?: string;
  banned_by?: Person | null;
}

export interface JoinResult {
  role: CommunityRole;
  /** Coins earned by this join (0 after the first time). */
  reward: number;
}

export interface StudyGroup {
  id: number;
  name: string;
  description: string;
  community_id: number | null;
  owner: Person;
  member_count: number;
  /** `chat:group:<id>` */
  channel: string;
  my_role: string | null;
  /** Members only; the invite link is `/groups/join/<invite_code>`. */
  invite_code?: string | null;
}

export interface GroupMember {
  user: Person;
  role?: string;
  joined_at?: string;
}

export interface GroupInvitation {
  id: number;
  group: StudyGroup | { id: number; name: string };
  invited_by: Person;
  status: string;
  created_at?: string;
}

export interface Friend {
  user: Person;
  since: string;
  /** `dm:<low id>:<high id>` */
  dm_channel: string;
}

export interface FriendRequest {
  user: Person;
  created_at: string;
}

export interface Friends {
  friends: Friend[];
  incoming: FriendRequest[];
  outgoing: FriendRequest[];
}

export interface BlockedUser {
  user: Person;
  created_at?: string;
}

/** A chat message as `GET /api/channels/{channel}/messages` returns it (as it reads now). */
export interface ChatMessage {
  seq: number;
  text: string;
  author: Person | null;
  reply_to: number | null;
  mentions: number[];
  /** emoji → user ids */
  reactions: Record<string, number[]>;
  edited_at: string | null;
  deleted: boolean;
  sent_at: string;
}

export interface ChatHistory {
  items: ChatMessage[];
  next_before: number | null;
}

export interface UnreadCounts {
  channels: Record<string, number>;
}

export type NotificationType =
  | "friend.request"
  | "friend.accepted"
  | "chat.mention"
  | "chat.reply"
  | "group.invitation"
  | "watch_party.started"
  | "community.role"
  | "community.joined"
  | "teacher_application.decided"
  | "course.purchased"
  | "video.ready"
  | "video.failed";

export interface AppNotification {
  id: number;
  type: NotificationType | string;
  /** What to show, e.g. "Ana and 3 others joined Python"; live pushes do not carry it. */
  text?: string;
  /** Latest first, at most 10. */
  actors: Person[];
  actor_count: number;
  data: Record<string, unknown>;
  read: boolean;
  created_at: string;
  updated_at: string;
}

export interface NotificationList {
  items: AppNotification[];
  unread: number;
  next_cursor: number | null;
}

export interface NotificationPreferences {
  /** type → muted */
  muted: Record<string, boolean>;
  /** type → what it is about */
  labels: Record<string, string>;
}

// ---- projects (the IDE) -------------------------------------------------------------------

export type ProjectRole = "owner" | "editor" | "viewer";

export interface Project {
  id: number;
  name: string;
  /** The document's name: open it at `/yjs/{doc}`. */
  doc: string;
  /** The caller's role. */
  role: ProjectRole;
  owner: Person;
  group_id: number | null;
  created_at: string;
}

export interface ProjectMember {
  user: Person;
  role: ProjectRole;
  added_at: string;
}

export interface ProjectDetail extends Project {
  members: ProjectMember[];
}

export type RunStatus = "queued" | "running" | "ok" | "error" | "interrupted" | "limit";

export type MimeBundle = Partial<Record<"text/plain" | "text/html" | "image/png", string>> & Record<string, unknown>;

export type RunOutput =
  | { output_type: "stream"; name: "stdout" | "stderr" | string; text: string }
  | { output_type: "execute_result" | "display_data"; data: MimeBundle }
  | { output_type: "error"; ename: string; evalue: string; traceback: string[] };

export interface Run {
  id: number | string;
  status: RunStatus;
  outputs?: RunOutput[];
  /** The file that ran, when it was a file. */
  path?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  created_at?: string | null;
  /** Who started it: a person, or only their id. */
  by?: Person | number | null;
  /** The output cap was reached: what follows was dropped. */
  truncated?: boolean;
}

export interface KernelState {
  /** "none" | "starting" | "idle" | "busy" | "dead" */
  state: string;
  /** The run in progress. */
  run?: number | null;
  /** Runs waiting. */
  queued?: number;
}
