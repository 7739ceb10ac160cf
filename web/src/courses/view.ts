import { css, html, nothing, type TemplateResult } from "lit";
import type { CourseCard, CourseLevel, Rating } from "../api/types.ts";
import { formatCoins } from "../wallet.ts";

/** Styles for the course views' shared pieces: cards, stars, prices, tags. */
export const courseStyles = css`
  .course-grid {
    list-style: none;
    padding: 0;
    margin: 0;
    display: grid;
    gap: 1rem;
    grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr));
  }
  .course-card {
    display: flex;
    flex-direction: column;
    padding: 0;
    overflow: hidden;
    margin: 0;
    position: relative;
  }
  .course-card:hover {
    border-color: var(--border-strong);
  }
  .cover {
    aspect-ratio: 16 / 9;
    background: linear-gradient(135deg, var(--accent-soft), var(--hover));
    display: grid;
    place-items: center;
    color: var(--accent-strong);
    font-size: 2rem;
    font-weight: 800;
    overflow: hidden;
  }
  .cover img {
    width: 100%;
    height: 100%;
    object-fit: cover;
    display: block;
  }
  .course-card .body {
    padding: 0.8rem 1rem 1rem;
    display: flex;
    flex-direction: column;
    gap: 0.3rem;
    flex: 1 1 auto;
  }
  .course-card .title {
    font-weight: 700;
    font-size: 1.05rem;
    line-height: 1.3;
    color: var(--text);
    text-decoration: none;
    overflow-wrap: anywhere;
  }
  /* The whole card is the link's hit area. */
  .course-card .title::after {
    content: "";
    position: absolute;
    inset: 0;
  }
  .course-card .title:focus-visible {
    outline: none;
  }
  .course-card:focus-within {
    outline: 3px solid var(--focus);
    outline-offset: 2px;
  }
  .course-card .teacher,
  .course-card .facts {
    color: var(--muted);
    font-size: 0.9rem;
  }
  .course-card .bottom {
    margin-top: auto;
    padding-top: 0.4rem;
    display: flex;
    justify-content: space-between;
    align-items: center;
    gap: 0.5rem;
  }
  .stars {
    color: #f59e0b;
    letter-spacing: 0.05em;
    white-space: nowrap;
  }
  .stars .count {
    color: var(--muted);
    letter-spacing: normal;
    font-size: 0.85rem;
    margin-left: 0.25rem;
  }
  .price {
    font-weight: 700;
    white-space: nowrap;
  }
  .price.free {
    color: var(--success);
  }
  .tags {
    display: flex;
    flex-wrap: wrap;
    gap: 0.3rem;
    list-style: none;
    padding: 0;
    margin: 0;
  }
  .tag {
    font-size: 0.8rem;
    padding: 0.05rem 0.5rem;
    border-radius: 999px;
    background: var(--accent-soft);
    color: var(--accent-strong);
    text-decoration: none;
  }
  .badge.published {
    background: var(--success-bg);
    border-color: var(--success);
  }
  .badge.draft {
    background: var(--warning-bg);
    border-color: var(--warning);
  }
  .badge.archived {
    background: var(--hover);
  }
  .badge.preview {
    background: var(--accent-soft);
    border-color: var(--accent);
    color: var(--accent-strong);
  }
`;

export const LEVEL_LABELS: Record<CourseLevel, string> = {
  beginner: "Beginner",
  intermediate: "Intermediate",
  advanced: "Advanced",
};

/** "★★★★☆ 4.4 (12)"; spoken as "Rated 4.5 out of 5 by 12 students". */
export function stars(rating: Rating, testid?: string): TemplateResult {
  if (rating.average === null || rating.count === 0) {
    return html`<span class="stars muted" data-testid=${testid ?? nothing}><span class="count">No ratings yet</span></span>`;
  }
  const full = Math.min(5, Math.max(0, Math.round(rating.average)));
  const glyphs = "★".repeat(full) + "☆".repeat(5 - full);
  const average = rating.average.toFixed(1);
  return html`<span
    class="stars"
    role="img"
    aria-label=${`Rated ${average} out of 5 by ${rating.count} ${rating.count === 1 ? "student" : "students"}`}
    data-testid=${testid ?? nothing}
    >${glyphs}<span class="count">${average} (${rating.count})</span></span
  >`;
}

export function priceLabel(price: number): string {
  return price > 0 ? formatCoins(price) : "Free";
}

export function priceTag(price: number, testid?: string): TemplateResult {
  return html`<span class="price ${price > 0 ? "" : "free"}" data-testid=${testid ?? nothing}>${priceLabel(price)}</span>`;
}

/** "1 h 5 min", "12 min", "45 s"; empty for nothing. */
export function formatLength(seconds: number | null | undefined): string {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) return "";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h > 0 ? `${h} h${m ? ` ${m} min` : ""}` : `${m} min`;
}

export function lessonCount(count: number): string {
  return `${count} lesson${count === 1 ? "" : "s"}`;
}

/** Five stars for a 1–5 rating, e.g. one student's review: "★★★★☆". */
export function starGlyphs(rating: number, testid?: string): TemplateResult {
  const full = Math.min(5, Math.max(0, Math.round(rating)));
  return html`<span class="stars" role="img" aria-label=${`${full} out of 5 stars`} data-testid=${testid ?? nothing}
    >${"★".repeat(full)}${"☆".repeat(5 - full)}</span
  >`;
}

/** Tags typed as "python, data science" (commas), trimmed, without repeats. */
export function parseTags(text: string): string[] {
  const seen = new Set<string>();
  const tags: string[] = [];
  for (const raw of text.split(",")) {
    const tag = raw.trim();
    if (tag && !seen.has(tag.toLowerCase())) {
      seen.add(tag.toLowerCase());
      tags.push(tag);
    }
  }
  return tags;
}

/** One catalog card; the title is the link (data-testid course-card-link). */
export function courseCard(course: CourseCard): TemplateResult {
  const length = formatLength(course.duration);
  const href = `/courses/${course.id}`;
  return html`<li class="card course-card" data-testid="course-card" data-course-id=${course.id}>
    <div class="cover" aria-hidden="true">
      ${course.cover_url
        ? html`<img src=${course.cover_url} alt="" loading="lazy" />`
        : html`<span>${initials(course.title)}</span>`}
    </div>
    <div class="body">
      <a class="title" href=${href} data-testid="course-card-link">${course.title}</a>
      <span class="teacher">${course.owner.display_name}</span>
      ${stars(course.rating)}
      <span class="facts">
        ${LEVEL_LABELS[course.level] ?? course.level} · ${lessonCount(course.lesson_count)}${length ? ` · ${length}` : ""}
      </span>
      <div class="bottom">${priceTag(course.price, "course-card-price")}</div>
    </div>
  </li>`;
}

function initials(title: string): string {
  const words = title.split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((w) => w[0]?.toUpperCase() ?? "")
    .join("");
}
