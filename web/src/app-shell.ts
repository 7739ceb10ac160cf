import { css, html, LitElement, nothing, type TemplateResult } from "lit";
import { styleMap } from "lit/directives/style-map.js";
import type { User } from "./api/types.ts";
import { auth, AuthController, canUploadVideos } from "./auth.ts";
import { currentLocation, navigate, onRouteChange, type RouteLocation } from "./router.ts";
import { shared } from "./styles.ts";
import { WalletController } from "./wallet.ts";
import "./components/notification-bell.ts";
import "./pages/admin-applications-page.ts";
import "./pages/communities-page.ts";
import "./pages/community-page.ts";
import "./pages/friends-page.ts";
import "./pages/group-join-page.ts";
import "./pages/group-page.ts";
import "./pages/groups-page.ts";
import "./pages/messages-page.ts";
import "./pages/notifications-page.ts";
import "./pages/catalog-page.ts";
import "./pages/course-editor-page.ts";
import "./pages/course-page.ts";
import "./pages/course-stats-page.ts";
import "./pages/home-page.ts";
import "./pages/learning-page.ts";
import "./pages/lesson-page.ts";
import "./pages/login-page.ts";
import "./pages/not-found-page.ts";
import "./pages/profile-page.ts";
import "./pages/projects-page.ts";
import "./pages/shop-page.ts";
import "./pages/signup-page.ts";
import "./pages/studio-courses-page.ts";
import "./pages/studio-page.ts";
import "./pages/teach-page.ts";
import "./pages/user-page.ts";
import "./pages/video-page.ts";
import "./pages/wallet-page.ts";
import { iconCoin } from "./icons.ts";
import { UnreadController, unread } from "./social/unread.ts";

type Access = "public" | "signed-in" | "admin";

interface Route {
  path: string;
  /** For paths with parameters; named groups become the view's params. */
  pattern?: RegExp;
  title: string;
  access: Access;
  view: (params: Readonly<Record<string, string>>) => TemplateResult;
}

interface Resolved {
  route: Route;
  params: Readonly<Record<string, string>>;
}

// One view function for both message routes, so switching conversations keeps the page.
const messagesView = (params: Readonly<Record<string, string>>): TemplateResult =>
  html`<messages-page .userId=${params["userId"] ?? ""}></messages-page>`;

