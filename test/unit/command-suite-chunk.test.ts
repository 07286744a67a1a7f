// The `suite` command 1.1 runs a chunk: the master's `tests` and `tests_glob` split by `total_chunks` and
// `this_chunk`, cut on the `chunk_durations` it sends, `{tests}` one argument per file; the result says what the
// chunk ran and each file's measured time (the report's `file` attribute), which also lands in the worker's
// durations file. 1.0 callers (no chunk arguments) run as before; bad chunk arguments fail naming the argument; a
// confined worker refuses a glob that leads out of BASEDIR.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { suiteCommand } from '../../agent/commands/suite.js';
import { silentLogger } from '../../agent/log.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import type { SuiteRunResult } from '../../agent/suites/run-types.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingChannel } from '../helpers/recording-channel.js';

const platform = currentPlatform();
const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-suite-chunk-cmd-'));
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };
const node = process.execPath;

/** A runner: one JUnit testcase per file it is given (with the file attribute), 1 s per character of its name. */
const RUNNER = `
const fs = require('node:fs');
const files = process.argv.slice(2);
fs.writeFileSync('argv.json', JSON.stringify(files));
const cases = files.map((f) => '<testcase classname="c" name="' + f + '" file="' + f + '" time="' + f.length + '"/>').join('');
fs.writeFileSync('r.xml', '<testsuite>' + cases + '</testsuite>');
`;

async function run(args: Record<string, unknown>, confineToBasedir = false) {
  const h = new CommandHost([suiteCommand], { basedir, platform, logger: silentLogger, environ, now: () => Date.now() / 1000, confineToBasedir });
  const ch = new RecordingChannel();
  await h.start({ name: 'suite', id: '1', args, channel: ch, settings: defaultOutputSettings() });
  const pieces = (ch.status('suite') ?? []) as string[];
  return { ch, result: pieces.length ? (JSON.parse(pieces.join('')) as SuiteRunResult) : undefined };
}

function workdir(name: string): string {
  const dir = path.join(basedir, name, 'build');
  mkdirSync(path.join(dir, 't'), { recursive: true });
  writeFileSync(path.join(dir, 'runner.js'), RUNNER);
  for (const f of ['a.js', 'bbbbbb.js', 'c.js', 'dd.js']) writeFileSync(path.join(dir, 't', f), '');
  return dir;
}

describe('the suite command runs a chunk', () => {
  it('is version 1.1', () => expect(suiteCommand.version).toBe('1.1'));

  it('splits tests and tests_glob, cut on chunk_durations; records each file', async () => {
    const dir = workdir('chunked');
    const base = { workdir: dir, command: [node, 'runner.js', '{tests}'], results: 'r.xml', logEnviron: false, durations: 'chunked' };
    const args = { ...base, total_chunks: 2, this_chunk: 1, tests: ['extra.js'], tests_glob: 't/*.js' };
    const first = await run(args);
    // by count: the first half of the sorted list
    expect(JSON.parse(readFileSync(path.join(dir, 'argv.json'), 'utf8'))).toEqual(['extra.js', 't/a.js', 't/bbbbbb.js']);
    expect(first.result!.chunk).toMatchObject({
      total: 2,
      this: 1,
      units: 5,
      balanced_on: 'count',
      unit_durations: { 'extra.js': 8, 't/a.js': 6, 't/bbbbbb.js': 11 },
    });
    expect(first.ch.status('rc')).toEqual([0]);
    const recorded = JSON.parse(readFileSync(path.join(basedir, 'suites', 'durations', 'chunked.json'), 'utf8'));
    expect(Object.keys(recorded.units)).toEqual(['extra.js', 't/a.js', 't/bbbbbb.js']);
    // with durations from the master: the heaviest file alone
    const durations = { 'extra.js': 8, 't/a.js': 6, 't/bbbbbb.js': 11, 't/c.js': 6, 't/dd.js': 7 };
    const second = await run({ ...args, chunk_durations: durations });
    expect(JSON.parse(readFileSync(path.join(dir, 'argv.json'), 'utf8'))).toEqual(['t/a.js', 't/bbbbbb.js']);
    expect(second.result!.chunk).toMatchObject({ balanced_on: 'durations', expected_s: 17, mean_s: 19 });
    const other = await run({ ...args, this_chunk: 2, chunk_durations: durations });
    expect(other.result!.chunk!.selected).toEqual(['extra.js', 't/c.js', 't/dd.js']);
    expect(other.result!.chunk!.snapshot).toBe(second.result!.chunk!.snapshot);
  });

  it('a 1.0 call (no chunk arguments) runs the command as it is', async () => {
    const dir = workdir('plain');
    const { result } = await run({ workdir: dir, command: [node, 'runner.js', 'x.js'], results: 'r.xml', logEnviron: false });
    expect(result).toMatchObject({ verdict: 'pass', counts: { total: 1 } });
    expect(result!.chunk).toBeUndefined();
  });

  it('bad chunk arguments fail naming the argument; a confined worker refuses a glob out of BASEDIR', async () => {
    const dir = workdir('bad');
    const base = { workdir: dir, command: [node, 'runner.js', '{tests}'], results: 'r.xml', logEnviron: false };
    const failure = async (args: Record<string, unknown>): Promise<string | undefined> => (await run({ ...base, ...args })).ch.failure?.message;
    expect(await failure({ total_chunks: 2, this_chunk: 1 })).toContain(`argument 'total_chunks' needs the tests to split`);
    expect(await failure({ tests: ['a'], total_chunks: 2 })).toContain(`'total_chunks' and 'this_chunk' go together`);
    expect(await failure({ tests: ['a'], total_chunks: 2, this_chunk: 3 })).toContain(`argument 'this_chunk' must be an integer in 1..2, got 3`);
    expect(await failure({ tests: ['a'], chunk_by: 'file' })).toContain(`argument 'chunk_by' must be 'test' or 'group'`);
    expect(await failure({ tests: 'a' })).toContain(`argument 'tests' must be a list of strings`);
    expect(await failure({ tests: ['a'], chunk_durations: { a: -1 } })).toContain(`argument 'chunk_durations': the duration of "a"`);
    expect(await failure({ command: 'run {tests}', tests: ['a'] })).toContain(`argument 'command': a suite command that runs a chunk's {tests} must be a list`);
    expect(await failure({ command: [node, 'runner.js'], tests: ['a'] })).toContain('no {tests} word');
    const outside = mkdtempSync(path.join(os.tmpdir(), 'bbagent-chunk-outside-'));
    writeFileSync(path.join(outside, 'x.js'), '');
    const confined = await run({ ...base, tests_glob: path.join(outside, '*.js') }, true);
    expect(confined.ch.failure?.message).toMatch(/^confineToBasedir: refusing '.*x\.js'/);
  });
});
