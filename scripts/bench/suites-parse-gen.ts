// Large synthetic test reports (JUnit XML, mozlog raw lines, TAP) for the parse benchmark and the streaming test:
// N tests, 2% failing with a stack trace, 1% skipped, each JUnit test with some system-out, written through a
// stream (the file is never held). Returns what a parser must count.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

export interface GeneratedCounts {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
  errors: number;
}

type Kind = 'pass' | 'fail' | 'skip';

function kindOf(i: number): Kind {
  return i % 50 === 7 ? 'fail' : i % 100 === 3 ? 'skip' : 'pass';
}

async function writeLines(file: string, n: number, header: string, line: (i: number, kind: Kind) => string, footer: string): Promise<GeneratedCounts> {
  const out = createWriteStream(file);
  const counts: GeneratedCounts = { total: 0, passed: 0, failed: 0, skipped: 0, errors: 0 };
  let buffer = header;
  for (let i = 0; i < n; i++) {
    const kind = kindOf(i);
    counts.total++;
    if (kind === 'pass') counts.passed++;
    else if (kind === 'fail') counts.failed++;
    else counts.skipped++;
    buffer += line(i, kind);
    if (buffer.length > 1 << 20) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer + footer);
  await once(out, 'finish');
  return counts;
}

const TRACE =
  'java.lang.AssertionError: expected:&lt;1&gt; but was:&lt;2&gt;\n\tat org.junit.Assert.fail(Assert.java:89)\n\tat com.example.FooTest.check(FooTest.java:42)\n';
const OUTPUT = 'INFO starting fixture\nDEBUG connecting to 127.0.0.1:5432\nINFO fixture ready\n';

/** A Surefire-shaped JUnit report: one testsuite per 100 tests, `extraOutput` more characters of system-out each. */
export function writeJunit(file: string, n: number, extraOutput = 0): Promise<GeneratedCounts> {
  const out = `${OUTPUT}${'x'.repeat(extraOutput)}`;
  return writeLines(
    file,
    n,
    '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="bench">\n',
    (i, kind) => {
      const open = i % 100 === 0 ? `${i > 0 ? '</testsuite>\n' : ''}<testsuite name="com.example.Suite${i / 100}" tests="100">\n` : '';
      const body =
        kind === 'fail'
          ? `<failure message="expected:&lt;1&gt; but was:&lt;2&gt;" type="java.lang.AssertionError">${TRACE}</failure>`
          : kind === 'skip'
            ? '<skipped message="disabled"/>'
            : '';
      return `${open}<testcase classname="com.example.Suite${Math.floor(i / 100)}" name="test_${i}" time="0.${i % 1000}">${body}<system-out><![CDATA[${out}]]></system-out></testcase>\n`;
    },
    `${n > 0 ? '</testsuite>\n' : ''}</testsuites>\n`,
  );
}

/** A mozlog raw log: test_start, a log record, test_end per test, inside suite_start/suite_end. */
export function writeMozlog(file: string, n: number): Promise<GeneratedCounts> {
  const base = '"thread":"MainThread","pid":4242,"source":"bench"';
  return writeLines(
    file,
    n,
    `{"action":"suite_start","time":0,${base},"tests":{"default":[]},"run_info":{"os":"linux"}}\n`,
    (i, kind) => {
      const test = `dom/dir${Math.floor(i / 100)}/test_${i}.html`;
      const t = 1000 + i * 10;
      const status =
        kind === 'fail'
          ? '"status":"FAIL","expected":"PASS","message":"assert_equals: expected 1 but got 2"'
          : kind === 'skip'
            ? '"status":"SKIP"'
            : '"status":"PASS"';
      return (
        `{"action":"test_start","time":${t},${base},"test":"${test}"}\n` +
        `{"action":"log","time":${t + 1},${base},"level":"INFO","message":"TEST-INFO | ${test} | loaded"}\n` +
        `{"action":"test_end","time":${t + 5},${base},"test":"${test}",${status}}\n`
      );
    },
    `{"action":"suite_end","time":${1000 + n * 10},${base}}\n`,
  );
}

/** A TAP 13 report with a YAML block per test. */
export function writeTap(file: string, n: number): Promise<GeneratedCounts> {
  return writeLines(
    file,
    n,
    'TAP version 13\n',
    (i, kind) => {
      const point = kind === 'fail' ? `not ok ${i + 1} - test ${i}` : kind === 'skip' ? `ok ${i + 1} - test ${i} # SKIP disabled` : `ok ${i + 1} - test ${i}`;
      const yaml = kind === 'fail' ? `  ---\n  duration_ms: 1.5\n  error: 'expected 1, got 2'\n  ...\n` : '  ---\n  duration_ms: 0.5\n  ...\n';
      return `${point}\n${yaml}`;
    },
    `1..${n}\n`,
  );
}