const ROUTES: readonly Route[] = [
  { path: "/", title: "Home", access: "public", view: () => html`<home-page></home-page>` },
  { path: "/login", title: "Log in", access: "public", view: () => html`<login-page></login-page>` },
  { path: "/signup", title: "Sign up", access: "public", view: () => html`<signup-page></signup-page>` },
  { path: "/profile", title: "Profile", access: "signed-in", view: () => html`<profile-page></profile-page>` },
  { path: "/teach", title: "Teach", access: "signed-in", view: () => html`<teach-page></teach-page>` },
  // Signed-in users who are not teachers see an explanation there rather than a 403.
  { path: "/studio", title: "Studio", access: "signed-in", view: () => html`<studio-page></studio-page>` },
  {
    path: "/studio/courses",
    title: "Your courses",
    access: "signed-in",
    view: () => html`<studio-courses-page></studio-courses-page>`,
  },
  {
    path: "/studio/courses/:id",
    pattern: /^\/studio\/courses\/(?<id>\d+)$/,
    title: "Course editor",
    access: "signed-in",
    view: (params) => html`<course-editor-page .courseId=${params["id"] ?? ""}></course-editor-page>`,
  },
  {
    path: "/studio/courses/:id/stats",
    pattern: /^\/studio\/courses\/(?<id>\d+)\/stats$/,
    title: "Course stats",
    access: "signed-in",
    view: (params) => html`<course-stats-page .courseId=${params["id"] ?? ""}></course-stats-page>`,
  },
  { path: "/courses", title: "Courses", access: "public", view: () => html`<catalog-page></catalog-page>` },
  {
    path: "/courses/:id",
    pattern: /^\/courses\/(?<id>\d+)$/,
    title: "Course",
    access: "public",
    view: (params) => html`<course-page .courseId=${params["id"] ?? ""}></course-page>`,
  },
  {
    path: "/learn/:courseId/:lessonId",
    pattern: /^\/learn\/(?<courseId>\d+)\/(?<lessonId>\d+)$/,
    title: "Lesson",
    access: "signed-in",
    view: (params) =>
      html`<lesson-page .courseId=${params["courseId"] ?? ""} .lessonId=${params["lessonId"] ?? ""}></lesson-page>`,
  },
  { path: "/learning", title: "My learning", access: "signed-in", view: () => html`<learning-page></learning-page>` },
  { path: "/wallet", title: "Wallet", access: "signed-in", view: () => html`<wallet-page></wallet-page>` },
  { path: "/shop", title: "Profile shop", access: "public", view: () => html`<shop-page></shop-page>` },
  {
    path: "/users/:id",
    pattern: /^\/users\/(?<id>\d+)$/,
    title: "Profile",
    access: "public",
    view: (params) => html`<user-page .userId=${params["id"] ?? ""}></user-page>`,
  },
  {
    path: "/videos/:id",
    pattern: /^\/videos\/(?<id>[^/]+)$/,
    title: "Video",
    access: "signed-in",
    view: (params) => html`<video-page .videoId=${params["id"] ?? ""}></video-page>`,
  },
  { path: "/communities", title: "Communities", access: "public", view: () => html`<communities-page></communities-page>` },
  {
    path: "/communities/:slug",
    pattern: /^\/communities\/(?<slug>[^/]+)$/,
    title: "Community",
    access: "public",
    view: (params) => html`<community-page .slug=${params["slug"] ?? ""}></community-page>`,
  },
  { path: "/groups", title: "Study groups", access: "signed-in", view: () => html`<groups-page></groups-page>` },
  {
    path: "/groups/join/:code",
    pattern: /^\/groups\/join\/(?<code>[^/]+)$/,
    title: "Join a study group",
    access: "signed-in",
    view: (params) => html`<group-join-page .code=${params["code"] ?? ""}></group-join-page>`,
  },
  {
    path: "/groups/:id",
    pattern: /^\/groups\/(?<id>\d+)$/,
    title: "Study group",
    access: "signed-in",
    view: (params) => html`<group-page .groupId=${params["id"] ?? ""}></group-page>`,
  },
  {
    path: "/watch/join/:code",
    pattern: /^\/watch\/join\/(?<code>[^/]+)$/,
    title: "Join a watch party",
    access: "signed-in",
    view: (params) => {
      void import("./pages/watch-page.ts");
      return html`<watch-join-page .code=${params["code"] ?? ""}></watch-join-page>`;
    },
  },
  {
    path: "/watch/:id",
    pattern: /^\/watch\/(?<id>\d+)$/,
    title: "Watch party",
    access: "signed-in",
    view: (params) => {
      void import("./pages/watch-page.ts");
      return html`<watch-page .partyId=${params["id"] ?? ""}></watch-page>`;
    },
  },
  { path: "/projects", title: "Projects", access: "signed-in", view: () => html`<projects-page></projects-page>` },
  {
    path: "/projects/:id",
    pattern: /^\/projects\/(?<id>\d+)$/,
    title: "Project",
    access: "signed-in",
    view: (params) => {
      // The editor (CodeMirror, Yjs) loads only for the IDE page; the element upgrades when it has.
      void import("./pages/project-page.ts");
      return html`<project-page .projectId=${params["id"] ?? ""}></project-page>`;
    },
  },
  { path: "/friends", title: "Friends", access: "signed-in", view: () => html`<friends-page></friends-page>` },
  { path: "/messages", title: "Messages", access: "signed-in", view: messagesView },
  {
    path: "/messages/:userId",
    pattern: /^\/messages\/(?<userId>\d+)$/,
    title: "Messages",
    access: "signed-in",
    view: messagesView,
  },
  {
    path: "/notifications",
    title: "Notifications",
    access: "signed-in",
    view: () => html`<notifications-page></notifications-page>`,
  },
  {
    path: "/admin/applications",
    title: "Teacher applications",
    access: "admin",
    view: () => html`<admin-applications-page></admin-applications-page>`,
  },
];

