// Replicates needed for a target CI versus a fixed 25 (issue 13's goal: >= 30% fewer), measured honestly: for each
// rule, what it costs (replicates), what it delivers (the final 95% CI half-width, how often it is within the
// target) and whether the interval keeps its promise (coverage: how often it contains the true median).
//
// 1. Simulated series of known distribution (seeded, reproducible): four noise models (normal; right-skewed
//    shifted lognormal; 5% outliers 10-50% slow; warm-up drift, the first replicates up to 3 CV slower) at CV 0.5,
//    1, 2 and 3%; drift again after --warmup 2. The true median of each model is the median of 400 001 draws from it (steady state for drift).
//    Rules: a fixed 25 with the bootstrap CI (what bbagent reported before) and with the exact order-statistic CI
//    (what it reports now); the adaptive rule before (bootstrap CI, min 10, max 50, a look after every replicate)
//    and now (exact CI, min 6, max 25, a look every 2 replicates), and now without the every-2 correction.
// 2. A sweep of the noise-to-target ratio (CV / target) for the rule now, normal noise: where the saving comes from,
//    and the coverage with a look after every replicate (docs/perf.md's worst cases come from --trials 20000).
// 3. A real command on this machine (a shell loop of a few ms): fixed 25 and adaptive through runPerf (gate off).
// 4. The quiet-host gate's own cost.
//
// Usage: npx esbuild scripts/bench/perf-replicates.ts --bundle --platform=node --format=esm \
//          --packages=external --outfile=build/cache/perf-replicates.mjs && node build/cache/perf-replicates.mjs
//        [--trials N (exact-CI rules, default 4000)] [--boot-trials N (bootstrap rules, default 100)]
//        [--target PCT (default 1)] [--no-real] [--sweep-only]

import { parseArgs } from 'node:util';
import { adaptiveDecision, halfWidthPercent, type AdaptivePolicy } from '../../agent/perf/adaptive.js';
import { bootstrapMedianCI, mulberry32 } from '../../agent/perf/bootstrap.js';
import { orderStatisticMedianCI } from '../../agent/perf/order-ci.js';
import { runPerf } from '../../agent/perf/run.js';
import { median } from '../../agent/perf/stats.js';
import { GATE_WINDOW_MS } from '../../agent/perf/gate.js';
import { currentPlatform } from '../../platforms/index.js';
import { currentQuietHostProbe } from '../../platforms/common/quiet-host.js';

const FIXED = 25;
const LEVELS = [0.5, 1, 2, 3];

type Rand = () => number;
type Draw = () => number;

function normal(rand: Rand): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Noise models around 100 with the given CV (in %): each call makes a fresh series' generator. */
const MODELS: Record<string, (cv: number, rand: Rand) => Draw> = {
  normal: (cv, rand) => () => 100 * (1 + (cv / 100) * normal(rand)),
  // shifted lognormal of shape 0.8 scaled to the CV: a long right tail, as run times have
  lognormal: (cv, rand) => {
    const shape = 0.8;
    const m = Math.exp((shape * shape) / 2);
    const sd = Math.sqrt((Math.exp(shape * shape) - 1) * Math.exp(shape * shape));
    return () => 100 * (1 + ((cv / 100) * (Math.exp(shape * normal(rand)) - m)) / sd);
  },
  // 5% of replicates hit by something else on the host: 10-50% slower
  outliers: (cv, rand) => () => {
    const x = 100 * (1 + (cv / 100) * normal(rand));
    return rand() < 0.05 ? x * (1.1 + 0.4 * rand()) : x;
  },
  // caches and clocks warming up: replicate i is slower by 3·CV·e^(−(i−1)/2)
  drift: (cv, rand) => {
    let i = 0;
    return () => 100 * (1 + (cv / 100) * normal(rand)) * (1 + (3 * cv * Math.exp(-i++ / 2)) / 100);
  },
  // the same drift after `--warmup 2` (the two warm-up runs are not counted as replicates)
  'drift, warmup 2': (cv, rand) => {
    const draw = MODELS['drift']!(cv, rand);
    draw();
    draw();
    return draw;
  },
};

function trueMedian(model: string, cv: number): number {
  const draw = MODELS[model.startsWith('drift') ? 'normal' : model]!(cv, mulberry32(99));
  return median(Array.from({ length: 400_001 }, draw));
}

