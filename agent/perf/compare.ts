// `perf compare`: a baseline result against a new one, subtest by subtest. Both files may be perf-stats.json or
// perfherder-data.json (replicates are needed). Each subtest gets Perfherder's t-test (the baseline's replicates
// then the new ones as one series, analysed at the first new point with Perfherder's windows and threshold) and a
// Mann-Whitney U; it is a likely regression when it got worse by at least the alert threshold (2%, Perfherder's
// default) and both tests call the change significant (t > 7 and p < 0.05). Two perf-stats files from different
// machines (fingerprints) are not compared: the new one starts a new baseline.

import { readFile } from 'node:fs/promises';
import { AgentError, errorMessage } from '../errors.js';
import { fingerprintChanges, type MachineFingerprint } from './fingerprint.js';
import { mannWhitneyU } from './mann-whitney.js';
import { median } from './stats.js';
import { PERFHERDER_DEFAULTS, detectChanges } from './ttest.js';

export const ALERT_THRESHOLD_PERCENT = 2;
export const MWU_ALPHA = 0.05;

export interface LoadedSeries {
  key: string;
  replicates: number[];
  lowerIsBetter: boolean;
  unit: string | undefined;
}

export interface LoadedResults {
  file: string;
  series: LoadedSeries[];
  fingerprint: MachineFingerprint | undefined;
}

export type Verdict = 'regression' | 'improvement' | 'no-change';

export interface SubtestComparison {
  key: string;
  unit: string | undefined;
  baselineMedian: number;
  newMedian: number;
  deltaPercent: number;
  /** Perfherder's t at the first new point, and whether its detect_changes marks that point. */
  t: number;
  changeDetected: boolean;
  mannWhitneyP: number;
  verdict: Verdict;
}

export interface Comparison {
  /** 'new-baseline' when the machines differ: nothing compared. */
  status: 'compared' | 'new-baseline';
  fingerprintChanges: string[];
  subtests: SubtestComparison[];
  /** Baseline subtests absent from the new results and the reverse. */
  missing: string[];
  added: string[];
  regressions: number;
}

function shapeError(file: string, why: string): AgentError {
  return new AgentError('E_PERF_RESULTS_FILE', `${file}: ${why}`);
}

function numbers(file: string, where: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw shapeError(file, `${where} has no replicates (a non-empty list of numbers is needed to compare)`);
  }
  return v as number[];
}

type Json = Record<string, unknown>;

function fromPerfherder(file: string, doc: Json): LoadedSeries[] {
  if (!Array.isArray(doc['suites'])) throw shapeError(file, "'suites' is not a list");
  const out: LoadedSeries[] = [];
  (doc['suites'] as Json[]).forEach((suite, i) => {
    const subtests = suite['subtests'];
    if (typeof suite['name'] !== 'string' || !Array.isArray(subtests)) throw shapeError(file, `suites[${i}] lacks a name or subtests`);
    for (const [j, s] of (subtests as Json[]).entries()) {
      if (typeof s['name'] !== 'string') throw shapeError(file, `suites[${i}].subtests[${j}] has no name`);
      const key = `${suite['name']}/${s['name']}`;
      const lower = s['lowerIsBetter'] ?? suite['lowerIsBetter'];
      out.push({
        key,
        replicates: numbers(file, key, s['replicates']),
        lowerIsBetter: lower !== false,
        unit: typeof s['unit'] === 'string' ? s['unit'] : undefined,
      });
    }
  });
  return out;
}

function fromStats(file: string, doc: Json): LoadedSeries[] {
  if (!Array.isArray(doc['subtests'])) throw shapeError(file, "'subtests' is not a list");
  return (doc['subtests'] as Json[]).map((s, j) => {
    if (typeof s['name'] !== 'string') throw shapeError(file, `subtests[${j}] has no name`);
    const key = `${String(doc['suite'])}/${s['name']}`;
    return {
      key,
      replicates: numbers(file, key, s['replicates']),
      lowerIsBetter: doc['lowerIsBetter'] !== false,
      unit: typeof s['unit'] === 'string' ? s['unit'] : undefined,
    };
  });
}

export async function loadResults(file: string): Promise<LoadedResults> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw shapeError(file, `cannot read it as JSON: ${errorMessage(err)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw shapeError(file, 'not a JSON object');
  const o = doc as Json;
  if (o['format'] === 'bbagent-perf-stats') return { file, series: fromStats(file, o), fingerprint: o['fingerprint'] as MachineFingerprint | undefined };
  if ('framework' in o && 'suites' in o) return { file, series: fromPerfherder(file, o), fingerprint: undefined };
  throw shapeError(file, 'neither perf-stats.json (format bbagent-perf-stats) nor Perfherder data (framework, suites)');
}

export function compareSeries(base: LoadedSeries, next: LoadedSeries, thresholdPercent = ALERT_THRESHOLD_PERCENT): SubtestComparison {
  const series = [...base.replicates, ...next.replicates].map((v) => ({ values: [v] }));
  const at = detectChanges(series)[base.replicates.length]!;
  const mw = mannWhitneyU(base.replicates, next.replicates);
  const baselineMedian = median(base.replicates);
  const newMedian = median(next.replicates);
  const deltaPercent = baselineMedian === 0 ? 0 : (100 * (newMedian - baselineMedian)) / Math.abs(baselineMedian);
  const significant = at.t > PERFHERDER_DEFAULTS.tThreshold && mw.p < MWU_ALPHA && Math.abs(deltaPercent) >= thresholdPercent;
  const worse = base.lowerIsBetter ? deltaPercent > 0 : deltaPercent < 0;
  return {
    key: base.key,
    unit: base.unit,
    baselineMedian,
    newMedian,
    deltaPercent,
    t: at.t,
    changeDetected: at.changeDetected,
    mannWhitneyP: mw.p,
    verdict: significant ? (worse ? 'regression' : 'improvement') : 'no-change',
  };
}

export function compareResults(baseline: LoadedResults, next: LoadedResults, thresholdPercent = ALERT_THRESHOLD_PERCENT): Comparison {
  const changes = baseline.fingerprint && next.fingerprint ? fingerprintChanges(baseline.fingerprint, next.fingerprint) : [];
  const newKeys = new Map(next.series.map((s) => [s.key, s]));
  const baseKeys = new Set(baseline.series.map((s) => s.key));
  const missing = baseline.series.filter((s) => !newKeys.has(s.key)).map((s) => s.key);
  const added = next.series.filter((s) => !baseKeys.has(s.key)).map((s) => s.key);
  if (changes.length > 0) return { status: 'new-baseline', fingerprintChanges: changes, subtests: [], missing, added, regressions: 0 };
  const subtests = baseline.series.filter((s) => newKeys.has(s.key)).map((s) => compareSeries(s, newKeys.get(s.key)!, thresholdPercent));
  return { status: 'compared', fingerprintChanges: [], subtests, missing, added, regressions: subtests.filter((s) => s.verdict === 'regression').length };
}
