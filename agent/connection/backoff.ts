// Reconnect delays: exponential back-off with "full jitter" (the delay is drawn uniformly from 0 up to the
// capped exponential), so workers that lost their master at the same instant do not come back in waves.
// buildbot-worker (Twisted's ClientService) waits min(1.5^n, maxdelay) plus only 0-1 s of jitter.

/** First cap and growth factor of the back-off, as buildbot-worker's ClientService (1 s, x1.5). */
export const BACKOFF_INITIAL_S = 1.0;
export const BACKOFF_FACTOR = 1.5;
/**
 * A master restart or shutdown ends every worker's session at the same instant: the first reconnect after a
 * session the master ended is drawn from at least this window (capped by maxdelay), so a fleet of N workers
 * comes back at about N/30 per second instead of all at once.
 */
export const RESTART_SPREAD_S = 30;

/** The upper end, in seconds, of the delay before reconnect attempt `attempt` (0-based). */
export function backoffCapS(attempt: number, maxdelayS: number): number {
  return Math.min(BACKOFF_INITIAL_S * BACKOFF_FACTOR ** Math.min(attempt, 100), maxdelayS);
}

export interface DelayChoice {
  /** Milliseconds to wait. */
  delayMs: number;
  /** The delay was drawn uniformly from [0, capS] seconds. */
  capS: number;
}

/**
 * The delay before the next attempt: uniform in [0, cap]. `spread` (the master ended the last session) raises the
 * cap to at least min(maxdelay, RESTART_SPREAD_S).
 */
export function reconnectDelay(attempt: number, maxdelayS: number, spread: boolean, random: () => number = Math.random): DelayChoice {
  let capS = backoffCapS(attempt, maxdelayS);
  if (spread) capS = Math.max(capS, Math.min(maxdelayS, RESTART_SPREAD_S));
  return { delayMs: Math.round(random() * capS * 1000), capS };
}
