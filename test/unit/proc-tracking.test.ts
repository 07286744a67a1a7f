// Finding a command's processes: the tracking marker in /proc/PID/environ (or ps -E), the tree from the
// process group and parent links, and the parsers behind them. Real processes on this host where it matters.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { currentPlatform } from '../../platforms/index.js';
import {
  environHasMarker,
  groupIsLive,
  parseProcStat,
  parsePsListing,
  selectProcesses,
  toolEnv,
  type ScannedProcess,
} from '../../platforms/posix/processes.js';
import { posixPlatform } from '../../platforms/posix/platform.js';
import { win32Platform } from '../../platforms/win32/platform.js';
import { parseLsofCounts, parsePsFacts, parsePsTime, ptraceDenied } from '../../platforms/posix/inspect.js';
import { alive } from '../helpers/procs.js';
import { killMarked, markedProcesses } from '../faults/helpers/proc-count.js';

const platform = currentPlatform();
const linux = platform.id === 'linux';
const TEST_MARK = `proc-tracking-${process.pid}`;

afterAll(() => {
  killMarked('PROC_TRACKING_TEST', TEST_MARK);
});

describe('marker matching', () => {
  const m = { name: 'BUILDBOT_TRACKING_ID', value: 'bbagent-1-abc' };
  const env = (...vars: string[]): Buffer => Buffer.from(vars.join('\0') + '\0', 'latin1');

  it("finds NAME=VALUE anywhere, and VALUE inside a nested agent's list", () => {
    expect(environHasMarker(env('BUILDBOT_TRACKING_ID=bbagent-1-abc', 'A=1'), m)).toBe(true);
    expect(environHasMarker(env('A=1', 'BUILDBOT_TRACKING_ID=bbagent-1-abc'), m)).toBe(true);
    expect(environHasMarker(env('A=1', 'BUILDBOT_TRACKING_ID=outer-9:bbagent-1-abc'), m)).toBe(true);
    expect(environHasMarker(Buffer.from('BUILDBOT_TRACKING_ID=bbagent-1-abc'), m)).toBe(true);
  });

  it('does not match another value, a longer one, or the name inside another variable', () => {
    expect(environHasMarker(env('BUILDBOT_TRACKING_ID=bbagent-1-abcd'), m)).toBe(false);
    expect(environHasMarker(env('BUILDBOT_TRACKING_ID=bbagent-2-abc'), m)).toBe(false);
    expect(environHasMarker(env('X_BUILDBOT_TRACKING_ID=bbagent-1-abc'), m)).toBe(false);
    expect(environHasMarker(env('A=BUILDBOT_TRACKING_ID=bbagent-1-abc'), m)).toBe(false);
    expect(environHasMarker(env(), m)).toBe(false);
  });

  it('ps -E listings (macOS): the marker after the command, zombies skipped', () => {
    const text = [
      '  101     1   101 Ss   /usr/sbin/daemon -x BUILDBOT_TRACKING_ID=bbagent-1-abc HOME=/',
      '  102   101   101 S    sleep 5 PATH=/bin BUILDBOT_TRACKING_ID=x:bbagent-1-abc',
      '  103     1   103 S    other BUILDBOT_TRACKING_ID=bbagent-1-abcd',
      '  104   101   101 Z    (sh)',
    ].join('\n');
    const procs = parsePsListing(text, m);
    expect(procs.map((p) => [p.pid, p.ppid, p.pgid, p.state, p.marked])).toEqual([
      [101, 1, 101, 'S', true],
      [102, 101, 101, 'S', true],
      [103, 1, 103, 'S', false],
    ]);
  });
});

describe('parsers', () => {
  it('/proc/PID/stat with a command name holding spaces and parentheses', () => {
    const fields = ['S', '10', '20', '20', '0', '-1', '0', '0', '0', '0', '0', '150', '50', '0', '0', '20', '0', '1', '0', '98765'];
    const p = parseProcStat(42, `42 (a) b (c) ${fields.join(' ')}`);
    expect(p).toMatchObject({ pid: 42, ppid: 10, pgid: 20, state: 'S', start: 98765, utime: 150, stime: 50, comm: 'a) b (c' });
  });

  it('ps times, ps facts and lsof fd counts (macOS)', () => {
    expect(parsePsTime('0:01.50')).toBe(1.5);
    expect(parsePsTime('01:02:03')).toBe(3723);
    expect(parsePsTime('2-00:00:01')).toBe(172801);
    expect(parsePsFacts('  7   1 S+   0:00.02 -      sleep 30\n')).toEqual([
      { pid: 7, ppid: 1, state: 'S', cpuSeconds: 0.02, wchan: undefined, openFiles: undefined, command: 'sleep 30' },
    ]);
    expect([...parseLsofCounts('p7\nfcwd\nf0\nf1\nf2\np8\nf0\n')]).toEqual([
      [7, 3],
      [8, 1],
    ]);
  });
});

