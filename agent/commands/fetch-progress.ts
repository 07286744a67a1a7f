// The `fetch` command's progress in the step's log: one short line (bytes, total and percent, rate, ETA) at most
// once every STEP_PROGRESS_INTERVAL_S, so a long download shows it is alive without flooding the log. A retry is
// reported by the download's own attempt line (see the command's tee logger), not here.

import { byteSize, type DownloadProgress } from '../artifacts/progress.js';

/** At most one progress line this often (seconds). */
export const STEP_PROGRESS_INTERVAL_S = 2;

export class StepProgress {
  private last = -Infinity;

  constructor(
    private readonly write: (line: string) => void,
    /** Wall clock in seconds. */
    private readonly now: () => number,
    private readonly intervalS = STEP_PROGRESS_INTERVAL_S,
  ) {}

  onProgress(p: DownloadProgress): void {
    if (p.state !== 'downloading') return;
    const t = this.now();
    if (t - this.last < this.intervalS) return;
    this.last = t;
    this.write(`${stepProgressLine(p)}\n`);
  }
}

/** `downloading 12.0 MiB of 40.0 MiB (30%), 5.1 MiB/s, ETA 6 s` (what is known of it). */
export function stepProgressLine(p: DownloadProgress): string {
  let line = `downloading ${byteSize(p.bytes)}`;
  if (p.total !== undefined) line += ` of ${byteSize(p.total)} (${Math.floor((100 * p.bytes) / Math.max(p.total, 1))}%)`;
  if (p.rate !== undefined) {
    line += `, ${byteSize(p.rate)}/s`;
    if (p.total !== undefined && p.rate > 0) line += `, ETA ${Math.ceil((p.total - p.bytes) / p.rate)} s`;
  }
  if (p.attempt > 1) line += ` (attempt ${p.attempt})`;
  return line;
}