const NOT_FOUND: Route = {
  path: "*",
  title: "Not found",
  access: "public",
  view: () => html`<not-found-page .path=${currentLocation().path}></not-found-page>`,
};

const FORBIDDEN: Route = {
  path: "*",
  title: "Admins only",
  access: "public",
  view: () => html`<forbidden-page></forbidden-page>`,
};

function match(location: RouteLocation): Resolved {
  for (const route of ROUTES) {
    if (!route.pattern) {
      if (route.path === location.path) return { route, params: {} };
      continue;
    }
    const found = route.pattern.exec(location.path);
    if (!found) continue;
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(found.groups ?? {})) {
      try {
        params[name] = decodeURIComponent(value);
      } catch {
        return { route: NOT_FOUND, params: {} };
      }
    }
    return { route, params };
  }
  return { route: NOT_FOUND, params: {} };
}

/** Decide what a location shows for the current user, or where it must send them instead. */
function resolve(location: RouteLocation, user: User | null): Resolved | { redirect: string } {
  const resolved = match(location);
  const { route } = resolved;
  if (route.access !== "public" && !user) {
    const search = location.query.toString();
    const here = location.path + (search ? `?${search}` : "");
    return { redirect: `/login?next=${encodeURIComponent(here)}` };
  }
  if (route.access === "admin" && !user?.is_admin) return { route: FORBIDDEN, params: {} };
  return resolved;
}

export class CohortApp extends LitElement {
  static override styles = [
    shared,
    css`
      :host {
        min-height: 100vh;
        display: flex;
        flex-direction: column;
      }
      .skip {
        position: absolute;
        left: 0.5rem;
        top: -3rem;
        background: var(--surface);
        padding: 0.5rem 0.75rem;
        border-radius: 6px;
        z-index: 10;
      }
      .skip:focus {
        top: 0.5rem;
      }
      header {
        background: var(--surface);
        border-bottom: 1px solid var(--border);
      }
      nav {
        max-width: var(--page-width);
        margin: 0 auto;
        padding: 0.6rem 1.25rem;
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1.25rem;
      }
      .brand {
        font-weight: 800;
        font-size: 1.2rem;
        color: var(--text);
        text-decoration: none;
        letter-spacing: -0.01em;
      }
      .brand span {
        color: var(--accent);
      }
      .links {
        display: flex;
        flex-wrap: wrap;
        gap: 0.25rem;
        list-style: none;
        margin: 0;
        padding: 0;
        flex: 1 1 auto;
      }
      .links a {
        color: var(--text);
        text-decoration: none;
        padding: 0.35rem 0.6rem;
        border-radius: 6px;
      }
      .links a:hover {
        background: var(--hover);
      }
      .nav-unread {
        display: inline-block;
        margin-left: 0.35rem;
        min-width: 1.2rem;
        padding: 0 0.3rem;
        border-radius: 999px;
        background: var(--accent);
        color: var(--on-accent);
        font-size: 0.72rem;
        font-weight: 700;
        line-height: 1.2rem;
        text-align: center;
        font-variant-numeric: tabular-nums;
      }
      .links a[aria-current="page"] {
        background: var(--accent-soft);
        color: var(--accent-strong);
        font-weight: 600;
      }
      /* Signed in, the links need a row of their own: brand and account above, links below. */
      nav.two-tier .account {
        margin-left: auto;
      }
      nav.two-tier .links {
        order: 3;
        flex-basis: 100%;
        margin-left: -0.6rem;
      }
      .account {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.6rem;
      }
      .user {
        color: var(--text);
        text-decoration: none;
        padding: 0.25rem 0.4rem;
        border-radius: 6px;
        display: inline-flex;
        align-items: center;
        gap: 0.45rem;
        font-weight: 600;
        max-width: 16rem;
      }
      .user:hover,
      .wallet:hover {
        background: var(--hover);
      }
      .wallet {
        color: var(--text);
        text-decoration: none;
        padding: 0.25rem 0.55rem;
        border-radius: 999px;
        border: 1px solid var(--border);
        font-weight: 700;
        font-variant-numeric: tabular-nums;
        display: inline-flex;
        gap: 0.3rem;
        align-items: center;
      }
      .wallet[aria-current="page"] {
        background: var(--accent-soft);
        border-color: var(--accent);
      }
      .user [data-testid="nav-user"] {
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .avatar {
        flex: none;
        width: 0.9rem;
        height: 0.9rem;
        border-radius: 50%;
        border: 1px solid rgb(0 0 0 / 0.15);
      }
      .badge.teacher {
        background: var(--accent-soft);
        border-color: var(--accent);
        color: var(--accent-strong);
      }
      .account a.button {
        text-decoration: none;
        font-weight: 600;
        padding: 0.4rem 0.9rem;
        border-radius: 6px;
      }
      .account a.primary {
        background: var(--accent);
        color: var(--on-accent);
      }
      button.secondary {
        padding: 0.35rem 0.85rem;
      }
      main {
        flex: 1 0 auto;
        width: 100%;
        max-width: var(--page-width);
        margin: 0 auto;
        padding: 2rem 1.25rem 3rem;
      }
      footer {
        border-top: 1px solid var(--border);
        color: var(--muted);
        font-size: 0.9rem;
      }
      footer div {
        max-width: var(--page-width);
        margin: 0 auto;
        padding: 1rem 1.25rem;
        display: flex;
        flex-wrap: wrap;
        gap: 1rem;
        justify-content: space-between;
      }
      @media (max-width: 40rem) {
        nav {
          padding: 0.5rem 0.9rem;
        }
        main {
          padding: 1.25rem 0.9rem 2rem;
        }
      }
    `,
  ];

