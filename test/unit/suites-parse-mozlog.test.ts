// mozlog raw JSON lines into the result model: expected and unexpected outcomes (an expected FAIL passes, an
// unexpected PASS fails, CRASH is an error), known_intermittent, subtests that fail their test, durations from
// test_start/test_end, interleaved tests, and a test that never ended.
import { describe, expect, it } from 'vitest';
import { parseReportChunks, textChunks } from '../../agent/suites/parse/index.js';
import type { TestResult } from '../../agent/suites/model.js';

async function parse(lines: object[], chunk = 1 << 20): Promise<{ tests: TestResult[]; counts: Record<string, number> }> {
  const tests: TestResult[] = [];
  const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  const report = await parseReportChunks(textChunks(text, chunk), 'raw.log', {}, tests);
  expect(report.format).toBe('mozlog');
  return { tests, counts: { ...report.counts } };
}

const base = { thread: 'MainThread', pid: 1, source: 'test' };
const rec = (action: string, time: number, extra: object): object => ({ action, time, ...base, ...extra });

const LOG = [
  rec('suite_start', 0, { tests: { default: ['a/ok.html', 'a/fail.html'] }, run_info: {} }),
  rec('test_start', 1000, { test: 'a/ok.html' }),
  rec('test_start', 1100, { test: 'b/interleaved.js' }),
  rec('test_end', 1500, { test: 'a/ok.html', status: 'OK' }),
  rec('log', 1501, { level: 'INFO', message: 'hello' }),
  rec('test_end', 3100, { test: 'b/interleaved.js', status: 'FAIL', expected: 'PASS', message: 'assert x' }),
  rec('test_start', 4000, { test: 'a/known.html', group: 'manifest.ini' }),
  rec('test_end', 4010, { test: 'a/known.html', status: 'TIMEOUT', expected: 'PASS', known_intermittent: ['TIMEOUT'] }),
  rec('test_start', 5000, { test: 'a/xfail.html' }),
  rec('test_end', 5001, { test: 'a/xfail.html', status: 'FAIL' }),
  rec('test_start', 6000, { test: 'a/upass.html' }),
  rec('test_end', 6001, { test: 'a/upass.html', status: 'PASS', expected: 'FAIL' }),
  rec('test_start', 7000, { test: 'a/crash.html' }),
  rec('test_end', 7001, { test: 'a/crash.html', status: 'CRASH', expected: 'OK' }),
  rec('test_start', 8000, { test: 'a/sub.html' }),
  rec('test_status', 8001, { test: 'a/sub.html', subtest: 'one', status: 'PASS' }),
  rec('test_status', 8002, { test: 'a/sub.html', subtest: 'two', status: 'FAIL', expected: 'PASS', message: 'nope' }),
  rec('test_status', 8003, { test: 'a/sub.html', subtest: 'three', status: 'FAIL', expected: 'PASS', known_intermittent: ['FAIL'] }),
  rec('test_end', 8010, { test: 'a/sub.html', status: 'OK' }),
  rec('test_start', 9000, { test: 'a/skip.html' }),
  rec('test_end', 9000, { test: 'a/skip.html', status: 'SKIP', message: 'disabled on linux' }),
  rec('test_start', 9100, { test: 'a/hang.html' }),
  rec('suite_end', 9999, {}),
];

describe('mozlog parser', () => {
  it('maps statuses against expectations', async () => {
    const { tests, counts } = await parse(LOG);
    expect(tests.map((t) => [t.id, t.status, t.raw_status])).toEqual([
      ['a/ok.html', 'pass', undefined],
      ['b/interleaved.js', 'fail', 'FAIL'],
      ['a/known.html', 'fail', 'TIMEOUT'],
      ['a/xfail.html', 'pass', 'FAIL'],
      ['a/upass.html', 'fail', undefined],
      ['a/crash.html', 'error', 'CRASH'],
      ['a/sub.html', 'fail', undefined],
      ['a/skip.html', 'skip', 'SKIP'],
      ['a/hang.html', 'error', 'INCOMPLETE'],
    ]);
    expect(counts).toEqual({ total: 9, passed: 2, failed: 4, skipped: 1, errors: 2 });
    expect(tests[0]).toMatchObject({ group: 'a', duration_s: 0.5, message: '' });
    expect(tests[1]).toMatchObject({ duration_s: 2, expected: 'PASS', message: 'FAIL (expected PASS): assert x' });
    expect(tests[2]).toMatchObject({ group: 'manifest.ini', known_intermittent: true, expected: 'PASS' });
    expect(tests[1]!.known_intermittent).toBeUndefined();
    expect(tests[4]!.message).toBe('PASS (expected FAIL)');
    expect(tests[6]!.message).toBe('two: FAIL (expected PASS): nope');
    expect(tests[6]!.known_intermittent).toBeUndefined();
    expect(tests[7]!.message).toBe('disabled on linux');
    expect(tests[8]!.message).toMatch(/no test_end for this test: the log stops after line 23/);
  });

  it('marks a test failing only in known-intermittent subtests', async () => {
    const { tests } = await parse([
      rec('test_start', 0, { test: 't' }),
      rec('test_status', 1, { test: 't', subtest: 's', status: 'FAIL', expected: 'PASS', known_intermittent: ['FAIL'] }),
      rec('test_end', 2, { test: 't', status: 'OK' }),
    ]);
    expect(tests[0]).toMatchObject({ status: 'fail', known_intermittent: true });
  });

  it('gives the same results whatever the chunk size', async () => {
    const whole = await parse(LOG);
    for (const size of [1, 13, 200]) expect(await parse(LOG, size)).toEqual(whole);
  });
});
