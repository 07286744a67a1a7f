// A suite run's orchestration with an injected runner, parser and report finder: reruns only the failures, with
// the test in one argv element, classifies them, decides the verdict, ignores stale reports, reports a missing or
// broken report as data, stops rerunning on interrupt, and records durations into a file the next run extends.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { parseHistory } from '../../agent/suites/durations.js';
import { RERUN_TEST_ENV, runSuite } from '../../agent/suites/run.js';
import { checkTemplate, rerunArgv, splitTemplate } from '../../agent/suites/run-template.js';
import type { RunPurpose, SuiteRunDeps, SuiteRunOptions, SuiteTest } from '../../agent/suites/run-types.js';
import { seeded } from '../helpers/seeded.js';

function test(id: string, status: SuiteTest['status'], extra: Partial<SuiteTest> = {}): SuiteTest {
  const [group, name] = id.includes('::') ? (id.split('::') as [string, string]) : ['', id];
  return { id, name, group, status, duration_s: 0.5, message: status === 'pass' ? '' : `${id} went wrong`, ...extra };
}

interface Call {
  command: string | readonly string[];
  purpose: RunPurpose;
  env?: Record<string, string>;
}

/** A fake world: the suite's rc, its parsed tests, each rerun's rc by test and attempt. */
function world(opts: { rc?: number; tests?: SuiteTest[]; rerunRc?: (test: string, attempt: number) => number; reports?: { path: string; mtimeMs: number }[] }) {
  const calls: Call[] = [];
  const notes: string[] = [];
  const now = 1_000_000;
  const deps: SuiteRunDeps = {
    runner: {
      run: async (command, purpose, env) => {
        calls.push({ command, purpose, env });
        return purpose.kind === 'suite' ? (opts.rc ?? 0) : (opts.rerunRc?.(purpose.test, purpose.attempt) ?? 1);
      },
    },
    parse: async () => opts.tests ?? [],
    findReports: async () => opts.reports ?? [{ path: '/w/report.xml', mtimeMs: now + 10 }],
    note: (line) => notes.push(line),
    nowMs: () => now,
  };
  return { calls, notes, deps };
}

const base: SuiteRunOptions = { command: ['run-tests'], results: '*.xml', workdir: '/w', format: 'auto', repeatFailures: 0 };

