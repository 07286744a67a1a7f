// Keeps the worker connected: connect, wait for the session to end, back off, reconnect. Policy lives here;
// the protocol connectors below it only know how to open one session and say why it ended.

import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { startDelay } from '../timers.js';
import type { LiveSession, SessionEnd } from './protocol.js';
import { MasterBackoff, PROBE_INTERVAL_MS, watchPreferred, type IdleSource, type MasterTarget } from './failover.js';

/**
 * Who ended a session. 'master': the master closed or reset the connection (a restart or shutdown does it to
 * the whole fleet at once). 'liveness': we dropped a silent link, at a time of our own. 'local': we closed it
 * (a protocol error, an over-sized message, a stop).
 */
/**
 * A session must stay attached this long before the back-off starts again from its first step: a master that
 * accepts the worker and drops it at once is then retried with growing delays, not every 1-2 s.
 */
export const STABLE_PERIOD_MS = 60_000;

export interface ConnectionManagerOptions {
  /** Opens and attaches one session (one master); `masters` replaces it for a list. */
  connect?: () => Promise<LiveSession>;
  /** Human-readable master address for log lines (with `connect`). */
  describe?: string;
  /** The masters in order of preference (failover.ts); one master is a list of one. */
  masters?: readonly MasterTarget[];
  /** A lost master is retried this long before the next one of `masters` is tried. */
  failoverGraceMs?: number;
  /** Whether the worker runs a command now: the manager goes back to an earlier master only when idle. */
  idle?: IdleSource;
  probeIntervalMs?: number;
  maxdelayS: number;
  /** Failed attempts in a row before giving up; null = never give up. */
  maxretries: number | null;
  logger: Logger;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    // one listener per sleep, removed when the sleep ends: a worker whose master keeps dropping it sleeps
    // thousands of times on the same signal
    const onAbort = (): void => {
      t.cancel();
      resolve();
    };
    const t = startDelay(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms); // maxdelay may be 2^31 ms or more
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

type Attached = { end: SessionEnd; lasted: number } | { back: number };

/** Where a worker's connection stands: attached, opening one, waiting to retry, given up, or stopped. */
export type ConnectionState = 'connected' | 'connecting' | 'waiting' | 'gave-up' | 'stopped';

/** A read-only view of the manager for `bbagent status` and the metrics. */
export interface ConnectionStats {
  state: ConnectionState;
  /** The master attached or tried now: host:port, and its protocol (when the target says). */
  master: string;
  protocol: string | null;
  /** Epoch ms since the current session is attached; null while not attached. */
  connectedSince: number | null;
  /** The last failed attempt or lost session, and when (epoch ms). */
  lastError: { message: string; at: number } | null;
  /** Sessions attached since the agent started, and those after the first (reconnects). */
  connects: number;
  reconnects: number;
  /** Failed connection attempts since the agent started. */
  failedAttempts: number;
}

export class ConnectionManager {
  private readonly abort = new AbortController();
  private current: LiveSession | undefined;
  private connectedOnce = false;
  private readonly targets: readonly MasterTarget[];
  private readonly states: MasterBackoff[];
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly now: () => number;
  /** The master tried or attached now (index into targets). */
  private index = 0;
  /** Set while a lost master is retried before the next is tried: when its grace ends. */
  private graceEnd: number | undefined;
  private state: ConnectionState = 'waiting';
  private connectedSince: number | null = null;
  private lastError: { message: string; at: number } | null = null;
  private connects = 0;
  private failedAttempts = 0;

  constructor(private readonly opts: ConnectionManagerOptions) {
    const { connect, describe } = opts;
    this.targets = opts.masters ?? (connect ? [{ describe: describe ?? 'the master', connect, probe: () => Promise.resolve() }] : []);
    if (this.targets.length === 0) throw new AgentError('E_CONFIG', 'no master to connect to');
    this.states = this.targets.map(() => new MasterBackoff());
    this.sleep = opts.sleep ?? abortableSleep;
    this.now = opts.now ?? (() => performance.now());
  }

  private get several(): boolean {
    return this.targets.length > 1;
  }

