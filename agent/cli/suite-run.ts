// `bbagent suite run`: runs a test suite from any ShellCommand, parses the reports it wrote, reruns each unexpected
// failure in a fresh process and classifies it (agent/suites/run.ts). The suite's and the reruns' output pass
// through; the summary and the classifications follow on stdout. Exit 0 when nothing regressed (failures that
// all proved intermittent included), 1 on a regression, an unrerun failure or no usable report, 2 for a bad
// command line. SIGINT and SIGTERM kill the suite's (or the rerun's) whole process tree and stop.

import { writeFile } from 'node:fs/promises';
import { currentPlatform } from '../../platforms/index.js';
import { silentLogger } from '../log.js';
import type { ProcessSink } from '../process/sink.js';
import { findReports } from '../suites/run-reports.js';
import { checkFormat, parseSuiteReports } from '../suites/run-parse.js';
import { SuiteProcesses } from '../suites/run-process.js';
import { checkTemplate, splitTemplate } from '../suites/run-template.js';
import type { SuiteRunOptions, SuiteRunResult } from '../suites/run-types.js';
import { runSuite } from '../suites/run.js';
import { readChunkOptions } from './suite-run-chunk.js';
import { EXIT_FAILED, EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';

const COMMAND = 'bbagent suite run';

export const SUITE_RUN_USAGE = `Usage: bbagent suite run --results GLOB [--format F] [--repeat-failures K --rerun 'CMD {test}'] [options] -- CMD...
       bbagent suite run --total N --this K --tests-glob 'tests/**/*.py' --durations FILE --results GLOB -- CMD... {tests}

Runs CMD (an argv, no shell: use -- sh -c '...' for one) in the current directory, then parses the reports it
wrote (those matching GLOB and written during the run; older ones are ignored), reruns each failed or errored
test K times in a fresh process and classifies it: regression (failed every rerun), intermittent (passed at
least once; with its failure rate and 95% Wilson interval) or known-intermittent (the report says so).

Options:
      --results GLOB         the reports, relative to the current directory (** spans directories)
      --format F             auto (default), junit, tap or mozlog
      --repeat-failures K    reruns of each failure (0, the default: none; 9 is Mozilla's confirm-failures)
      --rerun TEMPLATE       how to run one test: split into words like a shell would, but never run by one;
                             {test} (the test's id), {name} and {group} are replaced inside their word, so a
                             test id is always exactly one argument. The id is also in $BBAGENT_SUITE_TEST.
                             For a shell: --rerun "sh -c 'npm test -- \\"\\$1\\"' sh {test}"
      --stop-at-first-pass   stop rerunning a test at its first pass (fewer runs; the rate is then indicative)
      --max-confirmed N      rerun at most N failing tests (default 10); the others stay failures
      --durations FILE       record each test's time in FILE, for 'bbagent suite chunk --durations FILE'
      --total N --this K     run chunk K of N of the tests (--tests, --tests-glob): the word {tests} of CMD
                             becomes the chunk's tests, one argument each. Balanced on --chunk-durations, else
                             cut by count; --durations FILE records each test file's time too
      --by test|group        group: keep the tests of one directory in one chunk (default test)
      --tests FILE|-         the tests to split (test files, manifests), one a line ('-': standard input)
      --tests-glob GLOB      and/or the files GLOB matches, relative to the current directory
      --chunk-durations FILE balance on FILE, read only: a copy of a --durations file that every chunk of the
                             list uses (never the file the runs record into: chunks would overlap). Missing: by count
      --json FILE            write the whole result as JSON to FILE
      --timeout S            kill a process silent for S seconds (default: none)
  -h, --help                 show this help

Exit status: 0 when nothing regressed (intermittent failures included), 1 otherwise, 2 for a bad command line.`;

const OPTIONS: OptionSpec = {
  results: { type: 'string' },
  format: { type: 'string' },
  'repeat-failures': { type: 'string' },
  rerun: { type: 'string' },
  'stop-at-first-pass': { type: 'boolean' },
  'max-confirmed': { type: 'string' },
  durations: { type: 'string' },
  json: { type: 'string' },
  timeout: { type: 'string' },
  total: { type: 'string' },
  this: { type: 'string' },
  by: { type: 'string' },
  tests: { type: 'string' },
  'tests-glob': { type: 'string' },
  'chunk-durations': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** Where the children's output goes (injected by tests). */
export interface SuiteRunOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOutput: SuiteRunOutput = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

export async function suiteRunCommand(argv: string[], io: CliIO, output: SuiteRunOutput = processOutput): Promise<number> {
  return reportErrors(io, async () => {
    const split = argv.indexOf('--');
    const { values } = parseCommandLine(COMMAND, split < 0 ? argv : argv.slice(0, split), OPTIONS, 0);
    if (values.help === true) {
      io.out(SUITE_RUN_USAGE);
      return EXIT_OK;
    }
    const command = split < 0 ? [] : argv.slice(split + 1);
    if (command.length === 0) throw new UsageError(`${COMMAND}: missing -- CMD... (see '${COMMAND} --help')`);
    const { options, json, timeout } = readOptions(values, command);
    await readChunkOptions(values, options);
    const result = await runWithSignals(options, timeout, io, output);
    if (json !== undefined) await writeFile(json, `${JSON.stringify(result)}\n`);
    printSummary(result, io);
    return result.verdict === 'fail' || result.interrupted ? EXIT_FAILED : EXIT_OK;
  });
}

function readOptions(values: Record<string, string | boolean | undefined>, command: string[]) {
  const results = values.results;
  if (typeof results !== 'string' || results === '') throw new UsageError(`${COMMAND}: --results GLOB is required`);
  const repeatFailures = count(values['repeat-failures'], '--repeat-failures', 0);
  const template = values.rerun as string | undefined;
  if (repeatFailures > 0 && template === undefined) throw new UsageError(`${COMMAND}: --repeat-failures ${repeatFailures} needs --rerun 'CMD {test}'`);
  let format: string;
  let rerun: readonly string[] | undefined;
  try {
    format = checkFormat((values.format as string | undefined) ?? 'auto');
    rerun = template === undefined ? undefined : checkTemplate(splitTemplate(template), template);
  } catch (err) {
    throw new UsageError(`${COMMAND}: ${(err as Error).message}`);
  }
  const timeout = values.timeout === undefined ? null : count(values.timeout, '--timeout', 1);
  const options: SuiteRunOptions = {
    command,
    results,
    workdir: process.cwd(),
    format,
    repeatFailures,
    rerun,
    stopAtFirstPass: values['stop-at-first-pass'] === true,
    maxConfirmed: values['max-confirmed'] === undefined ? undefined : count(values['max-confirmed'], '--max-confirmed', 0),
    durationsFile: values.durations as string | undefined,
  };
  return { options, json: values.json as string | undefined, timeout };
}

function count(v: string | boolean | undefined, name: string, min: number): number {
  if (v === undefined) return min === 1 ? 1 : 0;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min) throw new UsageError(`${COMMAND}: ${name} must be an integer >= ${min}, got '${String(v)}'`);
  return n;
}

async function runWithSignals(options: SuiteRunOptions, timeout: number | null, io: CliIO, output: SuiteRunOutput): Promise<SuiteRunResult> {
  const sink: ProcessSink = {
    text: (stream, text) => (stream === 'stdout' ? output.stdout(text) : output.stderr(text)),
    log: () => {},
    status: () => {},
    backpressureMs: () => 0,
  };
  const processes = new SuiteProcesses({
    workdir: options.workdir,
    environ: { ...(io.env as Record<string, string>) },
    sink,
    platform: currentPlatform(),
    logger: silentLogger,
    now: () => Date.now() / 1000,
    timeout,
    maxTime: null,
    sigtermTime: null,
    interruptSignal: 'KILL',
    logEnviron: false,
  });
  const ac = new AbortController();
  const stop = (): void => {
    ac.abort();
    processes.kill('bbagent suite run: interrupted');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await runSuite(options, { runner: processes, parse: parseSuiteReports, findReports, note: (line) => output.stderr(`${line}\n`), signal: ac.signal });
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}

function printSummary(r: SuiteRunResult, io: CliIO): void {
  const c = r.counts;
  const intermittent = c.intermittent + c.known_intermittent;
  const parts = [`${c.passed} passed`, `${c.failed + c.errors - intermittent} failed`];
  if (intermittent > 0) parts.push(`${intermittent} intermittent`);
  if (c.skipped > 0) parts.push(`${c.skipped} skipped`);
  const chunk = r.chunk === undefined ? '' : `chunk ${r.chunk.this}/${r.chunk.total}: `;
  io.out(`${COMMAND}: ${r.interrupted ? 'interrupted' : r.verdict}: ${chunk}${parts.join(', ')}`);
  for (const k of r.classifications) {
    const rate = k.interval === undefined ? '' : `, failure rate ${k.rate!.toFixed(2)} (95% CI ${k.interval.low.toFixed(2)}-${k.interval.high.toFixed(2)})`;
    io.out(`  ${k.kind}: ${k.test} (${k.failures} of ${k.reruns} reruns failed${rate})`);
  }
  if (r.error !== undefined) io.err(`${COMMAND}: ${r.error.message}`);
}
