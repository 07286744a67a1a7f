// `bbagent suite chunk`: the test ids of one chunk of a list, one a line, for a ShellCommand to run. The same
// list, total and durations give the same chunk on every OS (agent/suites/chunk.ts); a durations file that does
// not exist yet (the first run) means no durations.
import { readFile } from 'node:fs/promises';
import { chunkTests } from '../suites/chunk.js';
import { chunkDurationsOf, parseHistory } from '../suites/durations.js';
import { AgentError, errorMessage } from '../errors.js';
import { EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { readStdin } from './suite-input.js';

const COMMAND = 'bbagent suite chunk';

export const SUITE_CHUNK_USAGE = `Usage: bbagent suite chunk --total N --this K [--durations FILE] [--by test|group] [LIST|-]

Reads test ids, one a line, from LIST (standard input when LIST is '-' or absent; blank lines are passed over),
and prints those of chunk K of N, one a line, sorted. The chunks of one list are disjoint and cover it, and are
the same on every OS. Without durations the sorted list is cut into N contiguous slices; with them the chunks
are balanced by runtime (longest first onto the least-loaded chunk; a test without a duration counts as the
mean of the others).

Options:
      --total N         how many chunks (an integer >= 1)
      --this K          which chunk to print (1..N)
      --durations FILE  per-test seconds: the agent's durations file, or a flat {"test id": seconds} JSON object.
                        A FILE that does not exist yet (the first run) means no durations
      --by test|group   group: keep each group (a test id up to its last '/') in one chunk. Default test
  -h, --help            show this help`;

const OPTIONS: OptionSpec = {
  total: { type: 'string' },
  this: { type: 'string' },
  durations: { type: 'string' },
  by: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export async function suiteChunkCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, 1);
    if (values.help === true) {
      io.out(SUITE_CHUNK_USAGE);
      return EXIT_OK;
    }
    const total = integer(values.total, '--total', 1);
    const k = integer(values.this, '--this', 1);
    if (k > total) throw new UsageError(`${COMMAND}: --this ${k} is past --total ${total} (see '${COMMAND} --help')`);
    const by = values.by ?? 'test';
    if (by !== 'test' && by !== 'group') throw new UsageError(`${COMMAND}: --by must be test or group, got '${String(by)}' (see '${COMMAND} --help')`);
    const list = positionals[0] ?? '-';
    const ids = idsOf(list === '-' ? await readStdin() : await readList(list));
    const durationsFile = typeof values.durations === 'string' ? values.durations : undefined;
    const durations = durationsFile === undefined ? undefined : await readDurations(durationsFile);
    const chunk = chunkTests(ids, { total, this: k, by, ...(durations ? { durations } : {}) });
    if (chunk.length > 0) io.out(chunk.join('\n'));
    return EXIT_OK;
  });
}

function integer(value: string | boolean | undefined, flag: string, min: number): number {
  if (typeof value !== 'string') throw new UsageError(`${COMMAND}: ${flag} is required (see '${COMMAND} --help')`);
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${COMMAND}: ${flag} must be an integer >= ${min}, got '${value}' (see '${COMMAND} --help')`);
  }
  return n;
}

function idsOf(text: string): string[] {
  const ids: string[] = [];
  for (const raw of text.split('\n')) {
    const id = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (id.trim() !== '') ids.push(id);
  }
  return ids;
}

async function readDurations(file: string): Promise<Map<string, number> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('E_SUITE_DURATIONS_FILE', `${file}: cannot read the durations file (${errorMessage(err)})`);
  }
  return chunkDurationsOf(parseHistory(text, file));
}

async function readList(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentError('E_SUITE_REPORT_READ', `${file}: cannot read the test list (${errorMessage(err)})`);
  }
}
