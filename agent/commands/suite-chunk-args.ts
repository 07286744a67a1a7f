// The chunk arguments of the `suite` command (version 1.1; a 1.0 master sends none and gets an unchunked run):
// `total_chunks`, `this_chunk`, `chunk_by`, the units to split (`tests`: a list, `tests_glob`: a glob relative to
// the workdir) and `chunk_durations` ({unit: seconds}, the master's, the same for every chunk of a build).
import { CommandArgsError, errorMessage } from '../errors.js';
import type { SuiteRunOptions } from '../suites/run-types.js';
import { checkTestsPlaceholder } from '../suites/units.js';
import { argOptInt, argOptString, describe } from './args.js';
import type { CommandArgs } from './types.js';

/** Units listed by the master at most: far above a real suite's files, and it bounds what one command holds. */
export const MAX_LISTED_TESTS = 200_000;

type ChunkOptions = Pick<SuiteRunOptions, 'chunk' | 'tests' | 'testsGlob' | 'chunkDurations'>;

export function readChunkArgs(args: CommandArgs, command: string | readonly string[]): ChunkOptions {
  const tests = readTests(args['tests']);
  const testsGlob = argOptString(args, 'tests_glob') || undefined;
  const hasUnits = tests !== undefined || testsGlob !== undefined;
  const total = argOptInt(args, 'total_chunks');
  const k = argOptInt(args, 'this_chunk');
  const by = argOptString(args, 'chunk_by') ?? 'test';
  if ((total === undefined) !== (k === undefined)) throw new CommandArgsError(`arguments 'total_chunks' and 'this_chunk' go together`);
  if (total !== undefined && !hasUnits) throw new CommandArgsError(`argument 'total_chunks' needs the tests to split: 'tests' or 'tests_glob'`);
  if (total !== undefined && total < 1) throw new CommandArgsError(`argument 'total_chunks' must be an integer >= 1, got ${total}`);
  if (total !== undefined && k !== undefined && (k < 1 || k > total)) {
    throw new CommandArgsError(`argument 'this_chunk' must be an integer in 1..${total}, got ${k}`);
  }
  if (by !== 'test' && by !== 'group') throw new CommandArgsError(`argument 'chunk_by' must be 'test' or 'group', got ${JSON.stringify(by)}`);
  try {
    checkTestsPlaceholder(command, hasUnits);
  } catch (err) {
    throw new CommandArgsError(`argument 'command': ${errorMessage(err)}`);
  }
  if (!hasUnits) return {};
  const out: ChunkOptions = { chunk: { total: total ?? 1, this: k ?? 1, by } };
  if (tests !== undefined) out.tests = tests;
  if (testsGlob !== undefined) out.testsGlob = testsGlob;
  const durations = readDurations(args['chunk_durations']);
  if (durations !== undefined) out.chunkDurations = durations;
  return out;
}

function readTests(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) throw new CommandArgsError(`argument 'tests' must be a list of strings, got ${describe(v)}`);
  if (v.length > MAX_LISTED_TESTS) throw new CommandArgsError(`argument 'tests' lists ${v.length} tests, more than ${MAX_LISTED_TESTS}`);
  return v as string[];
}

function readDurations(v: unknown): Map<string, number> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v))
    throw new CommandArgsError(`argument 'chunk_durations' must be a dict of seconds per test, got ${describe(v)}`);
  const out = new Map<string, number>();
  for (const [unit, seconds] of Object.entries(v as Record<string, unknown>)) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
      throw new CommandArgsError(`argument 'chunk_durations': the duration of ${JSON.stringify(unit)} is not a number of seconds >= 0`);
    }
    out.set(unit, seconds);
  }
  return out;
}