interface Interval {
  low: number;
  high: number;
  halfWidth: number;
}
interface Rule {
  label: string;
  /** The interval the rule reports (and, for adaptive rules, stops on). */
  ci: (values: number[]) => Interval;
  /** undefined: a fixed FIXED. */
  stop?: (values: number[]) => boolean;
  boot: boolean;
}

const bootCi = (resamples: number) => (v: number[]) => bootstrapMedianCI(v, { resamples, seed: 0x5eed });
const exactCi = (v: number[]): Interval => orderStatisticMedianCI(v);

function exactRule(label: string, policy: AdaptivePolicy): Rule {
  return { label, ci: exactCi, stop: (v) => adaptiveDecision(policy, v.length, [v]) !== undefined, boot: false };
}

/** The rule bbagent had: bootstrap (1000 resamples) after every replicate from 10 on, up to 50. */
function bootstrapRuleBefore(target: number): Rule {
  const check = bootCi(1000);
  return {
    label: 'adaptive before (bootstrap, 10..50, every 1)',
    ci: bootCi(2000),
    stop: (v) => v.length >= 50 || (v.length >= 10 && halfWidthPercent(check(v), median(v)) <= target),
    boot: true,
  };
}

function rules(target: number): Rule[] {
  return [
    { label: 'fixed 25, bootstrap CI', ci: bootCi(2000), boot: true },
    { label: 'fixed 25, exact CI', ci: exactCi, boot: false },
    bootstrapRuleBefore(target),
    exactRule('adaptive now (exact, 6..25, every 2)', { targetPercent: target, min: 6, max: FIXED, checkEvery: 2 }),
    exactRule('adaptive, no correction (exact, 6..25, every 1)', { targetPercent: target, min: 6, max: FIXED, checkEvery: 1 }),
  ];
}

interface Outcome {
  n: number;
  met: number;
  halfWidth: number;
  coverage: number;
}

function evaluate(rule: Rule, model: string, cv: number, target: number, trials: number, truth: number): Outcome {
  const rand = mulberry32(1 + Math.round(cv * 100) + 7919 * Object.keys(MODELS).indexOf(model));
  let n = 0;
  let met = 0;
  let hw = 0;
  let covered = 0;
  for (let t = 0; t < trials; t++) {
    const draw = MODELS[model]!(cv, rand);
    const v: number[] = [];
    if (rule.stop) {
      do v.push(draw());
      while (!rule.stop(v));
    } else for (let i = 0; i < FIXED; i++) v.push(draw());
    const ci = rule.ci(v);
    const h = halfWidthPercent(ci, median(v));
    n += v.length;
    hw += h;
    if (h <= target) met++;
    if (ci.low <= truth && truth <= ci.high) covered++;
  }
  return { n: n / trials, met: (100 * met) / trials, halfWidth: hw / trials, coverage: (100 * covered) / trials };
}

const cell = (o: Outcome): string => `${o.n.toFixed(1)} | ${o.met.toFixed(0)}% | ±${o.halfWidth.toFixed(2)}% | ${o.coverage.toFixed(1)}%`;

function simulate(target: number, trials: number, bootTrials: number): void {
  const rs = rules(target);
  console.log(`\n## Simulation: target ±${target}%; ${trials} series per cell (bootstrap rules: ${bootTrials})`);
  console.log('Each rule: replicates | target met | mean CI half-width | coverage of the true median');
  rs.forEach((r, i) => console.log(`  R${i + 1}: ${r.label}`));
  console.log(`\n| noise | CV | ${rs.map((_, i) => `R${i + 1} n | met | ±CI | cover`).join(' | ')} |`);
  console.log(`|---|---|${rs.map(() => '---|---|---|---').join('|')}|`);
  const totals = new Map<string, Map<string, number>>();
  for (const model of Object.keys(MODELS)) {
    for (const cv of LEVELS) {
      const truth = trueMedian(model, cv);
      const outs = rs.map((r) => evaluate(r, model, cv, target, r.boot ? bootTrials : trials, truth));
      console.log(`| ${model} | ${cv}% | ${outs.map(cell).join(' | ')} |`);
      const m = totals.get(model) ?? new Map<string, number>();
      rs.forEach((r, i) => m.set(r.label, (m.get(r.label) ?? 0) + outs[i]!.n));
      totals.set(model, m);
    }
  }
  console.log('\nReplicates over the four levels, against 4 × 25 = 100:');
  for (const [model, m] of totals) {
    const parts = [...m].filter(([label]) => label.startsWith('adaptive')).map(([label, n]) => `${label}: ${n.toFixed(1)} (${(100 - n).toFixed(0)}% fewer)`);
    console.log(`  ${model}: ${parts.join('; ')}`);
  }
}

