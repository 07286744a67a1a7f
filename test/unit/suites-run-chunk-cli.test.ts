// `bbagent suite run` running one chunk (the built bundle, real runners): pytest files split by --total/--this
// over a --tests-glob, `{tests}` expanded to one argument per file; the first pass is cut by count and records each
// file's time (mapped from pytest's module paths); the next pass, cut from those times pinned with
// --chunk-durations, is balanced, and the chunks are disjoint and cover the files. node --test (Node 20 names no
// file in its reports) runs only its chunk's files, and the run says once that the files keep the mean. Chunk
// options that cannot work are refused before anything runs (exit 2).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SuiteRunResult } from '../../agent/suites/run-types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const node = process.execPath;
/** Seconds each pytest file sleeps: the two heavy ones first in name order. */
const SLEEPS = [0.4, 0.3, 0.1, 0.1, 0.05, 0.05];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bbagent(args: string[], cwd: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BBAGENT_') && !k.startsWith('NODE_') && !k.startsWith('VITEST')) env[k] = v;
  const child = spawn(node, [BUNDLE, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const pytestMissing = ((): string | undefined => {
  const r = spawnSync(path.join(ROOT, 'scripts', 'ensure-pytest'), { encoding: 'utf8', timeout: 300_000 });
  return r.status === 0 ? undefined : `python3-pytest is not installable here: ${(r.stderr || String(r.error)).trim()}`;
})();

describe('bbagent suite run: one chunk', () => {
  let tmp: string;
  beforeAll(() => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-chunk-'));
  });

  it.skipIf(pytestMissing !== undefined)('pytest: by count first, then balanced on the recorded file times; disjoint and covering', async () => {
    const d = path.join(tmp, 'py');
    mkdirSync(path.join(d, 'tests'), { recursive: true });
    const files = SLEEPS.map((_s, i) => `tests/test_${i + 1}.py`);
    files.forEach((f, i) => writeFileSync(path.join(d, f), `import time\n\ndef test_sleep():\n    time.sleep(${SLEEPS[i]})\n`));
    const pytest = ['/usr/bin/python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--junitxml=out/r.xml', '{tests}'];
    const chunk = async (k: number, extra: string[]): Promise<SuiteRunResult> => {
      const r = await bbagent(
        [
          'suite',
          'run',
          '--total',
          '2',
          '--this',
          String(k),
          '--tests-glob',
          'tests/*.py',
          '--results',
          'out/r.xml',
          '--json',
          'r.json',
          ...extra,
          '--',
          ...pytest,
        ],
        d,
      );
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(readFileSync(path.join(d, 'r.json'), 'utf8')) as SuiteRunResult;
      // one test per file: as many passed as the chunk has files (a balanced chunk need not have half of them)
      expect(r.stdout).toContain(`bbagent suite run: pass: chunk ${k}/2: ${result.chunk!.selected.length} passed, 0 failed`);
      return result;
    };
    // the first pass: nothing recorded yet (the pinned copy does not exist), so by count
    const firstPass = ['--durations', 'd.json', '--chunk-durations', 'pinned.json'];
    const first = [await chunk(1, firstPass), await chunk(2, firstPass)];
    expect(first.map((r) => r.chunk!.selected)).toEqual([files.slice(0, 3), files.slice(3)]);
    expect(first.map((r) => r.chunk!.balanced_on)).toEqual(['count', 'count']);
    const recorded = JSON.parse(readFileSync(path.join(d, 'd.json'), 'utf8')) as { units: Record<string, { samples: number[] }> };
    expect(Object.keys(recorded.units)).toEqual(files);
    const seconds = (f: string): number => recorded.units[f]!.samples[0]!;
    files.forEach((f, i) => expect(seconds(f)).toBeGreaterThanOrEqual(SLEEPS[i]! - 0.01));

    // every chunk cut from one pinned copy (as every machine would use the same file)
    copyFileSync(path.join(d, 'd.json'), path.join(d, 'pinned.json'));
    const nextPass = ['--durations', 'd.json', '--chunk-durations', 'pinned.json'];
    const next = [await chunk(1, nextPass), await chunk(2, nextPass)];
    const selected = next.map((r) => r.chunk!.selected);
    expect(selected.flat().sort()).toEqual(files);
    expect(next[0]!.chunk!.snapshot).toBe(next[1]!.chunk!.snapshot);
    const loads = selected.map((c) => c.reduce((sum, f) => sum + seconds(f), 0));
    const byCount = [files.slice(0, 3), files.slice(3)].map((c) => c.reduce((sum, f) => sum + seconds(f), 0));
    const ratio = (l: number[]): number => Math.max(...l) / ((l[0]! + l[1]!) / 2);
    expect(ratio(byCount)).toBeGreaterThan(1.5);
    expect(ratio(loads)).toBeLessThanOrEqual(1.1);
  });

  it('node --test runs only its chunk; its report names no file, which the run says once', async () => {
    const d = path.join(tmp, 'node');
    mkdirSync(path.join(d, 'tests'), { recursive: true });
    mkdirSync(path.join(d, 'out'));
    for (const name of ['a', 'b', 'c']) writeFileSync(path.join(d, 'tests', `${name}.test.js`), `require('node:test')('in ${name}', () => {});\n`);
    const cmd = ['--', node, '--test', '--test-reporter=junit', '--test-reporter-destination=out/r.xml', '{tests}'];
    const r = await bbagent(
      ['suite', 'run', '--total', '2', '--this', '2', '--tests-glob', 'tests/*.js', '--results', 'out/r.xml', '--json', 'r.json', ...cmd],
      d,
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(path.join(d, 'r.json'), 'utf8')) as SuiteRunResult;
    expect(result.tests.map((t) => t.name)).toEqual(['in c']);
    expect(result.chunk).toMatchObject({ selected: ['tests/c.test.js'], unmapped_tests: 1, unit_durations: {} });
    expect(r.stderr.match(/name no unit of the chunk/g)).toHaveLength(1);
  });

  it('refuses chunk options that cannot work, before running anything (exit 2; 1 for an unreadable file)', async () => {
    const d = path.join(tmp, 'usage');
    mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, 'bad.json'), '{');
    const cases: [string[], string[], RegExp, number][] = [
      [['--total', '2', '--this', '1'], ['ran'], /--total, --this and --chunk-durations need the tests to split/, 2],
      [['--tests-glob', '*.py'], ['ran'], /no \{tests\} word: it would run every test/, 2],
      [[], ['ran', '{tests}'], /has \{tests\} but no tests were listed/, 2],
      [['--tests-glob', '*.py'], ['--into={tests}'], /\{tests\} must be a word of its own/, 2],
      [['--tests-glob', '*.py', '--total', '2', '--this', '3'], ['ran', '{tests}'], /--this 3 is past --total 2/, 2],
      [['--tests-glob', '*.py', '--total', '2'], ['ran', '{tests}'], /--total and --this go together/, 2],
      [['--tests-glob', '*.py', '--by', 'file'], ['ran', '{tests}'], /--by must be test or group/, 2],
      [['--tests-glob', '*.py', '--chunk-durations', 'bad.json'], ['ran', '{tests}'], /bad.json: not JSON/, 1],
    ];
    for (const [args, words, message, code] of cases) {
      const r = await bbagent(['suite', 'run', '--results', 'out/*.xml', ...args, '--', 'touch', ...words], d);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(code);
      expect(existsSync(path.join(d, 'ran'))).toBe(false);
    }
  });
});
