// `bbagent suite chunk|parse`: in process with a recording CliIO (chunks cover the list, a durations file balances
// them and a missing one means none, usage mistakes exit 2 with one line, a broken report exits 1 naming file and
// line, --json is one object), and through the built bundle for standard input and the top-level help.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../agent/cli/io.js';
import { suiteCommand, SUITE_SUBCOMMANDS } from '../../agent/cli/suite.js';
import { chunkTests } from '../../agent/suites/chunk.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(ROOT, 'build', 'bbagent.cjs');
const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function suite(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {} };
  const code = await suiteCommand(args, io);
  return {
    code,
    out: out
      .join('\n')
      .split('\n')
      .filter((l, i, a) => l !== '' || i < a.length - 1),
    err,
  };
}

function file(name: string, content: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

const IDS = Array.from({ length: 40 }, (_, i) => `dir${i % 4}/test_${i}.js`);

describe('bbagent suite chunk', () => {
  const list = file('list.txt', `${IDS.join('\r\n')}\n\n`);

  it('prints disjoint chunks covering the list, as chunkTests', async () => {
    const all: string[] = [];
    for (let k = 1; k <= 3; k++) {
      const r = await suite('chunk', '--total', '3', '--this', String(k), list);
      expect(r.code).toBe(0);
      expect(r.out).toEqual(chunkTests(IDS, { total: 3, this: k }));
      all.push(...r.out);
    }
    expect(all.sort()).toEqual([...IDS].sort());
  });

  it('balances by a durations file; a missing one is the first run (no durations)', async () => {
    const durations = Object.fromEntries(IDS.map((id, i) => [id, i === 0 ? 100 : 1]));
    const d = file('durations.json', JSON.stringify(durations));
    const r = await suite('chunk', '--total', '2', '--this', '1', '--durations', d, '--by', 'group', list);
    expect(r.out).toEqual(chunkTests(IDS, { total: 2, this: 1, by: 'group', durations: new Map(Object.entries(durations)) }));
    expect(r.out).toEqual(IDS.filter((id) => id.startsWith('dir0/')).sort());
    const missing = await suite('chunk', '--total', '2', '--this', '1', '--durations', path.join(dir, 'none.json'), list);
    expect(missing.out).toEqual(chunkTests(IDS, { total: 2, this: 1 }));
  });

  it('usage mistakes exit 2 with one line; a bad durations file or duplicate id exits 1', async () => {
    for (const args of [
      ['chunk', '--this', '1', list],
      ['chunk', '--total', '0', '--this', '1', list],
      ['chunk', '--total', '2', '--this', '3', list],
      ['chunk', '--total', '2', '--this', '1.5', list],
      ['chunk', '--total', '2', '--this', '1', '--by', 'dir', list],
      ['chunk', '--total', '2', '--this', '1', list, 'extra'],
      ['nosuch'],
    ]) {
      const r = await suite(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toHaveLength(1);
    }
    const bad = await suite('chunk', '--total', '2', '--this', '1', '--durations', file('bad.json', '{'), list);
    expect(bad).toMatchObject({ code: 1, err: [expect.stringMatching(/bad\.json: not JSON/)] });
    const dup = await suite('chunk', '--total', '2', '--this', '1', file('dup.txt', 'a\nb\na\n'));
    expect(dup).toMatchObject({ code: 1, err: [expect.stringMatching(/"a" appears more than once/)] });
  });
});

describe('bbagent suite parse', () => {
  const junit = file(
    'r.xml',
    '<testsuite name="s"><testcase classname="c" name="ok" time="0.5"/><testcase classname="c" name="bad"><failure message="boom">trace</failure></testcase></testsuite>',
  );
  const tap = file('r.tap', 'TAP version 13\nok 1 - a\nok 2 - b # SKIP later\n1..2\n');

  it('prints a summary naming the failures', async () => {
    const r = await suite('parse', junit, tap);
    expect(r).toEqual({ code: 0, out: ['4 tests: 2 passed, 1 failed, 1 skipped, 0 errors', 'FAIL c::bad: boom'], err: [] });
  });

  it('prints one JSON object with --json', async () => {
    const r = await suite('parse', '--json', junit, tap);
    const json = JSON.parse(r.out.join('\n')) as Record<string, unknown>;
    expect(json).toMatchObject({ total: 4, passed: 2, failed: 1, skipped: 1, errors: 0 });
    expect(json.reports).toEqual([
      { file: junit, format: 'junit', total: 2, passed: 1, failed: 1, skipped: 0, errors: 0 },
      { file: tap, format: 'tap', total: 2, passed: 1, failed: 0, skipped: 1, errors: 0 },
    ]);
    expect((json.tests as unknown[])[0]).toEqual({ name: 'ok', group: 'c', id: 'c::ok', status: 'pass', duration_s: 0.5, message: '' });
    expect((json.tests as unknown[])[3]).toMatchObject({ name: 'b', status: 'skip', duration_s: null, message: 'later' });
    const empty = await suite('parse', '--json', '--format', 'tap', file('e.tap', '1..0\n'));
    expect(JSON.parse(empty.out.join('\n'))).toMatchObject({ tests: [], total: 0 });
  });

  it('a broken report exits 1 with one line naming file and line; usage mistakes exit 2', async () => {
    const broken = file('broken.xml', '<testsuite>\n<testcase name="a">\n');
    expect(await suite('parse', junit, broken)).toMatchObject({
      code: 1,
      err: [expect.stringMatching(new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: not well-formed XML`))],
    });
    expect(await suite('parse', '--format', 'xml', junit)).toMatchObject({
      code: 2,
      err: [expect.stringMatching(/--format must be one of auto, junit, tap, mozlog/)],
    });
    expect(await suite('parse')).toMatchObject({ code: 2, err: [expect.stringMatching(/missing FILE/)] });
    expect(await suite('parse', '--format', 'mozlog', junit)).toMatchObject({ code: 1, err: [expect.stringMatching(/r\.xml:1: not a JSON line/)] });
  });

  it('the subcommand table drives the help', async () => {
    const r = await suite('--help');
    expect(r.code).toBe(0);
    for (const name of Object.keys(SUITE_SUBCOMMANDS)) expect(r.out.join('\n')).toContain(`bbagent suite ${name} `);
    expect((await suite()).code).toBe(2);
  });
});

describe('through the bundle', () => {
  beforeAll(() => {
    if (!existsSync(BUNDLE)) spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  });
  const bbagent = (args: string[], input = ''): { status: number | null; stdout: string; stderr: string } =>
    spawnSync(process.execPath, [BUNDLE, ...args], { input, encoding: 'utf8', timeout: 30_000 });

  it('reads a test list and a report from standard input', () => {
    const r = bbagent(['suite', 'chunk', '--total', '2', '--this', '2'], IDS.join('\n'));
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${chunkTests(IDS, { total: 2, this: 2 }).join('\n')}\n`);
    const p = bbagent(['suite', 'parse', '-'], '{"action":"test_start","test":"t","time":1}\n{"action":"test_end","test":"t","status":"PASS","time":3}\n');
    expect(p).toMatchObject({ status: 0, stdout: '1 test: 1 passed, 0 failed, 0 skipped, 0 errors\n' });
  });

  it('is in the top-level help and `bbagent help suite`', () => {
    expect(bbagent(['--help']).stdout).toContain('suite chunk|parse');
    expect(bbagent(['help', 'suite'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: bbagent suite <subcommand>') });
    expect(bbagent(['suite', 'parse', '--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: bbagent suite parse') });
  });
});
