// A scan for a command's processes reads only the pids allocated since the command started (pidWindow),
// unless the pid counter may have wrapped meanwhile: then it reads every pid, as before. A fake /proc holds
// the counter's state (/proc/loadavg, /proc/stat, pid_max) and marked processes inside and outside the window.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinuxProcScanner, pidWindow } from '../../platforms/posix/processes.js';
import { ProcReadGate } from '../../platforms/posix/proc-reads.js';
import { spawn } from 'node:child_process';
import { posixProcessControl } from '../../platforms/posix/process-control.js';

const MARKER = { name: 'BUILDBOT_TRACKING_ID', value: 'bbagent-1-window' };
const linux = process.platform === 'linux';

describe('pidWindow', () => {
  const stamp = { forks: 1000, tasks: 200, firstPid: 5000 };
  it('from the first pid to the last allocated while the counter cannot have come round', () => {
    expect(pidWindow(stamp, { forks: 1100, lastPid: 5100 }, 32768)).toEqual([5000, 5100]);
  });
  it('none when the counter is below the first pid (it wrapped)', () => {
    expect(pidWindow(stamp, { forks: 1010, lastPid: 400 }, 32768)).toBeUndefined();
  });
  it('none when the pids allocated since plus those skipped as in use could fill the range (a full turn)', () => {
    // 32768 - 300 - 200 = 32268 allocations could bring the counter round to 5100 again
    expect(pidWindow(stamp, { forks: 1000 + 32268, lastPid: 5100 }, 32768)).toBeUndefined();
    expect(pidWindow(stamp, { forks: 1000 + 32267, lastPid: 5100 }, 32768)).toEqual([5000, 5100]);
  });
});

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A fake /proc with marked processes at `pids`, the last pid allocated `lastPid` and `forks` since boot. */
function fakeProc(pids: number[], lastPid: number, forks: number): string {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-pidwin-'));
  writeFileSync(path.join(dir, 'stat'), `cpu 1 2 3\nbtime 1700000000\nprocesses ${forks}\n`);
  writeFileSync(path.join(dir, 'loadavg'), `0.10 0.20 0.30 1/150 ${lastPid}\n`);
  mkdirSync(path.join(dir, 'sys', 'kernel'), { recursive: true });
  writeFileSync(path.join(dir, 'sys', 'kernel', 'pid_max'), '32768\n');
  for (const pid of pids) {
    const d = path.join(dir, String(pid));
    mkdirSync(d);
    writeFileSync(path.join(d, 'stat'), `${pid} (sleep) S 1 ${pid} ${pid} 0 -1 0 0 0 0 0 5 3 0 0 20 0 1 0 ${pid * 100} 0 0\n`);
    writeFileSync(path.join(d, 'environ'), `A=1\0${MARKER.name}=${MARKER.value}\0`);
  }
  return dir;
}

const found = async (procDir: string, pidStamp?: { forks: number; tasks: number; firstPid: number }): Promise<number[]> => {
  const scanner = new LinuxProcScanner({ procDir, reads: new ProcReadGate() });
  const procs = await scanner.scan({ marker: MARKER, ...(pidStamp ? { pidStamp } : {}) });
  return procs.map((p) => p.pid).sort((a, b) => a - b);
};

describe('a scan with a pid stamp', () => {
  it('reads only the pids from the first process to the last allocated', async () => {
    const procDir = fakeProc([4000, 5000, 5050, 6000], 5100, 1100);
    expect(await found(procDir, { forks: 1000, tasks: 150, firstPid: 5000 })).toEqual([5000, 5050]);
    // without a stamp, every pid
    expect(await found(procDir)).toEqual([4000, 5000, 5050, 6000]);
  });

  it('reads every pid when the counter wrapped, or may have come round', async () => {
    expect(await found(fakeProc([400, 4000, 5000, 6000], 500, 1100), { forks: 1000, tasks: 150, firstPid: 5000 })).toEqual([400, 4000, 5000, 6000]);
    expect(await found(fakeProc([400, 4000, 5000, 6000], 5100, 40000), { forks: 1000, tasks: 150, firstPid: 5000 })).toEqual([400, 4000, 5000, 6000]);
  });

  it('reads every pid when the counter cannot be read', async () => {
    const procDir = fakeProc([4000, 5000], 5100, 1100);
    rmSync(path.join(procDir, 'loadavg'));
    expect(await found(procDir, { forks: 1000, tasks: 150, firstPid: 5000 })).toEqual([4000, 5000]);
  });
});

describe.runIf(linux)('the real pid counter', () => {
  it("a stamp taken before a spawn: the scan still finds the command's process and a setsid daemon it started", async () => {
    const pc = posixProcessControl('linux');
    const counter = pc.pidStamp?.();
    expect(counter).toBeDefined();
    const marker = { name: MARKER.name, value: `bbagent-${process.pid}-pidwin` };
    // the child starts a daemon in a session of its own, which outlives it
    const child = spawn('/bin/sh', ['-c', 'setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!'], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', [marker.name]: marker.value },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const daemon = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    await new Promise((resolve) => child.once('close', resolve));
    try {
      const refs = await pc.findProcesses({ marker, startedAfterMs: Date.now() - 60_000, pidStamp: { ...counter!, firstPid: child.pid! } });
      expect(refs.map((r) => r.pid)).toContain(daemon);
    } finally {
      process.kill(daemon, 'SIGKILL');
    }
  });
});
