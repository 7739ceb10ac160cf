import type { Course, CourseLesson } from "../api/types.ts";

/** Lessons in curriculum order, across sections. */
export function lessonsInOrder(course: Course): CourseLesson[] {
  return course.sections.flatMap((section) => section.lessons);
}

/** Where "Continue learning" goes: the first lesson not completed yet, else the first one. */
export function nextLesson(course: Course): CourseLesson | null {
  const lessons = lessonsInOrder(course);
  return lessons.find((lesson) => lesson.completed !== true) ?? lessons[0] ?? null;
}

export function lessonHref(courseId: number, lessonId: number): string {
  return `/learn/${courseId}/${lessonId}`;
}

/** Whether the viewer may open a lesson: enrolled, the owner, or a free preview. */
export function canOpen(course: Course, lesson: CourseLesson, viewerId: number | null, isAdmin = false): boolean {
  return lesson.free_preview || course.enrolled === true || (viewerId !== null && viewerId === course.owner_id) || isAdmin;
}
