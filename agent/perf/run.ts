// A perf run: the quiet-host gate, warm-up runs, then replicates (a fixed count, or adaptive until the CI of the
// median is narrow enough), and the result with every statistic, the outliers and the machine fingerprint.

import { AgentError } from '../errors.js';
import type { ProcessControl } from '../../platforms/types.js';
import type { QuietHostProbe } from '../../platforms/common/quiet-host.js';
import { adaptiveDecision, checkAdaptivePolicy, halfWidthPercent, widestHalfWidthPercent, type StopReason } from './adaptive.js';
import { DEFAULT_SEED, bootstrapMedianCI } from './bootstrap.js';
import { orderStatisticMedianCI } from './order-ci.js';
import { applyFilterSpec, applySeriesFilters, parseFilterSpec, type FilterSpec } from './filters.js';
import { machineFingerprint } from './fingerprint.js';
import { quietHostGate, type GateDeps, type GateReport } from './gate.js';
import { MetricSeries, WALL_TIME_UNIT, parseMetricLines } from './metrics.js';
import { flagOutliers } from './outliers.js';
import { recheckGate, type GateRecheck } from './recheck.js';
import { runReplicate } from './replicate.js';
import { describeSeries, geometricMean } from './stats.js';
import type { PerfResult, PerfRunOptions, SubtestResult } from './types.js';

export interface PerfRunDeps {
  processControl: ProcessControl;
  probe: QuietHostProbe;
  agentVersion: string;
  /** The gate's sleep (tests inject one); default: a timer. */
  sleep?: GateDeps['sleep'];
}

const MAX_REPLICATES = 10_000;