describe('runSuite', () => {
  it('a suite that passes: no rerun, verdict pass', async () => {
    const w = world({ tests: [test('a', 'pass'), test('b', 'skip')] });
    const r = await runSuite({ ...base, repeatFailures: 9, rerun: ['x', '{test}'] }, w.deps);
    expect(r.verdict).toBe('pass');
    expect(r.counts).toMatchObject({ total: 2, passed: 1, skipped: 1, failed: 0, not_rerun: 0 });
    expect(w.calls.map((c) => c.purpose.kind)).toEqual(['suite']);
  });

  it('reruns each failure K times, the id one argv element, and classifies regression, intermittent, known-intermittent', async () => {
    const nasty = `m::it "works"; rm -rf / $(touch pwned) 'x'`;
    const tests = [test('m::ok', 'pass'), test('m::broken', 'fail'), test(nasty, 'error'), test('m::known', 'fail', { known_intermittent: true })];
    const w = world({ rc: 1, tests, rerunRc: (t, attempt) => (t === nasty ? (attempt % 3 === 0 ? 1 : 0) : 1) });
    const r = await runSuite({ ...base, repeatFailures: 9, rerun: splitTemplate("runner --one '{test}' --group={group}") }, w.deps);
    const reruns = w.calls.filter((c) => c.purpose.kind === 'rerun');
    expect(reruns).toHaveLength(18);
    expect(reruns[9]!.command).toEqual(['runner', '--one', nasty, '--group=m']);
    expect(reruns[9]!.env).toEqual({ [RERUN_TEST_ENV]: nasty });
    const kinds = Object.fromEntries(r.classifications.map((c) => [c.test, c]));
    expect(kinds['m::broken']).toMatchObject({ kind: 'regression', reruns: 9, failures: 9, rate: 1, name: 'broken', group: 'm' });
    expect(kinds[nasty]).toMatchObject({ kind: 'intermittent', reruns: 9, failures: 3 });
    expect(kinds[nasty]!.rate).toBeCloseTo(1 / 3, 12);
    expect(kinds['m::known']).toMatchObject({ kind: 'known-intermittent', reruns: 0 });
    expect(r.counts).toMatchObject({ total: 4, passed: 1, failed: 2, errors: 1, regressions: 1, intermittent: 1, known_intermittent: 1, not_rerun: 0 });
    expect(r.verdict).toBe('fail');
    expect(w.notes.join('\n')).toContain('m::broken: regression, 9 of 9 rerun(s) failed');
  });

  it('only intermittent failures: verdict intermittent, even though the suite exited non-zero', async () => {
    const w = world({ rc: 1, tests: [test('a', 'pass'), test('flaky', 'fail')], rerunRc: (_t, attempt) => (attempt === 1 ? 1 : 0) });
    const r = await runSuite({ ...base, repeatFailures: 3, rerun: ['x', '{test}'], stopAtFirstPass: true }, w.deps);
    expect(r.classifications).toEqual([expect.objectContaining({ test: 'flaky', kind: 'intermittent', reruns: 2, failures: 1 })]);
    expect(r.verdict).toBe('intermittent');
    expect(r.error).toBeUndefined();
  });

  it('without reruns failures stay failures; past max_confirmed they are not rerun', async () => {
    const tests = [test('a', 'fail'), test('b', 'fail'), test('c', 'fail')];
    const none = world({ rc: 1, tests });
    const r0 = await runSuite(base, none.deps);
    expect(r0).toMatchObject({ verdict: 'fail', classifications: [], counts: { failed: 3, not_rerun: 3 } });
    expect(none.calls).toHaveLength(1);
    const capped = world({ rc: 1, tests, rerunRc: () => 0 });
    const r1 = await runSuite({ ...base, repeatFailures: 2, rerun: ['x', '{test}'], maxConfirmed: 2 }, capped.deps);
    expect(r1.classifications.map((c) => c.test)).toEqual(['a', 'b']);
    expect(r1.counts).toMatchObject({ intermittent: 2, not_rerun: 1 });
    expect(r1.verdict).toBe('fail');
  });

  it('ignores reports older than the run; no fresh report is E_SUITE_NO_RESULTS, as data', async () => {
    const w = world({ tests: [test('a', 'pass')], reports: [{ path: '/w/old.xml', mtimeMs: 1 }] });
    const r = await runSuite(base, w.deps);
    expect(r).toMatchObject({ verdict: 'fail', stale_reports: 1, reports: [], error: { code: 'E_SUITE_NO_RESULTS' } });
    expect(r.error!.message).toContain('"*.xml"');
    const mixed = world({
      tests: [test('a', 'pass')],
      reports: [
        { path: '/w/old.xml', mtimeMs: 1 },
        { path: '/w/new.xml', mtimeMs: 999_000 },
      ],
    });
    expect(await runSuite(base, mixed.deps)).toMatchObject({ verdict: 'pass', reports: ['/w/new.xml'], stale_reports: 1 });
  });

  it('a report that does not parse is an error naming it, as data; a non-zero exit with no failure is E_SUITE_EXIT', async () => {
    const w = world({});
    w.deps.parse = async () => {
      throw new AgentError('E_SUITE_DURATION', '/w/report.xml:3: broken');
    };
    expect((await runSuite(base, w.deps)).error).toEqual({ code: 'E_SUITE_DURATION', message: '/w/report.xml:3: broken' });
    const crashed = world({ rc: 134, tests: [test('a', 'pass')] });
    expect(await runSuite(base, crashed.deps)).toMatchObject({ verdict: 'fail', rc: 134, error: { code: 'E_SUITE_EXIT' } });
  });

  it('an interrupt stops the reruns', async () => {
    const w = world({ rc: 1, tests: [test('a', 'fail'), test('b', 'fail')] });
    const ac = new AbortController();
    const run = w.deps.runner.run;
    w.deps.runner.run = async (command, purpose, env) => {
      if (purpose.kind === 'rerun' && purpose.attempt === 2) ac.abort();
      return run(command, purpose, env);
    };
    const r = await runSuite({ ...base, repeatFailures: 9, rerun: ['x', '{test}'] }, { ...w.deps, signal: ac.signal });
    expect(r.interrupted).toBe(true);
    expect(r.verdict).toBe('fail');
    expect(w.calls.filter((c) => c.purpose.kind === 'rerun')).toHaveLength(2);
  });

  it('reruns without a template are refused before anything runs', async () => {
    const w = world({});
    await expect(runSuite({ ...base, repeatFailures: 2 }, w.deps)).rejects.toMatchObject({ code: 'E_SUITE_RERUN_TEMPLATE' });
    expect(w.calls).toEqual([]);
  });

  it('records durations by test id; the next run adds its samples; a broken file starts afresh', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'suites-run-'));
    const file = path.join(dir, 'sub', 'durations.json');
    const first = world({ tests: [test('g::a', 'pass', { duration_s: 1 }), test('g::b', 'skip'), test('g::c', 'pass', { duration_s: NaN })] });
    await runSuite({ ...base, durationsFile: file }, first.deps);
    const second = world({ tests: [test('g::a', 'pass', { duration_s: 3 })] });
    await runSuite({ ...base, durationsFile: file }, second.deps);
    const h = parseHistory(readFileSync(file, 'utf8'), file);
    expect(h.runs).toBe(2);
    expect([...h.tests.keys()]).toEqual(['g::a']);
    expect(h.tests.get('g::a')!.samples).toEqual([1, 3]);
    writeFileSync(file, '{broken');
    const third = world({ tests: [test('g::a', 'pass', { duration_s: 2 })] });
    await runSuite({ ...base, durationsFile: file }, third.deps);
    expect(parseHistory(readFileSync(file, 'utf8'), file).runs).toBe(1);
    expect(third.notes.join('\n')).toMatch(/starting .*durations.json afresh/);
  });
});

