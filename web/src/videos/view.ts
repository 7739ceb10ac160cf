import { css, html, nothing, type TemplateResult } from "lit";
import type { Video } from "../api/types.ts";

/** Styles for the video views' shared pieces (progress lines, transcode status). */
export const videoStyles = css`
  progress {
    width: 100%;
    display: block;
  }
  .progress-line {
    display: flex;
    flex-wrap: wrap;
    justify-content: space-between;
    gap: 0.25rem 1rem;
    margin-bottom: 0.3rem;
    font-variant-numeric: tabular-nums;
  }
  .transfer-meta {
    margin: 0.35rem 0 0.75rem;
    font-variant-numeric: tabular-nums;
  }
  .transcode {
    margin-top: 1rem;
  }
  .transcode .alert {
    margin-top: 0.75rem;
  }
`;

/**
 * Where a video is in processing: status, stage and a progress bar while it transcodes, the
 * reason when it failed. Test ids: video-status, transcode-stage, transcode-progress.
 */
export function transcodeStatus(video: Video): TemplateResult {
  const progress = video.status === "ready" ? 100 : clampPercent(video.progress);
  const shown = Math.floor(progress);
  return html`<div class="transcode" data-testid="transcode">
    <div class="progress-line">
      <span>
        Status:
        <span class="badge ${video.status}" data-testid="video-status">${video.status}</span>
      </span>
      <span>
        Stage:
        <span data-testid="transcode-stage">${video.stage}</span>
      </span>
      <span>${shown}%</span>
    </div>
    <progress
      data-testid="transcode-progress"
      max="100"
      .value=${progress}
      aria-valuenow=${shown}
      aria-valuetext=${`${shown}%, ${video.stage}`}
      aria-label="Processing progress"
    ></progress>
    ${video.status === "failed"
      ? html`<div class="alert error" role="alert" data-testid="transcode-error">
          Processing failed${video.error ? html`: ${video.error}` : nothing}
        </div>`
      : nothing}
  </div>`;
}

function clampPercent(value: number): number {
  return Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0;
}
