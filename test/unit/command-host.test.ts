// The command host's completion path: whatever the output pipeline does (a spool on a full device, a spool
// that never finishes, a sender that throws, a command that throws), `complete` is sent, in bounded time, and
// nothing is thrown into the process's event handlers (which would kill the agent).
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandHost } from '../../agent/worker/command-host.js';
import { OutputSetup, type OutputSetupOptions } from '../../agent/output/setup.js';
import { shellCommand } from '../../agent/commands/shell.js';
import type { CommandDefinition } from '../../agent/commands/types.js';
import { PLAIN_OUTPUT } from '../../agent/output/command-output.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { Spool, type SpoolOptions } from '../../agent/output/spool.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingChannel } from '../helpers/recording-channel.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const platform = currentPlatform();
const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-host-'));
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };
/** ~1.3 MB of distinct lines: far over the 2 KB burst below, so the step spools. */
const FLOOD = `awk 'BEGIN{for(i=0;i<20000;i++) printf "flood %06d %s\\n", i, "abcdefghijklmnopqrstuvwxyz0123456789abcdefghij"}'; echo done`;
const OVER_BUDGET = { ...PLAIN_OUTPUT, limits: { rate: 1000, burst: 2000, policy: 'spool' as const } };
const SPOOL_LIMITS = { maxBytes: 1 << 30, maxAgeS: 86_400 };

function host(output: OutputSetupOptions, table: readonly CommandDefinition[] = [shellCommand]) {
  const logger = new RecordingLogger();
  return { h: new CommandHost(table, { basedir, platform, logger, environ, now: () => Date.now() / 1000 }, new OutputSetup(output)), logger };
}

/** Runs a command; resolves when `complete` was sent, rejects if it was not within `boundMs`. */
async function runUntilComplete(h: CommandHost, args: Record<string, unknown>, ch = new RecordingChannel(), boundMs = 10_000) {
  const t0 = Date.now();
  void h.start({
    name: 'shell',
    id: '1',
    args: { workdir: path.join(basedir, 'build'), logEnviron: false, ...args },
    channel: ch,
    settings: defaultOutputSettings(),
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ch.completed, new Promise((_r, reject) => (timer = setTimeout(() => reject(new Error(`no complete within ${boundMs} ms`)), boundMs)))]);
  clearTimeout(timer);
  return { ch, ms: Date.now() - t0 };
}

describe('command host: complete is always sent', () => {
  it('spool on a full device (ENOSPC): the step completes with its rc and a marker saying why', async () => {
    const { h, logger } = host({
      options: OVER_BUDGET,
      spool: {
        dir: path.join(basedir, 'spool-full'),
        limits: SPOOL_LIMITS,
        open: (dir: string, name: string, opts: SpoolOptions) => {
          mkdirSync(dir, { recursive: true });
          symlinkSync('/dev/full', path.join(dir, `${name}.log.gz.part`));
          return new Spool(dir, name, opts);
        },
      },
    });
    const { ch } = await runUntilComplete(h, { command: FLOOD });
    expect(ch.failure).toBeNull();
    expect(ch.status('rc')).toEqual([0]);
    expect(ch.text('header')).toMatch(/\[bbagent\] the full output of this step cannot be kept on the worker: cannot write .*: ENOSPC/);
    expect(ch.text('stdout')).toContain('done\n');
    expect(logger.lines.some((l) => /^warn spool .*ENOSPC/.test(l))).toBe(true);
  });

  it('a spool that never finishes: complete goes out at the host bound, with the rc', async () => {
    let fifo = '';
    const { h, logger } = host({
      options: OVER_BUDGET,
      finishTimeoutMs: 500,
      spool: {
        dir: path.join(basedir, 'spool-hung'),
        limits: SPOOL_LIMITS,
        // a FIFO nobody reads: the write never happens (a disk that stopped answering); the spool's own
        // close timeout is set far away, so only the host's bound can end this
        open: (dir: string, name: string, opts: SpoolOptions) => {
          mkdirSync(dir, { recursive: true });
          fifo = path.join(dir, `${name}.log.gz.part`);
          execFileSync('mkfifo', [fifo]);
          return new Spool(dir, name, { ...opts, closeTimeoutMs: 600_000 });
        },
      },
    });
    try {
      const { ch, ms } = await runUntilComplete(h, { command: 'echo one; echo two' });
      expect(ms).toBeLessThan(5000);
      expect(ch.failure).toBeNull();
      expect(ch.status('rc')).toEqual([0]);
      // what came after the rc while the spool hung is sent too, in order
      expect(ch.status('elapsed')).toHaveLength(1);
      expect(ch.text('header')).toMatch(/elapsedTime=\d/);
      expect(logger.lines.some((l) => /its output could not be finished \(not done within 0\.5 s\); completing anyway/.test(l))).toBe(true);
    } finally {
      closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    }
  });

  it('a sender that throws: logged, and complete is still sent', async () => {
    const { h, logger } = host({ options: PLAIN_OUTPUT });
    const ch = new RecordingChannel();
    ch.sendUpdate = () => {
      throw new Error('the link broke');
    };
    await runUntilComplete(h, { command: 'echo hello' }, ch);
    expect(ch.failure).toBeNull();
    expect(logger.lines.some((l) => /cannot send output: the link broke/.test(l))).toBe(true);
  });

  it('a command whose run() throws: complete carries the failure', async () => {
    const broken: CommandDefinition = {
      names: ['shell'],
      requiredArgs: [],
      create: () => ({
        run: () => {
          throw new Error('broken before it started');
        },
        interrupt: () => {},
      }),
    };
    const { h } = host({ options: PLAIN_OUTPUT }, [broken]);
    const { ch } = await runUntilComplete(h, {});
    expect(ch.failure?.message).toMatch(/broken before it started/);
  });
});
