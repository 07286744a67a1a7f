// Perfherder's change detection, written from the description of treeherder's perfalert `detect_changes` (not
// copied): for each point i of a time-ordered series, a back window (the points before i, at least 12 values and
// at most 24, growing while no change was seen) and a fore window (i and after, 12 values) are compared with a
// Welch-style t statistic on linearly weighted means (the points nearest i weigh most); a point is a change when
// its t exceeds the threshold (7), both windows are full, and its t is a local maximum.

export interface SeriesPoint {
  /** The values of one push (one or more replicates). */
  values: readonly number[];
}

export interface DetectOptions {
  minBackWindow?: number;
  maxBackWindow?: number;
  foreWindow?: number;
  tThreshold?: number;
}

export interface PointAnalysis {
  /** |t| between the back and fore windows at this point (0 for the first point). */
  t: number;
  /** Values in the back and fore windows. */
  backValues: number;
  foreValues: number;
  changeDetected: boolean;
}

/** Perfherder's defaults (treeherder settings: windows 12/24/12, t > 7). */
export const PERFHERDER_DEFAULTS: Required<DetectOptions> = { minBackWindow: 12, maxBackWindow: 24, foreWindow: 12, tThreshold: 7 };

type WeightFn = (i: number, n: number) => number;

const uniform: WeightFn = () => 1;

/** Weights falling off linearly with the distance from the point analysed (the window's first element). */
export const linearWeights: WeightFn = (i, n) => (i >= n ? 0 : (n - i) / n);

/** The weighted mean (each point's weight shared by its values) and the sample variance around it. */
export function analyzeWindow(points: readonly SeriesPoint[], weight: WeightFn = uniform): { avg: number; n: number; variance: number } {
  let weightedSum = 0;
  let weights = 0;
  points.forEach((p, i) => {
    const w = weight(i, points.length);
    for (const v of p.values) weightedSum += v * w;
    weights += w * p.values.length;
  });
  const avg = points.length > 0 ? weightedSum / weights : 0;
  const all = points.flatMap((p) => p.values);
  let ss = 0;
  for (const v of all) ss += (v - avg) * (v - avg);
  return { avg, n: all.length, variance: all.length > 1 ? ss / (all.length - 1) : 0 };
}

/** The t statistic between two windows (back window ordered nearest first); Infinity when both have no variance. */
export function windowT(back: readonly SeriesPoint[], fore: readonly SeriesPoint[], weight: WeightFn = linearWeights): number {
  if (back.length === 0 || fore.length === 0) return 0;
  const a = analyzeWindow(back, weight);
  const b = analyzeWindow(fore, weight);
  const delta = b.avg - a.avg;
  if (delta === 0) return 0;
  if (a.variance === 0 && b.variance === 0) return Infinity;
  return delta / Math.sqrt(a.variance / a.n + b.variance / b.n);
}

function tScores(series: readonly SeriesPoint[], o: Required<DetectOptions>): PointAnalysis[] {
  const out: PointAnalysis[] = [{ t: 0, backValues: 0, foreValues: 0, changeDetected: false }];
  let sinceChange = 0;
  for (let i = 1; i < series.length; i++) {
    const back: SeriesPoint[] = [];
    let backValues = 0;
    const reach = Math.min(Math.max(sinceChange, o.minBackWindow), o.maxBackWindow);
    for (let j = i - 1; backValues < o.maxBackWindow && j >= 0 && i - j <= reach; j--) {
      back.push(series[j]!);
      backValues += series[j]!.values.length;
    }
    const fore: SeriesPoint[] = [];
    let foreValues = 0;
    for (let j = i; foreValues < o.foreWindow && j < series.length; j++) {
      fore.push(series[j]!);
      foreValues += series[j]!.values.length;
    }
    const t = Math.abs(windowT(back, fore, linearWeights));
    sinceChange = t > o.tThreshold ? 0 : sinceChange + 1;
    out.push({ t, backValues, foreValues, changeDetected: false });
  }
  return out;
}

/** Analyses every point of a time-ordered series as Perfherder does; marks the points where a change happened. */
export function detectChanges(series: readonly SeriesPoint[], options: DetectOptions = {}): PointAnalysis[] {
  const o = { ...PERFHERDER_DEFAULTS, ...options };
  const points = tScores(series, o);
  for (let i = 1; i < points.length; i++) {
    const p = points[i]!;
    if (p.backValues < o.minBackWindow || p.foreValues < o.foreWindow || p.t <= o.tThreshold) continue;
    if (points[i - 1]!.t > p.t) continue;
    if (i + 1 < points.length && points[i + 1]!.t > p.t) continue;
    p.changeDetected = true;
  }
  return points;
}
