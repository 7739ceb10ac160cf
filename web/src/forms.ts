import { html, nothing, type TemplateResult } from "lit";
import { ifDefined } from "lit/directives/if-defined.js";
import { ApiError } from "./api/client.ts";

/** What a failed submission shows: one page-level message plus messages per input. */
export interface FormErrors {
  message: string;
  /** Field messages that have no input on the page, listed under the message. */
  extra: string[];
  fields: Record<string, string>;
}

/**
 * Split an error into messages for the given inputs and a page-level summary. Field names are
 * matched loosely (`body.links.0` and `links[0]` both belong to `links`) because the hub
 * reports nested and list items with a path.
 */
export function toFormErrors(error: unknown, knownFields: readonly string[] = []): FormErrors {
  if (!(error instanceof ApiError)) {
    console.error(error);
    return { message: "Something unexpected went wrong. Please try again.", extra: [], fields: {} };
  }
  const fields: Record<string, string> = {};
  const extra: string[] = [];
  for (const problem of error.fieldErrors) {
    const path = problem.field.replace(/^body[.[]/, "");
    const name = knownFields.find(
      (known) => path === known || path.startsWith(`${known}.`) || path.startsWith(`${known}[`),
    );
    if (name) fields[name] = fields[name] ? `${fields[name]} ${problem.message}` : problem.message;
    else extra.push(problem.field ? `${problem.field}: ${problem.message}` : problem.message);
  }
  let message = error.problem.detail;
  if (error.status === 429 && error.retryAfter !== null && !/\d/.test(message)) {
    message += ` Try again in ${error.retryAfter} second${error.retryAfter === 1 ? "" : "s"}.`;
  }
  return { message, extra, fields };
}

/** The page-level error; `data-testid="error"` is what the browser tests look for. */
export function errorAlert(errors: FormErrors | null): TemplateResult | typeof nothing {
  if (!errors) return nothing;
  return html`<div class="alert error" role="alert" data-testid="error">
    ${errors.message}
    ${errors.extra.length ? html`<ul>${errors.extra.map((m) => html`<li>${m}</li>`)}</ul>` : nothing}
  </div>`;
}

export function successNote(message: string | null): TemplateResult | typeof nothing {
  return message ? html`<div class="alert success" role="status">${message}</div>` : nothing;
}

export interface FieldOptions {
  id: string;
  name: string;
  label: string;
  testid: string;
  errors: FormErrors | null;
  type?: string;
  value?: string;
  autocomplete?: string;
  hint?: string;
  required?: boolean;
  multiline?: boolean;
  rows?: number;
  maxlength?: number;
}

/** A labelled input whose server-side error is announced with it via aria-describedby. */
export function field(options: FieldOptions): TemplateResult {
  const { id, name, label, testid, errors, hint } = options;
  const error = errors?.fields[name];
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  const control = options.multiline
    ? html`<textarea
        id=${id}
        name=${name}
        data-testid=${testid}
        rows=${options.rows ?? 5}
        maxlength=${ifDefined(options.maxlength)}
        ?required=${options.required ?? false}
        aria-invalid=${error ? "true" : "false"}
        aria-describedby=${ifDefined(describedBy)}
        .value=${options.value ?? ""}
      ></textarea>`
    : html`<input
        id=${id}
        name=${name}
        data-testid=${testid}
        type=${options.type ?? "text"}
        autocomplete=${ifDefined(options.autocomplete)}
        maxlength=${ifDefined(options.maxlength)}
        ?required=${options.required ?? false}
        aria-invalid=${error ? "true" : "false"}
        aria-describedby=${ifDefined(describedBy)}
        .value=${options.value ?? ""}
      />`;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${hint ? html`<span class="hint" id=${hintId}>${hint}</span>` : nothing} ${control}
    ${error ? html`<span class="field-error" id=${errorId}>${error}</span>` : nothing}
  </div>`;
}

/** Read a text value from a submitted form without trusting that the entry is a string. */
export function formText(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === "string" ? value : "";
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

/** Requests cancelled because the view went away are not failures worth showing. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/**
 * Applicant-supplied links, rendered as anchors only when they are http(s): anything else
 * (e.g. `javascript:`) is shown as inert text so a reviewer cannot be tricked into running it.
 */
export function linkList(links: readonly string[]): TemplateResult | typeof nothing {
  if (links.length === 0) return nothing;
  return html`<ul class="links">
    ${links.map((link) => {
      const safe = isHttpUrl(link);
      return html`<li>
        ${safe
          ? html`<a href=${link} target="_blank" rel="noopener noreferrer nofollow">${link}</a>`
          : html`<span class="prose">${link}</span>`}
      </li>`;
    })}
  </ul>`;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

export function statusBadge(status: string, testid?: string): TemplateResult {
  return html`<span class="badge ${status}" data-testid=${ifDefined(testid)}>${status}</span>`;
}