export function checkRunOptions(o: PerfRunOptions): FilterSpec {
  if (o.argv.length === 0) throw new AgentError('E_PERF_OPTIONS', 'no command to measure: give it after --');
  if (!/^[^\s]{1,80}$/.test(o.name)) throw new AgentError('E_PERF_OPTIONS', `--name must be 1 to 80 characters without spaces, got '${o.name}'`);
  if (!Number.isInteger(o.repeat) || o.repeat < 1 || o.repeat > MAX_REPLICATES)
    throw new AgentError('E_PERF_OPTIONS', `--repeat must be an integer in 1..${MAX_REPLICATES}, got ${o.repeat}`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > MAX_REPLICATES)
    throw new AgentError('E_PERF_OPTIONS', `--warmup must be an integer in 0..${MAX_REPLICATES}, got ${o.warmup}`);
  if (o.adaptive) checkAdaptivePolicy(o.adaptive);
  if (o.recheckEvery !== undefined && (!Number.isInteger(o.recheckEvery) || o.recheckEvery < 0 || o.recheckEvery > MAX_REPLICATES))
    throw new AgentError('E_PERF_OPTIONS', `--recheck-every must be an integer in 0..${MAX_REPLICATES}, got ${o.recheckEvery}`);
  if (o.recheckEvery && o.quietHost === 'off')
    throw new AgentError('E_PERF_OPTIONS', '--recheck-every samples the host between replicates: not with --quiet-host off');
  return parseFilterSpec(o.filter);
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AgentError('E_PERF_COMMAND', 'interrupted'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AgentError('E_PERF_COMMAND', 'interrupted while the quiet-host gate sampled'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs the replicates until the fixed count or the adaptive rule says stop; returns the metrics and why it stopped. */
async function replicates(
  o: PerfRunOptions,
  spec: FilterSpec,
  pc: ProcessControl,
  between: (count: number) => Promise<void>,
): Promise<{ series: MetricSeries; source: PerfResult['metricSource']; stop: StopReason }> {
  const series = new MetricSeries();
  let source: PerfResult['metricSource'] | undefined;
  const base = { argv: o.argv, cwd: o.cwd, env: o.env, timeoutMs: o.timeoutMs, onOutput: o.onOutput, signal: o.signal };
  for (let i = 1; i <= o.warmup; i++) {
    const r = await runReplicate(pc, { ...base, label: `warm-up ${i}` });
    o.onProgress?.(`warm-up ${i}/${o.warmup}: ${r.wallMs.toFixed(2)} ms`);
  }
  for (let i = 1; ; i++) {
    const label = `replicate ${i}`;
    const r = await runReplicate(pc, { ...base, label });
    const metrics = parseMetricLines(r.stdout, label);
    source ??= metrics.length > 0 ? 'perfmetric' : 'wall-time';
    if (source === 'wall-time' && metrics.length > 0) throw new AgentError('E_PERF_METRIC', `${label} prints PERFMETRIC lines, but replicate 1 printed none`);
    series.add(source === 'wall-time' ? [{ name: o.name, value: r.wallMs, unit: WALL_TIME_UNIT }] : metrics, label);
    const shown = metrics.length > 0 ? metrics.map((m) => `${m.name}=${m.value}`).join(' ') : '';
    o.onProgress?.(`${label}${o.adaptive ? '' : `/${o.repeat}`}: ${r.wallMs.toFixed(2)} ms${shown ? ` ${shown}` : ''}`);
    let stop: StopReason | undefined;
    if (o.adaptive) {
      const filtered = series.names().map((n) => applySeriesFilters(series.series(n), spec.filters).values);
      stop = adaptiveDecision(o.adaptive, i, filtered);
      if (stop) o.onProgress?.(adaptiveStopLine(stop, o.adaptive.targetPercent, i, widestHalfWidthPercent(filtered)));
    } else if (i >= o.repeat) stop = 'fixed-count';
    if (stop) return { series, source, stop };
    await between(i);
  }
}

function adaptiveStopLine(stop: StopReason, target: number, count: number, widest: number): string {
  const ci = Number.isFinite(widest) ? `±${widest.toFixed(2)}%` : 'none yet (too few kept values)';
  return stop === 'target-reached'
    ? `target ±${target}% reached after ${count} replicates (widest 95% CI ${ci})`
    : `max ${count} replicates reached, target ±${target}% NOT reached (widest 95% CI ${ci})`;
}

export function subtestResult(name: string, unit: string, values: number[], spec: FilterSpec): SubtestResult {
  const filtered = applyFilterSpec(values, spec);
  const stats = describeSeries(filtered.values);
  const ci = orderStatisticMedianCI(filtered.values);
  return {
    name,
    unit,
    replicates: values,
    keptIndices: filtered.indices,
    value: filtered.value,
    stats,
    ci,
    bootstrapCi: bootstrapMedianCI(filtered.values, { seed: DEFAULT_SEED }),
    ciHalfWidthPercent: halfWidthPercent(ci, stats.median),
    outliers: flagOutliers(values),
  };
}

function suiteValue(subtests: readonly SubtestResult[]): number | null {
  if (subtests.length === 1) return subtests[0]!.value;
  return subtests.every((s) => s.value > 0) ? geometricMean(subtests.map((s) => s.value)) : null;
}

export async function runPerf(o: PerfRunOptions, deps: PerfRunDeps): Promise<PerfResult> {
  const spec = checkRunOptions(o);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  let gate: GateReport | undefined;
  if (o.quietHost !== 'off') {
    o.onProgress?.(`quiet-host gate (${o.quietHost}): sampling the host`);
    gate = await quietHostGate(
      { probe: deps.probe, sleep: deps.sleep ?? abortableSleep },
      { mode: o.quietHost, signal: o.signal, onNoisy: (r) => o.onProgress?.(`quiet-host gate: noisy (${r.problems.join(', ')}), waiting`) },
    );
    o.onProgress?.(`quiet-host gate: quiet (background ${gate?.backgroundPercent ?? 0}%)${gate?.warnings.length ? `; ${gate.warnings.join('; ')}` : ''}`);
  }
  const rechecks: GateRecheck[] = [];
  const between = async (count: number): Promise<void> => {
    if (!o.recheckEvery || o.quietHost === 'off' || count % o.recheckEvery !== 0) return;
    // every recheck ends on a quiet window (or fails the run): the suspect span starts at the last one
    const since = rechecks.at(-1)?.afterReplicate ?? 0;
    const r = await recheckGate(
      { probe: deps.probe, sleep: deps.sleep ?? abortableSleep },
      { mode: o.quietHost, afterReplicate: count, sinceReplicate: since, signal: o.signal },
    );
    rechecks.push(r);
    if (!r.quiet)
      o.onProgress?.(`quiet-host recheck after replicate ${count}: was noisy (${r.problems.join(', ')}); replicates ${since + 1}..${count} are suspect`);
  };
  const { series, source, stop } = await replicates(o, spec, deps.processControl, between);
  const subtests = series.names().map((n) => subtestResult(n, series.unit(n) ?? '', series.series(n), spec));
  return {
    format: 'bbagent-perf-stats',
    version: 1,
    suite: o.name,
    framework: o.framework,
    metricSource: source,
    filter: spec.text,
    warmup: o.warmup,
    replicatesRun: series.replicates,
    stopReason: stop,
    adaptive: o.adaptive ?? null,
    value: suiteValue(subtests),
    lowerIsBetter: true,
    subtests,
    fingerprint: machineFingerprint(deps.probe, deps.agentVersion),
    gate: gate ?? null,
    gateRechecks: rechecks,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
  };
}