describe('may a debugger attach (Yama ptrace_scope)', () => {
  const fakeProc = (scope: string | undefined, capEff: string): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fakeproc-'));
    mkdirSync(path.join(dir, 'self'));
    writeFileSync(path.join(dir, 'self', 'status'), `Name:\tnode\nCapEff:\t${capEff}\n`);
    if (scope !== undefined) {
      mkdirSync(path.join(dir, 'sys', 'kernel', 'yama'), { recursive: true });
      writeFileSync(path.join(dir, 'sys', 'kernel', 'yama', 'ptrace_scope'), `${scope}\n`);
    }
    return dir;
  };
  const root = '000001ffffffffff';
  const user = '0000000000000000';

  it('no Yama or scope 0: yes; scope 1 or 2: only with CAP_SYS_PTRACE; scope 3: never', () => {
    expect(ptraceDenied(fakeProc(undefined, user))).toBeUndefined();
    expect(ptraceDenied(fakeProc('0', user))).toBeUndefined();
    expect(ptraceDenied(fakeProc('1', user))).toBe('kernel.yama.ptrace_scope is 1 and the agent lacks CAP_SYS_PTRACE');
    expect(ptraceDenied(fakeProc('1', root))).toBeUndefined();
    expect(ptraceDenied(fakeProc('2', root))).toBeUndefined();
    expect(ptraceDenied(fakeProc('3', root))).toBe('kernel.yama.ptrace_scope is 3 (no attaching at all)');
  });
});

describe('selectProcesses', () => {
  const p = (pid: number, ppid: number, pgid: number, marked = false, start = pid * 10): ScannedProcess => ({ pid, ppid, pgid, state: 'S', start, marked });
  const procs = [p(100, 1, 100), p(101, 100, 100), p(102, 101, 102), p(103, 102, 102), p(200, 1, 200, true), p(201, 200, 200), p(300, 1, 300), p(400, 1, 400)];

  it('group, descendants of the root wherever their group, marked processes and their children', () => {
    const found = selectProcesses(procs, { group: 100, root: 100, marker: { name: 'M', value: 'v' } }).map((r) => r.pid);
    expect(found.sort()).toEqual([100, 101, 102, 103, 200, 201]);
  });

  it('without a root (it was reaped: its pid may be reused), the group, known ones and their descendants', () => {
    // pid 100 now belongs to an unrelated process (another group) with a child of its own
    const reused = [p(100, 1, 999), p(501, 100, 999), ...procs.filter((x) => x.pid !== 100)];
    const found = selectProcesses(reused, { group: 100, known: [{ pid: 300, start: 3000 }] }).map((r) => r.pid);
    expect(found.sort()).toEqual([101, 102, 103, 300]);
  });

  it('a known pid now held by another process (another start time) is left alone', () => {
    expect(selectProcesses(procs, { known: [{ pid: 400, start: 1 }] })).toEqual([]);
  });
});

describe('a process group after its first process was reaped (its id may be reused)', () => {
  const SPAWNED_MS = 1_700_000_000_000;
  const p = (pid: number, pgid: number, startMs: number | undefined = SPAWNED_MS + 1000): ScannedProcess => ({
    pid,
    ppid: 1,
    pgid,
    state: 'S',
    start: pid,
    startMs,
    marked: false,
  });
  // ids above any pid_max (2^22): even a platform that ignored its fakes could signal nothing real
  const G = 1_000_000_500;
  const q = { group: G, startedAfterMs: SPAWNED_MS };

  it('counts only while a member that started after the command lives, and not once the id leads another group', () => {
    expect(groupIsLive([p(G + 1, G)], q)).toBe(true);
    expect(groupIsLive([p(G + 100, G + 100)], q)).toBe(false); // empty
    expect(groupIsLive([p(G + 1, G, SPAWNED_MS - 60_000)], q)).toBe(false); // older than the command: not its member
    // pid G was reused by a new process that made its own group (the next step); G + 1 is that group's member
    expect(groupIsLive([p(G, G), p(G + 1, G)], q)).toBe(false);
    expect(selectProcesses([p(G, G), p(G + 1, G)], q)).toEqual([]);
    // while the first process is unreaped, any member counts (its id cannot be reused)
    expect(groupIsLive([p(G, G, SPAWNED_MS)], { ...q, root: G })).toBe(true);
  });

  /** A POSIX platform over a fixed process list, recording the signals it sends. */
  const recording = (procs: ScannedProcess[]) => {
    const sent: string[] = [];
    const platform = posixPlatform('linux', {
      signal: (pid, sig) => void sent.push(`${sig} ${pid}`),
      scanner: {
        scan: async () => {
          sent.push('scan');
          return procs;
        },
        stillSame: () => true,
      },
    });
    return { platform, sent };
  };

  it('POSIX: the group is signalled after the leader exited only when the scan found a live member', async () => {
    const empty = recording([p(G + 100, G + 100)]);
    expect(await empty.platform.killProcesses('KILL', q)).toEqual([]);
    expect(empty.sent).toEqual(['scan']);

    const reused = recording([p(G, G), p(G + 1, G)]);
    expect(await reused.platform.killProcesses('KILL', q)).toEqual([]);
    expect(reused.sent).toEqual(['scan']);

    const live = recording([p(G + 1, G)]);
    expect((await live.platform.killProcesses('KILL', q)).map((r) => r.pid)).toEqual([G + 1]);
    expect(live.sent).toEqual(['scan', `KILL -${G}`, `KILL ${G + 1}`]);

    // the leader is unreaped: the group goes first, before the scan, so nothing in it can fork past the kill
    const running = recording([p(G, G), p(G + 1, G)]);
    await running.platform.killProcesses('TERM', { ...q, root: G });
    expect(running.sent).toEqual([`TERM -${G}`, 'scan', `TERM ${G}`, `TERM ${G + 1}`]);
  });

  it('Windows: taskkill only for an unreaped root, never for the group id of a reaped one', async () => {
    const runs: string[] = [];
    const platform = win32Platform({ run: (file, args, done) => (runs.push([file, ...args].join(' ')), done()) });
    expect(await platform.killProcesses('KILL', { group: G })).toEqual([]);
    expect(runs).toEqual([]);
    expect(await platform.killProcesses('KILL', { group: G, root: G })).toEqual([{ pid: G, start: undefined }]);
    expect(runs).toEqual([`taskkill /PID ${G} /T /F`]);
  });
});

