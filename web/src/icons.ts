import { html, type TemplateResult } from "lit";

// Small inline icons: emoji depend on the fonts a machine has, these do not. Decorative:
// the text next to each says what it means.

export const iconCoin: TemplateResult = html`<svg class="icon" viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true">
  <circle cx="12" cy="12" r="10" fill="#f5b301" stroke="#b7791f" stroke-width="2" />
  <circle cx="12" cy="12" r="5.5" fill="none" stroke="#b7791f" stroke-width="1.6" />
</svg>`;

export const iconPlay: TemplateResult = html`<svg class="icon" viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true">
  <path d="M8 5v14l11-7z" fill="currentColor" />
</svg>`;

export const iconText: TemplateResult = html`<svg class="icon" viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true">
  <path
    d="M6 2h9l5 5v15H6zm8 1.5V8h4.5M9 12h8M9 15.5h8M9 19h5"
    fill="none"
    stroke="currentColor"
    stroke-width="1.8"
    stroke-linejoin="round"
  />
</svg>`;

export const iconLock: TemplateResult = html`<svg class="icon" viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true">
  <path d="M7 10V7a5 5 0 0 1 10 0v3" fill="none" stroke="currentColor" stroke-width="2" />
  <rect x="5" y="10" width="14" height="11" rx="2" fill="currentColor" />
</svg>`;

export const iconCheck: TemplateResult = html`<svg class="icon" viewBox="0 0 24 24" width="1em" height="1em" aria-hidden="true">
  <path d="M4 12.5l5 5L20 6.5" fill="none" stroke="currentColor" stroke-width="3" stroke-linecap="round" stroke-linejoin="round" />
</svg>`;
