// Splitting a test list into N chunks, one per machine: deterministic and identical on every OS (ids compare by
// UTF-16 code units, never by locale; the result depends on the set of ids, not their order), disjoint, covering.
// Without durations: contiguous slices of the sorted list (Mozilla's chunk_by_slice), see sliceChunks. With
// durations: greedy longest-first onto the least-loaded chunk (Mozilla's chunk_by_runtime), see lptChunks.
import { AgentError } from '../errors.js';

export interface ChunkOptions {
  /** How many chunks the list is split into (an integer >= 1). */
  total: number;
  /** Seconds per test id, recorded by earlier runs: balances the chunks by runtime. Tests missing here get the
   *  mean of the listed tests that have one (1 if none has). */
  durations?: ReadonlyMap<string, number>;
  /** 'group' keeps the tests of one group (a manifest, a directory) in one chunk. Default 'test'. */
  by?: 'test' | 'group';
  /** The group of a test id, for by 'group'. Default: the id up to its last '/' (its directory). */
  groupOf?: (id: string) => string;
}

export interface ChunkPlan {
  /** chunks[k - 1] holds the ids of chunk k, sorted by code units. */
  chunks: string[][];
  /** The expected seconds of each chunk (with durations), or its test count (without). */
  loads: number[];
  /** The weight a test without a recorded duration got (the mean of the known ones, or 1). */
  unknownWeight: number;
}

/** The ids of chunk `this` (1-based) of `total`, sorted by code units. */
export function chunkTests(ids: Iterable<string>, options: ChunkOptions & { this: number }): string[] {
  const total = checkTotal(options.total);
  const k = options.this;
  if (!Number.isInteger(k) || k < 1 || k > total) {
    throw new AgentError('E_SUITE_CHUNK_THIS', `this chunk must be an integer in 1..${total}, got ${String(k)}`);
  }
  return planChunks(ids, options).chunks[k - 1]!;
}

/** Every chunk of the split, with its expected load (what a log line or a replay compares). */
export function planChunks(ids: Iterable<string>, options: ChunkOptions): ChunkPlan {
  const total = checkTotal(options.total);
  const sorted = sortedUnique(ids);
  const by = options.by ?? 'test';
  const groupOf = options.groupOf ?? directoryOf;
  const weightOf = weights(sorted, options.durations);
  // no listed test has a recorded duration (no file, or the first run): the same split as without durations
  if (by === 'test' && weightOf.known === 0) return sliceChunks(sorted, total);
  const items = by === 'group' ? groupItems(sorted, groupOf, weightOf.weight) : sorted.map((id) => ({ key: id, ids: [id], weight: weightOf.weight(id) }));
  return { ...lptChunks(items, total), unknownWeight: weightOf.unknown };
}

/** Code-unit order: the same on every OS and in every locale (localeCompare is neither). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function checkTotal(total: number): number {
  if (!Number.isInteger(total) || total < 1) {
    throw new AgentError('E_SUITE_CHUNK_TOTAL', `total chunks must be an integer >= 1, got ${String(total)}`);
  }
  return total;
}

function sortedUnique(ids: Iterable<string>): string[] {
  const sorted = [...ids].sort(compareIds);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) {
      throw new AgentError('E_SUITE_DUPLICATE_TEST', `test id ${JSON.stringify(sorted[i])} appears more than once in the list to chunk`);
    }
  }
  return sorted;
}

function directoryOf(id: string): string {
  const slash = id.lastIndexOf('/');
  return slash < 0 ? '' : id.slice(0, slash);
}

/**
 * Contiguous slices of the sorted list, sizes differing by at most one (the first `length % total` chunks take
 * one more). Chosen over round-robin (which Mozilla's taskgraph ends up using) because a slice keeps a directory's
 * tests together (shared set-up, one chunk to rerun), and adding or removing one test moves at most one test
 * across each boundary, where round-robin reassigns every test after it: a chunk stays comparable between runs.
 */
function sliceChunks(sorted: string[], total: number): ChunkPlan {
  const chunks: string[][] = [];
  const base = Math.floor(sorted.length / total);
  const extra = sorted.length % total;
  let start = 0;
  for (let c = 0; c < total; c++) {
    const size = base + (c < extra ? 1 : 0);
    chunks.push(sorted.slice(start, start + size));
    start += size;
  }
  return { chunks, loads: chunks.map((chunk) => chunk.length), unknownWeight: 1 };
}

interface Item {
  key: string;
  ids: string[];
  weight: number;
}

interface Weights {
  weight: (id: string) => number;
  unknown: number;
  /** How many listed tests have a recorded duration. */
  known: number;
}

function weights(sorted: string[], durations: ReadonlyMap<string, number> | undefined): Weights {
  if (durations === undefined) return { weight: () => 1, unknown: 1, known: 0 };
  let sum = 0;
  let known = 0;
  for (const id of sorted) {
    const d = durations.get(id);
    if (d === undefined) continue;
    if (!Number.isFinite(d) || d < 0) {
      throw new AgentError('E_SUITE_DURATION', `the recorded duration of test ${JSON.stringify(id)} is ${String(d)}: not a finite number >= 0`);
    }
    sum += d;
    known++;
  }
  const unknown = known > 0 ? sum / known : 1;
  return { weight: (id) => durations.get(id) ?? unknown, unknown, known };
}

/** One item per group (groups in code-unit order of their key, sums in the sorted order of their ids). */
function groupItems(sorted: string[], groupOf: (id: string) => string, weight: (id: string) => number): Item[] {
  const groups = new Map<string, Item>();
  for (const id of sorted) {
    const key = groupOf(id);
    const item = groups.get(key);
    if (item) {
      item.ids.push(id);
      item.weight += weight(id);
    } else {
      groups.set(key, { key, ids: [id], weight: weight(id) });
    }
  }
  return [...groups.values()];
}

/**
 * Greedy longest-first (LPT): items heaviest first (ties by key), each onto the chunk with the least load so far
 * (ties to the lowest chunk). LPT is within 4/3 of the optimum in the worst case and close to it when items are
 * many and small against a chunk, which a suite is. Only additions of doubles in a fixed order: same on every OS.
 */
function lptChunks(items: Item[], total: number): { chunks: string[][]; loads: number[] } {
  const order = [...items].sort((a, b) => b.weight - a.weight || compareIds(a.key, b.key));
  const chunks: string[][] = Array.from({ length: total }, () => []);
  const loads: number[] = new Array<number>(total).fill(0);
  for (const item of order) {
    let best = 0;
    for (let c = 1; c < total; c++) if (loads[c]! < loads[best]!) best = c;
    loads[best]! += item.weight;
    chunks[best]!.push(...item.ids);
  }
  for (const chunk of chunks) chunk.sort(compareIds);
  return { chunks, loads };
}
