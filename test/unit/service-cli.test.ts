// `bbagent service`: refusals before anything is touched (no config, bad options), what install hands the
// service manager, exit codes of status, and the `run` supervisor that restarts the worker.
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createWorkerCommand } from '../../agent/cli/create-worker.js';
import type { CliIO } from '../../agent/cli/io.js';
import {
  STATUS_NOT_INSTALLED,
  STATUS_RUNNING,
  STATUS_STOPPED,
  serviceCommand,
  parseStopTimeout,
  serviceNameFor,
  superviseWorker,
  type SupervisorChild,
} from '../../agent/cli/service.js';
import { ServiceError, type ServiceManager, type ServiceSpec, type ServiceStatus } from '../../platforms/index.js';

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

function fakeManager(kind: ServiceManager['kind'] = 'systemd') {
  const seen: { installed?: ServiceSpec; opts?: unknown; calls: string[] } = { calls: [] };
  let status: ServiceStatus = { installed: false, running: false, enabled: false, detail: '' };
  const manager: ServiceManager = {
    kind,
    render: (spec) => [{ path: `/etc/systemd/system/bbagent-${spec.name}.service`, content: `ExecStart=${spec.command.join(' ')}\n` }],
    install: async (spec, opts) => {
      seen.installed = spec;
      seen.opts = opts;
      return 'installed';
    },
    uninstall: async () => {
      seen.calls.push('uninstall');
      return true;
    },
    status: async () => status,
    start: async () => void seen.calls.push('start'),
    stop: async () => {
      throw new ServiceError('E_SERVICE_RIGHTS', 'needs root: run it with sudo');
    },
    stopAgent: async () => undefined,
  };
  return { manager, seen, setStatus: (s: ServiceStatus) => (status = s) };
}

async function worker(name = 'w 1'): Promise<string> {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'bbagent-svc-cli-')), 'worker');
  expect(await createWorkerCommand(['--quiet', dir, '127.0.0.1:9989', name, 'pw'], recordingIO())).toBe(0);
  return dir;
}

const self = { command: '/usr/local/bin/bbagent', args: [] };