  /** Runs until stop() ('stopped') or until maxretries failed attempts in a row ('gave-up'). */
  async run(): Promise<'stopped' | 'gave-up'> {
    const { logger } = this.opts;
    /** Failed connection attempts in a row (maxretries counts these). */
    let failures = 0;
    let count = 0;
    while (!this.abort.signal.aborted) {
      const target = this.targets[this.index] as MasterTarget;
      const state = this.states[this.index] as MasterBackoff;
      const wait = state.notBefore - this.now();
      if (wait > 0) await this.sleep(wait, this.abort.signal);
      if (this.abort.signal.aborted) break;
      count++;
      logger.info(`Connecting to ${target.describe} (attempt ${count})`);
      this.state = 'connecting';
      let session: LiveSession;
      try {
        session = await target.connect();
      } catch (err) {
        failures++;
        this.failedAttempts++;
        this.lastError = { message: errorMessage(err), at: Date.now() };
        this.state = 'waiting';
        const verdict = this.failed(err, failures);
        if (verdict) return this.ended(verdict);
        continue;
      }
      if (this.abort.signal.aborted) {
        session.close();
        break;
      }
      failures = 0;
      const outcome = await this.attached(session, target);
      if (this.abort.signal.aborted) break;
      if ('back' in outcome) {
        this.goBack(outcome.back, session);
        // the old connection's end (the worker's connectionLost) must come before the new one attaches
        await session.closed;
      } else this.lost(outcome.end, outcome.lasted);
    }
    return this.ended('stopped');
  }

  private ended(how: 'stopped' | 'gave-up'): 'stopped' | 'gave-up' {
    this.state = how;
    return how;
  }

  /** Holds the session until it ends, or until an earlier master accepts again and the worker is idle. */
  private async attached(session: LiveSession, target: MasterTarget): Promise<Attached> {
    this.current = session;
    this.connectedOnce = true;
    this.graceEnd = undefined;
    this.state = 'connected';
    this.connects++;
    this.connectedSince = Date.now();
    const since = this.now();
    this.opts.logger.info(`Connected to ${target.describe}; worker is ready`);
    const watch = new AbortController();
    const ended = session.closed.then((end) => ({ end, lasted: this.now() - since }));
    const onStop = (): void => watch.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    const back =
      this.index > 0 && this.opts.idle
        ? watchPreferred({
            targets: this.targets,
            states: this.states,
            attached: this.index,
            idle: this.opts.idle,
            maxdelayS: this.opts.maxdelayS,
            probeIntervalMs: this.opts.probeIntervalMs ?? PROBE_INTERVAL_MS,
            logger: this.opts.logger,
            now: this.now,
            sleep: this.sleep,
            random: this.opts.random,
            signal: watch.signal,
          }).then((j) => (j === undefined ? new Promise<never>(() => {}) : { back: j }))
        : new Promise<never>(() => {});
    try {
      return await Promise.race([ended, back]);
    } finally {
      watch.abort();
      this.abort.signal.removeEventListener('abort', onStop);
      this.current = undefined;
      this.connectedSince = null;
      this.state = 'waiting';
    }
  }

  /** The worker is idle and an earlier master accepts again: leave this one and go there at once. */
  private goBack(j: number, session: LiveSession): void {
    const from = this.targets[this.index] as MasterTarget;
    const to = this.targets[j] as MasterTarget;
    this.opts.logger.info(`moving back to the preferred master ${to.describe}: it accepts connections again and this worker is idle; leaving ${from.describe}`);
    session.close();
    (this.states[this.index] as MasterBackoff).spread = false;
    this.index = j;
    (this.states[j] as MasterBackoff).notBefore = 0;
  }

  /** The attached session ended: retry this master (within the grace period when there are several). */
  private lost(end: SessionEnd, lasted: number): void {
    const { logger } = this.opts;
    const target = this.targets[this.index] as MasterTarget;
    const state = this.states[this.index] as MasterBackoff;
    state.attempt = lasted >= STABLE_PERIOD_MS ? 0 : state.attempt + 1;
    state.spread = end.cause === 'master';
    logger.warn(`lost connection to ${target.describe} after ${seconds(lasted)} attached: ${end.reason}`);
    this.lastError = { message: `lost connection: ${end.reason}`, at: Date.now() };
    if (this.several) this.graceEnd = this.now() + (this.opts.failoverGraceMs ?? 0);
    this.scheduleRetry(state);
  }

