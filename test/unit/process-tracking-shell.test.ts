// The shell command's process tracking, timers and hang forensics with real processes, through the command
// host and a recording channel: escaped processes are killed, leftovers of a normal end are listed (not killed),
// the agent's exit kills everything at once, delays of 2^31 ms or more do not fire early.
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandHost } from '../../agent/worker/command-host.js';
import { shellCommand } from '../../agent/commands/shell.js';
import { HANG_ENV } from '../../agent/process/hang-forensics.js';
import { LeftoverChecks, ProcessRegistry, TRACKING_ENV } from '../../agent/process/tracking.js';
import { rmdirCommand } from '../../agent/commands/rmdir.js';
import { cpdirCommand } from '../../agent/commands/cpdir.js';
import type { Platform } from '../../platforms/index.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { currentPlatform } from '../../platforms/index.js';
import { killMarked, LEAK_KINDS, LEAKY_SHELL, leakCounts, markedProcesses, waitUnmarked } from '../faults/helpers/proc-count.js';
import { RecordingChannel } from '../helpers/recording-channel.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const platform = currentPlatform();
/** The tests count processes through /proc. */
const linux = platform.id === 'linux';
const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-tracking-'));
const RUN = `shell-tracking-${process.pid}`;
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };

afterAll(() => {
  killMarked('LEAK_RUN', RUN);
});

function setup(opts: { registry?: ProcessRegistry; environ?: Record<string, string>; platform?: Platform } = {}) {
  const logger = new RecordingLogger();
  const host = new CommandHost([shellCommand, rmdirCommand, cpdirCommand], {
    basedir,
    platform: opts.platform ?? platform,
    logger,
    environ: opts.environ ?? environ,
    now: () => Date.now() / 1000,
    processes: opts.registry,
  });
  return { host, logger };
}

/** Output settings that flush at once, so a test sees "started" without the 5 s buffer timeout. */
const settings = { ...defaultOutputSettings(), bufferTimeoutMs: 0 };

/** Starts a shell command in its own workdir, with LEAK_RUN=<run> in its env so a test can count its processes. */
function start(host: CommandHost, run: string, args: Record<string, unknown>) {
  const ch = new RecordingChannel();
  const workdir = path.join(basedir, run);
  const env = { LEAK_RUN: run, ...((args['env'] as Record<string, unknown>) ?? {}) };
  const done = host.start({ name: 'shell', id: run, args: { workdir, logEnviron: false, ...args, env }, channel: ch, settings });
  return { ch, done, workdir };
}

/** Waits until the command's stdout holds `text`. */
async function stdoutHas(ch: RecordingChannel, text: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (ch.text('stdout').includes(text)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ${JSON.stringify(text)} on stdout: ${ch.text('stdout')}`);
}

describe.runIf(linux)('escaped processes', () => {
  it('interrupt kills the setsid child, the double-fork daemon and the TERM-ignoring ones (sigtermTime escalation)', async () => {
    const run = `${RUN}-int`;
    const { host } = setup();
    const { ch, done } = start(host, run, { command: `${LEAKY_SHELL}\necho started; sleep 300`, sigtermTime: 1 });
    await stdoutHas(ch, 'started');
    expect(Object.keys(leakCounts('LEAK_RUN', run)).sort()).toEqual([...LEAK_KINDS, 'step'].sort());
    host.interrupt(run, 'test', true);
    await done;
    expect(ch.status('rc')).toEqual([-1]);
    // sigtermTime 1 s, then the final sweep
    expect(await waitUnmarked('LEAK_RUN', run, 5000), JSON.stringify(leakCounts('LEAK_RUN', run))).toBeDefined();
  });

  it('a normal end lists what the step left running in the agent log, and kills nothing', async () => {
    const run = `${RUN}-left`;
    const { host, logger } = setup();
    const { ch, done, workdir } = start(host, run, {
      command: `(LEAK_KIND=server setsid sh -c 'echo $$ > server.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &); while [ ! -s server.pid ]; do sleep 0.05; done`,
    });
    await done;
    expect(ch.status('rc')).toEqual([0]);
    const server = Number(readFileSync(path.join(workdir, 'server.pid'), 'utf8'));
    for (let i = 0; i < 200 && !logger.lines.some((l) => l.includes('left 1 process')); i++) await new Promise((r) => setTimeout(r, 25));
    const line = logger.lines.find((l) => l.includes('left 1 process'));
    expect(line).toMatch(new RegExp(`not killed[^]*pid ${server}: sleep 300`));
    expect(markedProcesses('LEAK_RUN', run).map((p) => p.pid)).toEqual([server]);
    killMarked('LEAK_RUN', run);
  });

  it("the marker is set after the step's env: a step can neither remove nor replace it", async () => {
    const run = `${RUN}-env`;
    const { host } = setup({ environ: { ...environ, [TRACKING_ENV]: 'outer-agent' } });
    const a = start(host, `${run}-a`, { command: `echo "$${TRACKING_ENV}"`, env: { [TRACKING_ENV]: null } });
    const b = start(host, `${run}-b`, { command: `echo "$${TRACKING_ENV}"`, env: { [TRACKING_ENV]: 'mine' } });
    await Promise.all([a.done, b.done]);
    // the outer agent's value stays in front, so the outer agent still finds this build's processes
    expect(a.ch.text('stdout')).toMatch(/^outer-agent:bbagent-\d+-[0-9a-f]{16}\n$/);
    expect(b.ch.text('stdout')).toMatch(/^outer-agent:bbagent-\d+-[0-9a-f]{16}\n$/);
  });

  it("the agent's exit (registry.terminateAll) SIGKILLs everything at once, without waiting out sigtermTime", async () => {
    const run = `${RUN}-exit`;
    const registry = new ProcessRegistry();
    const { host } = setup({ registry });
    const { ch, done } = start(host, run, { command: `${LEAKY_SHELL}\necho started; sleep 300`, sigtermTime: 300 });
    await stdoutHas(ch, 'started');
    expect(registry.size).toBe(1);
    host.interrupt(run, 'first a normal interrupt: TERM, and 300 s of grace', true);
    await new Promise((r) => setTimeout(r, 300));
    expect(Object.keys(leakCounts('LEAK_RUN', run))).toEqual(expect.arrayContaining(['noterm', 'noterm-daemon']));
    const t0 = Date.now();
    await registry.terminateAll();
    host.abandonAll();
    expect(await waitUnmarked('LEAK_RUN', run, 2000), JSON.stringify(leakCounts('LEAK_RUN', run))).toBeDefined();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(registry.size).toBe(0);
    await done;
  });
});

