// Units (the test files a chunk list names): listed and globbed into one sorted list whatever order the file
// system gives, `{tests}` checked and expanded one argv element per unit, reported tests mapped back to their file
// (JUnit file, vitest classname, pytest module path, Java classname under a source root, mozlog path, a TAP group),
// per-unit durations recorded next to the tests' (bounded, old units dropped), and a chunked run's orchestration:
// the chunk it ran, the mean for units no report names said once, an empty chunk not run at all.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { chunkDurationsOf, emptyHistory, formatHistory, parseHistory, recordRun } from '../../agent/suites/durations.js';
import type { SuiteRunDeps, SuiteRunOptions, SuiteTest } from '../../agent/suites/run-types.js';
import { runSuite } from '../../agent/suites/run.js';
import { checkTestsPlaceholder, expandTests, listUnits, normalizeUnit, UnitMap, unitTimes } from '../../agent/suites/units.js';

function t(id: string, group: string, extra: Partial<SuiteTest> = {}): SuiteTest {
  return { id, name: id, group, status: 'pass', duration_s: 0.25, message: '', ...extra };
}

describe('units', () => {
  it('lists the listed and globbed units sorted by code units, normalized, without duplicates, whatever the creation order', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bbagent-units-'));
    for (const f of ['tests/z_test.py', 'tests/B/test_b.py', 'tests/a/test_é.py', 'tests/a/test_a.py', 'tests/readme.txt']) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), '');
    }
    const units = await listUnits(['./tests/a/test_a.py', 'extra/x.py', ' '], 'tests/**/*.py', dir);
    expect(units).toEqual(['extra/x.py', 'tests/B/test_b.py', 'tests/a/test_a.py', 'tests/a/test_é.py', 'tests/z_test.py']);
    const seen: string[] = [];
    await listUnits([], 'tests/*.py', dir, (p) => seen.push(p));
    expect(seen).toEqual([path.join(dir, 'tests', 'z_test.py')]);
    expect(normalizeUnit('.\\tests\\\\a\\x.py')).toBe('tests/a/x.py');
  });

  it('{tests} is a word of its own in an argv, there exactly when units are, and expands to one element per unit', () => {
    expect(expandTests(['pytest', '-q', '{tests}', '-x'], ['a b.py', '$(x).py'])).toEqual(['pytest', '-q', 'a b.py', '$(x).py', '-x']);
    expect(expandTests(['run', '{tests}'], [])).toEqual(['run']);
    const code = (f: () => void): string | undefined => {
      try {
        f();
      } catch (err) {
        return `${(err as AgentError).code}: ${(err as Error).message}`;
      }
      return undefined;
    };
    expect(code(() => checkTestsPlaceholder(['pytest', '{tests}'], true))).toBeUndefined();
    expect(code(() => checkTestsPlaceholder(['pytest'], false))).toBeUndefined();
    expect(code(() => checkTestsPlaceholder('pytest {tests}', true))).toMatch(/^E_SUITE_TESTS_PLACEHOLDER: .*never a shell string/);
    expect(code(() => checkTestsPlaceholder(['pytest', '--files={tests}'], true))).toMatch(/word of its own/);
    expect(code(() => checkTestsPlaceholder(['pytest'], true))).toMatch(/would run every test/);
    expect(code(() => checkTestsPlaceholder(['pytest', '{tests}'], false))).toMatch(/no tests were listed/);
  });

  it('maps reported tests to their unit as each producer names it; ambiguous and unknown ones to nothing', () => {
    const units = [
      'tests/test_x.py',
      'tests/sub/test_y.py',
      'test/a.test.ts',
      'src/test/java/com/x/FooTest.java',
      'dom/historical.html',
      'test_root.py',
      'one/dup.py',
      'two/dup.py',
      'lib/test.js',
    ];
    const map = new UnitMap(units, '/srv/checkout');
    const unit = (test: Partial<SuiteTest>): string | undefined => map.unitOf({ id: 'x', group: '', ...test });
    // JUnit file attribute (pytest xunit1, relative or absolute under the workdir)
    expect(unit({ group: 'whatever', source: 'tests/sub/test_y.py' })).toBe('tests/sub/test_y.py');
    expect(unit({ source: '/srv/checkout/tests/test_x.py' })).toBe('tests/test_x.py');
    // vitest: the classname is the file
    expect(unit({ group: 'test/a.test.ts', id: 'test/a.test.ts::adds' })).toBe('test/a.test.ts');
    // pytest xunit2: the module path, with or without a class
    expect(unit({ group: 'tests.test_x' })).toBe('tests/test_x.py');
    expect(unit({ group: 'tests.test_x.TestK' })).toBe('tests/test_x.py');
    expect(unit({ group: 'tests.sub.test_y' })).toBe('tests/sub/test_y.py');
    expect(unit({ group: 'test_root' })).toBe('test_root.py');
    // Java: the classname under a source root
    expect(unit({ group: 'com.x.FooTest' })).toBe('src/test/java/com/x/FooTest.java');
    // mozlog: the test id is the path (wpt ids start with '/')
    expect(unit({ id: '/dom/historical.html', group: 'dom' })).toBe('dom/historical.html');
    // TAP: a runner that wraps each file in a subtest named by it
    expect(unit({ group: 'test/a.test.ts > math', id: 'test/a.test.ts > math > adds' })).toBe('test/a.test.ts');
    // ambiguous (two dup.py), a lone segment that is only the end of a unit (node's classname "test"), nothing
    expect(unit({ group: 'dup' })).toBeUndefined();
    expect(unit({ group: 'test' })).toBeUndefined();
    expect(unit({ group: 'tests.nothing_here' })).toBeUndefined();
  });

  it("sums a unit's timed tests; skipped and untimed tests count for nothing; unmapped ones are counted", () => {
    const map = new UnitMap(['tests/test_x.py', 'tests/test_y.py'], '/w');
    const times = unitTimes(
      [
        t('a', 'tests.test_x', { duration_s: 0.5 }),
        t('b', 'tests.test_x.K', { duration_s: 0.25 }),
        t('c', 'tests.test_x', { status: 'skip', duration_s: 9 }),
        t('d', 'tests.test_y', { duration_s: NaN }),
        t('e', 'elsewhere', { duration_s: 1 }),
        t('f', 'tests.test_y', { status: 'fail', duration_s: 2 }),
      ],
      map,
    );
    expect([...times.durations]).toEqual([
      ['tests/test_x.py', 0.75],
      ['tests/test_y.py', 2],
    ]);
    expect(times.unmapped).toBe(1);
  });
});

