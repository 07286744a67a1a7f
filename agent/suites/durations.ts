// Per-test durations the agent records from parsed results, so the next chunked run balances by itself: the last
// few samples of each test (the median damps one slow run), entries not seen for a while dropped, a canonical JSON
// file (keys in code-unit order) and a snapshot id that names exactly which durations balanced a chunk.
import { createHash } from 'node:crypto';
import { AgentError } from '../errors.js';
import { compareIds } from './chunk.js';

/** Samples kept per test: the median of 5 ignores up to 2 outliers. */
export const KEEP_SAMPLES = 5;
/** A test not seen in this many recorded runs is dropped (renamed or deleted tests must not linger). */
export const MAX_AGE_RUNS = 20;

export interface TestHistory {
  /** Seconds, oldest first, at most KEEP_SAMPLES. */
  samples: number[];
  /** The recorded run (DurationHistory.runs) that last saw the test. */
  lastRun: number;
}

export interface DurationHistory {
  /** How many runs were recorded into it. */
  runs: number;
  tests: Map<string, TestHistory>;
  /** The same per unit (a test file a chunk list names: units.ts), when the runs were given units. */
  units: Map<string, TestHistory>;
}

/** One result of a parsed report, as the parsers give it. */
export interface TimedResult {
  name: string;
  status: 'pass' | 'fail' | 'skip' | 'error';
  duration_s: number;
}

export function emptyHistory(): DurationHistory {
  return { runs: 0, tests: new Map(), units: new Map() };
}

/**
 * Records one run's results (and its units' times, seconds per unit): skipped tests (no meaningful time) and
 * non-finite times are left out; tests and units not seen for `maxAge` runs are dropped.
 */
export function recordRun(
  history: DurationHistory,
  results: Iterable<TimedResult>,
  keep = KEEP_SAMPLES,
  maxAge = MAX_AGE_RUNS,
  units: ReadonlyMap<string, number> = new Map(),
): DurationHistory {
  const runs = history.runs + 1;
  const tests = aged(history.tests, runs, maxAge);
  for (const r of results) {
    if (r.status === 'skip') continue;
    addSample(tests, r.name, r.duration_s, runs, keep);
  }
  const unitHistory = aged(history.units, runs, maxAge);
  for (const [unit, seconds] of units) addSample(unitHistory, unit, seconds, runs, keep);
  return { runs, tests, units: unitHistory };
}

function aged(from: ReadonlyMap<string, TestHistory>, runs: number, maxAge: number): Map<string, TestHistory> {
  const out = new Map<string, TestHistory>();
  for (const [id, h] of from) if (runs - h.lastRun <= maxAge) out.set(id, { samples: [...h.samples], lastRun: h.lastRun });
  return out;
}

function addSample(into: Map<string, TestHistory>, key: string, seconds: number, runs: number, keep: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) return;
  const h = into.get(key) ?? { samples: [], lastRun: runs };
  h.samples.push(seconds);
  if (h.samples.length > keep) h.samples.splice(0, h.samples.length - keep);
  h.lastRun = runs;
  into.set(key, h);
}

/** The duration chunking balances on: each test's median sample. */
export function durationsOf(history: DurationHistory): Map<string, number> {
  return medians(history.tests);
}

/** What a chunk list is balanced on: each test's median, and each unit's (a unit's wins over a test of its name). */
export function chunkDurationsOf(history: DurationHistory): Map<string, number> {
  const out = medians(history.tests);
  for (const [unit, seconds] of medians(history.units)) out.set(unit, seconds);
  return out;
}

function medians(from: ReadonlyMap<string, TestHistory>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [id, h] of from) if (h.samples.length > 0) out.set(id, median(h.samples));
  return out;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The history as canonical JSON: byte-identical for the same history on every OS. */
export function formatHistory(history: DurationHistory): string {
  const doc: Record<string, unknown> = { bbagent_durations: 1, runs: history.runs, tests: entries(history.tests) };
  // a file without units reads as it did before units were recorded
  if (history.units.size > 0) doc.units = entries(history.units);
  return `${JSON.stringify(doc, null, 1)}\n`;
}

function entries(from: ReadonlyMap<string, TestHistory>): Record<string, { samples: number[]; last_run: number }> {
  // no prototype: a test named "__proto__" stays a key
  const out = Object.create(null) as Record<string, { samples: number[]; last_run: number }>;
  for (const id of [...from.keys()].sort(compareIds)) {
    const h = from.get(id)!;
    out[id] = { samples: h.samples, last_run: h.lastRun };
  }
  return out;
}

/**
 * Reads a durations file: the agent's own (formatHistory), or a flat {"test id": seconds} map (written by hand or
 * taken from elsewhere, such as one suite of Mozilla's manifest-runtimes files), read as one sample each.
 */
export function parseHistory(text: string, source: string): DurationHistory {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: not JSON (${(err as Error).message})`);
  }
  if (!isRecord(data)) throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: expected a JSON object`);
  if (data.bbagent_durations === undefined) return flatHistory(data, source);
  if (data.bbagent_durations !== 1)
    throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: unknown bbagent_durations version ${JSON.stringify(data.bbagent_durations)}`);
  const runs = data.runs;
  if (!Number.isInteger(runs) || (runs as number) < 0) throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: "runs" must be an integer >= 0`);
  if (!isRecord(data.tests)) throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: "tests" must be an object`);
  if (data.units !== undefined && !isRecord(data.units)) throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: "units" must be an object`);
  const tests = readEntries(data.tests, source, 'test');
  const units = data.units === undefined ? new Map<string, TestHistory>() : readEntries(data.units as Record<string, unknown>, source, 'unit');
  return { runs: runs as number, tests, units };
}

function readEntries(data: Record<string, unknown>, source: string, what: string): Map<string, TestHistory> {
  const out = new Map<string, TestHistory>();
  for (const [id, entry] of Object.entries(data)) {
    const samples = isRecord(entry) ? entry.samples : undefined;
    const lastRun = isRecord(entry) ? entry.last_run : undefined;
    if (!Array.isArray(samples) || !samples.every(isSeconds) || !Number.isInteger(lastRun)) {
      throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: ${what} ${JSON.stringify(id)} needs "samples" (seconds >= 0) and an integer "last_run"`);
    }
    out.set(id, { samples: samples as number[], lastRun: lastRun as number });
  }
  return out;
}

function flatHistory(data: Record<string, unknown>, source: string): DurationHistory {
  const tests = new Map<string, TestHistory>();
  for (const [id, seconds] of Object.entries(data)) {
    if (!isSeconds(seconds))
      throw new AgentError('E_SUITE_DURATIONS_FILE', `${source}: the duration of test ${JSON.stringify(id)} is not a number of seconds >= 0`);
    tests.set(id, { samples: [seconds], lastRun: 0 });
  }
  return { runs: 0, tests, units: new Map() };
}

/**
 * A short id of the durations a split was balanced on (sha256 of the sorted pairs): recorded with a chunk's
 * results, it says whether two chunks were cut from the same durations, so a chunk can be replayed exactly.
 */
export function snapshotId(durations: ReadonlyMap<string, number>): string {
  const pairs = [...durations].sort((a, b) => compareIds(a[0], b[0]));
  return createHash('sha256').update(JSON.stringify(pairs)).digest('hex').slice(0, 16);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