  static override properties = {
    signingOut: { state: true },
  };

  declare signingOut: boolean;

  private readonly session = new AuthController(this);
  private readonly coins = new WalletController(this);
  private route: Route = NOT_FOUND;
  private params: Readonly<Record<string, string>> = {};
  private shownRoute: Route | null = null;
  private shownPath: string | null = null;
  private stopListening: (() => void) | null = null;

  constructor() {
    super();
    new UnreadController(this);
    this.signingOut = false;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.stopListening = onRouteChange(() => this.requestUpdate());
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopListening?.();
  }

  override willUpdate(): void {
    if (this.session.status === "unknown") return;
    let resolved = resolve(currentLocation(), this.session.user);
    if ("redirect" in resolved) {
      // replace, so Back does not bounce the visitor into the same redirect again.
      navigate(resolved.redirect, { replace: true });
      resolved = resolve(currentLocation(), this.session.user);
    }
    this.route = "redirect" in resolved ? NOT_FOUND : resolved.route;
    this.params = "redirect" in resolved ? {} : resolved.params;
  }

  override render() {
    const ready = this.session.status !== "unknown";
    return html`
      <a class="skip" href="#main" @click=${this.skipToMain}>Skip to content</a>
      <header>
        <nav aria-label="Main" class=${this.session.user ? "two-tier" : ""}>
          <a class="brand" href="/">Co<span>hort</span></a>
          <ul class="links">
            ${this.session.user ? nothing : this.navLink("/", "Home")}
            ${this.navLink("/courses", "Courses", "courses-link")}
            ${this.navLink("/communities", "Communities", "communities-link", this.session.user ? unread.total("chat:community:") : 0)}
            ${this.session.user
              ? html`${this.navLink("/groups", "Groups", "groups-link", unread.total("chat:group:"))}
                ${this.navLink("/messages", "Messages", "messages-link", unread.total("dm:"))}
                ${this.navLink("/friends", "Friends", "friends-link")}
                ${this.navLink("/projects", "Projects", "projects-link")}
                ${this.navLink("/learning", "My learning", "learning-link")} ${this.navLink("/shop", "Shop")}
                ${this.navLink("/teach", "Teach")}
                ${canUploadVideos(this.session.user) ? this.navLink("/studio", "Studio", "studio-link") : nothing}
                ${this.session.user.is_admin ? this.navLink("/admin/applications", "Admin") : nothing}`
              : nothing}
          </ul>
          ${ready ? this.renderAccount() : nothing}
        </nav>
      </header>
      <main id="main" tabindex="-1">
        ${ready ? this.route.view(this.params) : html`<p class="muted" role="status">Loading…</p>`}
      </main>
      <footer>
        <div>
          <span>Cohort: learn together.</span>
          <a href="/api/docs">API documentation</a>
        </div>
      </footer>
    `;
  }