  /** A connection attempt failed: returns 'gave-up' when no retry can help, else picks what to try next. */
  private failed(err: unknown, failures: number): 'gave-up' | undefined {
    const { logger } = this.opts;
    const state = this.states[this.index] as MasterBackoff;
    state.attempt++;
    // `spread` stays: a master that is still restarting refuses the early ones of a fleet, and their retries
    // on the short first steps of the back-off would gather into a wave just when it comes back
    const code = err instanceof AgentError ? err.code : 'E_CONNECT';
    logger.error(`${errorMessage(err)}${code === 'E_AUTH' ? ' (check the worker name and password on both sides; retrying)' : ''}`);
    // a setting or a build that no retry can mend
    if (code === 'E_CONFIG' || code === 'E_WS_INTERNALS') return 'gave-up';
    if (this.opts.maxretries !== null && failures > this.opts.maxretries) {
      logger.error(`giving up after ${failures} failed connection attempts (maxretries ${this.opts.maxretries})`);
      return 'gave-up';
    }
    if (this.abort.signal.aborted) return undefined;
    const moveOn = this.several && (this.graceEnd === undefined || this.now() >= this.graceEnd);
    this.scheduleRetry(state, !moveOn);
    if (moveOn) this.moveOn();
    return undefined;
  }

  /** Draws when this master is tried again; `log`: that is what happens next (no move to another master). */
  private scheduleRetry(state: MasterBackoff, log = true): void {
    const { capS } = state.schedule(this.now(), this.opts.maxdelayS, this.opts.random);
    // within the grace period the lost master is tried again by its end at the latest
    if (this.graceEnd !== undefined) state.notBefore = Math.min(state.notBefore, Math.max(this.graceEnd, this.now()));
    if (!log) return;
    const why = state.spread ? ', spread because the master ended the session' : '';
    const target = this.several ? ` ${(this.targets[this.index] as MasterTarget).describe}` : '';
    this.opts.logger.info(
      `reconnecting${target} in ${seconds(state.notBefore - this.now())} (drawn from 0-${capS.toFixed(1)} s, back-off step ${state.attempt}${why})`,
    );
  }

  /** The master tried now is gone (past its grace period, or never attached): on to the next in the list. */
  private moveOn(): void {
    const from = this.targets[this.index] as MasterTarget;
    const lostOne = this.graceEnd !== undefined;
    this.graceEnd = undefined;
    this.index = (this.index + 1) % this.targets.length;
    const to = this.targets[this.index] as MasterTarget;
    const why = lostOne ? `it has not come back within the failover grace of ${seconds(this.opts.failoverGraceMs ?? 0)}` : 'it does not accept the worker';
    const wait = (this.states[this.index] as MasterBackoff).notBefore - this.now();
    const when = wait > 0 ? `; trying it in ${seconds(wait)} (its own back-off)` : '';
    this.opts.logger.warn(`failing over from ${from.describe} to ${to.describe}: ${why}${when}`);
  }

  /** The attached master's description (MasterTarget.describe), or undefined while not attached. */
  get attachedTo(): string | undefined {
    return this.current ? (this.targets[this.index] as MasterTarget).describe : undefined;
  }

  /** A snapshot for status and metrics (read-only). */
  stats(): ConnectionStats {
    const target = this.targets[this.index] as MasterTarget;
    return {
      state: this.state,
      master: target.address ?? target.describe,
      protocol: target.protocol ?? null,
      connectedSince: this.connectedSince,
      lastError: this.lastError,
      connects: this.connects,
      reconnects: Math.max(0, this.connects - 1),
      failedAttempts: this.failedAttempts,
    };
  }

  get everConnected(): boolean {
    return this.connectedOnce;
  }

  /** Stops reconnecting and closes the live session, if any. */
  stop(): void {
    this.abort.abort();
    this.current?.close();
  }
}
