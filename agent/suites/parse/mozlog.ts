// mozlog's raw format: one JSON object a line, each with an `action` (test_start, test_status for a subtest,
// test_end; suite, log and process records are passed over). `expected` is present only when it differs from
// `status`; a status listed in `known_intermittent` is a known flake. One result per test (test_end): its
// unexpected subtests make it fail and are named in its message. Written from the format's documentation.
import { AgentError } from '../../errors.js';
import { clipMessage, MAX_MESSAGE_CHARS, type TestResult, type TestStatus } from '../model.js';
import { forEachLine, type ParseLimits } from './source.js';

interface Record {
  action: string;
  test?: unknown;
  subtest?: unknown;
  status?: unknown;
  expected?: unknown;
  known_intermittent?: unknown;
  message?: unknown;
  time?: unknown;
  group?: unknown;
}

interface OpenTest {
  start: number;
  line: number;
  group: string;
  /** Unexpected subtest outcomes (not known-intermittent), as message lines. */
  failures: string[];
  failureChars: number;
  /** A subtest failed with a known-intermittent status. */
  knownSubtest: boolean;
}

/** Tests started and not yet ended at once, at most: a harness runs a few in parallel, not thousands. */
export const MAX_OPEN_TESTS = 10_000;
/** Statuses that mean the test could not run properly, rather than failed its checks. */
const ERROR_STATUSES = new Set(['ERROR', 'CRASH']);
/** The statuses a passing test reports (a test_end of a harness test says OK, a plain test PASS). */
const PASSING = new Set(['PASS', 'OK']);

export async function parseMozlog(chunks: AsyncIterable<string>, file: string, limits: ParseLimits, emit: (test: TestResult) => void): Promise<void> {
  const open = new Map<string, OpenTest>();
  const fail = (lineNo: number, what: string): AgentError => new AgentError('E_SUITE_REPORT_MALFORMED', `${file}:${lineNo}: ${what}`);
  let lastLine = 0;
  await forEachLine(chunks, file, limits.maxTokenChars, (line, lineNo) => {
    lastLine = lineNo;
    if (line.trim() === '') return;
    const record = parseRecord(line, lineNo, fail);
    if (record.action === 'test_start') {
      const test = field(record, 'test', lineNo, fail);
      if (open.size >= MAX_OPEN_TESTS && !open.has(test)) {
        throw new AgentError('E_SUITE_REPORT_LIMIT', `${file}:${lineNo}: more than ${MAX_OPEN_TESTS} tests started and not ended`);
      }
      open.set(test, { start: time(record), line: lineNo, group: groupOf(record, test), failures: [], failureChars: 0, knownSubtest: false });
    } else if (record.action === 'test_status') {
      const t = open.get(field(record, 'test', lineNo, fail));
      if (t !== undefined) subtest(t, record, lineNo, fail);
    } else if (record.action === 'test_end') {
      const test = field(record, 'test', lineNo, fail);
      const t = open.get(test);
      open.delete(test);
      emit(endResult(test, t, record, file, lineNo, fail));
    }
  });
  // a test that never ended: the harness crashed or the log was cut; the test is not lost, it is an error
  for (const [test, t] of open) {
    emit({
      name: test,
      group: t.group,
      id: test,
      status: 'error',
      duration_s: NaN,
      message: `no test_end for this test: the log stops after line ${lastLine} while it runs (a crash, or a cut log)`,
      raw_status: 'INCOMPLETE',
      file,
      line: t.line,
    });
  }
}

type Fail = (lineNo: number, what: string) => AgentError;

function parseRecord(line: string, lineNo: number, fail: Fail): Record {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw fail(lineNo, `not a JSON line (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof (value as Record).action !== 'string') {
    throw fail(lineNo, 'not a mozlog record: a JSON object with a string "action" was expected');
  }
  return value as Record;
}

function field(record: Record, name: 'test' | 'status', lineNo: number, fail: Fail): string {
  const value = record[name];
  if (typeof value !== 'string') throw fail(lineNo, `${record.action} without a string "${name}"`);
  return value;
}

function time(record: Record): number {
  return typeof record.time === 'number' ? record.time : NaN;
}

/** The record's group, else the test's directory (what chunking by group uses). */
function groupOf(record: Record, test: string): string {
  if (typeof record.group === 'string') return record.group;
  const slash = test.lastIndexOf('/');
  return slash < 0 ? '' : test.slice(0, slash);
}

function knownList(record: Record): string[] {
  return Array.isArray(record.known_intermittent) ? record.known_intermittent.filter((s): s is string => typeof s === 'string') : [];
}

function subtest(t: OpenTest, record: Record, lineNo: number, fail: Fail): void {
  const status = field(record, 'status', lineNo, fail);
  const expected = typeof record.expected === 'string' ? record.expected : status;
  if (expected === status || status === 'SKIP') return;
  if (knownList(record).includes(status)) {
    t.knownSubtest = true;
    return;
  }
  if (t.failureChars > MAX_MESSAGE_CHARS) return;
  const name = typeof record.subtest === 'string' ? record.subtest : '(subtest)';
  const text = `${name}: ${status} (expected ${expected})${typeof record.message === 'string' && record.message !== '' ? `: ${record.message}` : ''}`;
  t.failures.push(text);
  t.failureChars += text.length;
}

function endResult(test: string, t: OpenTest | undefined, record: Record, file: string, lineNo: number, fail: Fail): TestResult {
  const raw = field(record, 'status', lineNo, fail);
  const expected = typeof record.expected === 'string' ? record.expected : raw;
  const unexpected = raw !== expected && raw !== 'SKIP';
  const known = unexpected && knownList(record).includes(raw);
  const failures = t?.failures ?? [];
  let status: TestStatus = raw === 'SKIP' ? 'skip' : 'pass';
  if (unexpected) status = ERROR_STATUSES.has(raw) ? 'error' : 'fail';
  else if (status === 'pass' && (failures.length > 0 || t?.knownSubtest === true)) status = 'fail';
  const own = typeof record.message === 'string' ? record.message : '';
  const lines = unexpected ? [`${raw} (expected ${expected})${own !== '' ? `: ${own}` : ''}`] : status === 'skip' && own !== '' ? [own] : [];
  const result: TestResult = {
    name: test,
    group: t?.group ?? groupOf(record, test),
    id: test,
    status,
    duration_s: t !== undefined ? (time(record) - t.start) / 1000 : NaN,
    message: status === 'pass' ? '' : clipMessage([...lines, ...failures].join('\n')),
    file,
    line: lineNo,
  };
  if (!Number.isFinite(result.duration_s) || result.duration_s < 0) result.duration_s = NaN;
  if (!PASSING.has(raw)) result.raw_status = raw;
  if (unexpected) result.expected = expected;
  // the test failed only in ways listed as known-intermittent: a rerun need not confirm it
  if ((known && failures.length === 0) || (!unexpected && failures.length === 0 && t?.knownSubtest === true)) result.known_intermittent = true;
  return result;
}
