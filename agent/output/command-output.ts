// One command's output path, a pipeline per stream:
//   text -> redact -> [spool tee] -> collapse progress -> split lines -> budget/policy -> batch -> sender.
// With no budget, no redaction and no collapsing configured, what reaches the sender is exactly what
// buildbot-worker sends. A spool that fails never stops the step: a header line says why the full output
// could not be kept, and live output goes on.

import type { LineChunk, StatusValue, TextStream, UpdateItem } from './types.js';
import { errorMessage } from '../errors.js';
import { ALIGNED_MAX_BATCH, AlignedBatcher, type Batcher, LATENCY_CAP_MS } from './aligned-batcher.js';
import { BufferManager, type MessageSender, type Timers, realTimers } from './buffer.js';
import type { TokenBucket } from './budget.js';
import { ProgressCollapser } from './collapse.js';
import { OutputLimiter, type SpoolNote } from './limiter.js';
import type { OutputLimits } from './limits.js';
import { LineBoundaryFinder } from './lines.js';
import { Redactor } from './redact.js';
import type { OutputSettings } from './settings.js';
import { SPOOL_HIGH_WATER, type Spool } from './spool.js';

/** The first output of a step leaves within this time, so it is on the master well within 0.5 s (buildbot issue 7292: up to 5 s before). */
export const FIRST_FLUSH_MS = 250;
/** Above this much unsent data in the connection, the step's output is paused (bounded memory per step). */
export const CHANNEL_HIGH_WATER = 1024 * 1024;
/** How long a paused step waits before checking again. */
const BACKPRESSURE_POLL_MS = 20;

/** Agent-wide output options (from the config); per-step limits may be overridden by the step. */
export interface OutputOptions {
  limits: OutputLimits;
  agentBucket: TokenBucket | null;
  redact: readonly string[];
  collapseProgress: boolean;
  /**
   * The largest update: with 'reference' batching it raises the update size above the master's buffer_size
   * (null keeps the master's); with 'aligned' it is the size whole master chunks are sent at (null: 512 KiB).
   */
  batchBytes: number | null;
  /**
   * 'aligned' (the default): updates shaped for how the master stores logs (aligned-batcher.ts); 'reference':
   * buildbot-worker's BufferManager, message for message.
   */
  batching?: 'aligned' | 'reference';
  /**
   * Opens the spool of a command (policy spool); undefined: spooling unavailable. The spool calls
   * `onFailure` once if it fails.
   */
  openSpool?: (onFailure: (reason: string) => void) => Spool;
}

export const PLAIN_OUTPUT: OutputOptions = {
  limits: { rate: null, burst: 0, policy: 'spool' },
  agentBucket: null,
  redact: [],
  collapseProgress: false,
  batchBytes: null,
};

interface Stream {
  finder: LineBoundaryFinder;
  redactor: Redactor | undefined;
  collapser: ProgressCollapser | undefined;
  /** The spool keeps what the process wrote (stdout, stderr), as a terminal would show it; not headers. */
  spooled: boolean;
  item: (chunk: LineChunk) => UpdateItem;
}

export class CommandOutput {
  private readonly streams = new Map<string, Stream>();
  private readonly buffer: Batcher;
  private limiter: OutputLimiter | undefined;
  private spool: Spool | undefined;
  /** Why the full output is not kept (the spool failed, or could not be opened). */
  private spoolFailure: string | undefined;
  private limits: OutputLimits;
  private started = false;
  /** Everything was sent (finish) or dropped (dispose): nothing more may be sent. */
  private closed = false;
  /** Set while the spool closes after the process ended: what comes meanwhile waits here, in order. */
  private waiting: (() => void)[] | undefined;
  /** Settles once the spool closed at the end of the process and the rc went out. */
  private ending: Promise<void> | undefined;

