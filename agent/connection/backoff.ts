// Reconnect delays: jittered exponential back-off capped at maxdelay, as Twisted's ClientService uses for
// buildbot-worker (min(1.0 * 1.5^attempt, maxdelay) + random [0, 1) seconds).

/** First delay and growth factor of buildbot-worker's ClientService back-off. */
export const BACKOFF_INITIAL_S = 1.0;
export const BACKOFF_FACTOR = 1.5;

export function backoffDelayMs(attempt: number, maxdelayS: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_INITIAL_S * BACKOFF_FACTOR ** attempt, maxdelayS);
  return Math.round((base + random()) * 1000);
}
