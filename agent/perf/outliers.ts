// Outliers are flagged and reported, never dropped: a replicate whose modified z-score (Iglewicz and Hoaglin:
// 0.6745 · |x − median| / MAD, i.e. the distance in MAD-estimated standard deviations) is above the cut is listed
// with its index and score, and stays in the replicates and in every statistic. The summary filter (a median)
// is what makes a result robust to them; the list is there so a person can see a noisy run for what it is.

import { MAD_TO_SIGMA, mad, median } from './stats.js';

/** Iglewicz and Hoaglin's cut for the modified z-score (hyperfine warns only at ~14.8). */
export const OUTLIER_Z = 3.5;

export interface Outlier {
  /** Index in the replicates (warm-up runs excluded). */
  index: number;
  value: number;
  /** The modified z-score, signed (+ above the median). */
  z: number;
}

export interface OutlierReport {
  outliers: Outlier[];
  /** The first replicate is an outlier above the median: a cold start (caches, JIT); --warmup or ignore_first helps. */
  coldFirst: boolean;
}

/**
 * Flags the replicates whose modified z-score exceeds `cut`. With a MAD of 0 (more than half the values equal)
 * any value off the median is an outlier of infinite score, reported as such.
 */
export function flagOutliers(values: readonly number[], cut = OUTLIER_Z): OutlierReport {
  if (values.length < 3) return { outliers: [], coldFirst: false };
  const m = median(values);
  const sigma = MAD_TO_SIGMA * mad(values);
  const outliers: Outlier[] = [];
  values.forEach((value, index) => {
    const d = value - m;
    const z = sigma === 0 ? (d === 0 ? 0 : Math.sign(d) * Infinity) : d / sigma;
    if (Math.abs(z) > cut) outliers.push({ index, value, z });
  });
  return { outliers, coldFirst: outliers.some((o) => o.index === 0 && o.z > 0) };
}
