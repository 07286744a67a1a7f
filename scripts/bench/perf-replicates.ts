// Replicates needed for a target CI versus a fixed 25 (issue 13's goal: >= 30% fewer). Two parts:
//
// 1. Simulated series of known noise (normal, CV 0.5%, 1%, 2%, 3%; seeded, so the figures are reproducible):
//    for each level, TRIALS runs of the adaptive rule (stop when the 95% CI of the median is within ±TARGET%,
//    min 10, max 50: bbagent's defaults) against a fixed 25. Reported: the mean replicate count, the share of runs
//    whose final CI met the target, and the mean CI half-width, for both. This isolates the stopping rule from
//    the machine's noise.
// 2. A real command on this machine (a shell loop of a few ms): one fixed-25 run and one adaptive run through
//    runPerf, the real runner (gate off: the bench machine is shared), with the CV each reports.
// 3. The quiet-host gate's own cost: its window (GATE_WINDOW_MS) plus the reads of one sample (CPU counters and
//    every process's CPU time), timed over 20 samples.
//
// Usage: npx esbuild scripts/bench/perf-replicates.ts --bundle --platform=node --format=esm \
//          --packages=external --outfile=build/cache/perf-replicates.mjs && node build/cache/perf-replicates.mjs
//        [--trials N] [--target PCT]

import { parseArgs } from 'node:util';
import { adaptiveDecision, halfWidthPercent } from '../../agent/perf/adaptive.js';
import { bootstrapMedianCI, mulberry32 } from '../../agent/perf/bootstrap.js';
import { runPerf } from '../../agent/perf/run.js';
import { median } from '../../agent/perf/stats.js';
import { GATE_WINDOW_MS } from '../../agent/perf/gate.js';
import { currentPlatform } from '../../platforms/index.js';
import { currentQuietHostProbe } from '../../platforms/common/quiet-host.js';

const FIXED = 25;
const MIN = 10;
const MAX = 50;

function normal(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

interface Outcome {
  n: number;
  halfWidth: number;
}

function finalCi(values: number[]): number {
  return halfWidthPercent(bootstrapMedianCI(values), median(values));
}

function simulate(cv: number, target: number, trials: number): { fixed: Outcome[]; adaptive: Outcome[] } {
  const rand = mulberry32(Math.round(cv * 1000) + 17);
  const fixed: Outcome[] = [];
  const adaptive: Outcome[] = [];
  for (let t = 0; t < trials; t++) {
    const draw = (): number => 100 * (1 + (cv / 100) * normal(rand));
    const f = Array.from({ length: FIXED }, draw);
    fixed.push({ n: FIXED, halfWidth: finalCi(f) });
    const a: number[] = [];
    for (;;) {
      a.push(draw());
      if (adaptiveDecision({ targetPercent: target, min: MIN, max: MAX }, a.length, [a], 0x5eed)) break;
    }
    adaptive.push({ n: a.length, halfWidth: finalCi(a) });
  }
  return { fixed, adaptive };
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

function row(label: string, o: Outcome[], target: number): string {
  const met = (100 * o.filter((x) => x.halfWidth <= target).length) / o.length;
  return `${label.padEnd(9)} replicates ${mean(o.map((x) => x.n))
    .toFixed(1)
    .padStart(5)}   CI met ${met.toFixed(0).padStart(3)}%   mean CI ±${mean(o.map((x) => x.halfWidth)).toFixed(2)}%`;
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
  for (const adaptive of [undefined, { targetPercent: target, min: MIN, max: MAX }]) {
    const r = await runPerf({ ...base, repeat: FIXED, ...(adaptive ? { adaptive } : {}) }, deps);
    const s = r.subtests[0]!;
    console.log(
      `real ${adaptive ? `adaptive ±${target}%` : 'fixed 25'}: ${r.replicatesRun} replicates (${r.stopReason}), median ${s.stats.median.toFixed(2)} ms, ` +
        `CI ±${s.ciHalfWidthPercent.toFixed(2)}%, CV ${s.stats.cvPercent.toFixed(2)}%, ${s.outliers.outliers.length} outlier(s)`,
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
  const { values } = parseArgs({ options: { trials: { type: 'string', default: '40' }, target: { type: 'string', default: '1' } } });
  const trials = Number(values.trials);
  const target = Number(values.target);
  let fixedTotal = 0;
  let adaptiveTotal = 0;
  console.log(`target: 95% CI of the median within ±${target}%; adaptive min ${MIN}, max ${MAX}; ${trials} trials per level`);
  for (const cv of [0.5, 1, 2, 3]) {
    const { fixed, adaptive } = simulate(cv, target, trials);
    console.log(`CV ${cv}%:`);
    console.log(`  ${row('fixed 25', fixed, target)}`);
    console.log(`  ${row('adaptive', adaptive, target)}`);
    fixedTotal += mean(fixed.map((x) => x.n));
    adaptiveTotal += mean(adaptive.map((x) => x.n));
  }
  console.log(
    `all levels: adaptive ${adaptiveTotal.toFixed(1)} vs fixed ${fixedTotal.toFixed(1)} replicates (${((100 * (fixedTotal - adaptiveTotal)) / fixedTotal).toFixed(0)}% fewer)`,
  );
  await real(Math.max(target, 2));
  gateCost();
}

await main();
