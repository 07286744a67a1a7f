// A seeded PRNG for property and simulation tests: the same seed gives the same draws on every machine.

/** mulberry32, the agent's own (agent/perf/bootstrap.ts): uniform doubles in [0, 1). */
export { mulberry32 as seeded } from '../../agent/perf/bootstrap.js';

/** A log-normal draw exp(mu + sigma * N(0, 1)) (Box-Muller). */
export function logNormal(rand: () => number, mu: number, sigma: number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.exp(mu + sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}

/** A copy of `items` in a random order (Fisher-Yates). */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
