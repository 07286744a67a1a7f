// Failover policy for a worker with several masters (config `masters`): each master keeps its own back-off; the
// connection manager attaches to the first that accepts, stays with a lost master for the grace period, then moves
// down the list. While it is attached to a later master, the watch below checks the earlier ones in the background
// (a TCP connection, closed at once: the attached session is not disturbed) and asks to go back only when the
// worker is idle. The transport has no retry policy; policy lives here and in manager.ts.

import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { LiveSession } from './protocol.js';
import { reconnectDelay } from './backoff.js';

/** While attached to a later master, how often the earlier ones are checked, at most (see probeIntervalMs). */
export const PROBE_INTERVAL_MS = 30_000;
/** ... and at least. */
export const MIN_PROBE_INTERVAL_MS = 1000;

/**
 * The earlier masters are checked at the pace of the failover grace (the time scale the operator gave for a
 * master's absence), within 1-30 s: a short grace moves away fast and comes back as fast.
 */
export function probeIntervalMs(failoverGraceMs: number): number {
  return Math.min(PROBE_INTERVAL_MS, Math.max(MIN_PROBE_INTERVAL_MS, failoverGraceMs));
}
/**
 * "Idle" is no command running for this long: between the steps of a build no command runs for a moment, and
 * going back then would cut the build. A master-side step longer than this between two commands is not covered.
 */
export const IDLE_SETTLE_MS = 10_000;

/** One master as the manager sees it. */
export interface MasterTarget {
  /** host:port (protocol[, TLS][, via proxy]) for log lines. */
  describe: string;
  /** host:port alone, and the protocol's name, for status (default: describe, unknown). */
  address?: string;
  protocol?: string;
  /** Opens and attaches one session; rejects with an AgentError naming what went wrong. */
  connect(): Promise<LiveSession>;
  /** Resolves if the master accepts a connection now (which is closed at once); rejects otherwise. */
  probe(): Promise<void>;
}

/** One master's back-off: its own steps, its own restart spread, and when it may be tried next. */
export class MasterBackoff {
  /** Back-off step: failed attempts and short sessions since the last stable session. */
  attempt = 0;
  /** The master ended the last session: spread the attempts over the restart window until one succeeds. */
  spread = false;
  /** Monotonic ms before which this master is not tried. */
  notBefore = 0;

  /** Draws the next delay and sets notBefore; returns it for the log line. */
  schedule(now: number, maxdelayS: number, random?: () => number): { delayMs: number; capS: number } {
    const choice = reconnectDelay(this.attempt, maxdelayS, this.spread, random);
    this.notBefore = now + choice.delayMs;
    return choice;
  }
}

/** Whether the worker runs a command now, and a way to wait for it to be idle. */
export interface IdleSource {
  isIdle(): boolean;
  /** Resolves once isIdle() holds (or the signal aborts). */
  whenIdle(signal: AbortSignal): Promise<void>;
}

interface HostLike {
  readonly runningCount: number;
}

/**
 * Idle = no command running and none ended within `settleMs`. `commandsEnded` must be called each time the last
 * running command ended (CommandHost.onIdle).
 */
export class IdleGate implements IdleSource {
  private lastBusyAt = -Infinity;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly host: HostLike,
    private readonly now: () => number,
    private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>,
    private readonly settleMs = IDLE_SETTLE_MS,
  ) {}

  commandsEnded(): void {
    this.lastBusyAt = this.now();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  isIdle(): boolean {
    return this.host.runningCount === 0 && this.now() - this.lastBusyAt >= this.settleMs;
  }

  async whenIdle(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.isIdle()) {
      if (this.host.runningCount > 0) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            signal.removeEventListener('abort', done);
            resolve();
          };
          this.waiters.push(done);
          signal.addEventListener('abort', done, { once: true });
        });
      } else {
        await this.sleep(this.settleMs - (this.now() - this.lastBusyAt), signal);
      }
    }
  }
}

export interface WatchOptions {
  targets: readonly MasterTarget[];
  states: readonly MasterBackoff[];
  /** The attached master's index: the masters before it are watched. */
  attached: number;
  idle: IdleSource;
  maxdelayS: number;
  probeIntervalMs: number;
  logger: Logger;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: (() => number) | undefined;
  signal: AbortSignal;
}

/** The first earlier master that accepts a connection now and whose back-off allows it, or undefined. */
async function firstReachable(o: WatchOptions): Promise<number | undefined> {
  for (let j = 0; j < o.attached; j++) {
    const state = o.states[j] as MasterBackoff;
    if (o.now() < state.notBefore) continue;
    try {
      await (o.targets[j] as MasterTarget).probe();
      return j;
    } catch (err) {
      state.attempt++;
      state.schedule(o.now(), o.maxdelayS, o.random);
      o.logger.debug(`preferred master ${(o.targets[j] as MasterTarget).describe} still not reachable: ${errorMessage(err)}`);
    }
    if (o.signal.aborted) return undefined;
  }
  return undefined;
}

/**
 * Runs while the worker is attached to a later master: resolves with the index of an earlier master that accepts
 * connections again once the worker is idle, or undefined when the signal aborts (the session ended).
 */
export async function watchPreferred(o: WatchOptions): Promise<number | undefined> {
  let waitFirst = true;
  let told = -1;
  while (!o.signal.aborted) {
    if (waitFirst) await o.sleep(o.probeIntervalMs, o.signal);
    waitFirst = true;
    if (o.signal.aborted) return undefined;
    const j = await firstReachable(o);
    if (j === undefined || o.signal.aborted) continue;
    if (o.idle.isIdle()) return j;
    if (told !== j) {
      o.logger.info(`preferred master ${(o.targets[j] as MasterTarget).describe} accepts connections again; going back once this worker is idle`);
      told = j;
    }
    await o.idle.whenIdle(o.signal);
    // check again at once: it may have gone away while the build ran
    waitFirst = false;
  }
  return undefined;
}
