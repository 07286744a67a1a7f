// `bbagent stop` signals through the platform: what it does with each answer of signalProcess.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stopWorker } from '../../agent/cli/stop.js';

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