describe('per-unit durations in the durations file', () => {
  it('records units beside tests, reads them back, balances on them, and drops units not seen for 20 runs', () => {
    let h = recordRun(emptyHistory(), [{ name: 'tests.test_x::a', status: 'pass', duration_s: 1 }], 5, 20, new Map([['tests/test_x.py', 1.5]]));
    h = recordRun(h, [], 5, 20, new Map([['tests/old.py', 3]]));
    const text = formatHistory(h);
    expect(JSON.parse(text).units).toEqual({ 'tests/old.py': { samples: [3], last_run: 2 }, 'tests/test_x.py': { samples: [1.5], last_run: 1 } });
    expect(formatHistory(parseHistory(text, 'f'))).toBe(text);
    expect(chunkDurationsOf(parseHistory(text, 'f'))).toEqual(
      new Map([
        ['tests.test_x::a', 1],
        ['tests/old.py', 3],
        ['tests/test_x.py', 1.5],
      ]),
    );
    for (let i = 0; i < 20; i++) h = recordRun(h, [], 5, 20, new Map([['tests/old.py', 3]]));
    expect([...h.units.keys()]).toEqual(['tests/old.py']);
    // a file without units is written as before units existed
    expect(formatHistory(recordRun(emptyHistory(), [{ name: 'a', status: 'pass', duration_s: 1 }]))).not.toContain('units');
    expect(() => parseHistory('{"bbagent_durations":1,"runs":1,"tests":{},"units":[]}', 'd.json')).toThrow(/d.json: "units" must be an object/);
  });
});

