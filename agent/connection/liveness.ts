// Notices a dead link: probes the master every keepalive interval (a WebSocket ping, or PB's avatar.keepalive())
// and reports the link dead when nothing at all came back within a timeout. Without it a half-open TCP
// connection (a NAT entry timed out, a cable pulled) looks alive for hours while the master has forgotten us.

import { startDelay, type DelayTimer } from '../timers.js';

/**
 * The longest the master may stay silent after a probe. A link that dies is noticed within keepalive + this,
 * and a new session needs at most ~12 s more (a reconnect drawn from 0-1 s, then the master's own 10 s check
 * of the old connection, buildbot.worker.manager PING_TIMEOUT), which keeps the reconnect within keepalive + 30 s.
 */
export const LIVENESS_TIMEOUT_MAX_S = 15;
/** However short the keepalive, a master gets this long to answer (a busy Python master can pause for a second or two). */
export const LIVENESS_TIMEOUT_MIN_S = 3;

/**
 * Seconds of silence after a probe that end the session: the operator's `keepaliveTimeout` when set (for a
 * master known to stall longer), else one keepalive interval, within [MIN, MAX].
 */
export function livenessTimeoutS(keepaliveS: number, configuredS: number | null = null): number {
  if (configuredS !== null) return configuredS;
  return Math.max(LIVENESS_TIMEOUT_MIN_S, Math.min(keepaliveS, LIVENESS_TIMEOUT_MAX_S));
}

export interface LivenessTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Monotonic milliseconds. */
  now(): number;
}

const realTimers: LivenessTimers = {
  // the session keeps the process alive, not its liveness check; startDelay: a keepalive of 2^31 ms or more
  // would otherwise fire at once, probing every millisecond
  setTimeout: (fn, ms) => startDelay(fn, ms, { unref: true }),
  clearTimeout: (h) => (h as DelayTimer).cancel(),
  now: () => performance.now(),
};

export interface LivenessOptions {
  /** Seconds between probes (the worker's `keepalive`); 0 disables the check. */
  keepaliveS: number;
  /** The configured `keepaliveTimeout` (seconds), or null for the automatic one (livenessTimeoutS). */
  timeoutS?: number | null;
  /** Sends one probe. It may throw; the silence check still runs. */
  probe: () => void;
  /** The master sent nothing within the timeout after a probe: drop the connection. Called once. */
  onDead: (reason: string) => void;
  timers?: LivenessTimers;
}

export class Liveness {
  private readonly timers: LivenessTimers;
  private handle: unknown;
  private lastActivity: number;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly o: LivenessOptions) {
    this.timers = o.timers ?? realTimers;
    this.lastActivity = this.timers.now();
    this.intervalMs = o.keepaliveS * 1000;
    this.timeoutMs = livenessTimeoutS(o.keepaliveS, o.timeoutS ?? null) * 1000;
  }

  /** Starts probing (the first probe goes out one interval from now). */
  start(): void {
    if (this.intervalMs <= 0 || this.stopped) return;
    this.handle = this.timers.setTimeout(() => this.sendProbe(), this.intervalMs);
  }

  /** Bytes arrived from the master: any of them shows the link is alive. */
  activity(): void {
    this.lastActivity = this.timers.now();
  }

  stop(): void {
    this.stopped = true;
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
  }

  private sendProbe(): void {
    if (this.stopped) return;
    const sentAt = this.timers.now();
    try {
      this.o.probe();
    } catch {
      // a probe that cannot be sent is no answer either: the check below decides
    }
    this.handle = this.timers.setTimeout(() => this.check(sentAt), this.timeoutMs);
  }

  private check(sentAt: number): void {
    if (this.stopped) return;
    if (this.lastActivity >= sentAt) {
      // probes stay one interval apart (the timeout's length apart when that is longer), the check included
      this.handle = this.timers.setTimeout(() => this.sendProbe(), Math.max(0, this.intervalMs - this.timeoutMs));
      return;
    }
    this.stop();
    const silentS = ((this.timers.now() - this.lastActivity) / 1000).toFixed(1);
    this.o.onDead(`no data from the master for ${silentS} s, none within ${this.timeoutMs / 1000} s of a keepalive: the link is dead`);
  }
}
