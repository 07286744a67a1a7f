// Reconnect delays: exponential back-off with "full jitter" (the delay is drawn uniformly from 0 up to the
// capped exponential), so workers that lost their master at the same instant do not come back in waves.
// buildbot-worker (Twisted's ClientService) waits min(1.5^n, maxdelay) plus only 0-1 s of jitter.

/** First cap and growth factor of the back-off, as buildbot-worker's ClientService (1 s, x1.5). */
export const BACKOFF_INITIAL_S = 1.0;
export const BACKOFF_FACTOR = 1.5;
/**
 * A master restart or shutdown ends every worker's session at the same instant: after a session the master
 * ended, reconnect attempts are drawn from at least this window (capped by maxdelay) until one succeeds, so a
 * fleet of N workers comes back at about N/45 per second instead of all at once, however long the restart.
 * 45 s, not 30: for 200 workers with a 5 s restart, a simulation puts the busiest second (sliding) at 12 attempts
 * typically and above 20 (10%) in none of 20,000 runs; with 30 s it is 16 and above 20 in 1.2% of them.
 */
export const RESTART_SPREAD_S = 45;

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
