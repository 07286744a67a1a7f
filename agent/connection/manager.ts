// Keeps the worker connected: connect, wait for the session to end, back off, reconnect. Policy lives here;
// the protocol connectors below it only know how to open one session and say why it ended.

import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { startDelay } from '../timers.js';
import type { LiveSession } from './protocol.js';
import { reconnectDelay } from './backoff.js';

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
  /** Opens and attaches one session; rejects with an AgentError naming what went wrong. */
  connect: () => Promise<LiveSession>;
  /** Human-readable master address for log lines. */
  describe: string;
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

export class ConnectionManager {
  private readonly abort = new AbortController();
  private current: LiveSession | undefined;
  private connectedOnce = false;

  constructor(private readonly opts: ConnectionManagerOptions) {}

  /** Runs until stop() ('stopped') or until maxretries failed attempts in a row ('gave-up'). */
  async run(): Promise<'stopped' | 'gave-up'> {
    const { logger } = this.opts;
    const sleep = this.opts.sleep ?? abortableSleep;
    const now = this.opts.now ?? (() => performance.now());
    /** Back-off step: failed attempts and short sessions since the last stable session. */
    let attempt = 0;
    /** Failed connection attempts in a row (maxretries counts these). */
    let failures = 0;
    /** The master ended the last session: spread the attempts over the restart window until one succeeds. */
    let spread = false;
    let count = 0;
    while (!this.abort.signal.aborted) {
      count++;
      logger.info(`Connecting to ${this.opts.describe} (attempt ${count})`);
      try {
        const session = await this.opts.connect();
        if (this.abort.signal.aborted) {
          session.close();
          break;
        }
        this.current = session;
        this.connectedOnce = true;
        failures = 0;
        const since = now();
        logger.info(`Connected to ${this.opts.describe}; worker is ready`);
        const end = await session.closed;
        this.current = undefined;
        if (this.abort.signal.aborted) break;
        const lasted = now() - since;
        attempt = lasted >= STABLE_PERIOD_MS ? 0 : attempt + 1;
        spread = end.cause === 'master';
        logger.warn(`lost connection to ${this.opts.describe} after ${seconds(lasted)} attached: ${end.reason}`);
      } catch (err) {
        failures++;
        attempt++;
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
      }
      if (this.abort.signal.aborted) break;
      const { delayMs, capS } = reconnectDelay(attempt, this.opts.maxdelayS, spread, this.opts.random);
      const why = spread ? ', spread because the master ended the session' : '';
      logger.info(`reconnecting in ${seconds(delayMs)} (drawn from 0-${capS.toFixed(1)} s, back-off step ${attempt}${why})`);
      await sleep(delayMs, this.abort.signal);
    }
    return 'stopped';
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
