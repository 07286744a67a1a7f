// Descriptive statistics of a perf series: the centre (mean, median, geometric mean), the spread (sample standard
// deviation, coefficient of variation, median absolute deviation). Plain functions of a number list; each throws
// on an empty list rather than returning NaN, so a missing value is never reported as a number.

import { AgentError } from '../errors.js';

function nonEmpty(values: readonly number[], what: string): void {
  if (values.length === 0) throw new AgentError('E_PERF_FILTER', `${what} of an empty series`);
}

export function mean(values: readonly number[]): number {
  nonEmpty(values, 'mean');
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The median; for an even count the mean of the two middle values (Python's statistics.median, Talos's median). */
export function median(values: readonly number[]): number {
  nonEmpty(values, 'median');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median of an already sorted list (the bootstrap's inner loop sorts its own buffer). */
export function sortedMedian(sorted: ArrayLike<number>): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Sample variance (divides by n − 1, Python's statistics.variance); 0 for a single value. */
export function variance(values: readonly number[]): number {
  nonEmpty(values, 'variance');
  if (values.length < 2) return 0;
  const m = mean(values);
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return ss / (values.length - 1);
}

/** Sample standard deviation (n − 1), as google/benchmark's aggregates and Python's statistics.stdev. */
export function stddev(values: readonly number[]): number {
  return Math.sqrt(variance(values));
}

/** Population standard deviation (÷ n): what Talos's `stddev` filter computes. */
export function pstddev(values: readonly number[]): number {
  nonEmpty(values, 'stddev');
  const m = mean(values);
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return Math.sqrt(ss / values.length);
}

/** Coefficient of variation in percent: 100 · stddev / |mean| (0 when the mean is 0, to stay finite). */
export function cvPercent(values: readonly number[]): number {
  const m = mean(values);
  return m === 0 ? 0 : (100 * stddev(values)) / Math.abs(m);
}

/** Median absolute deviation from the median (unscaled; multiply by 1.4826 for a normal-consistent sigma). */
export function mad(values: readonly number[]): number {
  const m = median(values);
  return median(values.map((v) => Math.abs(v - m)));
}

/** The factor that makes the MAD a consistent estimate of the standard deviation of normal data. */
export const MAD_TO_SIGMA = 1.4826;

/** Geometric mean of positive values (Python's statistics.geometric_mean); throws on a value <= 0. */
export function geometricMean(values: readonly number[]): number {
  nonEmpty(values, 'geometric mean');
  let logs = 0;
  for (const v of values) {
    if (!(v > 0)) throw new AgentError('E_PERF_FILTER', `geometric mean of a series holding ${v}: every value must be > 0`);
    logs += Math.log(v);
  }
  return Math.exp(logs / values.length);
}

/** A summary of one series, as the stats artifact reports it. */
export interface SeriesStats {
  n: number;
  mean: number;
  median: number;
  stddev: number;
  cvPercent: number;
  mad: number;
  min: number;
  max: number;
}

export function describeSeries(values: readonly number[]): SeriesStats {
  return {
    n: values.length,
    mean: mean(values),
    median: median(values),
    stddev: stddev(values),
    cvPercent: cvPercent(values),
    mad: mad(values),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}