describe('tool environment', () => {
  it("the agent's own variables are left out whatever their case, as from builds", () => {
    const env = toolEnv({ LC_ALL: 'C' }, { PATH: '/bin', BBAGENT_PASSWORD: 'x', Bbagent_Redact: 'y', bbagent_name: 'z', BBAGENTX: 'kept' });
    expect(env).toEqual({ PATH: '/bin', BBAGENTX: 'kept', LC_ALL: 'C' });
  });
});

describe.runIf(linux)('real processes (Linux)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-track-'));

  /** Spawns, as a command would, a shell that double-forks a setsid daemon and exits; resolves with the daemon's pid. */
  async function daemonize(markerValue: string): Promise<{ shell: number; daemon: number }> {
    const pidfile = path.join(dir, `${markerValue}.pid`);
    const h = platform.spawn({
      argv: ['/bin/sh', '-c', `(setsid sh -c 'echo $$ > ${pidfile}; exec sleep 120' </dev/null >/dev/null 2>&1 &)`],
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', BUILDBOT_TRACKING_ID: markerValue, PROC_TRACKING_TEST: TEST_MARK },
      pty: false,
      stdinPipe: false,
    });
    await new Promise<void>((resolve) => h.onExit(() => resolve()));
    for (let i = 0; i < 100; i++) {
      try {
        const daemon = Number(readFileSync(pidfile, 'utf8'));
        if (daemon > 0) return { shell: h.pid, daemon };
      } catch {
        // not written yet
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the daemon did not start');
  }

  it('a double-forked daemon is out of the tree: only the marker finds it, and the kill reaches it', async () => {
    const marker = { name: 'BUILDBOT_TRACKING_ID', value: `t-${process.pid}-a` };
    const { shell, daemon } = await daemonize(marker.value);
    expect(alive(daemon)).toBe(true);
    const byTree = await platform.findProcesses({ group: shell, startedAfterMs: Date.now() - 60_000 });
    expect(byTree.map((r) => r.pid)).not.toContain(daemon);
    const byMarker = await platform.findProcesses({ group: shell, marker, startedAfterMs: Date.now() - 60_000 });
    expect(byMarker.map((r) => r.pid)).toEqual([daemon]);
    const killed = await platform.killProcesses('KILL', { group: shell, marker, startedAfterMs: Date.now() - 60_000 });
    expect(killed.map((r) => r.pid)).toEqual([daemon]);
    for (let i = 0; i < 100 && alive(daemon); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(daemon)).toBe(false);
  });

  it('processes started before `startedAfterMs` are not read, so an old process cannot match', async () => {
    const marker = { name: 'BUILDBOT_TRACKING_ID', value: `t-${process.pid}-b` };
    const { daemon } = await daemonize(marker.value);
    expect(await platform.findProcesses({ marker, startedAfterMs: Date.now() + 60_000 })).toEqual([]);
    expect((await platform.findProcesses({ marker })).map((r) => r.pid)).toEqual([daemon]);
    process.kill(daemon, 'SIGKILL');
  });

  it('inspectProcesses: state, CPU time, wait channel, open files and command line', async () => {
    const marker = { name: 'BUILDBOT_TRACKING_ID', value: `t-${process.pid}-c` };
    const { daemon } = await daemonize(marker.value);
    const [facts] = await platform.inspectProcesses([daemon], { timeoutMs: 2000, maxBytes: 65536 });
    // S, or R for the moment it runs (a loaded host)
    expect(facts).toMatchObject({ pid: daemon, state: expect.stringMatching(/^[SR]$/), command: 'sleep 120' });
    expect(facts!.cpuSeconds).toBeGreaterThanOrEqual(0);
    expect(facts!.openFiles).toBeGreaterThanOrEqual(3);
    expect(facts!.wchan).toMatch(/\w/);
    expect(markedProcesses('PROC_TRACKING_TEST', TEST_MARK).map((p) => p.pid)).toContain(daemon);
    process.kill(daemon, 'SIGKILL');
  });
});
