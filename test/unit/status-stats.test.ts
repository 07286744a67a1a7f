// The read-only stats behind `bbagent status` and the metrics: the command host counts commands by name and
// result (real shell commands: rc 0, rc 1, an exception, an interrupt), the output bytes sent, spooled and held
// back, and each batch; a running command shows its builder, workdir and elapsed time. The connection manager
// tells its state, when it attached, its last error and its reconnects.

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shellCommand } from '../../agent/commands/shell.js';
import type { CommandDefinition } from '../../agent/commands/types.js';
import { ConnectionManager } from '../../agent/connection/manager.js';
import type { LiveSession, SessionEnd } from '../../agent/connection/protocol.js';
import { AgentError } from '../../agent/errors.js';
import { silentLogger } from '../../agent/log.js';
import { PLAIN_OUTPUT } from '../../agent/output/command-output.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { OutputSetup, type OutputSetupOptions } from '../../agent/output/setup.js';
import { CommandHost } from '../../agent/worker/command-host.js';
import { currentPlatform } from '../../platforms/index.js';
import { RecordingChannel } from '../helpers/recording-channel.js';

const basedir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-stats-'));
const environ = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: basedir, LANG: 'C.UTF-8' };

function makeHost(output: OutputSetupOptions = { options: PLAIN_OUTPUT }, table: readonly CommandDefinition[] = [shellCommand]): CommandHost {
  return new CommandHost(table, { basedir, platform: currentPlatform(), logger: silentLogger, environ, now: () => Date.now() / 1000 }, new OutputSetup(output));
}

function start(h: CommandHost, id: string, command: string, extra: { builder?: string } = {}): RecordingChannel {
  const ch = new RecordingChannel();
  void h.start({
    name: 'shell',
    id,
    args: { workdir: path.join(basedir, 'build'), logEnviron: false, command },
    channel: ch,
    settings: defaultOutputSettings(),
    ...extra,
  });
  return ch;
}

/** Resolves once the command's stdout holds `text` (the output is flushed within 250 ms). */
function outputSeen(ch: RecordingChannel, text: string): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (ch.text('stdout').includes(text)) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
}

describe('command host stats', () => {
  it('counts commands by name and result, and the bytes of every batch sent', async () => {
    const h = makeHost();
    const batches: number[] = [];
    const stopListening = h.counters.onBatch((n) => batches.push(n));
    await start(h, '1', 'echo hello').completed;
    await start(h, '2', 'echo bad; exit 3').completed;
    const slow = start(h, '3', 'echo going; sleep 30');
    await outputSeen(slow, 'going');
    h.interrupt('3', 'test', false);
    await slow.completed;
    await h.idle();
    stopListening();
    const s = h.stats();
    expect(s.started).toEqual({ shell: 3 });
    expect(s.finished).toEqual({ shell: { success: 1, failure: 1, interrupted: 1 } });
    expect(s.running).toEqual([]);
    // every byte sent went in a batch the listener saw
    expect(s.outputSentBytes).toBe(batches.reduce((a, b) => a + b, 0));
    expect(s.outputSentBytes).toBeGreaterThan('hello\nbad\ngoing\n'.length);
    expect(s.outputSpooledBytes).toBe(0);
    expect(s.outputDroppedBytes).toBe(0);
  });

  it('a command that throws counts as an exception', async () => {
    const broken: CommandDefinition = {
      names: ['broken'],
      requiredArgs: [],
      create: () => ({
        run: () => Promise.reject(new AgentError('E_COMMAND_ARGS', 'broken on purpose')),
        interrupt: () => {},
      }),
    } as unknown as CommandDefinition;
    const h = makeHost(undefined, [broken]);
    const ch = new RecordingChannel();
    void h.start({ name: 'broken', id: 'b', args: {}, channel: ch, settings: defaultOutputSettings() });
    await ch.completed;
    await h.idle();
    expect(h.stats().finished).toEqual({ broken: { exception: 1 } });
  });

  it('a running command shows its builder, workdir, elapsed time and output so far', async () => {
    const h = makeHost();
    const ch = start(h, '7', 'echo started; sleep 30', { builder: 'runtests' });
    await outputSeen(ch, 'started');
    const s = h.stats(Date.now() + 1500);
    expect(s.running).toHaveLength(1);
    expect(s.running[0]).toMatchObject({ id: '7', command: 'shell', builder: 'runtests', workdir: path.join(basedir, 'build') });
    expect(s.running[0]!.elapsedS).toBeGreaterThanOrEqual(1.5);
    expect(s.running[0]!.outputSentBytes).toBeGreaterThan(0);
    // the totals include the running command's output
    expect(s.outputSentBytes).toBe(s.running[0]!.outputSentBytes);
    h.interrupt('7', 'test', false);
    await ch.completed;
    await h.idle();
  });

  it('output over budget: spooled bytes (policy spool) and dropped bytes (policy truncate)', async () => {
    const flood = `awk 'BEGIN{for(i=0;i<5000;i++) printf "flood %06d abcdefghijklmnopqrstuvwxyz\\n", i}'`;
    const spooling = makeHost({
      options: { ...PLAIN_OUTPUT, limits: { rate: 1000, burst: 2000, policy: 'spool' } },
      spool: { dir: path.join(basedir, 'spool'), limits: { maxBytes: 1 << 30, maxAgeS: 86_400 } },
    });
    await start(spooling, 's', flood).completed;
    await spooling.idle();
    const spooled = spooling.stats();
    expect(spooled.outputSpooledBytes).toBe(5000 * 'flood 000000 abcdefghijklmnopqrstuvwxyz\n'.length);
    expect(spooled.outputDroppedBytes).toBe(0);

    const truncating = makeHost({ options: { ...PLAIN_OUTPUT, limits: { rate: 1000, burst: 2000, policy: 'truncate' } } });
    await start(truncating, 't', flood).completed;
    await truncating.idle();
    const truncated = truncating.stats();
    expect(truncated.outputSpooledBytes).toBe(0);
    expect(truncated.outputDroppedBytes).toBeGreaterThan(100_000);
  });
});

