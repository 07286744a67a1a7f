// Watches the event loop for stalls. Every build and the master connection share one thread, so a call that
// blocks (a sync read of a FIFO, a loop without bound) stalls every builder at once; this logs each stall with
// its length, so an operator can see one and the fault suite can assert there was none.
//
// A timer measures how late it runs: a stall that covers its due time makes it late by about the stall's length.
// Waking up costs CPU even when there is nothing to do (~0.25 ms a wake-up on Node 22: a 20 Hz timer alone was
// ~45 ms of a quiet 10 s step), so the period adapts to how busy the loop is, from Node's event-loop utilisation
// (the time the loop did not wait for events, counted by libuv at each poll; reading it costs no wake-up):
// - as soon as a period's work would reach half of `warnMs` at the next period's length, the period is
//   `checkMs` (50 ms), where lateness measures any stall to within 50 ms;
// - otherwise the loop is quiet: a period in which it was busy for less than `warnMs` in all cannot have held
//   a stall of `warnMs`, so the period doubles up to `maxCheckMs` (1 s: one wake-up a second). This holds
//   whether or not a command runs: a step that prints a line now and then, or none (`sleep 600`), costs one
//   wake-up a second, and one that prints fast keeps the loop busy and the period short.
// A stall that begins while the period is long and ends before the timer's due time shows as a busy period.
// Its work lies in the loop turns libuv counted in that period (plus the turn the period began in), so the
// longest turn, the stall, is at least busy / (turns + 1): when that alone reaches `warnMs`, it is logged as a
// stall of at least that long (a quiet loop runs 2-4 turns a period, so a stall of ~300 ms or more is counted
// even then). Otherwise it is logged at debug level as "busy for N ms of the last M ms" (N bounds the stall),
// since a burst of short callbacks (a command starting) looks the same.
// Each sample's work goes to `onSample` (the idle compactor bounds garbage by the loop's work, not by time).

import type { Logger } from './log.js';

/** The shortest period, while the loop is busy: a stall is measured to within this much. */
export const LOOP_CHECK_MS = 50;
/** The longest period, while the loop is quiet (one wake-up a second when the agent is idle). */
export const LOOP_MAX_CHECK_MS = 1000;
/** A stall at least this long is logged: no remote command may block the loop for more than 100 ms. */
export const LOOP_STALL_WARN_MS = 100;

export interface LoopMonitorOptions {
  logger: Logger;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /** Milliseconds the loop has spent not waiting for events since some fixed point (default: Node's ELU `active`). */
  activeMs?: () => number;
  /** Loop turns libuv has run since some fixed point (default: Node's uvMetricsInfo.loopCount, where it exists). */
  loopTurns?: () => number;
  /** Called after each sample with the loop's work (ms not waiting for events) and the time since the last one. */
  onSample?: (busyMs: number, elapsedMs: number) => void;
  checkMs?: number;
  maxCheckMs?: number;
  warnMs?: number;
}

export class LoopMonitor {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private lastActive = 0;
  private lastTurns = 0;
  private period: number;
  private worst = 0;
  private latest = 0;
  private stallCount = 0;
  private readonly now: () => number;
  private readonly activeMs: () => number;
  private readonly loopTurns: () => number;
  private readonly checkMs: number;
  private readonly maxCheckMs: number;
  private readonly warnMs: number;

  constructor(private readonly o: LoopMonitorOptions) {
    this.now = o.now ?? (() => performance.now());
    this.activeMs = o.activeMs ?? (() => performance.eventLoopUtilization().active);
    this.loopTurns = o.loopTurns ?? nodeLoopTurns;
    this.checkMs = o.checkMs ?? LOOP_CHECK_MS;
    this.maxCheckMs = Math.max(this.checkMs, o.maxCheckMs ?? LOOP_MAX_CHECK_MS);
    this.warnMs = o.warnMs ?? LOOP_STALL_WARN_MS;
    this.period = this.checkMs;
  }

  start(): void {
    if (this.timer) return;
    this.last = this.now();
    this.lastActive = this.activeMs();
    this.lastTurns = this.loopTurns();
    this.period = this.checkMs;
    this.arm();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The longest stall seen so far, in ms (a lower bound: a stall may end up to checkMs before the next sample). */
  get maxStallMs(): number {
    return this.worst;
  }

  /** How late the last sample ran, in ms (the loop's lag now, to within the period). */
  get lastLagMs(): number {
    return this.latest;
  }

  /** Stalls of warnMs or more so far (each one logged). */
  get stalls(): number {
    return this.stallCount;
  }

  /** The period the next sample is planned at, in ms. */
  get periodMs(): number {
    return this.period;
  }

  /** One sample: how much later than planned this tick ran, and the next period. Public for tests that drive the clock. */
  tick(): void {
    const t = this.now();
    const active = this.activeMs();
    const turns = this.loopTurns();
    const elapsed = t - this.last;
    const busy = active - this.lastActive;
    const stall = elapsed - this.period;
    // the turns since the last sample, and the one it ran in (NaN without a count: no bound)
    const spread = turns - this.lastTurns + 1;
    const hiddenStall = busy / spread;
    this.last = t;
    this.lastActive = active;
    this.lastTurns = turns;
    if (stall > this.worst) this.worst = stall;
    this.latest = Math.max(0, stall);
    if (stall >= this.warnMs) this.stall(`blocked for ${Math.round(stall)} ms`);
    else if (busy >= this.warnMs && this.period > this.checkMs) {
      if (hiddenStall >= this.warnMs) {
        if (hiddenStall > this.worst) this.worst = hiddenStall;
        const why = `at least: ${Math.round(busy)} ms of work in ${spread} loop turns within the last ${Math.round(elapsed)} ms`;
        this.stall(`blocked for ${Math.round(hiddenStall)} ms (${why})`);
      } else {
        this.o.logger.debug(`event loop busy for ${Math.round(busy)} ms of the last ${Math.round(elapsed)} ms (a stall of up to that long)`);
      }
    }
    // the next period may be as long as this period's work rate keeps a period's work under warnMs / 2
    const next = Math.min(this.maxCheckMs, this.period * 2);
    const quiet = elapsed > 0 && (busy / elapsed) * next < this.warnMs / 2;
    this.period = quiet ? next : this.checkMs;
    this.o.onSample?.(busy, elapsed);
  }

  private stall(what: string): void {
    this.stallCount++;
    this.o.logger.warn(`event loop ${what} (every build and the master connection waited)`);
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
      this.arm();
    }, this.period);
    this.timer.unref();
  }
}

/** Loop turns libuv has run (Node >= 20.18 / 22.8); NaN where Node does not count them. */
function nodeLoopTurns(): number {
  return (performance.nodeTiming as { uvMetricsInfo?: { loopCount: number } }).uvMetricsInfo?.loopCount ?? NaN;
}