/** Where the saving comes from: the rule now against a fixed 25 as the test's noise grows relative to the target. */
function sweep(target: number, trials: number): void {
  const now = exactRule('now', { targetPercent: target, min: 6, max: FIXED, checkEvery: 2 });
  const fixed: Rule = { label: 'fixed', ci: exactCi, boot: false };
  const every1 = exactRule('every 1', { targetPercent: target, min: 6, max: FIXED, checkEvery: 1 });
  console.log(`\n## CV / target sweep (normal noise, target ±${target}%, ${trials} series each)\n`);
  console.log(
    '| CV / target | adaptive replicates | fewer than 25 | adaptive: met, coverage | fixed 25: met, coverage | looking every 1: replicates, coverage |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const ratio of [0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3]) {
    const cv = ratio * target;
    const truth = 100;
    const a = evaluate(now, 'normal', cv, target, trials, truth);
    const f = evaluate(fixed, 'normal', cv, target, trials, truth);
    const e = evaluate(every1, 'normal', cv, target, trials, truth);
    console.log(
      `| ${ratio} | ${a.n.toFixed(1)} | ${(100 - (100 * a.n) / FIXED).toFixed(0)}% | ${a.met.toFixed(0)}%, ${a.coverage.toFixed(1)}% | ` +
        `${f.met.toFixed(0)}%, ${f.coverage.toFixed(1)}% | ${e.n.toFixed(1)}, ${e.coverage.toFixed(1)}% |`,
    );
  }
}

async function real(target: number): Promise<void> {
  const deps = { processControl: currentPlatform(), probe: currentQuietHostProbe(), agentVersion: 'bench' };
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  const base = {
    name: 'sh-loop',
    argv: ['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'],
    cwd: process.cwd(),
    env,
    warmup: 2,
    filter: 'median',
    quietHost: 'off' as const,
    framework: 'bench',
  };
  console.log('');
  for (const adaptive of [undefined, { targetPercent: target, min: 6, max: FIXED }]) {
    const r = await runPerf({ ...base, repeat: FIXED, ...(adaptive ? { adaptive } : {}) }, deps);
    const s = r.subtests[0]!;
    console.log(
      `real ${adaptive ? `adaptive ±${target}%` : 'fixed 25'}: ${r.replicatesRun} replicates (${r.stopReason}), median ${s.stats.median.toFixed(2)} ms, ` +
        `exact CI ±${s.ciHalfWidthPercent.toFixed(2)}%, CV ${s.stats.cvPercent.toFixed(2)}%, ${s.outliers.outliers.length} outlier(s)`,
    );
  }
}

function gateCost(): void {
  const probe = currentQuietHostProbe();
  const times: number[] = [];
  let processes = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    probe.cpuTimes();
    processes = probe.processCpu()?.size ?? 0;
    probe.throttleEvents();
    times.push(performance.now() - t0);
  }
  console.log(
    `gate: window ${GATE_WINDOW_MS} ms + two samples of ${median(times).toFixed(2)} ms each (median of 20; ${processes} processes read, source ${probe.source})`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '4000' },
      'boot-trials': { type: 'string', default: '100' },
      target: { type: 'string', default: '1' },
      'no-real': { type: 'boolean', default: false },
      'sweep-only': { type: 'boolean', default: false },
    },
  });
  const target = Number(values.target);
  const t0 = performance.now();
  if (!values['sweep-only']) simulate(target, Number(values.trials), Number(values['boot-trials']));
  sweep(target, Number(values.trials));
  console.log(`\nsimulation: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (!values['no-real'] && !values['sweep-only']) {
    await real(Math.max(target, 2));
    gateCost();
  }
}

await main();