describe('bbagent service', () => {
  it('refuses a BASEDIR without a config, naming create-worker', async () => {
    const io = recordingIO();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-svc-empty-'));
    const { manager, seen } = fakeManager();
    expect(await serviceCommand(['install', dir], io, { manager, self })).toBe(2);
    expect(io.errors.join('\n')).toMatch(/has no bbagent.json; create the worker first/);
    expect(seen.installed).toBeUndefined();
  });

  it('rejects unknown actions and sessions', async () => {
    const io = recordingIO();
    expect(await serviceCommand(['reinstall'], io, { manager: fakeManager().manager, self })).toBe(2);
    expect(await serviceCommand(['install', '--session', 'gui'], io, { manager: fakeManager().manager, self })).toBe(2);
    expect(io.errors).toEqual([expect.stringMatching(/unknown action 'reinstall'/), expect.stringMatching(/--session must be daemon or agent/)]);
  });

  it('install hands the manager the foreground command, the name from the config and the options', async () => {
    const dir = await worker();
    const io = recordingIO();
    const { manager, seen } = fakeManager();
    expect(await serviceCommand(['install', '--user', 'buildbot', '--no-start', dir], io, { manager, self })).toBe(0);
    expect(seen.installed).toMatchObject({ name: 'w-1', basedir: dir, user: 'buildbot', command: ['/usr/local/bin/bbagent', 'start', '--nodaemon', dir] });
    expect(seen.opts).toEqual({ force: false, noStart: true });
    expect(io.lines.join('\n')).toMatch(/service w-1 installed \(systemd\)/);
  });

  it('on Windows too the service runs the worker in the foreground (WinSW restarts it; no supervisor)', async () => {
    const dir = await worker();
    const { manager, seen } = fakeManager('winsw');
    await serviceCommand(['install', '--name', 'ci', dir], recordingIO(), { manager, self });
    expect(seen.installed?.command).toEqual(['/usr/local/bin/bbagent', 'start', '--nodaemon', dir]);
    expect(seen.installed?.name).toBe('ci');
  });

  it('--stop-timeout takes seconds or s/m/h and hands whole seconds to the manager', async () => {
    expect([parseStopTimeout('90'), parseStopTimeout('90s'), parseStopTimeout('30m'), parseStopTimeout('2h')]).toEqual([90, 90, 1800, 7200]);
    const dir = await worker();
    const { manager, seen } = fakeManager();
    expect(await serviceCommand(['install', '--stop-timeout', '45m', dir], recordingIO(), { manager, self })).toBe(0);
    expect(seen.installed?.stopTimeoutS).toBe(2700);
    expect(await serviceCommand(['install', dir], recordingIO(), { manager, self })).toBe(0);
    expect(seen.installed?.stopTimeoutS).toBeUndefined();
    const io = recordingIO();
    for (const bad of ['1.5h', '10 min', '-5', 'forever']) {
      expect(await serviceCommand(['install', '--stop-timeout', bad, dir], io, { manager, self })).toBe(2);
    }
    expect(io.errors[0]).toMatch(/--stop-timeout must be seconds, or a number with s, m or h \(90s, 30m, 2h\), not '1.5h'/);
  });

  it('takes the Windows password from stdin or the environment, never from the command line', async () => {
    const dir = await worker();
    const { manager, seen } = fakeManager('winsw');
    const io = recordingIO();
    expect(await serviceCommand(['install', '--user', '.\\bbagent', '--password', 's3cret', dir], io, { manager, self })).toBe(2);
    expect(io.errors.join('\n')).toMatch(/--password would show the password to every user in the process list; pipe it in with --password-stdin/);
    expect(seen.installed).toBeUndefined();
    const readStdin = async (): Promise<string> => 's3cret from stdin\r\n';
    expect(await serviceCommand(['install', '--user', '.\\bbagent', '--password-stdin', dir], recordingIO(), { manager, self, readStdin })).toBe(0);
    expect(seen.installed).toMatchObject({ user: '.\\bbagent', password: 's3cret from stdin' });
    const envIO = recordingIO();
    envIO.env = { BBAGENT_SERVICE_PASSWORD: 'from env' };
    expect(await serviceCommand(['install', '--user', '.\\bbagent', dir], envIO, { manager, self })).toBe(0);
    expect(seen.installed?.password).toBe('from env');
  });

  it('--dry-run prints the files and installs nothing', async () => {
    const dir = await worker();
    const io = recordingIO();
    const { manager, seen } = fakeManager();
    expect(await serviceCommand(['install', '--dry-run', dir], io, { manager, self })).toBe(0);
    expect(io.lines[0]).toBe('# /etc/systemd/system/bbagent-w-1.service');
    expect(seen.installed).toBeUndefined();
  });

  it('status exits 0 running, 3 stopped, 4 not installed', async () => {
    const dir = await worker();
    const { manager, setStatus } = fakeManager();
    expect(await serviceCommand(['status', dir], recordingIO(), { manager, self })).toBe(STATUS_NOT_INSTALLED);
    setStatus({ installed: true, running: false, enabled: true, detail: 'inactive (dead)' });
    expect(await serviceCommand(['status', dir], recordingIO(), { manager, self })).toBe(STATUS_STOPPED);
    setStatus({ installed: true, running: true, enabled: true, detail: 'active (running)' });
    const io = recordingIO();
    expect(await serviceCommand(['status', dir], io, { manager, self })).toBe(STATUS_RUNNING);
    expect(io.lines).toEqual(['service w-1: active (running), starts at boot (systemd)']);
  });

  it('uninstall leaves BASEDIR; manager errors become one line and exit 1', async () => {
    const dir = await worker();
    const { manager, seen } = fakeManager();
    expect(await serviceCommand(['uninstall', dir], recordingIO(), { manager, self })).toBe(0);
    expect(seen.calls).toEqual(['uninstall']);
    expect(existsSync(path.join(dir, 'bbagent.json'))).toBe(true);
    const io = recordingIO();
    expect(await serviceCommand(['stop', dir], io, { manager, self })).toBe(1);
    expect(io.errors).toEqual(['bbagent service stop: needs root: run it with sudo']);
  });

  it('names services from worker names', () => {
    expect(serviceNameFor('linux-x64 #2')).toBe('linux-x64-2');
    expect(serviceNameFor('..')).toBe('worker');
  });
});

class FakeChild extends EventEmitter implements SupervisorChild {
  killed: string[] = [];
  kill(signal?: NodeJS.Signals): boolean {
    this.killed.push(signal ?? 'SIGTERM');
    setImmediate(() => this.emit('exit', null, signal ?? 'SIGTERM'));
    return true;
  }
}

describe('service run (supervisor)', () => {
  it('starts the worker again after it exits, and stops it when asked', async () => {
    const io = recordingIO();
    const children: FakeChild[] = [];
    const started: string[][] = [];
    const abort = new AbortController();
    const done = superviseWorker({
      dir: '/srv/w1',
      self: { command: '/usr/local/bin/bbagent', args: [] },
      io,
      restartMs: 5,
      signal: abort.signal,
      startWorker: (command, args) => {
        started.push([command, ...args]);
        const child = new FakeChild();
        children.push(child);
        // the first two runs crash at once; the third keeps running until stopped
        if (children.length < 3) setImmediate(() => child.emit('exit', 1, null));
        else setImmediate(() => abort.abort());
        return child;
      },
    });
    expect(await done).toBe(0);
    expect(started).toHaveLength(3);
    expect(started[0]).toEqual(['/usr/local/bin/bbagent', 'start', '--nodaemon', '/srv/w1']);
    expect(children[2]?.killed).toEqual(['SIGTERM']);
    expect(io.errors).toHaveLength(2);
    expect(io.errors[0]).toMatch(/ended \(exit code 1\); starting it again/);
  });
});