  private navLink(path: string, label: string, testid?: string, unreadCount = 0) {
    const here = currentLocation().path;
    const current = path === "/" ? here === "/" : here === path || here.startsWith(`${path}/`);
    return html`<li>
      <a href=${path} aria-current=${current ? "page" : nothing} data-testid=${testid ?? nothing}
        >${label}${unreadCount
          ? html`<span class="nav-unread" data-testid=${testid ? `${testid}-unread` : nothing}
              ><span class="visually-hidden">, </span>${unreadCount > 99 ? "99+" : unreadCount}<span class="visually-hidden">
                unread</span
              ></span
            >`
          : nothing}</a
      >
    </li>`;
  }

  private renderAccount() {
    const user = this.session.user;
    if (!user) {
      return html`<div class="account">
        <a class="button" href="/login">Log in</a>
        <a class="button primary" href="/signup">Sign up</a>
      </div>`;
    }
    const balance = this.coins.balance;
    return html`<div class="account">
      <notification-bell></notification-bell>
      <a
        class="wallet"
        href="/wallet"
        data-testid="nav-wallet"
        aria-current=${currentLocation().path === "/wallet" ? "page" : nothing}
        aria-label=${balance === null ? "Wallet" : `Wallet: ${balance} coins`}
      >
        ${iconCoin}
        <span data-testid="nav-balance">${balance ?? "…"}</span>
      </a>
      <a class="user" href="/profile" aria-label=${`Signed in as ${user.display_name}, edit profile`}>
        <span class="avatar" aria-hidden="true" style=${styleMap({ background: user.avatar_color })}></span>
        <span data-testid="nav-user">${user.display_name}</span>
      </a>
      ${user.is_teacher
        ? html`<span class="badge teacher" data-testid="teacher-badge">Teacher</span>`
        : nothing}
      <button
        type="button"
        class="secondary"
        data-testid="logout"
        ?disabled=${this.signingOut}
        @click=${this.logout}
      >
        ${this.signingOut ? "Logging out…" : "Log out"}
      </button>
    </div>`;
  }

  override updated(): void {
    const path = currentLocation().path;
    if (this.session.status === "unknown" || (this.shownRoute === this.route && this.shownPath === path)) return;
    const first = this.shownRoute === null;
    this.shownRoute = this.route;
    this.shownPath = path;
    document.title = this.route.path === "/" ? "Cohort" : `${this.route.title} · Cohort`;
    // Initial load keeps the browser's own focus; later route changes move focus to the new
    // heading so screen readers announce the page, as a full page load would.
    if (!first) void this.focusHeading();
  }

  private async focusHeading(): Promise<void> {
    window.scrollTo(0, 0);
    const page = this.renderRoot.querySelector("main")?.firstElementChild;
    if (!(page instanceof LitElement)) return;
    await page.updateComplete;
    const heading = page.renderRoot.querySelector<HTMLElement>("h1");
    heading?.focus({ preventScroll: true });
  }

  private skipToMain(event: Event): void {
    // The fragment link would otherwise be handled by the router as a navigation.
    event.preventDefault();
    this.renderRoot.querySelector<HTMLElement>("main")?.focus();
  }

  private async logout(): Promise<void> {
    this.signingOut = true;
    // Leave protected pages first so the sign-out does not bounce through /login.
    navigate("/");
    try {
      await auth.logout();
    } finally {
      this.signingOut = false;
    }
  }
}

customElements.define("cohort-app", CohortApp);
