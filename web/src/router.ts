/** Minimal History API router: one global location, change events, and link interception. */

export interface RouteLocation {
  path: string;
  query: URLSearchParams;
}

const target = new EventTarget();

export function currentLocation(): RouteLocation {
  return { path: normalisePath(window.location.pathname), query: new URLSearchParams(window.location.search) };
}

export function onRouteChange(listener: () => void): () => void {
  target.addEventListener("change", listener);
  return () => target.removeEventListener("change", listener);
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = new URL(to, window.location.origin);
  const next = url.pathname + url.search + url.hash;
  const now = window.location.pathname + window.location.search + window.location.hash;
  if (next !== now) {
    if (options.replace) window.history.replaceState(null, "", next);
    else window.history.pushState(null, "", next);
  }
  target.dispatchEvent(new Event("change"));
}

/**
 * Only relative, same-origin paths are accepted as post-login destinations, so a crafted
 * `?next=https://evil.example` or `//evil.example` cannot turn login into an open redirect.
 */
export function safeNext(value: string | null, fallback = "/"): string {
  if (!value || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return fallback;
  }
  return value;
}

/**
 * Paths the hub answers itself; following them must load a real page, not an SPA view
 * (`/sandbox/` is the sandbox payment provider's checkout, `/embed/` the bare embeddable editor).
 */
function isServerPath(path: string): boolean {
  return (
    path === "/api" ||
    path.startsWith("/api/") ||
    path.startsWith("/media/") ||
    path.startsWith("/sandbox/") ||
    path.startsWith("/embed/")
  );
}

function normalisePath(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.replace(/\/+$/, "") : path;
}

/**
 * Turn clicks on ordinary same-origin links into History API navigations. Works through
 * shadow roots by inspecting the composed path, since Lit renders links inside them.
 */
export function interceptLinks(root: Document | HTMLElement = document): void {
  root.addEventListener("click", (event) => {
    const mouse = event as MouseEvent;
    if (mouse.defaultPrevented || mouse.button !== 0) return;
    if (mouse.metaKey || mouse.ctrlKey || mouse.shiftKey || mouse.altKey) return;
    const anchor = mouse
      .composedPath()
      .find((node): node is HTMLAnchorElement => node instanceof HTMLAnchorElement);
    if (!anchor || !anchor.href) return;
    if (anchor.target && anchor.target !== "_self") return;
    if (anchor.hasAttribute("download") || anchor.getAttribute("rel")?.includes("external")) return;
    const url = new URL(anchor.href);
    if (url.origin !== window.location.origin || isServerPath(url.pathname)) return;
    mouse.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", () => target.dispatchEvent(new Event("change")));
}
