import { css, html, nothing, type TemplateResult } from "lit";
import { styleMap } from "lit/directives/style-map.js";
import type { Appearance, AppliedItem, ItemStyle } from "../api/types.ts";

/** Who a profile card shows: the signed-in user or a public profile. */
export interface ProfileFace {
  id: number;
  display_name: string;
  bio: string;
  avatar_color: string;
  roles?: string[];
  is_teacher?: boolean;
  appearance?: Appearance | null;
}

export const appearanceStyles = css`
  .profile-card {
    padding: 0;
    overflow: hidden;
    max-width: 40rem;
  }
  .profile-card .banner {
    height: 5.5rem;
    background: linear-gradient(135deg, var(--accent-soft), var(--hover));
  }
  .profile-card .body {
    padding: 0 1.25rem 1.25rem;
    margin-top: -2.25rem;
  }
  .profile-card .name-row {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem;
    margin: 0.5rem 0 0.4rem;
  }
  .profile-card .name {
    font-size: 1.35rem;
    font-weight: 800;
    overflow-wrap: anywhere;
  }
  .avatar-big {
    display: block;
    width: 4.5rem;
    height: 4.5rem;
    border-radius: 50%;
    border: 3px solid var(--surface);
    box-shadow: 0 1px 4px rgb(0 0 0 / 0.2);
  }
  .shop-badge {
    display: inline-flex;
    align-items: center;
    gap: 0.3rem;
    font-size: 0.85rem;
    font-weight: 600;
    padding: 0.1rem 0.55rem;
    border-radius: 999px;
    border: 1px solid rgb(0 0 0 / 0.1);
    color: #1b1f24;
  }
`;

/** Theme colours for an element: background, text and the accent its highlights use. */
export function themeStyle(style: ItemStyle | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (style?.background) out["background"] = style.background;
  if (style?.text) {
    out["color"] = style.text;
    out["--muted"] = style.text;
  }
  if (style?.accent) out["--accent"] = style.accent;
  return out;
}

/** The strip at the top of a themed card: the accent fading into the theme's background. */
function bannerStyle(style: ItemStyle | null | undefined): Record<string, string> {
  if (!style?.accent) return {};
  return { background: `linear-gradient(135deg, ${style.accent}, ${style.background ?? "transparent"})` };
}

export function badgeChip(badge: AppliedItem | null | undefined, testid = "profile-badge"): TemplateResult | typeof nothing {
  if (!badge) return nothing;
  return html`<span
    class="shop-badge"
    data-testid=${testid}
    title=${badge.name}
    style=${styleMap({ background: badge.style.color ?? "var(--accent-soft)" })}
    ><span aria-hidden="true">${badge.style.emoji ?? "★"}</span>${badge.name}</span
  >`;
}

/** An avatar frame: its border and glow. */
export function frameStyle(style: ItemStyle | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (style?.border) out["border"] = style.border;
  if (style?.shadow) out["box-shadow"] = style.shadow;
  return out;
}

/** The avatar dot, ringed by the applied frame. */
export function avatarCircle(face: ProfileFace, testid = "profile-avatar"): TemplateResult {
  const frame = face.appearance?.frame ?? null;
  return html`<span
    class="avatar-big"
    aria-hidden="true"
    data-testid=${testid}
    data-frame=${frame ? String(frame.id) : nothing}
    style=${styleMap({
      background: face.avatar_color,
      ...frameStyle(frame?.style),
    })}
  ></span>`;
}

/** How others see a profile: theme banner, framed avatar, name, badge and bio. */
export function profileCard(face: ProfileFace, options: { testid?: string } = {}): TemplateResult {
  const appearance = face.appearance ?? null;
  const theme = appearance?.theme ?? null;
  const teacher = face.is_teacher ?? face.roles?.includes("teacher") ?? false;
  return html`<article
    class="card profile-card"
    data-testid=${options.testid ?? "profile-card"}
    data-theme=${theme ? String(theme.id) : nothing}
    style=${styleMap(themeStyle(theme?.style))}
  >
    <div class="banner" data-testid="profile-theme" style=${styleMap(bannerStyle(theme?.style))}></div>
    <div class="body">
      ${avatarCircle(face)}
      <div class="name-row">
        <span class="name" data-testid="profile-name">${face.display_name}</span>
        ${badgeChip(appearance?.badge)} ${teacher ? html`<span class="badge">Teacher</span>` : nothing}
      </div>
      ${face.bio
        ? html`<p class="prose" style="margin:0">${face.bio}</p>`
        : html`<p class="muted" style="margin:0;opacity:0.8">No bio yet.</p>`}
    </div>
  </article>`;
}
