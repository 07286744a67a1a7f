// The bootstrap 95% confidence interval of the median (percentile method): resample the series with replacement
// B times, take each resample's median, and read the 2.5th and 97.5th percentiles of those medians. The resampling
// draws from a seeded PRNG (mulberry32), so the same series and seed give the same interval on every machine and
// run: a result can be recomputed from its artifact.

import { AgentError } from '../errors.js';
import { sortedMedian } from './stats.js';

/** Resamples by default: criterion uses 100 000; 2 000 keeps the 2.5% tails to ~±0.5% of coverage at a few ms. */
export const DEFAULT_RESAMPLES = 2000;
export const DEFAULT_SEED = 0x5eed;
export const DEFAULT_CONFIDENCE = 0.95;

/** mulberry32: a small 32-bit PRNG with a full 2^32 period; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface BootstrapOptions {
  resamples?: number;
  seed?: number;
  confidence?: number;
}

export interface MedianInterval {
  method: 'bootstrap-percentile';
  low: number;
  high: number;
  /** (high − low) / 2 */
  halfWidth: number;
  confidence: number;
  resamples: number;
  seed: number;
}

/**
 * The percentile index rule: of B sorted resample medians, the lower bound is element floor(B·α/2) and the upper
 * element ceil(B·(1 − α/2)) − 1 (0-based), clamped to the list: for B = 2000 at 95%, elements 50 and 1949.
 */
export function percentileBounds(resamples: number, confidence: number): [number, number] {
  const alpha = 1 - confidence;
  const lo = Math.min(resamples - 1, Math.max(0, Math.floor((resamples * alpha) / 2)));
  const hi = Math.min(resamples - 1, Math.max(0, Math.ceil(resamples * (1 - alpha / 2)) - 1));
  return [lo, hi];
}

export function bootstrapMedianCI(values: readonly number[], options: BootstrapOptions = {}): MedianInterval {
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const seed = options.seed ?? DEFAULT_SEED;
  const confidence = options.confidence ?? DEFAULT_CONFIDENCE;
  if (values.length === 0) throw new AgentError('E_PERF_FILTER', 'bootstrap interval of an empty series');
  if (!Number.isInteger(resamples) || resamples < 1) throw new AgentError('E_PERF_OPTIONS', `bootstrap resamples must be an integer >= 1, got ${resamples}`);
  if (!(confidence > 0 && confidence < 1)) throw new AgentError('E_PERF_OPTIONS', `bootstrap confidence must be in (0, 1), got ${confidence}`);
  const rand = mulberry32(seed);
  const n = values.length;
  const sample = new Float64Array(n);
  const medians = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < n; i++) sample[i] = values[Math.floor(rand() * n)]!;
    sample.sort();
    medians[b] = sortedMedian(sample);
  }
  medians.sort();
  const [lo, hi] = percentileBounds(resamples, confidence);
  const low = medians[lo]!;
  const high = medians[hi]!;
  return { method: 'bootstrap-percentile', low, high, halfWidth: (high - low) / 2, confidence, resamples, seed };
}