describe('a chunked runSuite', () => {
  const reports = [{ path: '/w/r.xml', mtimeMs: 2e12 }];
  function deps(tests: SuiteTest[]) {
    const commands: (string | readonly string[])[] = [];
    const notes: string[] = [];
    const d: SuiteRunDeps = {
      runner: { run: async (command) => (commands.push(command), 0) },
      parse: async () => tests,
      findReports: async () => reports,
      note: (line) => notes.push(line),
      nowMs: () => 1e12,
    };
    return { d, commands, notes };
  }
  const units = ['t/a.py', 't/b.py', 't/c.py', 't/d.py'];
  const base: SuiteRunOptions = { command: ['pytest', '{tests}'], results: '*.xml', workdir: '/w', format: 'auto', repeatFailures: 0, tests: units };

  it('runs its chunk by count on the first run, then balanced on the durations recorded, once pinned', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'bbagent-chunkrun-')), 'd.json');
    const seconds: Record<string, number> = { 't/a.py': 3, 't/b.py': 1, 't/c.py': 1, 't/d.py': 1 };
    const tests = units.map((u) => t(`${u}::x`, u, { duration_s: seconds[u]! }));
    const first = deps(tests);
    const r1 = await runSuite({ ...base, chunk: { total: 2, this: 1, by: 'test' }, durationsFile: file }, first.d);
    expect(first.commands).toEqual([['pytest', 't/a.py', 't/b.py']]);
    expect(r1.chunk).toMatchObject({ balanced_on: 'count', selected: ['t/a.py', 't/b.py'], snapshot: null, unit_durations: { 't/a.py': 3, 't/b.py': 1 } });
    expect(first.notes[0]).toBe('suite: chunk 1/2: 2 of 4 unit(s), cut by count (no recorded durations)');
    // the other chunk's run records the rest; the file it records into is never what it is cut on
    const second = deps(tests);
    await runSuite({ ...base, chunk: { total: 2, this: 2, by: 'test' }, durationsFile: file }, second.d);
    expect(second.commands).toEqual([['pytest', 't/c.py', 't/d.py']]);
    // pinned, the recorded times cut chunk 1 as the heavy test alone
    const pinned = chunkDurationsOf(parseHistory(readFileSync(file, 'utf8'), file));
    const next = deps(tests);
    const r2 = await runSuite({ ...base, chunk: { total: 2, this: 1, by: 'test' }, durationsFile: file, chunkDurations: pinned }, next.d);
    expect(next.commands).toEqual([['pytest', 't/a.py']]);
    expect(r2.chunk).toMatchObject({ balanced_on: 'durations', expected_s: 3, mean_s: 3, unknown_units: 0 });
    expect(JSON.parse(readFileSync(file, 'utf8')).units['t/a.py'].samples).toEqual([3, 3]);
  });

  it('balances on given durations; units without one get the mean, said once; unmapped tests said once', async () => {
    const w = deps([t('x', 'nowhere'), t('y', 'nowhere.either')]);
    const r = await runSuite({ ...base, chunk: { total: 2, this: 2, by: 'test' }, chunkDurations: new Map([['t/a.py', 4]]) }, w.d);
    expect(r.chunk).toMatchObject({ balanced_on: 'durations', unknown_units: 3, unmapped_tests: 2, unit_durations: {} });
    expect(w.notes.filter((n) => n.includes('no recorded duration'))).toEqual([
      'suite: chunk: 3 unit(s) have no recorded duration: each counted as the mean, 4.000 s',
    ]);
    expect(w.notes.filter((n) => n.includes('name no unit'))).toHaveLength(1);
  });

  it('an empty chunk runs nothing and passes; an empty list fails naming it', async () => {
    const w = deps([]);
    const r = await runSuite({ ...base, tests: ['t/a.py'], chunk: { total: 3, this: 2, by: 'test' } }, w.d);
    expect(w.commands).toEqual([]);
    expect(r).toMatchObject({ verdict: 'pass', rc: 0, chunk: { selected: [], units: 1 } });
    const none = await runSuite({ ...base, tests: undefined, testsGlob: 'nothing/*.py', chunk: { total: 2, this: 1, by: 'test' } }, w.d);
    expect(none).toMatchObject({ verdict: 'fail', error: { code: 'E_SUITE_NO_TESTS' } });
    expect(none.error!.message).toContain('no file matches "nothing/*.py" in /w');
    expect(w.commands).toEqual([]);
  });
});