  constructor(
    private readonly settings: OutputSettings,
    private readonly opts: OutputOptions,
    send: MessageSender,
    private readonly now: () => number,
    timers: Timers = realTimers,
    /** Bytes the connection has not sent yet (for backpressure); 0 when unknown. */
    private readonly channelBacklog: () => number = () => 0,
    /** The protocol sends only line text (PB, lean msgpack): batches are sized by text. */
    textOnly = false,
  ) {
    const first = Math.min(FIRST_FLUSH_MS, settings.bufferTimeoutMs);
    this.buffer =
      opts.batching === 'reference'
        ? new BufferManager(send, opts.batchBytes ?? settings.bufferSize, settings.bufferTimeoutMs, timers, first, textOnly)
        : new AlignedBatcher(send, opts.batchBytes ?? ALIGNED_MAX_BATCH, Math.min(LATENCY_CAP_MS, settings.bufferTimeoutMs), timers, first);
    this.buffer.beforeFlush = () => this.takeProgress();
    this.limits = opts.limits;
  }

  /** Sets this step's limits (from its environment); only before its first output. */
  setLimits(limits: OutputLimits): void {
    if (!this.started) this.limits = limits;
  }

  text(stream: TextStream, text: string): void {
    this.push(stream, text);
  }

  log(name: string, text: string): void {
    this.push(`log:${name}`, text);
  }

  status(key: string, value: StatusValue): void {
    if (this.closed) return;
    if (this.waiting) {
      this.waiting.push(() => this.status(key, value));
      return;
    }
    if (key === 'rc' && this.spool && !this.ending) {
      this.endSpooled(value);
      return;
    }
    if (typeof value === 'string') value = this.redact(value);
    // the process ended: its final over-budget marker goes before the rc (the master then writes "program finished")
    if (key === 'rc') this.limiter?.finish();
    this.buffer.append({ kind: 'status', key, value });
  }

  /** `text` with the secrets replaced, as a stream's text would be (structured results are redacted with it). */
  redact(text: string): string {
    if (this.opts.redact.length === 0) return text;
    const r = new Redactor(this.opts.redact);
    return r.push(text) + r.flush();
  }

  /** Milliseconds the process should pause before producing more output. */
  backpressureMs(): number {
    const spoolFull = this.spool && this.spool.backlog > SPOOL_HIGH_WATER;
    const wire = this.channelBacklog() > CHANNEL_HIGH_WATER;
    return Math.max(this.limiter?.backpressureMs() ?? 0, spoolFull || wire ? BACKPRESSURE_POLL_MS : 0);
  }

  /**
   * End of the command: held text of every stage, partial lines terminated with '\n' (the master only stores
   * whole lines), the spool closed (bounded: Spool.close always settles), the final over-budget marker; then
   * everything is sent.
   */
  async finish(): Promise<void> {
    if (this.ending) await this.ending;
    if (this.closed) return; // forceFinish took over meanwhile
    this.endStreams();
    if (this.spool) await this.spool.close();
    if (this.closed) return;
    this.limiter?.finish();
    this.buffer.flush();
    this.closed = true;
  }

  /**
   * finish() did not end in time (the caller's bound): sends what is held, including what waits for the
   * spool, without waiting any longer. The spool's own outcome is no longer reported.
   */
  forceFinish(): void {
    if (this.closed) return;
    // what waited for the spool (the rc, `elapsed`, the last headers) goes first, in order; then nothing more
    this.releaseWaiting();
    this.endStreams();
    this.limiter?.finish();
    this.buffer.flush();
    this.closed = true;
  }

  /**
   * Bytes kept in the spool, and bytes held back over budget that are kept nowhere (policy truncate, or no
   * spool), for the worker's statistics.
   */
  get keptBytes(): { spooled: number; dropped: number } {
    const held = this.limiter?.heldBytes ?? 0;
    const spooled = this.spool?.totalBytes ?? 0;
    const spoolKeeps = this.spool !== undefined && this.spoolFailure === undefined;
    return { spooled, dropped: spoolKeeps ? 0 : held };
  }

  /** Sends what is buffered (before an interrupt), without terminating partial lines. */
  flushBuffer(): void {
    this.buffer.flush();
  }

  dispose(): void {
    this.closed = true;
    this.waiting = undefined;
    this.limiter?.dispose();
    this.buffer.dispose();
    void this.spool?.close();
  }

