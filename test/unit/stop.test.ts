// `bbagent stop` signals through the platform: what it does with each answer of signalProcess; and under a
// service manager, what the manager's answer changes (a note that the service stays stopped, or the stop
// done by the manager itself on Windows).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CliIO } from '../../agent/cli/io.js';
import { stopCommand, stopWorker } from '../../agent/cli/stop.js';
import { ServiceError, type ServiceManager } from '../../platforms/index.js';

function recordingIO(): CliIO & { lines: string[]; errors: string[] } {
  const io = {
    lines: [] as string[],
    errors: [] as string[],
    env: {} as NodeJS.ProcessEnv,
    out: (l: string) => io.lines.push(l),
    err: (l: string) => io.errors.push(l),
  };
  return io;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-stop-'));
let children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A worker directory whose pidfile names a live process started before the file was written. */
async function running(name: string): Promise<{ dir: string; pid: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  children.push(child);
  await new Promise((resolve) => child.once('spawn', resolve));
  const dir = mkdtempSync(path.join(tmp, `${name}-`));
  writeFileSync(path.join(dir, 'bbagent.pid'), `${child.pid}\n`);
  return { dir, pid: child.pid!, child };
}

describe.runIf(process.platform !== 'win32')('stop through the platform', () => {
  it("sends TERM to the pidfile's process through signalProcess, and waits for it to exit", async () => {
    const { dir, pid, child } = await running('live');
    const sent: string[] = [];
    const result = await stopWorker(dir, 5000, {
      signalProcess: (p, sig) => {
        sent.push(`${sig} ${p}`);
        return child.kill(`SIG${sig}` as NodeJS.Signals);
      },
    });
    expect(sent).toEqual([`TERM ${pid}`]);
    expect(result).toEqual({ kind: 'stopped', pid });
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });

  it('a process gone by the time of the signal (false) is "not running", and its pidfile released', async () => {
    const { dir, pid } = await running('gone');
    const result = await stopWorker(dir, 1000, { signalProcess: () => false });
    expect(result).toEqual({ kind: 'not-running', reason: expect.stringContaining(`process ${pid} already exited`) });
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  });

  it('a process that may not be signalled (EPERM) fails with E_SIGNAL, naming the pid and the pidfile', async () => {
    const { dir, pid } = await running('denied');
    const denied = (): boolean => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    };
    await expect(stopWorker(dir, 1000, { signalProcess: denied })).rejects.toMatchObject({
      code: 'E_SIGNAL',
      message: expect.stringContaining(`cannot signal process ${pid} (from ${path.join(dir, 'bbagent.pid')}): kill EPERM`),
    });
  });
});

describe.runIf(process.platform !== 'win32')('stop under a service manager', () => {
  type StopAgent = ServiceManager['stopAgent'];
  const manager = (stopAgent: StopAgent): { manager: Pick<ServiceManager, 'stopAgent'>; asked: [string, number][] } => {
    const asked: [string, number][] = [];
    return {
      asked,
      manager: {
        stopAgent: async (dir, pid) => {
          asked.push([dir, pid]);
          return stopAgent(dir, pid);
        },
      },
    };
  };

  it("systemd/launchd: the agent's own exit stops it; stop says the service stays stopped", async () => {
    const { dir, pid, child } = await running('unit');
    const exited = new Promise((r) => child.once('exit', r));
    const { manager: m, asked } = manager(async () => ({ via: 'exit', service: 'bbagent-w1.service' }));
    const io = recordingIO();
    expect(await stopCommand([dir], io, { manager: m })).toBe(0);
    await exited;
    expect(asked).toEqual([[dir, pid]]);
    expect(io.lines).toEqual([`bbagent process ${pid} is dead; the service bbagent-w1.service stays stopped until 'bbagent service start' or the next boot`]);
  });

  it('Windows: the manager stopped the service; no signal is sent', async () => {
    const { dir, pid, child } = await running('scm');
    const { manager: m } = manager(async () => ({ via: 'manager', service: 'bbagent-w1' }));
    const io = recordingIO();
    expect(await stopCommand([dir], io, { manager: m })).toBe(0);
    expect(io.lines).toEqual([`bbagent process ${pid} is dead (the service bbagent-w1 was stopped)`]);
    expect(child.exitCode).toBeNull(); // the fake manager stopped nothing; stop sent nothing either
  });

  it('no service: stops as before; a dead pidfile never asks the manager', async () => {
    const { dir, pid } = await running('plain');
    const { manager: m, asked } = manager(async () => undefined);
    const io = recordingIO();
    expect(await stopCommand([dir], io, { manager: m })).toBe(0);
    expect(io.lines).toEqual([`bbagent process ${pid} is dead`]);
    writeFileSync(path.join(dir, 'bbagent.json'), '{}'); // still a worker directory without its pidfile
    expect(await stopCommand([dir], recordingIO(), { manager: m })).toBe(0);
    expect(asked).toHaveLength(1);
  });

  it("the manager's refusal (not elevated) fails the stop with its code, saying why a kill would not do", async () => {
    const { dir } = await running('denied-svc');
    const { manager: m } = manager(async () => {
      throw new ServiceError('E_SERVICE_RIGHTS', 'stopping the service bbagent-w1 needs an elevated prompt');
    });
    const io = recordingIO();
    expect(await stopCommand([dir], io, { manager: m })).toBe(1);
    expect(io.errors.join('\n')).toMatch(
      /runs as a service: stopping the service bbagent-w1 needs an elevated prompt \(ending the process would make the service restart it\)/,
    );
  });
});
