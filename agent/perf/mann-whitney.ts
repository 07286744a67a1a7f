// The Mann-Whitney U test (two-sided, normal approximation with tie and continuity corrections, as scipy's
// mannwhitneyu(method='asymptotic', use_continuity=True)): a rank test that does not assume normal data, the
// second opinion beside Perfherder's t-test in `perf compare`.

export interface MannWhitneyResult {
  /** U of the first sample. */
  u: number;
  z: number;
  /** Two-sided p-value. */
  p: number;
}

/** Mid-ranks (ties share the mean of their ranks), 1-based, and the tie term Σ(t³ − t). */
function ranks(all: readonly number[]): { rank: number[]; tieTerm: number } {
  const order = all.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v);
  const rank = new Array<number>(all.length);
  let tieTerm = 0;
  for (let s = 0; s < order.length;) {
    let e = s;
    while (e + 1 < order.length && order[e + 1]!.v === order[s]!.v) e++;
    const mid = (s + e) / 2 + 1;
    for (let k = s; k <= e; k++) rank[order[k]!.i] = mid;
    const t = e - s + 1;
    tieTerm += t * t * t - t;
    s = e + 1;
  }
  return { rank, tieTerm };
}

/** erfc(x) by Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7 everywhere). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -z * z -
    1.26551223 +
    t *
      (1.00002368 +
        t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const r = t * Math.exp(poly);
  return x >= 0 ? r : 2 - r;
}

export function mannWhitneyU(a: readonly number[], b: readonly number[]): MannWhitneyResult {
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) return { u: 0, z: 0, p: 1 };
  const { rank, tieTerm } = ranks([...a, ...b]);
  let r1 = 0;
  for (let i = 0; i < n1; i++) r1 += rank[i]!;
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const mu = (n1 * n2) / 2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  if (sigma === 0) return { u, z: 0, p: 1 };
  const z = Math.max(0, Math.abs(u - mu) - 0.5) / sigma;
  return { u, z, p: Math.min(1, erfc(z / Math.SQRT2)) };
}
