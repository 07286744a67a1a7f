// JUnit XML into the result model: the Ant/Jenkins shape, nested suites, a lone testcase, Surefire's reruns
// (flakyFailure, rerunFailure), CTest/GoogleTest status attributes, messages from attributes, text and CDATA, and
// system-out that costs nothing; the same results whatever the chunk size the text streams in.
import { describe, expect, it } from 'vitest';
import { parseReportChunks, parseReports, textChunks } from '../../agent/suites/parse/index.js';
import { timedResult, type TestResult } from '../../agent/suites/model.js';

async function parse(xml: string, chunk = 1 << 20): Promise<{ tests: TestResult[]; counts: Record<string, number> }> {
  const tests: TestResult[] = [];
  const report = await parseReportChunks(textChunks(xml, chunk), 'r.xml', { format: 'auto' }, tests);
  expect(report.format).toBe('junit');
  return { tests, counts: { ...report.counts } };
}

const JENKINS = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="all" tests="5" failures="1" errors="1" skipped="1">
  <testsuite name="outer" tests="5">
    <properties><property name="os" value="linux"/></properties>
    <testsuite name="inner">
      <testcase classname="pkg.A" name="passes" time="0.5"/>
      <testcase classname="pkg.A" name="fails" time="1,234.5">
        <failure message="expected 1" type="AssertionError">at A.fails(A.java:3)</failure>
        <system-out>a long log &lt;here&gt;</system-out>
      </testcase>
    </testsuite>
    <testcase name="no classname" time="x"><error message="boom"><![CDATA[Trace <with> brackets]]></error></testcase>
    <testcase classname="pkg.B" name="skipped"><skipped message="not on linux"/></testcase>
    <testcase classname="pkg.B" name="entities &amp; &#x263A;" time="0"/>
  </testsuite>
</testsuites>`;

describe('JUnit parser', () => {
  it('reads nested suites, statuses, times, messages and groups', async () => {
    const { tests, counts } = await parse(JENKINS);
    expect(counts).toEqual({ total: 5, passed: 2, failed: 1, skipped: 1, errors: 1 });
    expect(tests.map((t) => [t.id, t.status])).toEqual([
      ['pkg.A::passes', 'pass'],
      ['pkg.A::fails', 'fail'],
      ['outer::no classname', 'error'],
      ['pkg.B::skipped', 'skip'],
      ['pkg.B::entities & ☺', 'pass'],
    ]);
    expect(tests[1]).toMatchObject({ name: 'fails', group: 'pkg.A', duration_s: 1234.5, message: 'expected 1\nat A.fails(A.java:3)', line: 7 });
    expect(tests[2]!.message).toBe('boom\nTrace <with> brackets');
    expect(tests[2]!.duration_s).toBeNaN();
    expect(tests[3]!.message).toBe('not on linux');
    expect(tests[0]!.message).toBe('');
    // the durations file keys a result by its id: the name alone is not unique across classes
    expect(timedResult(tests[1]!)).toEqual({ name: 'pkg.A::fails', status: 'fail', duration_s: 1234.5 });
  });

  it('gives the same results whatever the chunk size', async () => {
    const whole = await parse(JENKINS);
    for (const size of [1, 7, 64]) expect(await parse(JENKINS, size)).toEqual(whole);
  });

  it('reads a lone testsuite and a lone testcase as the root', async () => {
    expect((await parse('<testsuite name="s"><testcase name="t"/></testsuite>')).tests[0]).toMatchObject({ id: 's::t', status: 'pass' });
    expect((await parse('<testcase classname="c" name="t"><failure/></testcase>')).tests[0]).toMatchObject({ id: 'c::t', status: 'fail', message: '' });
  });

  it("reads Surefire's flaky and rerun elements", async () => {
    const { tests, counts } = await parse(`<testsuite name="s">
      <testcase classname="C" name="flaky" time="0.1">
        <flakyFailure message="first" type="AssertionError"><stackTrace>x</stackTrace><system-out>o</system-out></flakyFailure>
        <flakyError message="second" type="IOException"/>
      </testcase>
      <testcase classname="C" name="broken" time="0.2">
        <failure message="always" type="AssertionError">trace</failure>
        <rerunFailure message="again" type="AssertionError"><stackTrace>x</stackTrace></rerunFailure>
        <rerunFailure message="again" type="AssertionError"/>
      </testcase>
    </testsuite>`);
    expect(counts).toMatchObject({ total: 2, passed: 1, failed: 1 });
    expect(tests[0]).toMatchObject({ status: 'pass', flaky: true, rerun_failures: 2, raw_status: 'flaky', message: '' });
    expect(tests[1]).toMatchObject({ status: 'fail', rerun_failures: 2, message: 'always\ntrace' });
    expect(tests[1]!.flaky).toBeUndefined();
  });

  it("reads CTest's and GoogleTest's status attributes", async () => {
    const { tests } = await parse(`<testsuite name="ctest">
      <testcase name="a" classname="a" status="run"/>
      <testcase name="b" classname="b" status="notrun"><skipped message="Disabled"/></testcase>
      <testcase name="c" classname="c" status="disabled"/>
      <testcase name="d" classname="d" status="run" result="skipped"/>
    </testsuite>`);
    expect(tests.map((t) => t.status)).toEqual(['pass', 'skip', 'skip', 'skip']);
  });

  it('keeps only the start of a huge message', async () => {
    const big = 'x'.repeat(100_000);
    const { tests } = await parse(`<testsuite><testcase name="t"><failure message="m">${big}</failure></testcase></testsuite>`, 4096);
    expect(tests[0]!.message.length).toBeLessThan(17_000);
    expect(tests[0]!.message).toMatch(/more characters\)$/);
  });
});

describe('parseReports', () => {
  it('adds up files in order; keepTests false keeps none, onTest sees every result', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-parse-many-'));
    try {
      const a = path.join(dir, 'a.xml');
      const b = path.join(dir, 'b.tap');
      writeFileSync(a, JENKINS);
      writeFileSync(b, '> pkg@1.0.0 test\n> node --test\n\nTAP version 13\nok 1 - x\n1..1\n');
      const seen: string[] = [];
      const r = await parseReports([a, b], { keepTests: false, onTest: (t) => seen.push(t.id) });
      expect(r).toMatchObject({ total: 6, passed: 3, failed: 1, skipped: 1, errors: 1, tests: [] });
      expect(r.reports.map((x) => [x.file, x.format, x.counts.total])).toEqual([
        [a, 'junit', 5],
        [b, 'tap', 1],
      ]);
      expect(seen).toHaveLength(6);
      expect(seen.at(-1)).toBe('x');
      expect((await parseReports([a, b])).tests.map((t) => t.id)).toEqual(seen);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
