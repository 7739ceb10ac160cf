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
