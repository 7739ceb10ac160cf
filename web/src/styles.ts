import { css } from "lit";

/**
 * Styles every view shares. Colours come from custom properties on :root (see index.html),
 * which inherit through shadow roots, so the palette lives in one place.
 */
export const shared = css`
  :host {
    display: block;
  }
  *,
  *::before,
  *::after {
    box-sizing: border-box;
  }
  h1 {
    font-size: 1.75rem;
    line-height: 1.2;
    margin: 0 0 0.5rem;
  }
  h1:focus {
    outline: none;
  }
  h2 {
    font-size: 1.2rem;
    margin: 2rem 0 0.75rem;
  }
  p {
    margin: 0 0 1rem;
  }
  a {
    color: var(--accent);
  }
  .lead {
    color: var(--muted);
    font-size: 1.05rem;
    margin-bottom: 1.5rem;
  }
  .muted {
    color: var(--muted);
  }
  .card {
    background: var(--surface);
    border: 1px solid var(--border);
    border-radius: var(--radius);
    padding: 1.25rem;
    margin-bottom: 1rem;
  }
  form.card,
  .narrow {
    max-width: 32rem;
  }
  .field {
    display: flex;
    flex-direction: column;
    gap: 0.3rem;
    margin-bottom: 1rem;
  }
  label {
    font-weight: 600;
    font-size: 0.95rem;
  }
  .hint {
    color: var(--muted);
    font-size: 0.85rem;
  }
  input,
  textarea,
  select {
    font: inherit;
    color: inherit;
    background: var(--bg);
    border: 1px solid var(--border-strong);
    border-radius: 6px;
    padding: 0.55rem 0.7rem;
    width: 100%;
  }
  textarea {
    min-height: 6rem;
    resize: vertical;
  }
  input[type="color"] {
    width: 4rem;
    height: 2.5rem;
    padding: 0.2rem;
    cursor: pointer;
  }
  [aria-invalid="true"] {
    border-color: var(--danger);
  }
  .field-error {
    color: var(--danger);
    font-size: 0.875rem;
  }
  button {
    font: inherit;
    font-weight: 600;
    border-radius: 6px;
    border: 1px solid transparent;
    padding: 0.55rem 1.1rem;
    cursor: pointer;
    background: var(--accent);
    color: var(--on-accent);
  }
  button:hover:not(:disabled) {
    background: var(--accent-strong);
  }
  button:disabled {
    opacity: 0.6;
    cursor: progress;
  }
  button.secondary {
    background: transparent;
    color: var(--text);
    border-color: var(--border-strong);
  }
  button.secondary:hover:not(:disabled) {
    background: var(--hover);
  }
  button.danger {
    background: var(--danger);
    color: var(--on-danger);
  }
  button.danger:hover:not(:disabled) {
    background: var(--danger-strong);
  }
  :focus-visible {
    outline: 3px solid var(--focus);
    outline-offset: 2px;
  }
  .alert {
    max-width: 48rem;
    border-radius: var(--radius);
    padding: 0.8rem 1rem;
    margin-bottom: 1rem;
    border: 1px solid;
  }
  .alert ul {
    margin: 0.4rem 0 0;
    padding-left: 1.2rem;
  }
  .alert.error {
    background: var(--danger-bg);
    border-color: var(--danger);
    color: var(--danger-text);
  }
  .alert.success {
    background: var(--success-bg);
    border-color: var(--success);
    color: var(--success-text);
  }
  .badge {
    display: inline-block;
    font-size: 0.8rem;
    font-weight: 600;
    padding: 0.1rem 0.55rem;
    border-radius: 999px;
    background: var(--hover);
    color: var(--text);
    border: 1px solid var(--border);
  }
  .badge.pending {
    background: var(--warning-bg);
    border-color: var(--warning);
  }
  .badge.approved {
    background: var(--success-bg);
    border-color: var(--success);
  }
  .badge.rejected {
    background: var(--danger-bg);
    border-color: var(--danger);
  }
  .badge.queued,
  .badge.processing {
    background: var(--warning-bg);
    border-color: var(--warning);
  }
  .badge.ready {
    background: var(--success-bg);
    border-color: var(--success);
  }
  .badge.failed {
    background: var(--danger-bg);
    border-color: var(--danger);
  }
  progress {
    accent-color: var(--accent);
    height: 0.75rem;
  }
  .actions {
    display: flex;
    flex-wrap: wrap;
    gap: 0.6rem;
    align-items: center;
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
  }
  .prose {
    white-space: pre-wrap;
    overflow-wrap: anywhere;
  }
`;
