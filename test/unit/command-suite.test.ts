// The `suite` remote command with real processes, through the command host: a suite script writes a JUnit report
// with a pass, a regression and a flaky test (its failures driven by a counter file, so the rate is known); the
// reruns run in fresh processes with the id as one argv element; the JSON result comes back in pieces under
// 'suite'; durations land in BASEDIR/suites/durations; an interrupt kills the suite's whole tree and stops.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sendJsonStatus } from '../../agent/commands/json-status.js';
import { suiteCommand } from '../../agent/commands/suite.js';
import type { CommandIO } from '../../agent/commands/types.js';
import { silentLogger } from '../../agent/log.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import type { SuiteRunResult } from '../../agent/suites/run-types.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { currentPlatform } from '../../platforms/index.js';
import { alive } from '../helpers/procs.js';
import { RecordingChannel } from '../helpers/recording-channel.js';

const platform = currentPlatform();
const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-cmd-'));
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };
const node = process.execPath;

/** The suite: a JUnit report with ok, broken and flaky (which fails on its first run); prints a line. */
const SUITE = `
const fs = require('node:fs');
const flaky = fs.existsSync('flaky.count') ? Number(fs.readFileSync('flaky.count', 'utf8')) : 0;
fs.writeFileSync('flaky.count', String(flaky + 1));
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/report.xml', \`<?xml version="1.0"?>
<testsuite name="s" tests="3"><testcase classname="m" name="ok" time="0.25"/>
<testcase classname="m" name="broken" time="1.5"><failure message="expected 1">boom</failure></testcase>
<testcase classname="m" name="flaky" time="0.5"><failure message="sometimes">flake</failure></testcase></testsuite>\`);
console.log('suite ran');
process.exit(1);
`;
/** One test again: 'broken' always fails; 'flaky' fails when its run count is a multiple of 3 (1 of 3 runs). */
const RERUN = `
const fs = require('node:fs');
const [test] = process.argv.slice(2);
fs.appendFileSync('reruns.log', JSON.stringify(test) + '\\n');
if (test === 'm::broken') process.exit(1);
const n = Number(fs.readFileSync('flaky.count', 'utf8'));
fs.writeFileSync('flaky.count', String(n + 1));
process.exit(n % 3 === 0 ? 1 : 0);
`;

function host() {
  return new CommandHost([suiteCommand], { basedir, platform, logger: silentLogger, environ, now: () => Date.now() / 1000 });
}

function workdir(name: string): string {
  const dir = path.join(basedir, name, 'build');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'suite.js'), SUITE);
  writeFileSync(path.join(dir, 'rerun.js'), RERUN);
  return dir;
}

async function run(args: Record<string, unknown>, during?: (h: CommandHost, ch: RecordingChannel) => Promise<void>) {
  const h = host();
  const ch = new RecordingChannel();
  const done = h.start({ name: 'suite', id: '1', args, channel: ch, settings: defaultOutputSettings() });
  await during?.(h, ch);
  await done;
  const pieces = ch.status('suite') as string[];
  return { ch, pieces, result: pieces.length ? (JSON.parse(pieces.join('')) as SuiteRunResult) : undefined };
}

describe('sendJsonStatus', () => {
  it('sends ASCII pieces: a cut never splits a surrogate pair, and the pieces join to the same document', () => {
    const value = { tests: [{ name: 'caf\u00e9 \u{1F600}\u{1F600} \u6d4b\u8bd5', group: '\u{1F680}' }] };
    const pieces: string[] = [];
    const io = { status: (_k: string, v: unknown) => pieces.push(v as string) } as unknown as CommandIO;
    for (const size of [1, 2, 3, 5, 7]) {
      pieces.length = 0;
      sendJsonStatus(io, 'suite', value, size);
      expect(pieces.every((p) => /^[\x00-\x7f]*$/.test(p) && p.length <= size)).toBe(true);
      // what the master gets: each piece encoded on its own
      expect(JSON.parse(pieces.map((p) => Buffer.from(p, 'utf8').toString('utf8')).join(''))).toEqual(value);
    }
  });
});

