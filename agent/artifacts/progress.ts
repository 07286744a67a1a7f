// Progress of one download, for whoever draws it (a TTY bar, JSON lines, a step-log line every 2 s): every state
// change is reported at once, and bytes while downloading at most every PROGRESS_INTERVAL_MS, with a rate over
// the last RATE_WINDOW_MS. Drawing and rate-limiting for a given UI are the caller's business.

/** connecting -> downloading -> (retrying -> connecting -> downloading)* -> verifying -> done. */
export type DownloadState = 'connecting' | 'downloading' | 'retrying' | 'verifying' | 'done';

export interface DownloadProgress {
  state: DownloadState;
  /** The attempt (request) this event belongs to, from 1. */
  attempt: number;
  /** Bytes of the content kept so far (a resumed download counts the kept prefix). */
  bytes: number;
  /** The whole content's size when the server told it. */
  total?: number;
  /** Bytes per second over the last few seconds, once known. */
  rate?: number;
  /** With `retrying`: why, and how long until the next attempt. */
  reason?: string;
  retryInMs?: number;
}

export type ProgressCallback = (p: DownloadProgress) => void;

/** Bytes are reported at most this often (state changes always at once). */
export const PROGRESS_INTERVAL_MS = 250;
/** The rate is measured over about this much recent time. */
export const RATE_WINDOW_MS = 3_000;
/** No rate is given before this much time was measured (the first chunks come in a burst). */
const RATE_MIN_SPAN_MS = 500;

export class ProgressMeter {
  private state: DownloadState = 'connecting';
  private attempt = 0;
  private bytes = 0;
  private total: number | undefined;
  private lastEmit = -Infinity;
  private samples: Array<{ t: number; bytes: number }> = [];

  constructor(
    private readonly onProgress: ProgressCallback | undefined,
    private readonly now: () => number,
  ) {}

  /** The attempt of the last state change. */
  get currentAttempt(): number {
    return this.attempt;
  }

  /** A state change (always reported). */
  enter(state: DownloadState, attempt: number, extra: Pick<DownloadProgress, 'reason' | 'retryInMs'> = {}): void {
    this.state = state;
    this.attempt = attempt;
    if (state !== 'downloading') this.samples = [];
    this.emit(this.now(), extra);
  }

  /** The content's size, once a response told it. */
  setTotal(total: number | undefined): void {
    this.total = total;
  }

  /** Bytes kept so far (reported when the last report is old enough). */
  update(bytes: number): void {
    if (bytes < this.bytes) this.samples = []; // started again from byte 0
    this.bytes = bytes;
    const t = this.now();
    if (t - this.lastEmit >= PROGRESS_INTERVAL_MS) this.emit(t, {});
  }

  private emit(t: number, extra: Pick<DownloadProgress, 'reason' | 'retryInMs'>): void {
    this.lastEmit = t;
    if (this.state === 'downloading') {
      this.samples.push({ t, bytes: this.bytes });
      while (this.samples.length > 2 && t - this.samples[1]!.t >= RATE_WINDOW_MS) this.samples.shift();
    }
    if (this.onProgress === undefined) return;
    const p: DownloadProgress = { state: this.state, attempt: this.attempt, bytes: this.bytes, ...extra };
    if (this.total !== undefined) p.total = this.total;
    const first = this.samples[0];
    if (this.state === 'downloading' && first !== undefined && t - first.t >= RATE_MIN_SPAN_MS) {
      p.rate = ((this.bytes - first.bytes) * 1000) / (t - first.t);
    }
    this.onProgress(p);
  }
}

/** 1536 -> '1.5 KiB'. */
export function byteSize(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i] ?? 'TiB'}`;
}
