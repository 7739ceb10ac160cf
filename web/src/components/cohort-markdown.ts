import { css, html, LitElement, type PropertyValues } from "lit";
import { unsafeHTML } from "lit/directives/unsafe-html.js";

type Renderer = typeof import("./markdown-html.ts");
let renderer: Promise<Renderer> | null = null;

/** The markdown parser and sanitiser load with the first page that shows markdown. */
function loadRenderer(): Promise<Renderer> {
  renderer ??= import("./markdown-html.ts");
  return renderer;
}

/**
 * `<cohort-markdown .source=${text}>`: course descriptions and text lessons. Authors' HTML is
 * escaped and the output sanitised; until the renderer has loaded the source shows as plain text.
 */
export class CohortMarkdown extends LitElement {
  static override styles = css`
    :host {
      display: block;
      line-height: 1.6;
      overflow-wrap: anywhere;
    }
    .plain {
      white-space: pre-wrap;
    }
    :first-child {
      margin-top: 0;
    }
    h1,
    h2,
    h3,
    h4 {
      line-height: 1.25;
      margin: 1.4em 0 0.5em;
    }
    h1 {
      font-size: 1.5rem;
    }
    h2 {
      font-size: 1.25rem;
    }
    h3 {
      font-size: 1.1rem;
    }
    p,
    ul,
    ol,
    pre,
    blockquote,
    table {
      margin: 0 0 1em;
    }
    a {
      color: var(--accent);
    }
    code {
      font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
      font-size: 0.9em;
      background: var(--hover);
      border-radius: 4px;
      padding: 0.1em 0.3em;
    }
    pre {
      background: var(--hover);
      border: 1px solid var(--border);
      border-radius: 6px;
      padding: 0.75rem 1rem;
      overflow-x: auto;
    }
    pre code {
      background: none;
      padding: 0;
    }
    blockquote {
      border-left: 4px solid var(--border-strong);
      padding-left: 1rem;
      color: var(--muted);
    }
    img {
      max-width: 100%;
      height: auto;
    }
    table {
      border-collapse: collapse;
    }
    th,
    td {
      border: 1px solid var(--border);
      padding: 0.3rem 0.6rem;
    }
  `;

  static override properties = {
    source: {},
    rendered: { state: true },
  };

  declare source: string;
  declare rendered: string | null;

  constructor() {
    super();
    this.source = "";
    this.rendered = null;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has("source")) void this.renderSource(this.source);
  }

  private async renderSource(source: string): Promise<void> {
    this.rendered = null;
    const { markdownToSafeHtml } = await loadRenderer();
    if (source === this.source) this.rendered = markdownToSafeHtml(source);
  }

  override render() {
    return this.rendered === null
      ? html`<div class="plain">${this.source}</div>`
      : html`${unsafeHTML(this.rendered)}`;
  }
}

customElements.define("cohort-markdown", CohortMarkdown);

declare global {
  interface HTMLElementTagNameMap {
    "cohort-markdown": CohortMarkdown;
  }
}
