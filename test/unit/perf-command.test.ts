// The `perf` remote command with real child processes and the real platform, reporting through a recording
// CommandIO: the step log gets the summary and the PERFHERDER_DATA line, the master gets the result as JSON under
// the 'perf' status key (pieces joined as master/bbagent_buildbot/common.py joins them) and rc 0; a failing
// replicate is data (rc 1, the error under 'perf'); bad arguments fail the command; an interrupt kills the
// running replicate at once.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { perfCommand } from '../../agent/commands/perf.js';
import { COMMAND_TABLE } from '../../agent/commands/index.js';
import type { CommandArgs, CommandEnv, CommandIO } from '../../agent/commands/types.js';
import type { StatusValue } from '../../agent/output/types.js';
import { CommandArgsError } from '../../agent/errors.js';
import { silentLogger } from '../../agent/log.js';
import { currentPlatform } from '../../platforms/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bbagent-perf-command-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const env: CommandEnv = {
  basedir: tmp,
  environ: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  platform: currentPlatform(),
  logger: silentLogger,
  now: () => Date.now() / 1000,
};

function recording(onText?: (text: string) => void): { io: CommandIO; text: (s: string) => string; status: (k: string) => StatusValue[] } {
  const texts: [string, string][] = [];
  const statuses: [string, StatusValue][] = [];
  const io: CommandIO = {
    text: (stream, text) => {
      texts.push([stream, text]);
      onText?.(text);
    },
    log: () => {},
    status: (key, value) => void statuses.push([key, value]),
    stepEnvironment: () => {},
    backpressureMs: () => 0,
    writer: () => {
      throw new Error('no writer');
    },
    reader: () => {
      throw new Error('no reader');
    },
  };
  return {
    io,
    text: (s) =>
      texts
        .filter(([k]) => k === s)
        .map(([, t]) => t)
        .join(''),
    status: (k) => statuses.filter(([key]) => key === k).map(([, v]) => v),
  };
}

const base: CommandArgs = { workdir: tmp, name: 'sh', quiet_host: 'off', repeat: 5 };

describe('the perf remote command', () => {
  it('is in the command table with its own version', () => {
    expect(COMMAND_TABLE).toContain(perfCommand);
    expect(perfCommand.version).toBe('1.0');
  });

  it('logs the PERFHERDER_DATA line and sends the result under "perf"', async () => {
    const rec = recording();
    await perfCommand
      .create({ ...base, command: ['/bin/sh', '-c', 'echo PERFMETRIC x 7 ms'], filter: 'ignore_first:1,median', out: 'perf-out' }, rec.io, env)
      .run();
    expect(rec.status('rc')).toEqual([0]);
    const stdout = rec.text('stdout');
    const line = stdout.split('\n').find((l) => l.startsWith('PERFHERDER_DATA: '))!;
    const doc = JSON.parse((rec.status('perf') as string[]).join('')) as {
      result: { replicatesRun: number; subtests: { value: number }[] };
      perfherder: unknown;
    };
    expect(doc.result.replicatesRun).toBe(5);
    expect(doc.result.subtests[0]!.value).toBe(7);
    expect(JSON.parse(line.slice('PERFHERDER_DATA: '.length))).toEqual(doc.perfherder);
    expect(JSON.parse(readFileSync(path.join(tmp, 'perf-out', 'perfherder-data.json'), 'utf8'))).toEqual(doc.perfherder);
    expect(stdout).toContain('sh/x: 7 ms (ignore_first:1,median; median 7');
  });

  it('reports a failing replicate as data: rc 1 and the error under "perf"', async () => {
    const rec = recording();
    await perfCommand.create({ ...base, command: 'exit 4' }, rec.io, env).run();
    expect(rec.status('rc')).toEqual([1]);
    const doc = JSON.parse((rec.status('perf') as string[]).join('')) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('E_PERF_COMMAND');
    expect(doc.error.message).toMatch(/replicate 1: .* exited with rc 4/);
    expect(rec.text('stderr')).toContain('perf: replicate 1:');
  });

  it('fails the command on bad arguments', () => {
    const rec = recording();
    const bad = (args: CommandArgs): Promise<void> => perfCommand.create({ ...base, command: 'true', ...args }, rec.io, env).run();
    return Promise.all([
      expect(bad({ quiet_host: 'loud' })).rejects.toThrow(CommandArgsError),
      expect(bad({ filter: 'ignore_first:x' })).rejects.toThrow(/needs a count/),
      expect(bad({ command: [] })).rejects.toThrow(/argument 'command' must be a string or a non-empty list/),
      expect(bad({ repeat: 1.5 })).rejects.toThrow(/argument 'repeat' must be an integer/),
      expect(bad({ recheck_every: 2 })).rejects.toThrow(/--recheck-every samples the host between replicates: not with --quiet-host off/),
      expect(bad({ target_ci: 1, min: 4 })).rejects.toThrow(/--min must be an integer >= 6/),
      expect(bad({ target_ci: 1, check_every: 0 })).rejects.toThrow(/--check-every must be an integer >= 1, got 0/),
    ]);
  });

  it('kills the running replicate on interrupt', async () => {
    let started!: () => void;
    const ready = new Promise<void>((r) => (started = r));
    const rec = recording((t) => t.includes('started') && started());
    const cmd = perfCommand.create({ ...base, command: ['/bin/sh', '-c', 'echo started; exec sleep 30'] }, rec.io, env);
    const t0 = Date.now();
    const done = cmd.run();
    await ready;
    cmd.interrupt();
    await done;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(rec.status('rc')).toEqual([1]);
    expect(rec.text('stderr')).toContain('perf: replicate 1: interrupted');
  });
});
