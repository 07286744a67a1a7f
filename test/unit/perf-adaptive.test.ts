// The exact order-statistic CI of the median and the adaptive stopping rule built on it. The ranks and coverages
// are checked against exact binomial sums done independently by Debian's /usr/bin/python3 (math.comb, Fraction);
// the interval's coverage and the rule's (after optional stopping) are measured in seeded simulations of series
// whose true median is known: normal and right-skewed lognormal noise.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { adaptiveDecision, checkAdaptivePolicy, widestHalfWidthPercent, type AdaptivePolicy } from '../../agent/perf/adaptive.js';
import { mulberry32 } from '../../agent/perf/bootstrap.js';
import { medianRanks, orderStatisticMedianCI } from '../../agent/perf/order-ci.js';
import { AgentError } from '../../agent/errors.js';

function normal(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

describe('order-statistic CI of the median', () => {
  it('picks the ranks and coverage an exact binomial sum gives (Python, exact fractions)', () => {
    const ns = [1, 2, 5, 6, 7, 8, 9, 10, 11, 17, 25, 26, 50, 99, 100, 250];
    const expected = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        [
          '-c',
          `import json, math, sys
from fractions import Fraction
out = []
for n in json.loads(sys.argv[1]):
    best = None
    for k in range(1, (n + 1) // 2 + 1):
        cov = 1 - 2 * Fraction(sum(math.comb(n, j) for j in range(k)), 2 ** n)
        if cov >= Fraction(95, 100): best = (k, float(cov))
        else: break
    if best is None: best = (1, float(max(0, 1 - 2 * Fraction(1, 2 ** n))))
    out.append(best)
print(json.dumps(out))`,
          JSON.stringify(ns),
        ],
        { encoding: 'utf8' },
      ),
    ) as [number, number][];
    ns.forEach((n, i) => {
      const got = medianRanks(n, 0.95);
      expect([n, got.k], `n=${n}`).toEqual([n, expected[i]![0]]);
      expect(got.coverage, `n=${n}`).toBeCloseTo(expected[i]![1], 12);
    });
    // large n: summed in log space, no underflow; the coverage stays just above 95%
    const big = medianRanks(10_000, 0.95);
    expect(big.coverage).toBeGreaterThanOrEqual(0.95);
    expect(big.coverage).toBeLessThan(0.952);
    expect(big.k).toBeGreaterThan(4890);
    expect(big.k).toBeLessThan(4910);
  });

  it('returns the k-th smallest and largest values, and says when a series is too short for 95%', () => {
    const xs = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10];
    const ci = orderStatisticMedianCI(xs);
    expect(ci).toMatchObject({ method: 'order-statistic', low: 2, high: 9, halfWidth: 3.5, ranks: [2, 9], confidence: 0.95 });
    expect(ci.coverage).toBeCloseTo(1 - 22 / 1024, 12);
    const short = orderStatisticMedianCI([3, 1, 2, 5, 4]);
    expect([short.low, short.high, short.coverage]).toEqual([1, 5, 0.9375]);
    expect(() => orderStatisticMedianCI([])).toThrow(AgentError);
  });

  it('covers the true median at least as often as it claims, for a skewed distribution (seeded simulation)', () => {
    const rand = mulberry32(42);
    for (const n of [6, 10, 25]) {
      let covered = 0;
      const trials = 3000;
      for (let t = 0; t < trials; t++) {
        const xs = Array.from({ length: n }, () => Math.exp(0.8 * normal(rand))); // lognormal: true median 1
        const ci = orderStatisticMedianCI(xs);
        if (ci.low <= 1 && 1 <= ci.high) covered++;
      }
      const claimed = medianRanks(n, 0.95).coverage;
      // 3000 trials: one standard error is <= 0.4%; allow 3
      expect(covered / trials, `n=${n}`).toBeGreaterThan(claimed - 0.012);
      expect(covered / trials, `n=${n}`).toBeLessThan(claimed + 0.012);
    }
  });
});

interface RuleOutcome {
  meanN: number;
  maxN: number;
  coverage: number;
  reasons: Set<string>;
}

