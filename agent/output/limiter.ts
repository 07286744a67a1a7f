// Applies a step's live output budget (a token bucket per step, and one for the whole agent) to the lines on
// their way to the master. Over budget: `throttle` lets them through and slows the process down; `spool` and
// `truncate` hold them back and send, every MARKER_INTERVAL_MS and at the end, a marker line with the byte
// count held back and the last lines (a live tail). With `spool` the full output is on the worker (Spool).

import type { LineChunk, TextStream, UpdateItem } from './types.js';
import { TokenBucket } from './budget.js';
import type { OutputLimits } from './limits.js';

/** How often a held-back step reports what it held back, with its latest lines. */
export const MARKER_INTERVAL_MS = 10_000;
/** Lines of live tail sent with each marker. */
export const TAIL_LINES = 20;

type Emit = (item: UpdateItem) => void;

/** Where the full output is kept (spool policy), or why it could not be. */
export type SpoolNote = { path: string; failure?: undefined } | { path?: undefined; failure: string };

interface TailLine {
  key: TextStream | { log: string };
  text: string;
  time: number;
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function chunkOf(text: string, time: number): LineChunk {
  const indexes: number[] = [];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) indexes.push(i);
  return { text, indexes, times: indexes.map(() => time) };
}

export class OutputLimiter {
  private readonly step: TokenBucket;
  private held = 0;
  private heldSinceMarker = 0;
  private tail: TailLine[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Output is being held back (over budget). */
  private holding = false;
  /** The final marker went out: what still comes (the last partial line) passes. */
  private finished = false;

  constructor(
    private readonly limits: OutputLimits & { rate: number },
    private readonly agent: TokenBucket | null,
    private readonly emit: Emit,
    private readonly nowMs: () => number,
    /** Where the full log is (spool policy), or why it is not, for the marker; undefined: it is not kept. */
    private readonly spoolNote: () => SpoolNote | undefined,
  ) {
    this.step = new TokenBucket(limits.rate, limits.burst, nowMs);
  }

  /** Bytes held back so far (not sent live). */
  get heldBytes(): number {
    return this.held;
  }

  offer(item: UpdateItem): void {
    if (item.kind === 'status' || this.finished) {
      this.emit(item);
      return;
    }
    const n = item.chunk.text.length;
    if (this.limits.policy === 'throttle') {
      this.step.takeDebt(n);
      this.agent?.takeDebt(n);
      this.emit(item);
      return;
    }
    // Once over budget, output goes live again only when the step has saved up half its burst: otherwise a
    // flood would trickle through at the rate, each trickle announced by its own marker.
    const need = this.holding ? Math.max(n, this.limits.burst / 2) : n;
    if (this.step.available() >= need && (!this.agent || this.agent.available() >= n)) {
      this.step.tryTake(n);
      this.agent?.tryTake(n);
      if (this.holding) {
        this.holding = false;
        this.marker(false);
      }
      this.emit(item);
      return;
    }
    this.hold(item);
  }

  /** Milliseconds the process should pause (throttle policy), 0 otherwise. */
  backpressureMs(): number {
    if (this.limits.policy !== 'throttle') return 0;
    return Math.max(this.step.waitMs(), this.agent?.waitMs() ?? 0);
  }

  /** At the end of the step (before its rc, so the marker precedes the master's "program finished" line). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.heldSinceMarker > 0 || this.held > 0) this.marker(true);
  }

  /** The command was abandoned: no more markers. */
  dispose(): void {
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private hold(item: Exclude<UpdateItem, { kind: 'status' }>): void {
    this.holding = true;
    const bytes = Buffer.byteLength(item.chunk.text);
    this.held += bytes;
    this.heldSinceMarker += bytes;
    const key: TailLine['key'] = item.kind === 'text' ? item.key : { log: item.name };
    const lines = item.chunk.text.split('\n');
    lines.pop();
    for (const [i, line] of lines.slice(-TAIL_LINES).entries()) {
      this.tail.push({ key, text: line + '\n', time: item.chunk.times[i] ?? this.nowMs() / 1000 });
    }
    if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
    if (!this.timer) {
      this.timer = setInterval(() => {
        if (this.heldSinceMarker > 0) this.marker(false);
      }, MARKER_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private marker(final: boolean): void {
    const now = this.nowMs() / 1000;
    const budget = `${fmtBytes(this.limits.rate)}/s, burst ${fmtBytes(this.limits.burst)}`;
    const note = this.spoolNote();
    const what = this.limits.policy === 'spool' ? 'held back' : 'dropped (policy truncate)';
    const kept =
      note?.failure !== undefined
        ? `; the full output could not be kept on the worker (${note.failure})`
        : note?.path !== undefined
          ? `; full output on the worker: ${note.path}`
          : '';
    const head = final ? 'output was over budget' : 'output is over budget';
    this.emit({
      kind: 'text',
      key: 'header',
      chunk: chunkOf(
        `[bbagent] ${head} (${budget}): ${this.held} bytes ${what} so far${kept}\n` + (this.tail.length ? `[bbagent] latest ${this.tail.length} lines:\n` : ''),
        now,
      ),
    });
    for (const t of this.tail) {
      const chunk = chunkOf(t.text, t.time);
      this.emit(typeof t.key === 'string' ? { kind: 'text', key: t.key, chunk } : { kind: 'log', name: t.key.log, chunk });
    }
    this.tail = [];
    this.heldSinceMarker = 0;
  }
}
