// Keeps the worker connected: connect, wait for the session to end, back off, reconnect. Policy lives here;
// the protocol connectors below it only know how to open one session.

import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { backoffDelayMs } from './backoff.js';

export interface LiveSession {
  /** Resolves when the connection ended, for whatever reason. */
  readonly closed: Promise<unknown>;
  close(): void;
}

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
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
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
    let failures = 0;
    while (!this.abort.signal.aborted) {
      logger.info(`Connecting to ${this.opts.describe}`);
      try {
        const session = await this.opts.connect();
        if (this.abort.signal.aborted) {
          session.close();
          break;
        }
        this.current = session;
        this.connectedOnce = true;
        failures = 0;
        logger.info(`Connected to ${this.opts.describe}; worker is ready`);
        await session.closed;
        this.current = undefined;
        if (this.abort.signal.aborted) break;
        logger.warn(`lost connection to ${this.opts.describe}`);
      } catch (err) {
        failures++;
        const code = err instanceof AgentError ? err.code : 'E_CONNECT';
        logger.error(`${errorMessage(err)}${code === 'E_AUTH' ? ' (check the worker name and password on both sides; retrying)' : ''}`);
        if (code === 'E_CONFIG') return 'gave-up';
        if (this.opts.maxretries !== null && failures > this.opts.maxretries) {
          logger.error(`giving up after ${failures} failed connection attempts (maxretries ${this.opts.maxretries})`);
          return 'gave-up';
        }
      }
      if (this.abort.signal.aborted) break;
      const delay = backoffDelayMs(failures, this.opts.maxdelayS, this.opts.random);
      logger.info(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay, this.abort.signal);
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
