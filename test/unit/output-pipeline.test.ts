// The output pipeline with a recording sender: budgets and their policies, spool, redaction, progress
// collapsing, first-output latency, bounded memory on hostile output.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fakeTimers } from '../helpers/fake-timers.js';
import type { UpdateItem } from '../../agent/output/types.js';
import { TokenBucket } from '../../agent/output/budget.js';
import { CommandOutput, PLAIN_OUTPUT, type OutputOptions } from '../../agent/output/command-output.js';
import { defaultOutputSettings } from '../../agent/output/settings.js';
import { silentLogger } from '../../agent/log.js';
import { Spool } from '../../agent/output/spool.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

class Clock {
  t = 1000;
  now = () => this.t;
}

function text(messages: UpdateItem[][], key: string): string {
  return messages
    .flat()
    .map((i) => (i.kind === 'text' && i.key === key ? i.chunk.text : ''))
    .join('');
}

function pipeline(opts: Partial<OutputOptions>, clock = new Clock()) {
  const messages: UpdateItem[][] = [];
  const t = fakeTimers();
  const out = new CommandOutput(defaultOutputSettings(), { ...PLAIN_OUTPUT, ...opts }, (m) => messages.push(m), clock.now, t.timers);
  return { out, messages, t, clock };
}

describe('output pipeline', () => {
  it('without limits: exactly the reference line splitting, first flush after 0.25 s, then 1 s (aligned batching)', async () => {
    const { out, messages, t } = pipeline({});
    out.text('stdout', 'a\nb');
    expect(t.pending.map((p) => p.ms)).toEqual([250]);
    t.fire();
    expect(text(messages, 'stdout')).toBe('a\n');
    out.text('stdout', '\nc\n');
    expect(t.pending.map((p) => p.ms)).toEqual([1000]);
    await out.finish();
    expect(text(messages, 'stdout')).toBe('a\nb\nc\n');
  });

  it('spool policy: head live, markers with the held bytes and a tail, full output in the spool', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-spool-'));
    const clock = new Clock();
    const { out, messages } = pipeline(
      { limits: { rate: 1000, burst: 2000, policy: 'spool' }, openSpool: (onFailure) => new Spool(dir, 'step1', { logger: silentLogger, onFailure }) },
      clock,
    );
    let all = '';
    for (let i = 0; i < 1000; i++) {
      const line = `line ${String(i).padStart(5, '0')} ${'x'.repeat(40)}\n`;
      all += line;
      out.text('stdout', line);
    }
    await out.finish();
    const live = text(messages, 'stdout');
    const header = text(messages, 'header');
    expect(live.length).toBeLessThan(2000 + 25 * 60);
    expect(live.startsWith('line 00000')).toBe(true);
    expect(live).toContain('line 00999'); // the live tail
    const held = Number(/(\d+) bytes held back so far/.exec(header)?.[1]);
    expect(held).toBeGreaterThan(all.length - 3000);
    const spoolFile = path.join(dir, 'step1.log.gz');
    expect(header).toContain(`full output on the worker: ${spoolFile}`);
    expect(gunzipSync(readFileSync(spoolFile)).toString()).toBe(all);
    expect(readdirSync(dir)).toEqual(['step1.log.gz']);
  });

  it('spool on a full device: live output goes on, a marker says why the full output is not kept, the rc comes last', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbagent-spool-'));
    symlinkSync('/dev/full', path.join(dir, 'full.log.gz.part'));
    const logger = new RecordingLogger();
    const { out, messages, t } = pipeline({
      limits: { rate: 1000, burst: 2000, policy: 'spool' },
      openSpool: (onFailure) => new Spool(dir, 'full', { logger, onFailure }),
    });
    for (let i = 0; i < 2000; i++) out.text('stdout', `line ${String(i).padStart(5, '0')} ${randomBytes(32).toString('hex')}\n`);
    // the failure comes from the disk, asynchronously, while the step still writes
    await expect
      .poll(() => {
        t.fire();
        return text(messages, 'header');
      })
      .toMatch(/cannot be kept on the worker: cannot write .*full\.log\.gz\.part: ENOSPC/);
    out.text('stdout', 'after the failure\n');
    out.status('rc', 0);
    await out.finish();
    const header = text(messages, 'header');
    expect(header.match(/\[bbagent\] the full output of this step cannot be kept on the worker: /g)).toHaveLength(1);
    expect(header).toMatch(/output was over budget .* bytes held back so far; the full output could not be kept on the worker \(cannot write .*ENOSPC/);
    expect(header).not.toContain('full output on the worker:');
    expect(text(messages, 'stdout')).toContain('line 00000'); // the head
    expect(text(messages, 'stdout')).toContain('after the failure\n'); // the live tail
    const keys = messages.flat().map((i) => (i.kind === 'status' ? i.key : i.kind === 'text' ? i.key : 'log'));
    expect(keys.at(-1)).toBe('rc');
    expect(logger.lines.some((l) => /^warn spool .*ENOSPC/.test(l))).toBe(true);
  });

  it('spool directory removed mid-step: the final marker, before the rc, says the full output was not kept', async () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'bbagent-spool-')), 'spool');
    const { out, messages } = pipeline({
      limits: { rate: 1000, burst: 2000, policy: 'spool' },
      openSpool: (onFailure) => new Spool(dir, 'gone', { logger: silentLogger, onFailure }),
    });
    for (let i = 0; i < 1000; i++) out.text('stdout', `line ${i} ${'x'.repeat(40)}\n`);
    await expect.poll(() => existsSync(path.join(dir, 'gone.log.gz.part'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
    out.text('stdout', 'last\n');
    out.status('rc', 0);
    out.status('elapsed', 1.5);
    await out.finish();
    const header = text(messages, 'header');
    expect(header).toMatch(/the full output could not be kept on the worker \(cannot move .*gone\.log\.gz\.part into place: ENOENT.*was removed\)/);
    expect(header).not.toContain('full output on the worker:');
    const keys = messages.flat().map((i) => (i.kind === 'status' ? i.key : i.kind === 'text' ? i.key : 'log'));
    expect(keys.slice(-2)).toEqual(['rc', 'elapsed']);
    expect(keys.lastIndexOf('header')).toBeLessThan(keys.indexOf('rc'));
  });

  it('a flood over budget does not trickle through with a marker each time the bucket refills', async () => {
    const clock = new Clock();
    const { out, messages } = pipeline({ limits: { rate: 64 * 1024, burst: 256 * 1024, policy: 'truncate' } }, clock);
    for (let i = 0; i < 100; i++) {
      out.text('stdout', `${'f'.repeat(16 * 1024 - 1)}\n`);
      clock.t += 0.1; // 16 KiB every 100 ms: 160 KiB/s, over the 64 KiB/s budget
    }
    out.status('rc', 0);
    await out.finish();
    const header = text(messages, 'header');
    // live again only after saving half the burst (2 s at this rate): a few markers, not one per 100 ms refill
    const markers = header.match(/\[bbagent\] output (is|was) over budget/g) ?? [];
    expect(markers.length).toBeGreaterThanOrEqual(1);
    expect(markers.length).toBeLessThanOrEqual(4);
    // the final marker comes before the rc, so it precedes the master's "program finished" line
    const keys = messages.flat().map((i) => (i.kind === 'status' ? i.key : i.kind === 'text' ? i.key : 'log'));
    expect(keys.lastIndexOf('header')).toBeLessThan(keys.indexOf('rc'));
  });

  it('truncate policy: head and tail only, with a marker, nothing spooled', async () => {
    const { out, messages } = pipeline({ limits: { rate: 100, burst: 100, policy: 'truncate' } });
    for (let i = 0; i < 100; i++) out.text('stdout', `l${i}\n`);
    await out.finish();
    expect(text(messages, 'header')).toMatch(/\d+ bytes dropped \(policy truncate\)/);
    expect(text(messages, 'stdout')).toContain('l99\n');
    expect(text(messages, 'stdout')).toContain('l0\n');
  });

  it('throttle policy: nothing dropped, the process is asked to pause', async () => {
    const clock = new Clock();
    const { out, messages } = pipeline({ limits: { rate: 1000, burst: 100, policy: 'throttle' } }, clock);
    out.text('stdout', 'y'.repeat(1099) + '\n');
    expect(out.backpressureMs()).toBe(1000);
    clock.t += 0.5;
    expect(out.backpressureMs()).toBe(500);
    await out.finish();
    expect(text(messages, 'stdout')).toHaveLength(1100);
  });

  it('an agent-wide budget limits steps together', async () => {
    const clock = new Clock();
    const agentBucket = new TokenBucket(10, 100, () => clock.t * 1000);
    const a = pipeline({ limits: { rate: 1_000_000, burst: 1_000_000, policy: 'truncate' }, agentBucket }, clock);
    const b = pipeline({ limits: { rate: 1_000_000, burst: 1_000_000, policy: 'truncate' }, agentBucket }, clock);
    a.out.text('stdout', 'a'.repeat(79) + '\n');
    b.out.text('stdout', 'b'.repeat(79) + '\n');
    await a.out.finish();
    await b.out.finish();
    expect(text(a.messages, 'header')).toBe('');
    expect(text(b.messages, 'header')).toMatch(/80 bytes dropped/);
  });

  it('a step overrides its limits; bad values are named', async () => {
    const { limitsFromStepEnv } = await import('../../agent/output/limits.js');
    const base = { rate: null, burst: 1, policy: 'spool' as const };
    expect(limitsFromStepEnv(base, { BBAGENT_OUTPUT_RATE: '64k', BBAGENT_OUTPUT_BURST: '10M', BBAGENT_OUTPUT_POLICY: 'truncate' })).toEqual({
      rate: 65536,
      burst: 10485760,
      policy: 'truncate',
    });
    expect(() => limitsFromStepEnv(base, { BBAGENT_OUTPUT_RATE: 'fast' })).toThrow(/BBAGENT_OUTPUT_RATE: expected a number of bytes/);
  });

  it('redacts values split across chunks, before anything is sent', async () => {
    const { out, messages } = pipeline({ redact: ['hunter2'] });
    out.text('stdout', 'password: hun');
    out.text('stdout', 'ter2\n');
    out.log('build.log', 'token=hunter2');
    await out.finish();
    const all = messages
      .flat()
      .map((i) => (i.kind === 'status' ? '' : i.chunk.text))
      .join('');
    expect(all).not.toContain('hunter2');
    expect(text(messages, 'stdout')).toBe('password: <redacted>\n');
  });

  it('collapses \\r progress floods to the last state per update', async () => {
    const { out, messages, t } = pipeline({ collapseProgress: true });
    for (let p = 0; p <= 100; p++) out.text('stdout', `\rprogress ${p}%`);
    t.fire();
    for (let p = 0; p <= 50; p++) out.text('stdout', `\rsecond ${p}%`);
    out.text('stdout', '\ndone\n');
    await out.finish();
    expect(text(messages, 'stdout')).toBe('progress 100%\nsecond 50%\ndone\n');
  });

  it('a 20 MiB line without newlines and NUL bytes pass in bounded pieces', async () => {
    const sizes: number[] = [];
    const t = fakeTimers();
    const out = new CommandOutput(
      defaultOutputSettings(),
      PLAIN_OUTPUT,
      (m) => m.forEach((i) => i.kind !== 'status' && sizes.push(i.chunk.text.length)),
      new Clock().now,
      t.timers,
    );
    const chunk = 'z\0'.repeat(32 * 1024);
    for (let i = 0; i < 320; i++) out.text('stdout', chunk);
    await out.finish();
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(20 * 1024 * 1024);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(512 * 1024); // ALIGNED_MAX_BATCH
  });
});
