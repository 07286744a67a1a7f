// The spool on files and directories that fail for real: a full device (/dev/full), a directory that cannot
// be created or is removed under it, a file that never takes data (a FIFO nobody reads). The spool fails on
// its own (logged, reported once), never throws, and close() always settles.
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SPOOL_HIGH_WATER, Spool, pruneSpools } from '../../agent/output/spool.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const scratch = (): string => mkdtempSync(path.join(os.tmpdir(), 'bbagent-spool-'));
/** Text gzip cannot shrink much, so the compressor writes to the file early and often. */
const noise = (bytes: number): string => randomBytes(bytes / 2).toString('hex');

function spoolIn(dir: string, name: string, extra: Partial<ConstructorParameters<typeof Spool>[2]> = {}) {
  const logger = new RecordingLogger();
  const failures: string[] = [];
  const spool = new Spool(dir, name, { logger, onFailure: (r) => failures.push(r), ...extra });
  return { spool, logger, failures };
}

/** A FIFO at the spool's part file: opening it for writing blocks until a reader comes (a disk that hangs). */
function fifoAt(dir: string, name: string): { release: () => void } {
  const fifo = path.join(dir, `${name}.log.gz.part`);
  execFileSync('mkfifo', [fifo]);
  return {
    // a reader lets the pending open finish, so no thread stays blocked after the test
    release: () => {
      try {
        closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
      } catch {
        // already gone
      }
    },
  };
}

describe('spool', () => {
  it('keeps the full output, compressed, once closed', async () => {
    const dir = scratch();
    const { spool, failures } = spoolIn(dir, 's');
    spool.write('one\n');
    spool.write('two\n');
    expect(await spool.close()).toEqual({ kept: true, path: path.join(dir, 's.log.gz') });
    expect(gunzipSync(readFileSync(path.join(dir, 's.log.gz'))).toString()).toBe('one\ntwo\n');
    expect(failures).toEqual([]);
  });

  it('a full device (ENOSPC): the failure is logged and reported once, nothing is thrown, nothing left', async () => {
    const dir = scratch();
    symlinkSync('/dev/full', path.join(dir, 'full.log.gz.part'));
    const { spool, logger, failures } = spoolIn(dir, 'full');
    for (let i = 0; i < 64; i++) spool.write(noise(16 * 1024));
    const outcome = await spool.close();
    expect(outcome.kept).toBe(false);
    expect(outcome.kept ? '' : outcome.reason).toMatch(/ENOSPC/);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/cannot write .*full\.log\.gz\.part: ENOSPC/);
    expect(logger.lines.filter((l) => l.startsWith('warn '))).toEqual([expect.stringMatching(/full\.log\.gz: the full output cannot be kept: .*ENOSPC/)]);
    spool.write('more after the failure is ignored\n');
    expect(spool.backlog).toBe(0);
    await expect.poll(() => readdirSync(dir)).toEqual([]);
  });

  it('a spool directory that cannot be created: failed from the start, no exception', async () => {
    const dir = scratch();
    writeFileSync(path.join(dir, 'file'), 'x');
    const { spool, failures } = spoolIn(path.join(dir, 'file', 'spool'), 's');
    expect(spool.failed).toMatch(/cannot create the spool directory .*file\/spool: .*(ENOTDIR|EEXIST|Not a directory|File exists)/);
    spool.write('ignored\n');
    expect(await spool.close()).toMatchObject({ kept: false });
    expect(failures).toHaveLength(1);
  });

  it('the spool directory removed under a running spool: not kept, and why; the next spool recreates it', async () => {
    const base = scratch();
    const dir = path.join(base, 'spool');
    const { spool, failures } = spoolIn(dir, 'a');
    spool.write(noise(256 * 1024));
    await expect.poll(() => existsSync(path.join(dir, 'a.log.gz.part'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
    const outcome = await spool.close();
    expect(outcome.kept).toBe(false);
    expect(failures[0]).toMatch(/cannot move .*a\.log\.gz\.part into place: ENOENT.*\(the spool directory .*spool was removed\)/);

    const next = spoolIn(dir, 'b');
    next.spool.write('again\n');
    expect(await next.spool.close()).toEqual({ kept: true, path: path.join(dir, 'b.log.gz') });
    expect(gunzipSync(readFileSync(path.join(dir, 'b.log.gz'))).toString()).toBe('again\n');
  });

  it('a file that never takes data: close() settles at its timeout, with the reason', async () => {
    const dir = scratch();
    const fifo = fifoAt(dir, 'hung');
    const { spool, failures } = spoolIn(dir, 'hung', { closeTimeoutMs: 300 });
    try {
      spool.write('stuck\n');
      const t0 = Date.now();
      const outcome = await spool.close();
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(outcome).toMatchObject({ kept: false, reason: expect.stringMatching(/cannot finish .*hung\.log\.gz\.part: not done within 0\.3 s/) });
      expect(failures).toHaveLength(1);
    } finally {
      fifo.release();
    }
    await expect.poll(() => existsSync(path.join(dir, 'hung.log.gz.part'))).toBe(false);
  });

  it('a backlog the disk takes nothing of fails the spool after the stall time, so the step is not paused for ever', async () => {
    const dir = scratch();
    const fifo = fifoAt(dir, 'stall');
    let now = 0;
    const { spool, failures } = spoolIn(dir, 'stall', { stallMs: 30_000, nowMs: () => now });
    try {
      for (let i = 0; i < 10; i++) spool.write(noise(1024 * 1024));
      expect(spool.backlog).toBeGreaterThan(SPOOL_HIGH_WATER);
      now += 29_000;
      expect(spool.backlog).toBeGreaterThan(SPOOL_HIGH_WATER);
      now += 1_000;
      expect(spool.backlog).toBe(0);
      expect(failures).toEqual([expect.stringMatching(/the disk took nothing for 30 s/)]);
      expect(await spool.close()).toMatchObject({ kept: false });
    } finally {
      fifo.release();
    }
  });

  it('pruning skips what vanished meanwhile and a missing directory', () => {
    const dir = scratch();
    const logger = new RecordingLogger();
    expect(() => pruneSpools(path.join(dir, 'missing'), { maxBytes: 0, maxAgeS: 0 }, Date.now(), logger)).not.toThrow();
    mkdirSync(path.join(dir, 'spool'));
    writeFileSync(path.join(dir, 'spool', 'old.log.gz'), 'x');
    pruneSpools(path.join(dir, 'spool'), { maxBytes: 0, maxAgeS: 0 }, Date.now() + 1000, logger);
    expect(readdirSync(path.join(dir, 'spool'))).toEqual([]);
  });
});
