// The one result model every report format is parsed into (parse/), and that chunking (durations), reruns
// (confirm, classify) and the master read: a test has a status out of four, a duration, a message, and the few
// facts the rerun logic needs (known-intermittent, reruns the producer itself ran).
import type { TimedResult } from './durations.js';

/** A test's outcome as the suite sees it: `fail` is a test that did not do what was expected, `error` a test
 *  that could not run properly (a crash, an error outside its assertions), `skip` a test that did not run. */
export type TestStatus = 'pass' | 'fail' | 'skip' | 'error';

/** The report formats the parsers read. */
export type ReportFormat = 'junit' | 'tap' | 'mozlog';

export interface TestResult {
  /** The test's name as the report gives it (JUnit testcase name, TAP description, mozlog test id). */
  name: string;
  /** Where the test belongs: JUnit classname (else its testsuite), the TAP subtests it sits in (joined by ' > '),
   *  mozlog's group (else the test's directory). '' when the report gives none. */
  group: string;
  /** The key that names this test across runs (durations, reruns, chunking): mozlog's test id, JUnit
   *  `classname::name` (name alone without a classname), TAP `group > name`. */
  id: string;
  status: TestStatus;
  /** Seconds; NaN when the report gives no time (JSON: null), so the durations file does not record it. */
  duration_s: number;
  /** Why it failed, errored or was skipped (first MAX_MESSAGE_CHARS characters); '' for a pass. */
  message: string;
  /** The producer's own word for the outcome when it says more than `status` (mozlog TIMEOUT, CRASH, an
   *  expected FAIL; TAP todo; JUnit flaky). */
  raw_status?: string;
  /** mozlog: the outcome the report expected, when it differs from the one it got. */
  expected?: string;
  /** mozlog: the status is one of the test's known_intermittent statuses. The test still counts as failed here;
   *  a rerun classifies it `known-intermittent` without rerunning it. */
  known_intermittent?: boolean;
  /** Reruns the producer itself ran (Surefire rerunFailingTestsCount): how many of them failed or errored. A
   *  `flaky` test passed in the end after `rerun_failures` failed runs; otherwise it failed every run. */
  rerun_failures?: number;
  flaky?: boolean;
  /** The test's own source file as the report names it (JUnit `file`, pytest's xunit1 and others): the unit a
   *  chunked run maps the test to (units.ts). */
  source?: string;
  /** The report file and line (1-based) the result was read from. */
  file?: string;
  line?: number;
}

export interface ResultCounts {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
  errors: number;
}

export interface ParsedReport {
  file: string;
  format: ReportFormat;
  counts: ResultCounts;
}

export interface SuiteResults extends ResultCounts {
  /** Every result, in report order (empty when the caller kept none and took them through onTest). */
  tests: TestResult[];
  /** One entry per report file read, in the order given. */
  reports: ParsedReport[];
}

/** A message longer than this is cut (a JUnit failure can carry a whole log): what a summary needs is its start. */
export const MAX_MESSAGE_CHARS = 16 * 1024;

export function emptyCounts(): ResultCounts {
  return { total: 0, passed: 0, failed: 0, skipped: 0, errors: 0 };
}

export function countResult(counts: ResultCounts, status: TestStatus): void {
  counts.total++;
  if (status === 'pass') counts.passed++;
  else if (status === 'fail') counts.failed++;
  else if (status === 'skip') counts.skipped++;
  else counts.errors++;
}

export function addCounts(into: ResultCounts, more: ResultCounts): void {
  into.total += more.total;
  into.passed += more.passed;
  into.failed += more.failed;
  into.skipped += more.skipped;
  into.errors += more.errors;
}

/** A message cut to MAX_MESSAGE_CHARS, saying so. */
export function clipMessage(text: string): string {
  if (text.length <= MAX_MESSAGE_CHARS) return text;
  return `${text.slice(0, MAX_MESSAGE_CHARS)}… (${text.length - MAX_MESSAGE_CHARS} more characters)`;
}

/** The JSON shape `bbagent suite parse --json` prints for a result (duration null when unknown; no file, line). */
export function resultJson(test: TestResult): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: test.name,
    group: test.group,
    id: test.id,
    status: test.status,
    duration_s: Number.isFinite(test.duration_s) ? test.duration_s : null,
    message: test.message,
  };
  if (test.raw_status !== undefined) out.raw_status = test.raw_status;
  if (test.expected !== undefined) out.expected = test.expected;
  if (test.known_intermittent === true) out.known_intermittent = true;
  if (test.rerun_failures !== undefined) out.rerun_failures = test.rerun_failures;
  if (test.flaky === true) out.flaky = true;
  return out;
}

/** A result as the durations file records it: keyed by its id (a JUnit test name alone is not unique). */
export function timedResult(test: TestResult): TimedResult {
  return { name: test.id, status: test.status, duration_s: test.duration_s };
}