describe('checks for leftovers after a normal end', () => {
  /** The platform, counting its process scans. */
  const counting = () => {
    const scans: string[] = [];
    const p: Platform = {
      ...platform,
      findProcesses: (q) => {
        scans.push(q.marker?.value ?? '');
        return platform.findProcesses(q);
      },
    };
    return { p, scans };
  };

  it('rmdir and cpdir helpers (rm, cp) are not followed by a scan of every process; shell steps are', async () => {
    const { p, scans } = counting();
    const { host } = setup({ platform: p });
    mkdirSync(path.join(basedir, 'left-check-src'), { recursive: true });
    const run = async (name: string, args: Record<string, unknown>) => {
      const ch = new RecordingChannel();
      await host.start({ name, id: `${RUN}-${name}`, args: { logEnviron: false, ...args }, channel: ch, settings });
      expect(ch.status('rc'), name).toEqual([0]);
    };
    const copy = path.join(os.tmpdir(), `bbagent-cpdir-${process.pid}`);
    await run('cpdir', { from_path: path.join(basedir, 'left-check-src'), to_path: copy });
    await run('rmdir', { paths: [copy] });
    expect(scans).toEqual([]);
    await run('shell', { workdir: path.join(basedir, 'left-check'), command: 'true' });
    expect(scans).toHaveLength(1);
  });

  it('run one at a time, each followed by a pause that keeps them to their share of the time', async () => {
    let clock = 0;
    const pauses: number[] = [];
    let running = 0;
    let most = 0;
    const checks = new LeftoverChecks({
      duty: 0.1,
      queueMax: 2,
      now: () => clock,
      pause: async (ms) => void pauses.push(ms),
    });
    const ran: number[] = [];
    const check = (n: number) => async (): Promise<void> => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setImmediate(r));
      clock += 60; // a 60 ms scan
      ran.push(n);
      running--;
    };
    // the first runs at once, two wait, the fourth finds the queue full
    expect([1, 2, 3, 4].map((n) => checks.submit(check(n)))).toEqual([true, true, true, false]);
    for (let i = 0; i < 50 && ran.length < 3; i++) await new Promise((r) => setImmediate(r));
    expect(ran).toEqual([1, 2, 3]);
    expect(most).toBe(1);
    // 60 ms of scanning, then 540 ms of rest: 10 %
    expect(pauses.map((ms) => Math.round(ms))).toEqual([540, 540, 540]);
  });
});

