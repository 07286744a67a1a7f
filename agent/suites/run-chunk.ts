// A chunked suite run (run.ts): the units to split (a list, a glob of test files), this run's chunk of them cut on
// the durations given (the master's, or a pinned file: every chunk of a list must be cut from the same ones, or
// they overlap), else by count, the suite command with `{tests}` replaced by the chunk's units, and afterwards each unit's time,
// from its tests' reported durations, for the next split.
import { AgentError } from '../errors.js';
import { compareIds, planChunks } from './chunk.js';
import { snapshotId } from './durations.js';
import type { SuiteChunk, SuiteRunDeps, SuiteRunOptions, SuiteTest } from './run-types.js';
import { checkTestsPlaceholder, expandTests, listUnits, UnitMap, unitTimes } from './units.js';

export interface PreparedChunk {
  /** The suite command to run, `{tests}` expanded. */
  command: string | readonly string[];
  /** Absent when the run has no units (an unchunked run as before). */
  chunk?: SuiteChunk;
}

/** Lists the units, cuts this run's chunk and expands the command (notes say what was cut and on what). */
export async function prepareChunk(options: SuiteRunOptions, deps: SuiteRunDeps): Promise<PreparedChunk> {
  const hasUnits = options.tests !== undefined || options.testsGlob !== undefined;
  checkTestsPlaceholder(options.command, hasUnits);
  if (!hasUnits) return { command: options.command };
  const spec = options.chunk ?? { total: 1, this: 1, by: 'test' as const };
  if (!Number.isInteger(spec.this) || spec.this < 1 || spec.this > spec.total) {
    throw new AgentError('E_SUITE_CHUNK_THIS', `this chunk must be an integer in 1..${spec.total}, got ${String(spec.this)}`);
  }
  const units = await listUnits(options.tests ?? [], options.testsGlob, options.workdir, deps.confine);
  // never the durations file this run records into: chunks cut one after the other from a file each of them
  // changes would overlap; every chunk of a list must be cut from the same, pinned durations
  const durations = options.chunkDurations;
  const known = durations === undefined ? [] : units.filter((u) => durations.has(u));
  const source: SuiteChunk['balanced_on'] = known.length === 0 ? 'count' : 'durations';
  const plan = planChunks(units, { total: spec.total, by: spec.by, ...(known.length > 0 ? { durations } : {}) });
  const selected = plan.chunks[spec.this - 1]!;
  const chunk: SuiteChunk = {
    total: spec.total,
    this: spec.this,
    by: spec.by,
    units: units.length,
    selected,
    balanced_on: source,
    snapshot: source === 'count' ? null : snapshotId(new Map(known.map((u) => [u, durations!.get(u)!]))),
    expected_s: source === 'count' ? null : plan.loads[spec.this - 1]!,
    mean_s: source === 'count' ? null : plan.loads.reduce((a, b) => a + b, 0) / spec.total,
    unknown_units: source === 'count' ? units.length : units.length - known.length,
    unit_durations: {},
    unmapped_tests: 0,
  };
  deps.note(chunkLine(chunk));
  if (source !== 'count' && chunk.unknown_units > 0) {
    deps.note(`suite: chunk: ${chunk.unknown_units} unit(s) have no recorded duration: each counted as the mean, ${plan.unknownWeight.toFixed(3)} s`);
  }
  const command = typeof options.command === 'string' ? options.command : expandTests(options.command, selected);
  return { command, chunk };
}

function chunkLine(c: SuiteChunk): string {
  const head = `suite: chunk ${c.this}/${c.total}: ${c.selected.length} of ${c.units} unit(s)`;
  if (c.balanced_on === 'count') return `${head}, cut by count (no recorded durations)`;
  return `${head}, balanced on the durations given (${c.snapshot}): expected ${c.expected_s!.toFixed(2)} s, mean chunk ${c.mean_s!.toFixed(2)} s`;
}

/**
 * Each selected unit's time in this run (the sum of its tests'), into chunk.unit_durations; tests that map to no
 * unit are counted and said once (their units keep the mean next time). Returns the times to record.
 */
export function measureUnits(chunk: SuiteChunk, tests: readonly SuiteTest[], workdir: string, note: (line: string) => void): Map<string, number> {
  const times = unitTimes(tests, new UnitMap(chunk.selected, workdir));
  chunk.unmapped_tests = times.unmapped;
  // no prototype: a unit named "__proto__" stays a key
  const out = Object.create(null) as Record<string, number>;
  for (const unit of [...times.durations.keys()].sort(compareIds)) out[unit] = times.durations.get(unit)!;
  chunk.unit_durations = out;
  if (times.unmapped > 0) {
    note(
      `suite: durations: ${times.unmapped} test(s) name no unit of the chunk (the report names no file, see docs/suites-run.md): ${chunk.selected.length - times.durations.size} unit(s) keep the mean`,
    );
  }
  return times.durations;
}
