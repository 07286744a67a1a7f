// `bbagent stop --drain` against what is not a draining agent: a pidfile naming a live process whose control
// socket does not answer. Without --service the agent is left alone (exit 1, saying why); as the Windows
// service's stop program the process tree is ended instead (what WinSW does when Ctrl+C does not stop a
// service) and logged to BASEDIR/bbagent.log. A stale pidfile is "not running" (exit 0); an agent that answers
// without a pidfile is drained, found by its reply. Real processes, real sockets, the platform's real tree kill.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CliIO } from '../../agent/cli/io.js';
import { stopCommand } from '../../agent/cli/stop.js';
import { drainWorker } from '../../agent/cli/stop-drain.js';
import { endpointFor } from '../../agent/control/client.js';
import { startControlServer } from '../../agent/control/server.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-drain-'));
let children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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

/** A worker directory whose pidfile names a live process (with a child of its own) that serves no control socket. */
async function deaf(name: string): Promise<{ dir: string; child: ChildProcess; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, ['-e', "require('child_process').spawn('sleep', ['30'], { stdio: 'ignore' }); setTimeout(() => {}, 30000)"], {
    stdio: 'ignore',
  });
  children.push(child);
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((resolve) => child.once('spawn', resolve));
  const dir = mkdtempSync(path.join(tmp, `${name}-`));
  writeFileSync(path.join(dir, 'bbagent.json'), '{}');
  writeFileSync(path.join(dir, 'bbagent.pid'), `${child.pid}\n`);
  return { dir, child, exited };
}

describe('stop --drain when the control socket does not answer', () => {
  it('leaves the process alone and exits 1, naming the socket', async () => {
    const { dir, child } = await deaf('plain');
    const io = recordingIO();
    expect(await stopCommand(['--drain', '--timeout', '5', dir], io)).toBe(1);
    expect(io.errors.join('\n')).toMatch(/does not answer on its control socket \(no agent answers at .*control\.sock\); 'bbagent stop' signals it instead/);
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
  }, 20_000);

  it("as the service's stop program, ends the process tree and says so in bbagent.log", async () => {
    const { dir, child, exited } = await deaf('service');
    const notes: string[] = [];
    const result = await drainWorker(dir, { timeoutS: 5, service: true, note: (l) => notes.push(l), platform: currentPlatform(), socketRetryMs: 300 });
    expect(result).toMatchObject({ kind: 'killed', pid: child.pid, why: expect.stringMatching(/control socket does not answer/) });
    await exited;
    expect(child.signalCode).toBe('SIGKILL');
    expect(notes.join('\n')).toMatch(/cannot be drained: ending process \d+ and its process tree/);
    expect(existsSync(path.join(dir, 'bbagent.pid'))).toBe(false);
  }, 20_000);

  it('through the CLI, --service writes to BASEDIR/bbagent.log only (WinSW reads no output) and exits 0', async () => {
    const { dir, exited } = await deaf('service-cli');
    const io = recordingIO();
    // the retry window of a starting agent (10 s) passes first: this is the slow test of the file
    expect(await stopCommand(['--drain', '--service', '--timeout', '5', dir, '--', 'start', '--nodaemon', dir], io)).toBe(0);
    await exited;
    expect(io.lines).toEqual([]);
    expect(readFileSync(path.join(dir, 'bbagent.log'), 'utf8')).toMatch(
      /\[info\] bbagent stop --drain \(service stop\): the agent's control socket does not answer/,
    );
  }, 30_000);

  it('an agent that answers without a pidfile (removed by hand) is drained all the same, found by its reply', async () => {
    const { dir, child, exited } = await deaf('no-pidfile');
    rmSync(path.join(dir, 'bbagent.pid'));
    const requests: unknown[] = [];
    const server = await startControlServer(
      endpointFor(dir, 'agent'),
      (req) => {
        requests.push(req);
        // the "agent" drains: it exits soon after answering
        setTimeout(() => child.kill('SIGTERM'), 50);
        return { ok: true, drain: 'started', pid: child.pid, running: 0 };
      },
      silentLogger,
    );
    try {
      const io = recordingIO();
      expect(await stopCommand(['--drain', '--timeout', '7', dir], io)).toBe(0);
      expect(requests).toEqual([{ request: 'drain', timeoutS: 7 }]);
      expect(io.lines).toEqual([
        `draining process ${child.pid}: waiting for 0 running command(s) to finish (up to 7 s, then they are interrupted)`,
        `bbagent process ${child.pid} is dead`,
      ]);
      await exited;
    } finally {
      server.close();
    }
  });

  it('a pidfile naming a dead process is "not running" (exit 0)', async () => {
    const dir = mkdtempSync(path.join(tmp, 'stale-'));
    writeFileSync(path.join(dir, 'bbagent.json'), '{}');
    writeFileSync(path.join(dir, 'bbagent.pid'), '2147483646\n');
    const io = recordingIO();
    expect(await stopCommand(['--drain', dir], io)).toBe(0);
    expect(io.lines.join('\n')).toMatch(/bbagent process 2147483646 is dead \(removed stale bbagent.pid/);
  });
});
