// Watches the event loop for stalls. Every build and the master connection share one thread, so a call that
// blocks (a sync read of a FIFO, a loop without bound) stalls every builder at once; this logs each stall with
// its length, so an operator can see one and the fault suite can assert there was none.

import type { Logger } from './log.js';

/** How often the loop is sampled: a stall is measured to within this much (20 idle wake-ups per second, ~0 CPU). */
export const LOOP_CHECK_MS = 50;
/** A stall at least this long is logged: no remote command may block the loop for more than 100 ms. */
export const LOOP_STALL_WARN_MS = 100;

export interface LoopMonitorOptions {
  logger: Logger;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  checkMs?: number;
  warnMs?: number;
}

export class LoopMonitor {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private worst = 0;
  private latest = 0;
  private stallCount = 0;
  private readonly now: () => number;
  private readonly checkMs: number;
  private readonly warnMs: number;

  constructor(private readonly o: LoopMonitorOptions) {
    this.now = o.now ?? (() => performance.now());
    this.checkMs = o.checkMs ?? LOOP_CHECK_MS;
    this.warnMs = o.warnMs ?? LOOP_STALL_WARN_MS;
  }

  start(): void {
    if (this.timer) return;
    this.last = this.now();
    this.timer = setInterval(() => this.tick(), this.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The longest stall seen so far, in ms (a lower bound: a stall may end up to checkMs before the next sample). */
  get maxStallMs(): number {
    return this.worst;
  }

  /** How late the last sample ran, in ms (the loop's lag now, to within checkMs). */
  get lastLagMs(): number {
    return this.latest;
  }

  /** Stalls of warnMs or more so far (each one logged). */
  get stalls(): number {
    return this.stallCount;
  }

  /** One sample: how much later than planned this tick ran. Public for tests that drive the clock. */
  tick(): void {
    const t = this.now();
    const stall = t - this.last - this.checkMs;
    this.last = t;
    if (stall > this.worst) this.worst = stall;
    this.latest = Math.max(0, stall);
    if (stall >= this.warnMs) this.stallCount++;
    if (stall >= this.warnMs) this.o.logger.warn(`event loop blocked for ${Math.round(stall)} ms (every build and the master connection waited)`);
  }
}
