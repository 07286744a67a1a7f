// Reports from real producers, run here, parsed without losing a test: vitest's JUnit reporter (checked test by
// test against vitest's own JSON report), pytest's --junitxml from Debian's python3-pytest (pytest tests and
// unittest TestCases; checked against pytest's summary line), node --test's TAP and JUnit reporters (checked
// against node's own tally), and mozlog raw lines from a small harness written to mozlog's documented format
// (checked against the harness's tally). The CLI (the built bundle) reads all of them in one call.
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReport } from '../../agent/suites/parse/index.js';
import type { SuiteResults } from '../../agent/suites/model.js';
import { UnitMap } from '../../agent/suites/units.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'suites');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const run = promisify(execFile);

/** Runs a producer that exits 1 because some of its tests fail (on purpose); anything else is a broken run. */
async function produce(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(cmd, args, { cwd, timeout: 30_000, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
  } catch (err) {
    const e = err as { code?: unknown; stdout: string; stderr: string };
    if (e.code !== 1) throw err;
    return { stdout: e.stdout, stderr: e.stderr };
  }
}

function counts(r: SuiteResults): Record<string, number> {
  return { total: r.total, passed: r.passed, failed: r.failed, skipped: r.skipped, errors: r.errors };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-producers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** pytest for Debian's python3 (scripts/ensure-pytest installs python3-pytest); why not, when it cannot. */
const pytestMissing = ((): string | undefined => {
  const r = spawnSync(path.join(ROOT, 'scripts', 'ensure-pytest'), { encoding: 'utf8', timeout: 300_000 });
  return r.status === 0 ? undefined : `python3-pytest is not installable here: ${(r.stderr || String(r.error)).trim()}`;
})();

describe('reports from real producers', () => {
  beforeAll(() => {
    if (!existsSync(BUNDLE)) spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  });

  it("vitest's JUnit reporter: every test of its JSON report, with its status", async () => {
    const work = path.join(dir, 'vitest');
    mkdirSync(work);
    copyFileSync(path.join(FIXTURES, 'vitest', 'sample.fixture.js'), path.join(work, 'sample.test.js'));
    copyFileSync(path.join(FIXTURES, 'vitest', 'other.fixture.js'), path.join(work, 'other.test.js'));
    const vitest = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
    const args = [
      vitest,
      'run',
      '--root',
      work,
      '--globals',
      '--reporter=junit',
      '--reporter=json',
      '--outputFile.junit=junit.xml',
      '--outputFile.json=vitest.json',
    ];
    await produce(process.execPath, args, work);
    const truth = JSON.parse(readFileSync(path.join(work, 'vitest.json'), 'utf8')) as {
      numTotalTests: number;
      testResults: { name: string; assertionResults: { ancestorTitles: string[]; title: string; status: string }[] }[];
    };
    const parsed = await parseReport(path.join(work, 'junit.xml'));
    expect(parsed.reports[0]!.format).toBe('junit');
    const status: Record<string, string> = { passed: 'pass', failed: 'fail', skipped: 'skip', pending: 'skip', todo: 'skip' };
    const expected = truth.testResults.flatMap((file) =>
      file.assertionResults.map((a) => `${path.basename(file.name)}::${[...a.ancestorTitles, a.title].join(' > ')} ${status[a.status] ?? a.status}`),
    );
    expect(parsed.tests.map((t) => `${t.id} ${t.status}`).sort()).toEqual(expected.sort());
    expect(parsed.total).toBe(truth.numTotalTests);
    expect(parsed.tests.find((t) => t.name === 'math > fails <xml> & "quotes"')!.message).toMatch(/^expected 1 to be 2/);
    // a chunked run maps each test to its file: vitest's classname is the file's path
    const map = new UnitMap(['other.test.js', 'sample.test.js'], work);
    expect(new Set(parsed.tests.map((t) => map.unitOf(t)))).toEqual(new Set(['other.test.js', 'sample.test.js']));
  });

  it.skipIf(pytestMissing !== undefined)(`pytest --junitxml: its summary line's counts${pytestMissing ? ` (skipped: ${pytestMissing})` : ''}`, async () => {
    const work = path.join(dir, 'pytest');
    mkdirSync(work);
    copyFileSync(path.join(FIXTURES, 'pytest', 'test_sample.py'), path.join(work, 'test_sample.py'));
    const { stdout } = await produce('/usr/bin/python3', ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--junitxml=junit.xml', 'test_sample.py'], work);
    const summary = stdout.trim().split('\n').at(-1)!;
    const n = (word: string): number => Number(new RegExp(`(\\d+) ${word}`).exec(summary)?.[1] ?? 0);
    const parsed = await parseReport(path.join(work, 'junit.xml'));
    // pytest's xfailed tests are skipped in JUnit; nothing here xpasses
    expect(counts(parsed)).toEqual({
      total: n('passed') + n('failed') + n('skipped') + n('xfailed') + n('error'),
      passed: n('passed'),
      failed: n('failed'),
      skipped: n('skipped') + n('xfailed'),
      errors: n('error'),
    });
    expect(parsed.total).toBe(12);
    expect(parsed.tests.map((t) => t.id)).toContain('test_sample.UnitStyle::test_bad');
    expect(parsed.tests.find((t) => t.name === 'test_setup_error')).toMatchObject({ status: 'error', message: expect.stringContaining('fixture exploded') });
    // a chunked run maps each test to its file: the module path (xunit2, the default), the file attribute (xunit1)
    const map = new UnitMap(['other.py', 'test_sample.py'], work);
    expect(parsed.tests.filter((t) => map.unitOf(t) !== 'test_sample.py').map((t) => t.id)).toEqual([]);
    await produce(
      '/usr/bin/python3',
      ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-o', 'junit_family=xunit1', '--junitxml=x1.xml', 'test_sample.py'],
      work,
    );
    const xunit1 = await parseReport(path.join(work, 'x1.xml'));
    expect(new Set(xunit1.tests.map((t) => t.source))).toEqual(new Set(['test_sample.py']));
    expect(xunit1.tests.filter((t) => new UnitMap(['test_sample.py'], work).unitOf({ ...t, group: '' }) !== 'test_sample.py')).toEqual([]);
  });

  it("node --test: TAP and JUnit against node's own tally", async () => {
    const files = ['a.fixture.mjs', 'b.fixture.mjs'].map((f) => path.join(FIXTURES, 'node', f));
    const work = path.join(dir, 'node');
    mkdirSync(work);
    const tap = path.join(work, 'out.tap');
    const junit = path.join(work, 'out.xml');
    await produce(
      process.execPath,
      ['--test', '--test-reporter=tap', `--test-reporter-destination=${tap}`, '--test-reporter=junit', `--test-reporter-destination=${junit}`, ...files],
      work,
    );
    const text = readFileSync(tap, 'utf8');
    const tally = (word: string): number => Number(new RegExp(`^# ${word} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const parsed = await parseReport(tap);
    expect(parsed.reports[0]!.format).toBe('tap');
    expect(counts(parsed)).toEqual({
      total: tally('tests'),
      passed: tally('pass'),
      failed: tally('fail') + tally('cancelled'),
      skipped: tally('skipped') + tally('todo'),
      errors: 0,
    });
    // node's JUnit makes a test with subtests a testsuite: the same tests less those parents
    const fromJunit = await parseReport(junit);
    const parents = new Set(parsed.tests.map((t) => t.group.split(' > ')[0]));
    expect(fromJunit.tests.map((t) => t.name).sort()).toEqual(
      parsed.tests
        .filter((t) => !parents.has(t.name))
        .map((t) => t.name)
        .sort(),
    );
  });

  it('mozlog raw lines from a harness: its tally, known intermittents marked', async () => {
    const log = path.join(dir, 'raw.log');
    const { stderr } = await run(process.execPath, [path.join(FIXTURES, 'mozlog-suite.mjs'), log], { timeout: 30_000 });
    const tally = JSON.parse(stderr) as Record<string, number>;
    const parsed = await parseReport(log);
    expect(parsed.reports[0]!.format).toBe('mozlog');
    const { known_intermittent: known, ...rest } = tally;
    expect(counts(parsed)).toEqual(rest);
    expect(parsed.tests.filter((t) => t.known_intermittent === true)).toHaveLength(known!);
  });

  it('the CLI reads every report in one call (--json), the format recognised per file', async () => {
    const reports = [path.join(dir, 'vitest', 'junit.xml'), path.join(dir, 'node', 'out.tap'), path.join(dir, 'raw.log')].filter((f) => existsSync(f));
    expect(reports).toHaveLength(3);
    const { stdout } = await run(process.execPath, [BUNDLE, 'suite', 'parse', '--json', ...reports], { timeout: 30_000, maxBuffer: 64 << 20 });
    const out = JSON.parse(stdout) as {
      total: number;
      tests: { name: string; status: string; duration_s: number | null }[];
      reports: { format: string; total: number }[];
    };
    expect(out.reports.map((r) => r.format)).toEqual(['junit', 'tap', 'mozlog']);
    let sum = 0;
    for (const f of reports) sum += (await parseReport(f)).total;
    expect(out.total).toBe(sum);
    expect(out.tests).toHaveLength(sum);
    const summary = await run(process.execPath, [BUNDLE, 'suite', 'parse', ...reports], { timeout: 30_000 });
    expect(summary.stdout.split('\n')[0]).toMatch(new RegExp(`^${sum} tests?: \\d+ passed, \\d+ failed, \\d+ skipped, \\d+ errors$`));
  });
});
