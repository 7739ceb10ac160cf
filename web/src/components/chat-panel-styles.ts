import { css } from "lit";

/** The look of `<chat-panel>`: a bar, a scrolling log of messages, and the composer. */
export const chatPanelStyles = css`
  :host {
    display: flex;
    flex-direction: column;
    min-height: 0;
    height: var(--chat-height, min(70vh, 40rem));
    background: var(--surface);
    border: 1px solid var(--border);
    border-radius: var(--radius);
    overflow: hidden;
  }
  .panel {
    display: flex;
    flex-direction: column;
    flex: 1 1 auto;
    min-height: 0;
  }
  .bar {
    display: flex;
    align-items: center;
    gap: 0.6rem;
    padding: 0.5rem 0.9rem;
    border-bottom: 1px solid var(--border);
    font-size: 0.9rem;
    min-height: 2.5rem;
  }
  .bar .title {
    font-weight: 700;
    flex: 1 1 auto;
    min-width: 0;
    overflow: hidden;
    text-overflow: ellipsis;
    white-space: nowrap;
  }
  .offline {
    color: var(--warning);
    font-weight: 600;
  }
  .log {
    flex: 1 1 auto;
    overflow-y: auto;
    padding: 0.5rem 0 0.75rem;
    overscroll-behavior: contain;
    display: flex;
    flex-direction: column;
  }
  /* A short conversation sits at the bottom, next to the composer, as chats do. */
  .log > :first-child {
    margin-top: auto;
  }
  .older {
    display: flex;
    justify-content: center;
    padding: 0.25rem 0 0.5rem;
  }
  .start {
    text-align: center;
    color: var(--muted);
    font-size: 0.85rem;
    padding: 0.5rem 1rem;
  }
  .msg {
    position: relative;
    display: grid;
    grid-template-columns: 2rem minmax(0, 1fr);
    column-gap: 0.6rem;
    padding: 0.15rem 0.9rem;
  }
  .msg.first {
    margin-top: 0.55rem;
  }
  .msg:hover,
  .msg:focus-within {
    background: var(--hover);
  }
  .msg.mentions-me {
    background: var(--warning-bg);
    box-shadow: inset 3px 0 0 var(--warning);
  }
  .msg .avatar-col {
    padding-top: 0.15rem;
  }
  .avatar {
    width: 2rem;
    height: 2rem;
    border-radius: 50%;
    display: inline-flex;
    align-items: center;
    justify-content: center;
    font-size: 0.8rem;
    font-weight: 700;
    color: #fff;
    text-shadow: 0 0 2px rgb(0 0 0 / 0.5);
  }
  .head {
    display: flex;
    align-items: baseline;
    gap: 0.5rem;
    flex-wrap: wrap;
  }
  .author {
    font-weight: 700;
  }
  time,
  .edited {
    color: var(--muted);
    font-size: 0.78rem;
  }
  .text {
    overflow-wrap: anywhere;
    line-height: 1.45;
  }
  .text p,
  .text ul,
  .text ol,
  .text pre,
  .text blockquote {
    margin: 0 0 0.35rem;
  }
  .text :last-child {
    margin-bottom: 0;
  }
  .text pre {
    background: var(--bg);
    border: 1px solid var(--border);
    border-radius: 6px;
    padding: 0.5rem 0.7rem;
    overflow-x: auto;
  }
  .text code {
    font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
    font-size: 0.88em;
  }
  .text blockquote {
    border-left: 3px solid var(--border-strong);
    padding-left: 0.6rem;
    color: var(--muted);
  }
  .text img {
    max-width: 100%;
  }
  .plain {
    white-space: pre-wrap;
  }
  .deleted {
    color: var(--muted);
    font-style: italic;
  }
  .quote {
    font-size: 0.82rem;
    color: var(--muted);
    border-left: 2px solid var(--border-strong);
    padding-left: 0.45rem;
    margin: 0.1rem 0 0.2rem;
    overflow: hidden;
    text-overflow: ellipsis;
    white-space: nowrap;
    cursor: pointer;
    background: none;
    border-top: none;
    border-right: none;
    border-bottom: none;
    border-radius: 0;
    display: block;
    width: 100%;
    text-align: left;
    font-weight: 400;
  }
  .quote:hover:not(:disabled) {
    background: none;
    color: var(--text);
  }
  .tools {
    position: absolute;
    right: 0.6rem;
    top: -0.8rem;
    display: none;
    gap: 0.15rem;
    background: var(--surface);
    border: 1px solid var(--border);
    border-radius: 6px;
    padding: 0.1rem;
    box-shadow: 0 2px 6px rgb(0 0 0 / 0.12);
    z-index: 1;
  }
  .msg:hover .tools,
  .msg:focus-within .tools,
  .tools.open {
    display: flex;
  }
  .tools button,
  .reactions button,
  .picker button {
    background: transparent;
    color: var(--text);
    padding: 0.15rem 0.45rem;
    font-size: 0.8rem;
    font-weight: 600;
    border-radius: 4px;
  }
  .tools button:hover:not(:disabled),
  .picker button:hover:not(:disabled) {
    background: var(--hover);
  }
  .picker {
    display: flex;
    gap: 0.1rem;
    flex-wrap: wrap;
  }
  .picker button {
    font-size: 1.05rem;
  }
  .reactions {
    display: flex;
    flex-wrap: wrap;
    gap: 0.3rem;
    margin-top: 0.2rem;
  }
  .reactions button {
    border: 1px solid var(--border);
    border-radius: 999px;
    background: var(--bg);
    font-size: 0.85rem;
  }
  .reactions button[aria-pressed="true"] {
    background: var(--accent-soft);
    border-color: var(--accent);
  }
  .confirm {
    display: flex;
    gap: 0.4rem;
    align-items: center;
    font-size: 0.85rem;
    margin-top: 0.2rem;
  }
  .confirm button,
  .edit-actions button {
    padding: 0.2rem 0.6rem;
    font-size: 0.85rem;
  }
  .edit-actions {
    display: flex;
    gap: 0.4rem;
    margin-top: 0.3rem;
  }
  .pending {
    opacity: 0.65;
  }
  .pending.failed {
    opacity: 1;
  }
  .failed-note {
    color: var(--danger);
    font-size: 0.82rem;
    display: flex;
    gap: 0.5rem;
    align-items: center;
    flex-wrap: wrap;
  }
  .failed-note button {
    padding: 0.1rem 0.5rem;
    font-size: 0.8rem;
  }
  .jump {
    position: absolute;
    left: 50%;
    transform: translateX(-50%);
    bottom: 0.5rem;
    padding: 0.3rem 0.8rem;
    font-size: 0.85rem;
    border-radius: 999px;
    box-shadow: 0 2px 8px rgb(0 0 0 / 0.2);
  }
  .log-wrap {
    position: relative;
    flex: 1 1 auto;
    min-height: 0;
    display: flex;
    flex-direction: column;
  }
  .composer {
    border-top: 1px solid var(--border);
    padding: 0.5rem 0.75rem 0.6rem;
    position: relative;
  }
  .typing {
    min-height: 1.2rem;
    font-size: 0.8rem;
    color: var(--muted);
    font-style: italic;
  }
  .replying {
    display: flex;
    align-items: center;
    gap: 0.5rem;
    font-size: 0.85rem;
    background: var(--hover);
    border-radius: 6px;
    padding: 0.25rem 0.5rem;
    margin-bottom: 0.35rem;
  }
  .replying span {
    flex: 1 1 auto;
    min-width: 0;
    overflow: hidden;
    text-overflow: ellipsis;
    white-space: nowrap;
  }
  .replying button {
    padding: 0 0.45rem;
    background: transparent;
    color: var(--text);
  }
  .send-row {
    display: flex;
    gap: 0.5rem;
    align-items: flex-end;
  }
  .send-row textarea {
    min-height: 2.6rem;
    max-height: 10rem;
    resize: none;
    flex: 1 1 auto;
  }
  .hint-row {
    display: flex;
    justify-content: space-between;
    gap: 0.5rem;
    font-size: 0.78rem;
    color: var(--muted);
    margin-top: 0.25rem;
  }
  .mentions {
    position: absolute;
    left: 0.75rem;
    bottom: calc(100% - 0.25rem);
    min-width: 14rem;
    max-width: calc(100% - 1.5rem);
    list-style: none;
    margin: 0;
    padding: 0.25rem;
    background: var(--surface);
    border: 1px solid var(--border);
    border-radius: 8px;
    box-shadow: 0 6px 20px rgb(0 0 0 / 0.18);
    z-index: 2;
  }
  .mentions li {
    display: flex;
    gap: 0.5rem;
    align-items: center;
    padding: 0.3rem 0.5rem;
    border-radius: 6px;
    cursor: pointer;
  }
  .mentions li[aria-selected="true"] {
    background: var(--accent-soft);
  }
  .mentions .avatar {
    width: 1.4rem;
    height: 1.4rem;
    font-size: 0.65rem;
  }
  .disabled-note {
    margin: 0;
    color: var(--muted);
    padding: 0.35rem 0;
  }
  .alert {
    margin: 0.5rem 0.9rem;
  }
`;
