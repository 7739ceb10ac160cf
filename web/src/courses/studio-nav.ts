import { css, html, type TemplateResult } from "lit";

export const studioNavStyles = css`
  .studio-nav {
    display: flex;
    gap: 0.25rem;
    list-style: none;
    padding: 0;
    margin: 0 0 1.25rem;
    border-bottom: 1px solid var(--border);
  }
  .studio-nav a {
    display: inline-block;
    padding: 0.45rem 0.8rem;
    color: var(--text);
    text-decoration: none;
    border-bottom: 3px solid transparent;
    margin-bottom: -1px;
  }
  .studio-nav a[aria-current="page"] {
    border-bottom-color: var(--accent);
    font-weight: 600;
  }
`;

/** Tabs between the studio's videos and courses. */
export function studioNav(current: "videos" | "courses"): TemplateResult {
  return html`<nav aria-label="Studio">
    <ul class="studio-nav">
      <li><a href="/studio" aria-current=${current === "videos" ? "page" : "false"} data-testid="studio-videos-tab">Videos</a></li>
      <li>
        <a href="/studio/courses" aria-current=${current === "courses" ? "page" : "false"} data-testid="studio-courses-tab"
          >Courses</a
        >
      </li>
    </ul>
  </nav>`;
}