describe('the issue criterion through the whole run', () => {
  // suites-classify.test.ts checks the classifier alone on simulation; this drives runSuite itself (the suite run,
  // the report, the reruns through the template and the runner, the classification) on seeded flaky outcomes
  it.each([0.2, 0.3])('a test failing with p=%s is intermittent in >= 95 percent of 2000 jobs, with <= 10 extra runs', async (p) => {
    const rand = seeded(4100 + p * 10);
    let intermittent = 0;
    let maxExtra = 0;
    for (let job = 0; job < 2000; job++) {
      const w = world({ rc: 1, tests: [test('m::ok', 'pass'), test('m::flaky', 'fail')], rerunRc: () => (rand() < p ? 1 : 0) });
      const r = await runSuite({ ...base, repeatFailures: 9, rerun: ['run', '{test}'] }, w.deps);
      if (r.verdict === 'intermittent' && r.classifications[0]?.kind === 'intermittent') intermittent++;
      maxExtra = Math.max(maxExtra, w.calls.length - 1);
    }
    expect(intermittent / 2000).toBeGreaterThanOrEqual(0.95);
    expect(maxExtra).toBeLessThanOrEqual(10);
  });
});

describe('the rerun template', () => {
  it('splits like a shell without expanding anything, and keeps a test id in one element', () => {
    expect(splitTemplate(`node --test "--test-name-pattern=^{name}$" 'a b'\\ c x\\"y "q\\$z"`)).toEqual([
      'node',
      '--test',
      '--test-name-pattern=^{name}$',
      'a b c',
      'x"y',
      'q$z',
    ]);
    expect(splitTemplate(`sh -c 'run "$1"; echo $HOME' sh {test}`)).toEqual(['sh', '-c', 'run "$1"; echo $HOME', 'sh', '{test}']);
    const id = `a b; $(rm -rf /) {name} "q'`;
    expect(rerunArgv(['t', '{test}', '--in={group}/{name}'], { id, name: 'n', group: 'g' })).toEqual(['t', id, '--in=g/n']);
  });

  it('refuses an open quote, a lone backslash, no program and no placeholder, naming the template', () => {
    expect(() => splitTemplate(`run '{test}`)).toThrow(/single quote at character 5 is never closed/);
    expect(() => splitTemplate(`run "{test}`)).toThrow(/double quote at character 5/);
    expect(() => splitTemplate(`run {test}\\`)).toThrow(/lone backslash/);
    expect(() => checkTemplate(splitTemplate('   '), '   ')).toThrow(/names no program/);
    expect(() => checkTemplate(['run', 'all'], 'run all')).toThrow(
      expect.objectContaining({ code: 'E_SUITE_RERUN_TEMPLATE', message: expect.stringContaining('"run all"') }),
    );
  });
});