/** Runs the adaptive rule on `trials` seeded series from `draw` (true median `truth`) and measures what it did. */
function simulateRule(policy: AdaptivePolicy, draw: () => number, truth: number, trials: number): RuleOutcome {
  let total = 0;
  let maxN = 0;
  let covered = 0;
  const reasons = new Set<string>();
  for (let t = 0; t < trials; t++) {
    const xs: number[] = [];
    let stop;
    do {
      xs.push(draw());
      stop = adaptiveDecision(policy, xs.length, [xs]);
    } while (stop === undefined && xs.length < 10 * policy.max);
    reasons.add(String(stop));
    total += xs.length;
    maxN = Math.max(maxN, xs.length);
    const ci = orderStatisticMedianCI(xs);
    if (ci.low <= truth && truth <= ci.high) covered++;
  }
  return { meanN: total / trials, maxN, coverage: covered / trials, reasons };
}

describe('adaptive replicates', () => {
  const policy = { targetPercent: 1, min: 6, max: 25, checkEvery: 2 };

  it('keeps the 95% promise after optional stopping, never passes max, and saves where the noise allows', () => {
    const rand = mulberry32(7);
    // CV 2% for a ±1% target: the level where stopping at a lucky narrow interval hurts coverage most
    const hard = simulateRule(policy, () => 100 * (1 + 0.02 * normal(rand)), 100, 3000);
    expect(hard.maxN).toBe(25);
    expect(hard.reasons).toEqual(new Set(['target-reached', 'max-reached']));
    expect(hard.coverage).toBeGreaterThan(0.93);
    expect(hard.meanN).toBeLessThan(25);
    // CV 1%, right-skewed: the target is met early, with >= 30% fewer replicates than a fixed 25
    const shape = 0.8;
    const scale = Math.sqrt((Math.exp(shape * shape) - 1) * Math.exp(shape * shape));
    const quiet = simulateRule(
      policy,
      () => 100 * (1 + (0.01 * (Math.exp(shape * normal(rand)) - Math.exp((shape * shape) / 2))) / scale),
      100 * (1 + (0.01 * (1 - Math.exp((shape * shape) / 2))) / scale),
      3000,
    );
    expect(quiet.reasons).toEqual(new Set(['target-reached']));
    expect(quiet.coverage).toBeGreaterThan(0.93);
    expect(quiet.meanN).toBeLessThan(0.7 * 25);
  });

  it('looks only at min and every checkEvery replicates after it, and checks the target again at max', () => {
    const quiet = (n: number): number[] => Array.from({ length: n }, (_, i) => 100 + (i % 3) * 0.1);
    expect(adaptiveDecision(policy, 5, [quiet(5)])).toBeUndefined();
    expect(adaptiveDecision(policy, 6, [quiet(6)])).toBe('target-reached');
    const rand = mulberry32(5);
    const noisy = Array.from({ length: 25 }, () => 100 + 60 * rand());
    expect(adaptiveDecision(policy, 6, [noisy.slice(0, 6)])).toBeUndefined();
    expect(adaptiveDecision(policy, 24, [noisy.slice(0, 24)])).toBeUndefined();
    expect(adaptiveDecision(policy, 25, [noisy])).toBe('max-reached');
    // between looks the rule does not stop, even on a series that meets the target
    expect(adaptiveDecision(policy, 7, [quiet(7)])).toBeUndefined();
    expect(adaptiveDecision({ ...policy, max: 7 }, 7, [quiet(7)])).toBe('target-reached');
    // every metric must meet the target; a metric with too few kept values has no interval yet
    expect(adaptiveDecision(policy, 12, [quiet(12), noisy.slice(0, 12)])).toBeUndefined();
    expect(widestHalfWidthPercent([quiet(12), quiet(5)])).toBe(Infinity);
  });

  it('refuses a policy that cannot give a 95% interval', () => {
    expect(() => checkAdaptivePolicy({ targetPercent: 1, min: 5, max: 25 })).toThrow(/--min must be an integer >= 6/);
    expect(() => checkAdaptivePolicy({ targetPercent: 0, min: 6, max: 25 })).toThrow(/--target-ci/);
    expect(() => checkAdaptivePolicy({ targetPercent: 1, min: 6, max: 25, checkEvery: 0 })).toThrow(/--check-every/);
  });
});
