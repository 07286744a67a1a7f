// Reads of /proc/PID/environ and cmdline that never return must not take libuv's thread pool (4 threads, shared
// with fs/promises, zlib and dns.lookup) from the agent: at most one such read is outstanding for the whole
// agent, none for a process in state D, and what was skipped is said. The stuck reads here are real: a fake
// /proc whose environ and cmdline files are FIFOs, whose open() blocks a pool thread until a writer comes.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcReadGate } from '../../platforms/posix/proc-reads.js';
import { LinuxProcScanner } from '../../platforms/posix/processes.js';
import { inspectLinux } from '../../platforms/posix/inspect.js';
import { currentPlatform } from '../../platforms/index.js';

const linux = currentPlatform().id === 'linux';
const MARKER = { name: 'BUILDBOT_TRACKING_ID', value: 'bbagent-1-feed' };
const BTIME = 1_700_000_000;

/** Resolves true when `p` settles within `ms`. */
const settlesWithin = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void p.then(
      () => (clearTimeout(t), resolve(true)),
      () => (clearTimeout(t), resolve(true)),
    );
  });

/** A fake /proc: each process has a stat line, and environ/cmdline as given ('fifo': a read that blocks). */
class FakeProc {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fakeproc-'));
  readonly fifos: string[] = [];

  constructor() {
    writeFileSync(path.join(this.dir, 'stat'), `cpu 1 2 3\nbtime ${BTIME}\n`);
  }

  add(pid: number, opts: { state?: string; environ?: string | 'fifo'; cmdline?: string | 'fifo' }): void {
    const d = path.join(this.dir, String(pid));
    mkdirSync(path.join(d, 'fd'), { recursive: true });
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime prio nice threads itreal starttime
    writeFileSync(path.join(d, 'stat'), `${pid} (sleep) ${opts.state ?? 'S'} 1 ${pid} ${pid} 0 -1 0 0 0 0 0 5 3 0 0 20 0 1 0 ${pid * 100} 0 0\n`);
    writeFileSync(path.join(d, 'wchan'), 'hrtimer_nanosleep');
    this.set(pid, 'environ', opts.environ ?? '');
    this.set(pid, 'cmdline', opts.cmdline ?? 'sleep\x00300\x00');
  }

  set(pid: number, file: 'environ' | 'cmdline', content: string): void {
    const f = path.join(this.dir, String(pid), file);
    rmSync(f, { force: true });
    if (this.fifos.includes(f)) this.fifos.splice(this.fifos.indexOf(f), 1);
    if (content === 'fifo') {
      execFileSync('mkfifo', [f]);
      this.fifos.push(f);
    } else writeFileSync(f, content);
  }