describe('the suite command', () => {
  it('runs, parses, reruns and classifies; the result goes back as JSON under "suite"; durations are recorded', async () => {
    const dir = workdir('classify');
    const { ch, result } = await run({
      workdir: dir,
      command: [node, 'suite.js'],
      results: 'out/*.xml',
      repeat_failures: 9,
      rerun: `${JSON.stringify(node)} rerun.js {test}`,
      durations: 'b1/suite',
      logEnviron: false,
    });
    expect(ch.failure).toBeNull();
    expect(ch.text('stdout')).toContain('suite ran\n');
    expect(ch.text('header')).toContain('suite: rerun 9 of m::flaky');
    expect(ch.status('rc')).toEqual([1]);
    expect(result).toMatchObject({ verdict: 'fail', rc: 1, counts: { total: 3, passed: 1, failed: 2, regressions: 1, intermittent: 1 } });
    const byTest = Object.fromEntries(result!.classifications.map((c) => [c.test, c]));
    expect(byTest['m::broken']).toMatchObject({ kind: 'regression', reruns: 9, failures: 9 });
    // reruns 1..9 see counts 1..9: 3, 6 and 9 fail
    expect(byTest['m::flaky']).toMatchObject({ kind: 'intermittent', reruns: 9, failures: 3 });
    expect(result!.tests.find((t) => t.id === 'm::broken')).toEqual({
      id: 'm::broken',
      name: 'broken',
      group: 'm',
      status: 'fail',
      duration_s: 1.5,
      message: expect.stringContaining('expected 1'),
    });
    expect(result!.tests.find((t) => t.id === 'm::ok')!.message).toBe('');
    const reruns = readFileSync(path.join(dir, 'reruns.log'), 'utf8').trim().split('\n');
    expect(reruns).toHaveLength(18);
    const durations = JSON.parse(readFileSync(path.join(basedir, 'suites', 'durations', 'b1_suite.json'), 'utf8'));
    expect(durations.tests['m::broken'].samples).toEqual([1.5]);
  });

  it('cuts a big result into pieces and passes a test id with shell characters as one argument', async () => {
    const dir = workdir('big');
    const nasty = `t "q" $(touch pwned); \`x\` 'y'`;
    const cases = Array.from({ length: 20_000 }, (_, i) => `<testcase classname="big" name="test number ${i} with a longish name" time="0.001"/>`);
    cases.push(`<testcase classname="" name=${JSON.stringify(nasty.replace(/"/g, '&quot;'))}><failure>x</failure></testcase>`);
    writeFileSync(
      path.join(dir, 'suite.js'),
      `require('fs').writeFileSync('r.xml', ${JSON.stringify(`<testsuite>${cases.join('')}</testsuite>`)}); process.exit(1)`,
    );
    const { pieces, result } = await run({
      workdir: dir,
      command: [node, 'suite.js'],
      results: 'r.xml',
      format: 'junit',
      repeat_failures: 2,
      rerun: [
        node,
        '-e',
        `require('fs').writeFileSync('seen.json', JSON.stringify(process.argv.slice(1))); process.exit(process.env.BBAGENT_SUITE_TEST.length > 0 ? 0 : 1)`,
        '{test}',
      ],
      durations: null,
      logEnviron: false,
    });
    expect(pieces.length).toBeGreaterThan(4);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThanOrEqual(256 * 1024);
    expect(result!.counts.total).toBe(20_001);
    expect(result!.verdict).toBe('intermittent');
    expect(JSON.parse(readFileSync(path.join(dir, 'seen.json'), 'utf8'))).toEqual([nasty]);
    expect(existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it("a mozlog report's known intermittent is classified without a rerun; the verdict is intermittent", async () => {
    const dir = workdir('mozlog');
    const rec = (o: Record<string, unknown>) => JSON.stringify({ time: 1, thread: 'main', pid: 1, source: 'suite', ...o });
    const lines = [
      rec({ action: 'suite_start', tests: { default: ['a.html', 'b.html'] } }),
      rec({ action: 'test_start', test: 'a.html' }),
      rec({ action: 'test_end', test: 'a.html', status: 'OK' }),
      rec({ action: 'test_start', test: 'b.html' }),
      rec({ action: 'test_end', test: 'b.html', status: 'FAIL', expected: 'OK', known_intermittent: ['FAIL'] }),
      rec({ action: 'suite_end' }),
    ];
    writeFileSync(path.join(dir, 'suite.js'), `require('fs').writeFileSync('raw.log', ${JSON.stringify(lines.join('\n') + '\n')}); process.exit(1)`);
    const { result } = await run({
      workdir: dir,
      command: [node, 'suite.js'],
      results: 'raw.log',
      repeat_failures: 9,
      rerun: [node, 'rerun.js', '{test}'],
      logEnviron: false,
    });
    expect(result!.classifications).toEqual([
      { test: 'b.html', name: 'b.html', group: expect.any(String), kind: 'known-intermittent', reruns: 0, failures: 0 },
    ]);
    expect(result).toMatchObject({ verdict: 'intermittent', counts: { total: 2, passed: 1, failed: 1, known_intermittent: 1 } });
    expect(existsSync(path.join(dir, 'reruns.log'))).toBe(false);
  });

  it('a confined worker reads no report outside BASEDIR', async () => {
    const dir = workdir('confined');
    const outside = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-outside-'));
    writeFileSync(path.join(outside, 'r.xml'), '<testsuite><testcase classname="x" name="y"/></testsuite>');
    const h = new CommandHost([suiteCommand], { basedir, platform, logger: silentLogger, environ, now: () => Date.now() / 1000, confineToBasedir: true });
    const ch = new RecordingChannel();
    const args = { workdir: dir, command: `touch ${JSON.stringify(path.join(outside, 'r.xml'))}`, results: path.join(outside, '*.xml'), logEnviron: false };
    await h.start({ name: 'suite', id: '1', args, channel: ch, settings: defaultOutputSettings() });
    expect(ch.failure?.message).toMatch(/^confineToBasedir: refusing '.*r\.xml'/);
  });

  it('a missing report and bad arguments are clear', async () => {
    const dir = workdir('missing');
    const { result, ch } = await run({ workdir: dir, command: 'true', results: 'nothing/*.xml', logEnviron: false });
    expect(result).toMatchObject({ verdict: 'fail', error: { code: 'E_SUITE_NO_RESULTS' } });
    expect(ch.status('rc')).toEqual([1]);
    const bad = await run({ workdir: dir, command: 'true', results: '*.xml', repeat_failures: 3 });
    expect(bad.ch.failure?.message).toContain(`argument 'rerun' is needed`);
    const fmt = await run({ workdir: dir, command: 'true', results: '*.xml', format: 'xunit' });
    expect(fmt.ch.failure?.message).toContain(`unknown report format 'xunit'`);
    const tmpl = await run({ workdir: dir, command: 'true', results: '*.xml', repeat_failures: 1, rerun: 'run everything' });
    expect(tmpl.ch.failure?.message).toContain('none of the placeholders');
  });

  it('an interrupt kills the suite and its children, and nothing is rerun', async () => {
    const dir = workdir('interrupt');
    writeFileSync(
      path.join(dir, 'suite.js'),
      `const { spawn } = require('child_process'); const c = spawn('sleep', ['300']); require('fs').writeFileSync('child.pid', String(c.pid)); console.log('started'); setInterval(() => {}, 1000);`,
    );
    const { ch, result } = await run(
      { workdir: dir, command: [node, 'suite.js'], results: '*.xml', repeat_failures: 2, rerun: ['x', '{test}'], logEnviron: false },
      async (h, c) => {
        while (!c.text('stdout').includes('started')) await new Promise((r) => setTimeout(r, 20));
        h.interrupt('1', 'stop', false);
      },
    );
    expect(result).toMatchObject({ interrupted: true, rc: null });
    expect(ch.status('rc')).toEqual([-1]);
    expect(ch.text('header')).toContain('command interrupted, attempting to kill');
    const child = Number(readFileSync(path.join(dir, 'child.pid'), 'utf8'));
    const end = Date.now() + 5000;
    while (alive(child) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(alive(child)).toBe(false);
  });
});