describe('delays from the master', () => {
  it('a timeout or maxTime of 2^31 ms or more does not kill the step at once', async () => {
    const { host } = setup();
    const { ch, done } = start(host, `${RUN}-long`, { command: 'sleep 0.5; echo done', timeout: 2 ** 31 / 1000, maxTime: 30 * 86400, sigtermTime: 2 ** 32 });
    await done;
    expect(ch.text('header')).not.toContain('command timed out');
    expect(ch.text('stdout')).toBe('done\n');
    expect(ch.status('rc')).toEqual([0]);
  });

  it.each([
    ['timeout', -1, "argument 'timeout' must be a number of seconds >= 0, got -1"],
    ['maxTime', NaN, "argument 'maxTime' must be a number of seconds >= 0, got NaN"],
    ['sigtermTime', '5', 'argument \'sigtermTime\' must be a number of seconds >= 0, got string "5"'],
    ['timeout', true, "argument 'timeout' must be a number of seconds >= 0, got boolean true"],
  ])('%s %s fails the command before anything runs (buildbot-worker: EXCEPTION)', async (name, value, message) => {
    const { host } = setup();
    const { ch, done, workdir } = start(host, `${RUN}-bad-${name}-${String(value)}`, { command: 'touch ran', [name]: value });
    await done;
    expect(ch.failure).toMatchObject({ type: 'ValueError', message });
    expect(() => readFileSync(path.join(workdir, 'ran'))).toThrow();
  });
});

describe.runIf(linux)('hang forensics', () => {
  const hung = `sh -c 'sleep 300; echo never'`;

  it('a timeout writes the process tree (sh and its sleep) to the header before the kill', async () => {
    const { host } = setup();
    const { ch, done } = start(host, `${RUN}-hang`, { command: hung, timeout: 1 });
    await done;
    const header = ch.text('header');
    const report = header.split('\n').filter((l) => l.startsWith('hang: '));
    expect(report[0]).toMatch(/^hang: process tree before the timeout kill \(3 processes, collected in \d+\.\d\d s\)$/);
    expect(report[1]).toMatch(/PID +PPID S +CPU\(s\) +FDS WCHAN +COMMAND/);
    expect(report.some((l) => / S +\d+\.\d\d +\d+ \S+ +\/bin\/sh -c sh -c 'sleep 300; echo never'$/.test(l))).toBe(true);
    expect(report.some((l) => /^hang: +\d+ +\d+ S .* {5}sleep 300$/.test(l))).toBe(true);
    // the report comes after the timeout line and before the kill's result
    expect(header.indexOf('command timed out')).toBeLessThan(header.indexOf('hang: '));
    expect(header.indexOf('hang: ')).toBeLessThan(header.indexOf('process killed by signal 9'));
    expect(ch.status('rc')).toEqual([-1]);
  });

  it("a step that declares a 'hang' log gets the full report there", async () => {
    const { host } = setup();
    const { ch, done } = start(host, `${RUN}-hanglog`, { command: hung, maxTime: 1, logfiles: { hang: '.hang-unused' } });
    await done;
    expect(ch.log('hang')).toMatch(/^process tree before the maxTime kill/);
    expect(ch.log('hang')).toContain('sleep 300');
    expect(ch.text('header')).toMatch(/hang: (stacks \(\S+\) in log 'hang'|no stacks: )/);
  });

  it(`${HANG_ENV}: off skips it, always adds it on interrupt, a bad value fails the step`, async () => {
    const { host } = setup();
    const off = start(host, `${RUN}-off`, { command: hung, timeout: 1, env: { [HANG_ENV]: 'off' } });
    await off.done;
    expect(off.ch.text('header')).not.toContain('hang: ');

    const always = start(host, `${RUN}-always`, { command: `echo started; ${hung}`, env: { [HANG_ENV]: 'always' } });
    await stdoutHas(always.ch, 'started');
    host.interrupt(`${RUN}-always`, 'test', true);
    await always.done;
    expect(always.ch.text('header')).toContain('hang: process tree when interrupted');

    const plain = start(host, `${RUN}-plain`, { command: `echo started; ${hung}` });
    await stdoutHas(plain.ch, 'started');
    host.interrupt(`${RUN}-plain`, 'test', true);
    await plain.done;
    expect(plain.ch.text('header')).not.toContain('hang: ');

    // a lost connection: nobody could read a report, so the kill does not wait for one
    const { host: host2, logger } = setup();
    const lost = start(host2, `${RUN}-lost`, { command: `echo started; ${hung}`, env: { [HANG_ENV]: 'always' } });
    await stdoutHas(lost.ch, 'started');
    host2.abandon(`${RUN}-lost`);
    await lost.done;
    expect(logger.lines.filter((l) => l.includes('hang forensics'))).toEqual([]);

    const bad = start(host, `${RUN}-badhang`, { command: 'true', env: { [HANG_ENV]: 'sometimes' } });
    await bad.done;
    expect(bad.ch.failure?.message).toBe(`${HANG_ENV}: expected timeout, always or off, got "sometimes"`);
  });
});
