// Adaptive replicates: rather than a fixed count, run until the 95% CI of the median is narrow enough
// (half-width <= target% of the median), within [min, max] replicates. The interval is the exact, distribution-free
// order-statistic one (order-ci.ts), the one the result reports, so the run stops on the promise it makes.
// Stopping at the first narrow interval lowers its coverage (optional stopping: a series that happens to look
// tight is the one that stops); the rule limits that by looking only every `checkEvery` replicates from `min` on,
// and the order-statistic interval's own slack (95.7% at n = 25) absorbs the rest: scripts/bench/perf-replicates.ts
// measures the coverage on simulated series of known median. The default max is the fixed count (25), so an
// adaptive run never costs more than a fixed one; a test too noisy for the target runs to max and says so.

import { AgentError } from '../errors.js';
import { orderStatisticMedianCI } from './order-ci.js';
import { median } from './stats.js';

/** Look at the interval every 2 replicates: the coverage loss of looking at every one, at almost no extra cost. */
export const DEFAULT_CHECK_EVERY = 2;
/** The fewest values with a distribution-free 95% CI of the median ([min, max] of 6 covers 96.9%). */
export const MIN_FOR_95 = 6;
export const TARGET_CONFIDENCE = 0.95;

export interface AdaptivePolicy {
  /** Stop when the CI half-width <= this percentage of the median (e.g. 1 for ±1%). */
  targetPercent: number;
  /** Replicates always run (after warm-up) before the first look. */
  min: number;
  /** Replicates never exceeded. */
  max: number;
  /** Look at the interval every this many replicates from `min` on (and at `max`); default DEFAULT_CHECK_EVERY. */
  checkEvery?: number;
}

export function checkAdaptivePolicy(p: AdaptivePolicy): AdaptivePolicy {
  if (!(Number.isFinite(p.targetPercent) && p.targetPercent > 0 && p.targetPercent < 100)) {
    throw new AgentError('E_PERF_OPTIONS', `--target-ci must be a percentage in (0, 100), got ${p.targetPercent}`);
  }
  if (!Number.isInteger(p.min) || p.min < MIN_FOR_95)
    throw new AgentError('E_PERF_OPTIONS', `--min must be an integer >= ${MIN_FOR_95} (fewer values give no 95% CI of the median), got ${p.min}`);
  if (!Number.isInteger(p.max) || p.max < p.min) throw new AgentError('E_PERF_OPTIONS', `--max must be an integer >= --min (${p.min}), got ${p.max}`);
  const every = p.checkEvery ?? DEFAULT_CHECK_EVERY;
  if (!Number.isInteger(every) || every < 1) throw new AgentError('E_PERF_OPTIONS', `--check-every must be an integer >= 1, got ${every}`);
  return p;
}

/** The CI half-width as a percentage of the median (Infinity when the median is 0). */
export function halfWidthPercent(ci: { halfWidth: number }, med: number): number {
  return med === 0 ? (ci.halfWidth === 0 ? 0 : Infinity) : (100 * ci.halfWidth) / Math.abs(med);
}

export type StopReason = 'target-reached' | 'max-reached' | 'fixed-count';

/**
 * The widest CI half-width (% of the median) over the metrics' filtered series, Infinity when one of them has too
 * few values for a 95% interval.
 */
export function widestHalfWidthPercent(series: readonly (readonly number[])[]): number {
  let widest = 0;
  for (const values of series) {
    if (values.length === 0) return Infinity;
    const ci = orderStatisticMedianCI(values, TARGET_CONFIDENCE);
    if (ci.coverage < TARGET_CONFIDENCE) return Infinity;
    widest = Math.max(widest, halfWidthPercent(ci, median(values)));
  }
  return widest;
}

/**
 * Whether to stop after this replicate, given each metric's filtered series so far (every metric must meet the
 * target). `count` is the number of replicates run (before filtering). At max, the target is still checked, so a
 * run that meets it on its last replicate says 'target-reached'.
 */
export function adaptiveDecision(policy: AdaptivePolicy, count: number, series: readonly (readonly number[])[]): StopReason | undefined {
  const every = policy.checkEvery ?? DEFAULT_CHECK_EVERY;
  const atMax = count >= policy.max;
  if (!atMax && (count < policy.min || (count - policy.min) % every !== 0)) return undefined;
  if (widestHalfWidthPercent(series) <= policy.targetPercent) return 'target-reached';
  return atMax ? 'max-reached' : undefined;
}