  /**
   * Lets every read blocked on a FIFO go on (a writer opens and closes it: the reader's open returns, its read
   * sees EOF), until none has been waiting for 300 ms. Returns how many reads were blocked in all.
   */
  async release(): Promise<number> {
    let released = 0;
    let quietSince = performance.now();
    const until = performance.now() + 10_000;
    while (performance.now() - quietSince < 300 && performance.now() < until) {
      for (const f of this.fifos) {
        let fd: number;
        try {
          fd = openSync(f, constants.O_WRONLY | constants.O_NONBLOCK);
        } catch {
          continue; // ENXIO: nobody is reading it
        }
        closeSync(fd);
        released++;
        quietSince = performance.now();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return released;
  }
}

let fake: FakeProc | undefined;
afterEach(async () => {
  await fake?.release();
  if (fake) rmSync(fake.dir, { recursive: true, force: true });
  fake = undefined;
});

describe('the gate', () => {
  it('one read at a time; while one is stuck every other is skipped; it opens again when the read returns', async () => {
    const pending: Array<(b: Buffer) => void> = [];
    let outstanding = 0;
    let most = 0;
    const gate = new ProcReadGate({
      reader: (file) =>
        new Promise<Buffer>((resolve) => {
          outstanding++;
          most = Math.max(most, outstanding);
          const done = (b: Buffer): void => {
            outstanding--;
            resolve(b);
          };
          if (file.includes('hang')) pending.push(done);
          else setTimeout(() => done(Buffer.from(file)), 5);
        }),
    });
    const opts = { maxBytes: 1024, timeoutMs: 100 };
    const results = await Promise.all([
      gate.read('1:1', '/p/1/environ', opts),
      gate.read('2:2', '/p/2/hang', opts),
      gate.read('3:3', '/p/3/environ', opts),
      gate.read('4:4', '/p/4/hang', opts),
    ]);
    expect(most).toBe(1);
    expect(results.map((r) => (r.ok ? r.data.toString() : r.why))).toEqual(['/p/1/environ', 'timeout', 'skipped', 'skipped']);
    expect(results[2]).toMatchObject({ stuck: expect.stringMatching(/^a read of \/p\/2\/hang has been stuck for \d+\.\d s$/) });
    expect(gate.stuckRead()).toMatch(/\/p\/2\/hang/);
    // the process woke up: the gate opens, but that process is not read again
    pending.shift()!(Buffer.alloc(0));
    await new Promise((r) => setImmediate(r));
    expect(gate.stuckRead()).toBeUndefined();
    expect((await gate.read('3:3', '/p/3/environ', opts)).ok).toBe(true);
    expect(await gate.read('2:2', '/p/2/environ', opts)).toEqual({ ok: false, why: 'hung' });
    // a read whose turn comes after the caller's deadline is not made
    expect(await gate.read('5:5', '/p/5/environ', { ...opts, deadline: performance.now() - 1 })).toEqual({ ok: false, why: 'late' });
  });
});

describe.runIf(linux)('stuck reads of a real (FIFO) file', () => {
  it('scans: processes in state D are not read, a stuck environment holds one pool thread across scans, and the skip is said', async () => {
    fake = new FakeProc();
    for (const pid of [1001, 1002, 1003, 1004, 1005]) fake.add(pid, { environ: 'fifo', state: pid === 1003 ? 'D' : 'S' });
    fake.add(1006, { environ: `A=1\0${MARKER.name}=${MARKER.value}\0` });
    const scanner = new LinuxProcScanner({ procDir: fake.dir, reads: new ProcReadGate(), readTimeoutMs: 200 });
    const notes: string[] = [];
    const onIncomplete = (why: string): void => void notes.push(why);

    for (let i = 0; i < 3; i++) await scanner.scan({ marker: MARKER, timeoutMs: 2500, onIncomplete });
    // the pool still serves everyone else: fs/promises answers
    expect(await settlesWithin(stat(fake.dir), 1000)).toBe(true);
    // whichever FIFO the directory listing gives first is the one read that got stuck
    const hung = Number(/pid (\d+): the read took over 200 ms \(hung in the kernel\)/.exec(notes[0] ?? '')?.[1]);
    expect([1001, 1002, 1004, 1005], notes[0]).toContain(hung);
    expect(notes[0]).toContain('pid 1003: in state D (uninterruptible wait)');
    expect(notes[0]).toMatch(/: a read of \S+\/\d+\/environ has been stuck for \d+\.\d s; no other environment is read meanwhile/);
    expect(notes[0]).toMatch(/found only by process group and parent$/);
    expect(notes).toHaveLength(3);
    expect(notes[2]).toMatch(/^environment not read for 6 process\(es\): pid \d+, \d+, \d+, \d+, \d+: a read of \S+ has been stuck for/);
    // one read blocked in all, across three scans (the D process's FIFO was never opened)
    expect(await fake.release()).toBe(1);

    // the stuck read returned: the gate reads again, except the process that hung and the one in state D
    for (const pid of [1001, 1002, 1004, 1005]) if (pid !== hung) fake.set(pid, 'environ', 'A=1\0');
    notes.length = 0;
    const procs = await scanner.scan({ marker: MARKER, timeoutMs: 2500, onIncomplete });
    expect(procs.filter((p) => p.marked).map((p) => p.pid)).toEqual([1006]);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain(`pid ${hung}: a read of it got stuck before: not read again`);
    expect(notes[0]).toContain('pid 1003: in state D');
    expect(notes[0]).toMatch(/^environment not read for 2 process\(es\)/);
  });

  it('hang forensics: command lines of 20 hung processes take one pool thread, not all of them', async () => {
    fake = new FakeProc();
    const pids = Array.from({ length: 20 }, (_, i) => 2001 + i);
    for (const pid of pids) fake.add(pid, { cmdline: 'fifo', state: pid === 2002 ? 'D' : 'S' });
    const notes: string[] = [];
    const facts = await inspectLinux(
      pids,
      { timeoutMs: 300, maxBytes: 65536, onIncomplete: (w) => void notes.push(w) },
      { procDir: fake.dir, reads: new ProcReadGate() },
    );
    expect(await settlesWithin(stat(fake.dir), 1000)).toBe(true);
    expect(facts.map((f) => f.pid)).toEqual(pids);
    // what could not be read still shows: the short name from stat, the wait channel
    expect(facts[0]).toMatchObject({ pid: 2001, state: 'S', command: '[sleep]', wchan: 'hrtimer_nanosleep', openFiles: 0 });
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/^command line not read for 20 process\(es\): /);
    expect(notes[0]).toContain('pid 2001: the read took over 100 ms (hung in the kernel)');
    expect(notes[0]).toContain('pid 2002: in state D');
    expect(notes[0]).toMatch(/pid 2003, 2004, [\d, ]+\.\.\. \(18 in all\): a read of \S+\/2001\/cmdline has been stuck for/);
    expect(await fake.release()).toBe(1);
  });
});