describe('connection manager stats', () => {
  it('waiting, then connected since the attach, then the lost session as last error and a reconnect', async () => {
    let release!: (end: SessionEnd) => void;
    let attempt = 0;
    const seen: ReturnType<ConnectionManager['stats']>[] = [];
    const m: ConnectionManager = new ConnectionManager({
      masters: [
        {
          describe: 'm:1 (pb)',
          address: 'm:1',
          protocol: 'pb',
          probe: () => Promise.resolve(),
          connect: async () => {
            attempt++;
            seen.push(m.stats());
            if (attempt === 1) throw new AgentError('E_REFUSED', 'connection refused by m:1');
            const closed = new Promise<SessionEnd>((r) => (release = r));
            // the third session attaches, then the agent stops (stop() closes it)
            if (attempt === 3) setImmediate(() => m.stop());
            return { closed, close: () => release({ cause: 'local', reason: 'stopped' }) } satisfies LiveSession;
          },
        },
      ],
      maxdelayS: 1,
      maxretries: null,
      logger: silentLogger,
      sleep: async () => {},
      random: () => 0,
    });
    expect(m.stats()).toMatchObject({ state: 'waiting', master: 'm:1', protocol: 'pb', connectedSince: null, connects: 0 });
    const run = m.run();
    await new Promise((r) => setTimeout(r, 20));
    const attached = m.stats();
    expect(attached).toMatchObject({ state: 'connected', connects: 1, reconnects: 0, failedAttempts: 1 });
    expect(attached.lastError?.message).toBe('connection refused by m:1');
    expect(attached.connectedSince).toBeGreaterThan(Date.now() - 5000);
    expect(seen[0]!.state).toBe('connecting');
    release({ cause: 'master', reason: 'the master closed the connection' });
    expect(await run).toBe('stopped');
    const end = m.stats();
    expect(end).toMatchObject({ state: 'stopped', connects: 2, reconnects: 1, connectedSince: null });
    expect(end.lastError?.message).toBe('lost connection: the master closed the connection');
  });

  it('gave-up once maxretries failed attempts in a row', async () => {
    const m = new ConnectionManager({
      describe: 'm:2',
      connect: () => Promise.reject(new AgentError('E_AUTH', 'master refused worker w')),
      maxdelayS: 1,
      maxretries: 0,
      logger: silentLogger,
      sleep: async () => {},
    });
    expect(await m.run()).toBe('gave-up');
    expect(m.stats()).toMatchObject({ state: 'gave-up', master: 'm:2', protocol: null, failedAttempts: 1 });
  });
});