  /** Held text of every stream: redactor tails (into the spool too), progress states, partial lines. */
  private endStreams(): void {
    for (const [key, s] of [...this.streams.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      let rest = s.redactor?.flush() ?? '';
      if (rest && s.spooled) this.spool?.write(rest);
      if (s.collapser) rest = s.collapser.push(rest) + s.collapser.flush();
      if (rest) this.lines(s, rest);
      const chunk = s.finder.flush();
      if (chunk) this.route(s.item(chunk), key);
    }
  }

  /**
   * The process ended (its rc) while spooling: everything it wrote goes into the spool, which is then closed,
   * so the final marker can say whether the full output was kept. The rc, and whatever comes meanwhile,
   * follow in order once the spool settled (within its close timeout).
   */
  private endSpooled(rc: StatusValue): void {
    this.endStreams();
    const spool = this.spool!;
    this.waiting = [
      () => {
        this.limiter?.finish();
        this.buffer.append({ kind: 'status', key: 'rc', value: rc });
      },
    ];
    this.ending = spool.close().then(() => {
      if (!this.closed) this.releaseWaiting(); // else forceFinish or dispose took over
    });
  }

  private releaseWaiting(): void {
    const queued = this.waiting ?? [];
    this.waiting = undefined;
    for (const f of queued) f();
  }

  /** The spool failed: said once in the step's log, and in every later over-budget marker. */
  private spoolFailed(reason: string): void {
    this.spoolFailure ??= reason;
    if (this.closed) return;
    const text = `[bbagent] the full output of this step cannot be kept on the worker: ${reason}\n`;
    this.buffer.append({ kind: 'text', key: 'header', chunk: { text, indexes: [text.length - 1], times: [this.now()] } });
  }

  private spoolNote(): SpoolNote | undefined {
    if (this.spoolFailure !== undefined) return { failure: this.spoolFailure };
    return this.spool ? { path: this.spool.path } : undefined;
  }

  private push(key: string, text: string): void {
    if (this.closed) return;
    if (this.waiting) {
      this.waiting.push(() => this.push(key, text));
      return;
    }
    if (!this.started) this.start();
    const s = this.stream(key);
    let t = s.redactor ? s.redactor.push(text) : text;
    if (this.spool && t && s.spooled) this.spool.write(t);
    if (s.collapser) {
      t = s.collapser.push(t);
      if (s.collapser.holding) this.buffer.touch();
    }
    if (t) this.lines(s, t);
  }

  private lines(s: Stream, text: string): void {
    const chunk = s.finder.append(text, this.now());
    if (chunk) this.route(s.item(chunk), '');
  }

  private route(item: UpdateItem, _key: string): void {
    if (this.limiter) this.limiter.offer(item);
    else this.buffer.append(item);
  }

  private start(): void {
    this.started = true;
    const l = this.limits;
    if (l.rate === null) return;
    if (l.policy === 'spool' && this.opts.openSpool) {
      try {
        this.spool = this.opts.openSpool((reason) => this.spoolFailed(reason));
      } catch (err) {
        this.spoolFailed(`cannot open the spool: ${errorMessage(err)}`);
      }
    }
    this.limiter = new OutputLimiter(
      { ...l, rate: l.rate },
      this.opts.agentBucket,
      (item) => this.buffer.append(item),
      () => this.now() * 1000,
      () => this.spoolNote(),
    );
  }

  private takeProgress(): void {
    for (const s of this.streams.values()) {
      const p = s.collapser?.takeProgress();
      if (p) this.lines(s, p);
    }
  }

  private stream(key: string): Stream {
    let s = this.streams.get(key);
    if (!s) {
      const name = key.startsWith('log:') ? key.slice(4) : undefined;
      s = {
        finder: new LineBoundaryFinder(this.settings.maxLineLength, this.settings.newlineRe),
        redactor: this.opts.redact.length ? new Redactor(this.opts.redact) : undefined,
        collapser: this.opts.collapseProgress ? new ProgressCollapser() : undefined,
        spooled: key === 'stdout' || key === 'stderr',
        item: name !== undefined ? (chunk) => ({ kind: 'log', name, chunk }) : (chunk) => ({ kind: 'text', key: key as TextStream, chunk }),
      };
      this.streams.set(key, s);
    }
    return s;
  }
}
