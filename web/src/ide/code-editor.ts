import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { EditorState, type Extension } from "@codemirror/state";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { css, html, LitElement, type PropertyValues } from "lit";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import type { Awareness } from "y-protocols/awareness";
import * as Y from "yjs";

/**
 * `<code-editor>`: CodeMirror 6 bound to one `Y.Text` with y-codemirror.next, so every
 * keystroke is a CRDT edit and remote cursors and selections show with names and colours (from
 * the awareness field `user`). Python is highlighted. `readonly` (viewers) keeps cursor and
 * selection but refuses edits. Mod-Enter asks the page to run (event `run`); `selection-change`
 * (detail `{empty}`) says whether there is a selection to run.
 *
 * Properties: `ytext`, `awareness`, `readonly`, `label`. Read `text` and `selectionText`.
 * Test ids: code-editor (data-readonly).
 */
export class CodeEditor extends LitElement {
  static override styles = css`
    :host {
      display: block;
      min-height: 0;
    }
    .host {
      height: 100%;
      border: 1px solid var(--border);
      border-radius: var(--radius);
      overflow: hidden;
      background: var(--surface);
    }
    .host:focus-within {
      outline: 2px solid var(--focus);
      outline-offset: 1px;
    }
  `;

  static override properties = {
    ytext: { attribute: false },
    awareness: { attribute: false },
    readonly: { type: Boolean },
    label: {},
  };

  declare ytext: Y.Text | null;
  declare awareness: Awareness | null;
  declare readonly: boolean;
  declare label: string;

  private view: EditorView | null = null;
  private selectionEmpty = true;
  /** One undo history per file, so undo never reaches into another file or another user's edits. */
  private readonly undo = new WeakMap<Y.Text, Y.UndoManager>();

  constructor() {
    super();
    this.ytext = null;
    this.awareness = null;
    this.readonly = false;
    this.label = "Code";
  }

  /** The editor's current text. */
  get text(): string {
    return this.view?.state.doc.toString() ?? this.ytext?.toString() ?? "";
  }

  /** The selected text (main selection), or "" when nothing is selected. */
  get selectionText(): string {
    const view = this.view;
    if (!view) return "";
    const { from, to } = view.state.selection.main;
    return view.state.sliceDoc(from, to);
  }

  override focus(): void {
    this.view?.focus();
  }

  override render() {
    return html`<div class="host" data-testid="code-editor" data-readonly=${this.readonly ? "true" : "false"}></div>`;
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has("ytext") || changed.has("awareness") || changed.has("readonly") || !this.view) this.mount();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.view?.destroy();
    this.view = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.hasUpdated && !this.view) this.mount();
  }

  private mount(): void {
    const parent = this.renderRoot.querySelector<HTMLElement>(".host");
    const ytext = this.ytext;
    this.view?.destroy();
    this.view = null;
    if (!parent || !ytext) return;
    let undoManager = this.undo.get(ytext);
    if (!undoManager) {
      undoManager = new Y.UndoManager(ytext);
      this.undo.set(ytext, undoManager);
    }
    const extensions: Extension[] = [
      lineNumbers(),
      highlightActiveLineGutter(),
      highlightActiveLine(),
      drawSelection(),
      indentOnInput(),
      bracketMatching(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      python(),
      EditorState.tabSize.of(4),
      keymap.of([
        { key: "Mod-Enter", run: () => this.requestRun() },
        ...yUndoManagerKeymap,
        ...defaultKeymap,
        indentWithTab,
      ]),
      yCollab(ytext, this.awareness, { undoManager }),
      EditorView.updateListener.of((update) => {
        if (!update.selectionSet && !update.docChanged) return;
        const empty = update.state.selection.main.empty;
        if (empty === this.selectionEmpty) return;
        this.selectionEmpty = empty;
        this.dispatchEvent(new CustomEvent("selection-change", { detail: { empty } }));
      }),
      EditorView.contentAttributes.of({ "aria-label": this.label, "data-testid": "code-input" }),
      EditorView.theme({
        "&": { height: "100%", fontSize: "0.9rem" },
        ".cm-scroller": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", minHeight: "12rem" },
        ".cm-gutters": { background: "var(--hover)", color: "var(--muted)", border: "none" },
        ".cm-content": { caretColor: "var(--text)" },
        ".cm-activeLine": { background: "color-mix(in srgb, var(--accent-soft) 35%, transparent)" },
        ".cm-activeLineGutter": { background: "var(--accent-soft)" },
        "&.cm-focused": { outline: "none" },
      }),
    ];
    if (this.readonly) extensions.push(EditorState.readOnly.of(true));
    this.view = new EditorView({
      parent,
      state: EditorState.create({ doc: ytext.toString(), extensions }),
    });
    if (!this.selectionEmpty) {
      this.selectionEmpty = true;
      this.dispatchEvent(new CustomEvent("selection-change", { detail: { empty: true } }));
    }
  }

  private requestRun(): boolean {
    this.dispatchEvent(new CustomEvent("run", { bubbles: true, composed: true }));
    return true;
  }
}

customElements.define("code-editor", CodeEditor);
