// The Perfherder performance artifact of a result (the shape of treeherder's schemas/performance-artifact.json:
// framework{name}, suites[{name, value, unit, lowerIsBetter, extraOptions, subtests[{name, value, unit,
// lowerIsBetter, replicates}]}]), the `PERFHERDER_DATA: {json}` log line Treeherder's log parser looks for, and
// a check of the format's limits before anything is emitted (a document Perfherder would reject is our error,
// named by field, not a silent loss at ingestion).

import { AgentError } from '../errors.js';
import type { PerfResult } from './types.js';

export interface PerfherderSubtest {
  name: string;
  value: number;
  unit?: string;
  lowerIsBetter: boolean;
  replicates: number[];
}

export interface PerfherderSuite {
  name: string;
  value?: number;
  unit?: string;
  lowerIsBetter: boolean;
  extraOptions: string[];
  subtests: PerfherderSubtest[];
}

export interface PerfherderData {
  framework: { name: string };
  suites: PerfherderSuite[];
}

/** The prefix Treeherder's log parser matches (`PERFHERDER_DATA:\s+({.*})`). */
export const PERFHERDER_PREFIX = 'PERFHERDER_DATA: ';

/** The limits the format sets (schema) and Perfherder's database columns impose. */
const LIMITS = { name: 80, unit: 20, value: 1e12, extraOptions: 8, extraOption: 100 };

/** The extraOptions item that carries the machine fingerprint (part of the series signature). */
export function machineOption(id: string): string {
  return `machine-${id}`;
}

/** Values go out with 12 significant digits: float noise (12.340000000000002) trimmed, nothing measurable lost. */
function round(v: number): number {
  return Number(v.toPrecision(12));
}

export function perfherderData(result: PerfResult): PerfherderData {
  const units = new Set(result.subtests.map((s) => s.unit));
  const commonUnit = units.size === 1 ? [...units][0] : undefined;
  const suite: PerfherderSuite = {
    name: result.suite,
    ...(result.value === null ? {} : { value: round(result.value) }),
    ...(commonUnit ? { unit: commonUnit } : {}),
    lowerIsBetter: result.lowerIsBetter,
    extraOptions: [machineOption(result.fingerprint.id)],
    subtests: result.subtests.map((s) => ({
      name: s.name,
      value: round(s.value),
      ...(s.unit ? { unit: s.unit } : {}),
      lowerIsBetter: result.lowerIsBetter,
      replicates: s.replicates.map(round),
    })),
  };
  const data = { framework: { name: result.framework }, suites: [suite] };
  checkPerfherderLimits(data);
  return data;
}

function schemaError(where: string, why: string): AgentError {
  return new AgentError('E_PERF_SCHEMA', `Perfherder data: ${where}: ${why}`);
}

function checkName(where: string, name: string): void {
  if (name.length === 0 || name.length > LIMITS.name) throw schemaError(where, `the name must be 1 to ${LIMITS.name} characters, got ${name.length}`);
}

function checkValue(where: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && Math.abs(v) <= LIMITS.value)) throw schemaError(where, `value ${v} is not a number within ±1e12`);
}

function checkUnit(where: string, unit: string | undefined): void {
  if (unit !== undefined && (unit.length < 1 || unit.length > LIMITS.unit)) throw schemaError(where, `unit '${unit}' must be 1 to ${LIMITS.unit} characters`);
}

/** Throws E_PERF_SCHEMA naming the first field that breaks a limit of the format. */
export function checkPerfherderLimits(data: PerfherderData): void {
  if (!data.framework.name) throw schemaError('framework.name', 'is empty');
  data.suites.forEach((suite, i) => {
    const at = `suites[${i}] '${suite.name}'`;
    checkName(at, suite.name);
    checkValue(at, suite.value);
    checkUnit(at, suite.unit);
    const opts = suite.extraOptions;
    if (opts.length > LIMITS.extraOptions) throw schemaError(at, `${opts.length} extraOptions, at most ${LIMITS.extraOptions}`);
    if (new Set(opts).size !== opts.length) throw schemaError(at, 'extraOptions are not unique');
    for (const o of opts)
      if (o.length > LIMITS.extraOption) throw schemaError(at, `extraOption '${o.slice(0, 40)}...' is over ${LIMITS.extraOption} characters`);
    suite.subtests.forEach((s, j) => {
      const sat = `${at} subtests[${j}] '${s.name}'`;
      checkName(sat, s.name);
      checkValue(sat, s.value);
      checkUnit(sat, s.unit);
      for (const r of s.replicates) checkValue(`${sat} replicates`, r);
    });
  });
}

/** The one log line: PERFHERDER_DATA: followed by the document on one line. */
export function perfherderLine(data: PerfherderData): string {
  return `${PERFHERDER_PREFIX}${JSON.stringify(data)}`;
}
