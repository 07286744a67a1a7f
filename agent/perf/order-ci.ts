// The distribution-free confidence interval of the median from order statistics. For n values from any
// continuous distribution, the number below the true median is Binomial(n, 1/2), so the interval between the
// k-th smallest and the k-th largest value, [x(k), x(n+1−k)], covers the median with probability exactly
// 1 − 2·P(X ≤ k − 1): no resampling, no assumption on the shape, and one sort. k is the largest rank whose
// coverage still reaches the confidence asked for; the coverage achieved (>= it, the binomial steps) is reported.
// Fewer than 6 values cannot give 95% (the widest interval, [min, max], covers 1 − 2^(1−n)): the interval is then
// [min, max] with its lower coverage, and `coverage < confidence` says so.

import { AgentError } from '../errors.js';

export interface OrderStatisticInterval {
  method: 'order-statistic';
  low: number;
  high: number;
  /** (high − low) / 2 */
  halfWidth: number;
  /** The confidence asked for (0.95). */
  confidence: number;
  /** The exact coverage of this interval, 1 − 2·P(Binomial(n, ½) ≤ k − 1); below `confidence` for small n. */
  coverage: number;
  /** The 1-based ranks of the ends in the sorted series: [k, n + 1 − k]. */
  ranks: [number, number];
}

/**
 * The rank k and the exact coverage of [x(k), x(n+1−k)] for n values: the largest k with coverage >= confidence,
 * or k = 1 ([min, max]) when even that falls short. The binomial terms are summed in log space, so n may be large.
 */
export function medianRanks(n: number, confidence: number): { k: number; coverage: number } {
  if (!Number.isInteger(n) || n < 1) throw new AgentError('E_PERF_FILTER', `median interval of ${n} values`);
  const alpha = 1 - confidence;
  let logTerm = -n * Math.LN2; // log P(X = 0)
  let cdf = 0; // P(X <= j - 1) before step j
  let best = { k: 1, coverage: 1 - 2 * Math.exp(logTerm) };
  for (let k = 1; 2 * k <= n + 1; k++) {
    // coverage of rank k: 1 − 2·P(X <= k − 1)
    cdf += Math.exp(logTerm);
    const coverage = Math.max(0, 1 - 2 * cdf);
    if (2 * cdf > alpha + 1e-12) break;
    best = { k, coverage };
    logTerm += Math.log((n - k + 1) / k); // P(X = k) from P(X = k − 1)
  }
  return best;
}

export function orderStatisticMedianCI(values: readonly number[], confidence = 0.95): OrderStatisticInterval {
  if (values.length === 0) throw new AgentError('E_PERF_FILTER', 'median interval of an empty series');
  if (!(confidence > 0 && confidence < 1)) throw new AgentError('E_PERF_OPTIONS', `confidence must be in (0, 1), got ${confidence}`);
  const n = values.length;
  const sorted = Float64Array.from(values).sort();
  const { k, coverage } = medianRanks(n, confidence);
  const low = sorted[k - 1]!;
  const high = sorted[n - k]!;
  return { method: 'order-statistic', low, high, halfWidth: (high - low) / 2, confidence, coverage, ranks: [k, n + 1 - k] };
}
