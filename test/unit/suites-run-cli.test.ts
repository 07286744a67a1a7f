// `bbagent suite run` as a ShellCommand runs it: the built bundle (node build/bbagent.cjs, built by
// `node scripts/build.mjs`) running a real `node --test` suite with Node's JUnit reporter (and a pytest suite with
// pytest's): a passing test, one that
// always fails and a flaky one (its failures driven by a counter file: runs 0, 3, 6, 9 fail), rerun through a
// template with `--test-name-pattern`. Exit 1 on the regression, 0 when the only failure is intermittent, 2 on a
// bad command line; SIGTERM kills the suite's tree.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SuiteRunResult } from '../../agent/suites/run-types.js';
import { alive } from '../helpers/procs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const node = process.execPath;

const SUITE = (withBroken: boolean) => `
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
test('passes', () => {});
${withBroken ? "test('always fails', () => assert.strictEqual(1, 2));" : ''}
test('flaky', () => {
  const n = fs.existsSync('count') ? Number(fs.readFileSync('count', 'utf8')) : 0;
  fs.writeFileSync('count', String(n + 1));
  if (n % 3 === 0) throw new Error('flaky failure on run ' + n);
});
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bbagent(args: string[], cwd: string, onStart?: (pid: number) => void): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BBAGENT_') && !k.startsWith('NODE_') && !k.startsWith('VITEST')) env[k] = v;
  const child = spawn(node, [BUNDLE, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  onStart?.(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const SUITE_CMD = ['--', node, '--test', '--test-reporter=junit', '--test-reporter-destination=out/report.xml', 'suite.test.js'];
const RERUN = `${JSON.stringify(node)} --test "--test-name-pattern=^{name}$" suite.test.js`;

describe('bbagent suite run', () => {
  let tmp: string;
  let n = 0;
  const fresh = (withBroken: boolean): string => {
    const d = path.join(tmp, `d${n++}`);
    mkdirSync(path.join(d, 'out'), { recursive: true });
    writeFileSync(path.join(d, 'suite.test.js'), SUITE(withBroken));
    return d;
  };

  beforeAll(() => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-run-'));
  });

  it('classifies a regression and a flaky test of a real node --test suite, exit 1', async () => {
    const d = fresh(true);
    const args = ['suite', 'run', '--results', 'out/*.xml', '--repeat-failures', '9', '--rerun', RERUN, '--json', 'r.json', '--durations', 'd.json'];
    const r = await bbagent([...args, ...SUITE_CMD], d);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('bbagent suite run: fail: 1 passed, 1 failed, 1 intermittent\n');
    expect(r.stdout).toContain('  regression: test::always fails (9 of 9 reruns failed');
    expect(r.stdout).toContain('  intermittent: test::flaky (3 of 9 reruns failed, failure rate 0.33 (95% CI 0.12-0.65))');
    const result = JSON.parse(readFileSync(path.join(d, 'r.json'), 'utf8')) as SuiteRunResult;
    expect(result.counts).toMatchObject({ total: 3, passed: 1, failed: 2, regressions: 1, intermittent: 1 });
    expect(readFileSync(path.join(d, 'count'), 'utf8')).toBe('10');
    expect(Object.keys(JSON.parse(readFileSync(path.join(d, 'd.json'), 'utf8')).tests)).toEqual(['test::always fails', 'test::flaky', 'test::passes']);
  });

  it("classifies a pytest suite from pytest's own JUnit XML, rerun with -k", async () => {
    const d = path.join(tmp, `py${n++}`);
    mkdirSync(d);
    writeFileSync(
      path.join(d, 'test_suite.py'),
      [
        'import os',
        'def test_ok():',
        '    pass',
        'def test_broken():',
        '    assert 1 == 2',
        'def test_flaky():',
        "    n = int(open('count').read()) if os.path.exists('count') else 0",
        "    open('count', 'w').write(str(n + 1))",
        '    assert n % 3 != 0, "flaky failure on run %d" % n',
        '',
      ].join('\n'),
    );
    const pytest = ['/usr/bin/python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider'];
    const rerun = `${pytest.join(' ')} test_suite.py -k {name}`;
    const r = await bbagent(
      ['suite', 'run', '--results', 'junit.xml', '--repeat-failures', '3', '--rerun', rerun, '--', ...pytest, '--junitxml=junit.xml', 'test_suite.py'],
      d,
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('bbagent suite run: fail: 1 passed, 1 failed, 1 intermittent\n');
    expect(r.stdout).toContain('  regression: test_suite::test_broken (3 of 3 reruns failed');
    expect(r.stdout).toContain('  intermittent: test_suite::test_flaky (1 of 3 reruns failed');
  });

  it('exits 0 when the only failure is intermittent', async () => {
    const d = fresh(false);
    const r = await bbagent(
      ['suite', 'run', '--results', 'out/report.xml', '--repeat-failures', '3', '--stop-at-first-pass', '--rerun', RERUN, ...SUITE_CMD],
      d,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('bbagent suite run: intermittent: 1 passed, 0 failed, 1 intermittent\n');
    expect(r.stdout).toContain('intermittent: test::flaky (0 of 1 reruns failed');
  });

  it('refuses a bad command line with exit 2 and one line', async () => {
    const d = fresh(false);
    for (const [args, text] of [
      [['suite', 'run', '--results', 'x'], 'missing -- CMD'],
      [['suite', 'run', '--', 'true'], '--results GLOB is required'],
      [['suite', 'run', '--results', 'x', '--repeat-failures', '2', '--', 'true'], "needs --rerun 'CMD {test}'"],
      [['suite', 'run', '--results', 'x', '--repeat-failures', '2', '--rerun', "run '{test}", '--', 'true'], 'never closed'],
      [['suite', 'run', '--results', 'x', '--format', 'xml', '--', 'true'], "unknown report format 'xml'"],
    ] as [string[], string][]) {
      const r = await bbagent(args, d);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(text);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  it('no report written is exit 1, naming the glob', async () => {
    const r = await bbagent(['suite', 'run', '--results', 'none/*.xml', '--', 'true'], fresh(false));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no report matching "none/*.xml"');
  });

  it('SIGTERM kills the suite and its children', async () => {
    const d = fresh(false);
    writeFileSync(
      path.join(d, 'hang.js'),
      `const c = require('child_process').spawn('sleep', ['300']); require('fs').writeFileSync('child.pid', String(c.pid)); setInterval(() => {}, 1000);`,
    );
    let pid = 0;
    const running = bbagent(['suite', 'run', '--results', '*.xml', '--', node, 'hang.js'], d, (p) => (pid = p));
    const pidFile = path.join(d, 'child.pid');
    const until = Date.now() + 15_000;
    while (!existsSync(pidFile) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    process.kill(pid, 'SIGTERM');
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('interrupted');
    const child = Number(readFileSync(pidFile, 'utf8'));
    const end = Date.now() + 5000;
    while (alive(child) && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    expect(alive(child)).toBe(false);
  });
});
