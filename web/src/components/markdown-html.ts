import DOMPurify from "dompurify";
import { Marked } from "marked";

// Raw HTML in the source is shown as text, not parsed: authors write markdown, and the
// sanitiser below is the second line of defence rather than the only one.
const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

const purify = DOMPurify();
purify.addHook("afterSanitizeAttributes", (node) => {
  if (!(node instanceof HTMLAnchorElement)) return;
  const href = node.getAttribute("href") ?? "";
  let external = false;
  try {
    external = new URL(href, window.location.href).origin !== window.location.origin;
  } catch {
    node.removeAttribute("href");
  }
  if (external) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Markdown to HTML that is safe to insert: no scripts, handlers, forms or `javascript:` links. */
export function markdownToSafeHtml(source: string): string {
  const rendered = marked.parse(source) as string;
  return purify.sanitize(rendered, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe"],
    FORBID_ATTR: ["style"],
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
