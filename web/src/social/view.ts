import { css, html, nothing, type TemplateResult } from "lit";
import { styleMap } from "lit/directives/style-map.js";
import type { CommunityRole, Person } from "../api/types.ts";

/** Styles the social pages share: people rows, online dots, unread badges, two-pane layouts. */
export const socialStyles = css`
  .avatar {
    flex: none;
    width: 1.6rem;
    height: 1.6rem;
    border-radius: 50%;
    display: inline-flex;
    align-items: center;
    justify-content: center;
    font-size: 0.75rem;
    font-weight: 700;
    color: #fff;
    text-shadow: 0 0 2px rgb(0 0 0 / 0.5);
    position: relative;
  }
  .dot {
    flex: none;
    display: inline-block;
    width: 0.6rem;
    height: 0.6rem;
    border-radius: 50%;
    background: var(--border-strong);
    border: 2px solid var(--surface);
    box-sizing: content-box;
  }
  .dot.online {
    background: var(--success);
  }
  .avatar .dot {
    position: absolute;
    right: -0.2rem;
    bottom: -0.2rem;
  }
  .unread-badge {
    display: inline-flex;
    align-items: center;
    justify-content: center;
    min-width: 1.3rem;
    height: 1.3rem;
    padding: 0 0.35rem;
    border-radius: 999px;
    background: var(--accent);
    color: var(--on-accent);
    font-size: 0.75rem;
    font-weight: 700;
    font-variant-numeric: tabular-nums;
  }
  .people {
    list-style: none;
    margin: 0;
    padding: 0;
  }
  .person {
    display: flex;
    align-items: center;
    gap: 0.6rem;
    padding: 0.45rem 0;
    border-bottom: 1px solid var(--border);
    flex-wrap: wrap;
  }
  .person:last-child {
    border-bottom: none;
  }
  .person .name {
    flex: 1 1 8rem;
    min-width: 0;
    overflow-wrap: anywhere;
    font-weight: 600;
  }
  .person .name a {
    color: var(--text);
    text-decoration: none;
  }
  .person .name a:hover {
    text-decoration: underline;
  }
  .person .name small {
    display: block;
    font-weight: 400;
    color: var(--muted);
  }
  .role {
    font-size: 0.75rem;
    text-transform: capitalize;
  }
  .role.owner {
    background: var(--warning-bg);
    border-color: var(--warning);
  }
  .role.admin,
  .role.moderator {
    background: var(--accent-soft);
    border-color: var(--accent);
  }
  button.small,
  select.small {
    padding: 0.25rem 0.6rem;
    font-size: 0.85rem;
    width: auto;
  }
  .empty {
    color: var(--muted);
  }
  .row-form {
    display: flex;
    flex-wrap: wrap;
    gap: 0.5rem;
    align-items: flex-end;
  }
  .row-form .field {
    margin: 0;
    flex: 1 1 10rem;
  }
  .list {
    list-style: none;
    margin: 0;
    padding: 0;
  }
  .list-item {
    display: flex;
    align-items: center;
    gap: 0.75rem;
    padding: 0.75rem 1rem;
    border: 1px solid var(--border);
    border-radius: var(--radius);
    background: var(--surface);
    margin-bottom: 0.6rem;
    flex-wrap: wrap;
  }
  .list-item .grow {
    flex: 1 1 12rem;
    min-width: 0;
  }
  .list-item h3 {
    margin: 0;
    font-size: 1.05rem;
  }
  .list-item h3 a {
    color: var(--text);
    text-decoration: none;
  }
  .list-item h3 a:hover {
    text-decoration: underline;
  }
  .list-item p {
    margin: 0.2rem 0 0;
  }
  .skills {
    display: flex;
    flex-wrap: wrap;
    gap: 0.3rem;
    margin-top: 0.35rem;
  }
`;

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = (parts[0]?.[0] ?? "?") + (parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? "") : "");
  return letters.toUpperCase();
}

/** A round avatar with the person's colour and initials; with `online` set, a presence dot. */
export function avatarDot(person: Person, online?: boolean): TemplateResult {
  return html`<span
    class="avatar"
    aria-hidden="true"
    style=${styleMap({ background: person.avatar_color ?? "#8a94a6" })}
    >${initials(person.display_name)}${online === undefined ? nothing : onlineDot(online, person.id)}</span
  >`;
}

/** The online dot; `data-online` is what tests read. */
export function onlineDot(online: boolean, userId?: number): TemplateResult {
  return html`<span
    class="dot ${online ? "online" : ""}"
    data-testid="online-dot"
    data-user=${userId ?? nothing}
    data-online=${online ? "true" : "false"}
    title=${online ? "Online" : "Offline"}
  ></span>`;
}

/** A person's name with a screen-reader hint of their presence. */
export function personName(person: Person, online?: boolean): TemplateResult {
  return html`<a href="/users/${person.id}">${person.display_name}</a>${online
      ? html`<span class="visually-hidden"> (online)</span>`
      : nothing}`;
}

export function unreadBadge(count: number, testid = "unread-badge"): TemplateResult | typeof nothing {
  if (!count) return nothing;
  return html`<span class="unread-badge" data-testid=${testid} aria-label="${count} unread">${count > 99 ? "99+" : count}</span>`;
}

export function roleBadge(role: CommunityRole | string | null | undefined): TemplateResult | typeof nothing {
  if (!role) return nothing;
  return html`<span class="badge role ${role}" data-testid="member-role">${role}</span>`;
}

const RANK: Record<string, number> = { owner: 4, admin: 3, moderator: 2, member: 1 };

export function roleRank(role: string | null | undefined): number {
  return RANK[role ?? ""] ?? 0;
}

/** "just now", "5 min ago", "3 h ago", then a date. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "";
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return "";
  const seconds = Math.round((now - then) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }).format(new Date(then));
}

/** "14:05", or a date and time for older messages. */
export function messageTime(iso: string, now = Date.now()): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = new Date(now).toDateString() === date.toDateString();
  return new Intl.DateTimeFormat(undefined, sameDay ? { timeStyle: "short" } : { dateStyle: "medium", timeStyle: "short" }).format(date);
}

/** The other user of a `dm:<a>:<b>` channel. */
export function dmPeer(channel: string, me: number): number | null {
  const [kind, a, b] = channel.split(":");
  if (kind !== "dm") return null;
  const ids = [Number(a), Number(b)];
  return ids.find((id) => id !== me) ?? null;
}

/** The DM channel between two users: `dm:<low id>:<high id>`. */
export function dmChannel(a: number, b: number): string {
  return `dm:${Math.min(a, b)}:${Math.max(a, b)}`;
}

/** Markdown as a one-line teaser: links keep their text, markup characters go. */
export function plainText(markdown: string): string {
  return markdown
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*_`#>~]+/g, "")
    .replace(/\s+/g, " ")
    .trim();
}
