// Adaptive replicates: rather than a fixed count, keep running until the bootstrap 95% CI of the median is narrow
// enough (half-width <= target% of the median), within [min, max] replicates. A quiet benchmark stops near `min`;
// a noisy one runs to `max` and says its target was not reached. The check runs on the filtered series (what the
// result reports), with fewer resamples than the final interval: it only decides whether to go on.

import { AgentError } from '../errors.js';
import { bootstrapMedianCI, type MedianInterval } from './bootstrap.js';
import { median } from './stats.js';

/** Resamples for the stopping check after each replicate (the reported interval uses the full count). */
export const CHECK_RESAMPLES = 1000;

export interface AdaptivePolicy {
  /** Stop when the CI half-width <= this percentage of the median (e.g. 1 for ±1%). */
  targetPercent: number;
  /** Replicates always run (after warm-up). */
  min: number;
  /** Replicates never exceeded. */
  max: number;
}

export function checkAdaptivePolicy(p: AdaptivePolicy): AdaptivePolicy {
  if (!(Number.isFinite(p.targetPercent) && p.targetPercent > 0 && p.targetPercent < 100)) {
    throw new AgentError('E_PERF_OPTIONS', `--target-ci must be a percentage in (0, 100), got ${p.targetPercent}`);
  }
  if (!Number.isInteger(p.min) || p.min < 2) throw new AgentError('E_PERF_OPTIONS', `--min must be an integer >= 2, got ${p.min}`);
  if (!Number.isInteger(p.max) || p.max < p.min) throw new AgentError('E_PERF_OPTIONS', `--max must be an integer >= --min (${p.min}), got ${p.max}`);
  return p;
}

/** The CI half-width as a percentage of the median (Infinity when the median is 0). */
export function halfWidthPercent(ci: MedianInterval, med: number): number {
  return med === 0 ? (ci.halfWidth === 0 ? 0 : Infinity) : (100 * ci.halfWidth) / Math.abs(med);
}

export type StopReason = 'target-reached' | 'max-reached' | 'fixed-count';

/**
 * Whether to stop after this replicate, given each metric's filtered series so far (every metric must meet the
 * target). `count` is the number of replicates run (before filtering).
 */
export function adaptiveDecision(policy: AdaptivePolicy, count: number, series: readonly (readonly number[])[], seed: number): StopReason | undefined {
  if (count >= policy.max) return 'max-reached';
  if (count < policy.min) return undefined;
  for (const values of series) {
    if (values.length < 2) return undefined;
    const ci = bootstrapMedianCI(values, { resamples: CHECK_RESAMPLES, seed });
    if (halfWidthPercent(ci, median(values)) > policy.targetPercent) return undefined;
  }
  return 'target-reached';
}
