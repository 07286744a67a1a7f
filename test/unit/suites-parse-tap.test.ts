// TAP 13/14 into the result model: test points with SKIP/TODO and escaped hashes, subtests grouped by their
// `# Subtest:` names, YAML diagnostics (messages, block scalars, duration_ms), describe blocks that are not tests,
// a failing suite without a failing test, Bail out!, and a missing or short plan as an error result.
import { describe, expect, it } from 'vitest';
import { parseReportChunks, textChunks } from '../../agent/suites/parse/index.js';
import type { TestResult } from '../../agent/suites/model.js';

async function parse(tap: string, chunk = 1 << 20): Promise<{ tests: TestResult[]; counts: Record<string, number> }> {
  const tests: TestResult[] = [];
  const report = await parseReportChunks(textChunks(tap, chunk), 'r.tap', {}, tests);
  expect(report.format).toBe('tap');
  return { tests, counts: { ...report.counts } };
}

const NESTED = `TAP version 14
# Subtest: suite A
    # Subtest: passes
    ok 1 - passes
      ---
      duration_ms: 10.5
      ...
    # Subtest: fails
    not ok 2 - fails
      ---
      duration_ms: 6
      error: |-
        Expected values to be strictly equal:

        1 !== 2
      code: 'ERR_ASSERTION'
      stack: |-
        at x
      ...
    ok 3 - skipped # SKIP not here
    ok 4 - later # TODO write it
    # Subtest: inner
        # Subtest: deep \\# hash
        ok 1 - deep \\# hash
        1..1
    ok 5 - inner
      ---
      type: 'suite'
      ...
    1..5
not ok 1 - suite A
  ---
  type: 'suite'
  error: '1 subtest failed'
  ...
# Subtest: top
    ok 1 - sub1
    not ok 2 - sub2
      ---
      message: 'it''s broken'
      ...
    1..2
not ok 2 - top
ok 3 plain without dash
1..3
# tests 9
`;

describe('TAP parser', () => {
  it('reads points, subtests, directives and diagnostics', async () => {
    const { tests, counts } = await parse(NESTED);
    expect(tests.map((t) => [t.id, t.status])).toEqual([
      ['suite A > passes', 'pass'],
      ['suite A > fails', 'fail'],
      ['suite A > skipped', 'skip'],
      ['suite A > later', 'skip'],
      ['suite A > inner > deep # hash', 'pass'],
      ['top > sub1', 'pass'],
      ['top > sub2', 'fail'],
      ['top', 'fail'],
      ['plain without dash', 'pass'],
    ]);
    expect(counts).toEqual({ total: 9, passed: 4, failed: 3, skipped: 2, errors: 0 });
    expect(tests[0]).toMatchObject({ duration_s: 0.0105, message: '', group: 'suite A', name: 'passes' });
    expect(tests[1]!.message).toBe('Expected values to be strictly equal:\n\n1 !== 2');
    expect(tests[2]!.message).toBe('not here');
    expect(tests[3]).toMatchObject({ message: 'TODO: write it', raw_status: 'todo' });
    expect(tests[6]!.message).toBe("it's broken");
    expect(tests[4]!.duration_s).toBeNaN();
  });

  it('gives the same results whatever the chunk size', async () => {
    const whole = await parse(NESTED);
    for (const size of [1, 5, 33]) expect(await parse(NESTED, size)).toEqual(whole);
  });

  it('reports a failing suite without a failing test (a hook failed) as an error', async () => {
    const { tests } = await parse(`TAP version 13
# Subtest: s
    ok 1 - t
    1..1
not ok 1 - s
  ---
  type: 'suite'
  error: 'before hook failed'
  ...
1..1
`);
    expect(tests.map((t) => [t.id, t.status, t.message])).toEqual([
      ['s > t', 'pass', ''],
      ['s', 'error', 'before hook failed'],
    ]);
  });

  it('stops at Bail out! with an error result', async () => {
    const { tests } = await parse('TAP version 13\n1..3\nok 1 - a\nBail out! database down\nok 2 - never read\n');
    expect(tests.map((t) => [t.name, t.status, t.message])).toEqual([
      ['a', 'pass', ''],
      ['Bail out!', 'error', 'database down'],
    ]);
  });

  it('reports a short or missing plan as an error result (the producer stopped early)', async () => {
    const short = await parse('1..3\nok 1 - a\nnot ok 2 - b\n');
    expect(short.tests.at(-1)).toMatchObject({ name: 'TAP plan', status: 'error', message: 'the plan says 3 tests, the report has 2' });
    const none = await parse('TAP version 13\nok 1 - a\n');
    expect(none.tests.at(-1)).toMatchObject({ name: 'TAP plan', status: 'error' });
    expect(none.tests.at(-1)!.message).toMatch(/^no plan line after 1 tests/);
    expect((await parse('1..0 # SKIP nothing to do\n')).tests).toEqual([]);
  });

  it('unescapes hashes in subtest names used as groups', async () => {
    const { tests } = await parse('TAP version 14\n# Subtest: a \\# b\n    ok 1 - c\n    1..1\nok 1 - a \\# b\n1..1\n');
    expect(tests.map((t) => t.id)).toEqual(['a # b > c', 'a # b']);
  });

  it('reads CRLF line ends', async () => {
    const { tests } = await parse('TAP version 13\r\n1..1\r\nnot ok 1 - a # TODO later\r\n');
    expect(tests[0]).toMatchObject({ name: 'a', status: 'skip', message: 'TODO: later' });
  });
});
