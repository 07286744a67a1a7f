// The chunk options of `bbagent suite run` (--total, --this, --by, --tests, --tests-glob, --chunk-durations): read
// and checked before the suite runs, so that a typo costs no suite run.
import { readFile } from 'node:fs/promises';
import { AgentError, errorMessage } from '../errors.js';
import { parseHistory, chunkDurationsOf } from '../suites/durations.js';
import type { SuiteRunOptions } from '../suites/run-types.js';
import { checkTestsPlaceholder } from '../suites/units.js';
import { UsageError } from './io.js';
import { readStdin } from './suite-input.js';

const COMMAND = 'bbagent suite run';

type Values = Record<string, string | boolean | undefined>;

/** Adds the chunk options to `options` (unchanged when none is given). */
export async function readChunkOptions(values: Values, options: SuiteRunOptions): Promise<void> {
  const tests = values.tests as string | undefined;
  const glob = values['tests-glob'] as string | undefined;
  const hasUnits = tests !== undefined || glob !== undefined;
  if (!hasUnits && (values.total !== undefined || values.this !== undefined || values['chunk-durations'] !== undefined)) {
    throw new UsageError(`${COMMAND}: --total, --this and --chunk-durations need the tests to split (--tests FILE or --tests-glob GLOB)`);
  }
  try {
    checkTestsPlaceholder(options.command, hasUnits);
  } catch (err) {
    throw new UsageError(`${COMMAND}: ${errorMessage(err)}`);
  }
  if (!hasUnits) return;
  if ((values.total === undefined) !== (values.this === undefined)) throw new UsageError(`${COMMAND}: --total and --this go together`);
  const total = values.total === undefined ? 1 : integer(values.total, '--total');
  const k = values.this === undefined ? 1 : integer(values.this, '--this');
  if (k > total) throw new UsageError(`${COMMAND}: --this ${k} is past --total ${total}`);
  const by = values.by ?? 'test';
  if (by !== 'test' && by !== 'group') throw new UsageError(`${COMMAND}: --by must be test or group, got '${String(by)}'`);
  options.chunk = { total, this: k, by };
  if (glob !== undefined) options.testsGlob = glob;
  if (tests !== undefined) options.tests = linesOf(tests === '-' ? await readStdin() : (await readText(tests, 'the test list'))!);
  const pinned = values['chunk-durations'] as string | undefined;
  if (pinned !== undefined) {
    // read only; a file that does not exist yet is the first run (cut by count), as for `suite chunk --durations`
    const text = await readText(pinned, 'the durations file', true);
    if (text !== undefined) options.chunkDurations = chunkDurationsOf(parseHistory(text, pinned));
  }
}

function integer(value: string | boolean, flag: string): number {
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${COMMAND}: ${flag} must be an integer >= 1, got '${String(value)}'`);
  }
  return n;
}

function linesOf(text: string): string[] {
  return text
    .split('\n')
    .map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l))
    .filter((l) => l.trim() !== '');
}

async function readText(file: string, what: string, missingOk = false): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('E_SUITE_REPORT_READ', `${file}: cannot read ${what} (${errorMessage(err)})`);
  }
}
