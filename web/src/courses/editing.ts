import { request } from "../api/client.ts";
import type { Course, CourseLesson, LessonKind } from "../api/types.ts";

/** `PATCH /api/sections/{id}` answers with the section without its lessons. */
export interface SectionSummary {
  id: number;
  course_id: number;
  title: string;
  position: number;
}

/** `PATCH /api/lessons/{id}` answers with the lesson's place and flags, not its content. */
export interface LessonSummary {
  id: number;
  section_id: number;
  title: string;
  kind: LessonKind;
  position: number;
  free_preview: boolean;
}

/** What `PATCH /api/lessons/{id}` accepts; send only what changed (null is refused). */
export interface LessonChanges {
  title?: string;
  /** Video lessons only. */
  video_id?: string;
  /** Markdown, text lessons only. */
  body?: string;
  free_preview?: boolean;
  /** Moves the lesson to the end of this section of the same course. */
  section_id?: number;
}

export function renameSection(sectionId: number, title: string): Promise<SectionSummary> {
  return request<SectionSummary>(`/api/sections/${sectionId}`, { method: "PATCH", body: { title } });
}

/** Refused with 409 while the section still has lessons. */
export function deleteSection(sectionId: number): Promise<void> {
  return request<void>(`/api/sections/${sectionId}`, { method: "DELETE" });
}

export function editLesson(lessonId: number, changes: LessonChanges): Promise<LessonSummary> {
  return request<LessonSummary>(`/api/lessons/${lessonId}`, { method: "PATCH", body: changes });
}

/** Refused with 409 for the last lesson of a published course. */
export function deleteLesson(lessonId: number): Promise<void> {
  return request<void>(`/api/lessons/${lessonId}`, { method: "DELETE" });
}

/** Off the catalog and not for sale; enrolled students keep it. Publishing brings it back. */
export function archiveCourse(courseId: number): Promise<Course> {
  return request<Course>(`/api/courses/${courseId}/archive`, { method: "POST" });
}

/** What the lesson edit form holds when submitted. */
export interface LessonEdit {
  title: string;
  free_preview: boolean;
  section_id: number;
  /** Only for video lessons, and only when a video was picked. */
  video_id?: string;
  /** Only for text lessons, and only once the current body was loaded. */
  body?: string;
}

/**
 * The fields of `edit` that differ from the lesson as it is, so a save sends no more than the
 * teacher changed. An empty result means there is nothing to send.
 *
 * Args:
 *   lesson: the lesson as the curriculum shows it.
 *   sectionId: the section it is in now.
 *   body: its current markdown (text lessons), or null when it was not loaded.
 *   edit: the submitted form.
 */
export function lessonChanges(lesson: CourseLesson, sectionId: number, body: string | null, edit: LessonEdit): LessonChanges {
  const changes: LessonChanges = {};
  if (edit.title !== lesson.title) changes.title = edit.title;
  if (edit.free_preview !== lesson.free_preview) changes.free_preview = edit.free_preview;
  if (edit.section_id !== sectionId) changes.section_id = edit.section_id;
  if (lesson.kind === "video" && edit.video_id && edit.video_id !== lesson.video_id) changes.video_id = edit.video_id;
  if (lesson.kind === "text" && edit.body !== undefined && body !== null && edit.body !== body) changes.body = edit.body;
  return changes;
}
