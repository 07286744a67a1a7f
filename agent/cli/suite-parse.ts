// `bbagent suite parse`: test reports (JUnit XML, TAP, mozlog) into one summary, or with --json one object of
// counts and results. Reports stream: --json prints each result as it is read, so a huge report is never held.
// Exit 0 when every report was read (whatever the tests' outcome), 1 for a report that cannot be read or is
// broken (one line naming the file and line), 2 for a bad command line.
import { parseReportChunks, parseReports, FORMATS, type FormatChoice, type ParseOptions } from '../suites/parse/index.js';
import { addCounts, emptyCounts, resultJson, type ResultCounts, type TestResult } from '../suites/model.js';
import { EXIT_OK, UsageError, parseCommandLine, reportErrors, type CliIO, type OptionSpec } from './io.js';
import { stdinChunks } from './suite-input.js';

const COMMAND = 'bbagent suite parse';

export const SUITE_PARSE_USAGE = `Usage: bbagent suite parse [--format auto|junit|tap|mozlog] [--json] FILE...

Reads test reports and prints one summary: the counts, then each failed and errored test with the first line of
its message. FILE '-' is standard input. Formats: JUnit XML (Ant/Jenkins, Surefire with flaky and rerun
elements, nested suites), TAP 13 and 14 (subtests, SKIP, TODO, Bail out!), mozlog raw JSON lines (expected,
known_intermittent). The format is recognised from each report's start unless --format says it.

Options:
      --format F   auto (default), junit, tap or mozlog: read every FILE as F
      --json       print one JSON object: {"tests": [{name, group, status, duration_s, message, ...}], "total",
                   "passed", "failed", "skipped", "errors", "reports": [{file, format, total, ...}]}
                   (status is pass, fail, skip or error; duration_s is null when the report has no time)
  -h, --help       show this help

Exit status: 0 when every report was read (failed tests included), 1 when a report cannot be read or is broken.`;

const OPTIONS: OptionSpec = {
  format: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** Failed and errored tests listed in the text summary at most. */
const LISTED = 50;
/** Characters of JSON buffered before a write (one write per result would cost more than the parse). */
const JSON_BATCH_CHARS = 64 * 1024;

export async function suiteParseCommand(argv: string[], io: CliIO): Promise<number> {
  return reportErrors(io, async () => {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS, Infinity);
    if (values.help === true) {
      io.out(SUITE_PARSE_USAGE);
      return EXIT_OK;
    }
    const format = (values.format ?? 'auto') as FormatChoice;
    if (!FORMATS.includes(format)) throw new UsageError(`${COMMAND}: --format must be one of ${FORMATS.join(', ')}, got '${String(values.format)}'`);
    if (positionals.length === 0) throw new UsageError(`${COMMAND}: missing FILE (see '${COMMAND} --help')`);
    if (values.json === true) await printJson(positionals, format, io);
    else await printSummary(positionals, format, io);
    return EXIT_OK;
  });
}

/** Parses FILEs in order ('-': standard input), results to onTest only. */
async function parseAll(files: string[], options: ParseOptions): Promise<{ counts: ResultCounts; reports: Record<string, unknown>[] }> {
  const counts = emptyCounts();
  const reports: Record<string, unknown>[] = [];
  for (const file of files) {
    const report =
      file === '-'
        ? await parseReportChunks(stdinChunks(), 'standard input', { ...options, keepTests: false })
        : (await parseReports([file], { ...options, keepTests: false })).reports[0]!;
    addCounts(counts, report.counts);
    reports.push({ file, format: report.format, ...report.counts });
  }
  return { counts, reports };
}

async function printJson(files: string[], format: FormatChoice, io: CliIO): Promise<void> {
  let batch = '{"tests": [';
  let first = true;
  const onTest = (test: TestResult): void => {
    batch += `${first ? '\n' : ',\n'}${JSON.stringify(resultJson(test))}`;
    first = false;
    if (batch.length >= JSON_BATCH_CHARS) {
      io.out(batch);
      batch = '';
    }
  };
  const { counts, reports } = await parseAll(files, { format, onTest });
  const tail = Object.entries({ ...counts, reports }).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  io.out(`${batch}${first ? '' : '\n'}], ${tail.join(', ')}}`);
}

async function printSummary(files: string[], format: FormatChoice, io: CliIO): Promise<void> {
  const listed: TestResult[] = [];
  let unlisted = 0;
  const onTest = (test: TestResult): void => {
    if (test.status !== 'fail' && test.status !== 'error') return;
    if (listed.length < LISTED) listed.push(test);
    else unlisted++;
  };
  const { counts } = await parseAll(files, { format, onTest });
  io.out(
    `${counts.total} test${counts.total === 1 ? '' : 's'}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped, ${counts.errors} errors`,
  );
  for (const t of listed) {
    const firstLine = t.message.split('\n', 1)[0] ?? '';
    const flags = [t.known_intermittent === true ? 'known intermittent' : '', t.rerun_failures !== undefined ? `${t.rerun_failures} reruns failed` : ''].filter(
      Boolean,
    );
    io.out(`${t.status.toUpperCase()} ${t.id}${flags.length > 0 ? ` [${flags.join(', ')}]` : ''}${firstLine !== '' ? `: ${firstLine}` : ''}`);
  }
  if (unlisted > 0) io.out(`... and ${unlisted} more failed or errored (--json lists every result)`);
}
