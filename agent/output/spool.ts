// Keeps a step's full output compressed on the worker (BASEDIR/spool) when its live output is over budget,
// so nothing the process wrote is lost: the master gets a marker naming the file, which an ordinary
// FileUpload can fetch. Old spools are pruned by total size and age.
// A spool that cannot be written (disk full, directory unwritable or removed, a disk that stops answering)
// fails on its own: the failure is logged and reported once, the step goes on without it, and close()
// always settles within SPOOL_CLOSE_TIMEOUT_MS.

import { createWriteStream, existsSync, readdirSync, renameSync, statSync, unlink, unlinkSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Gzip } from 'node:zlib';
import { errorMessage } from '../errors.js';
import { makedirs } from '../fs/makedirs.js';
import type { Logger } from '../log.js';

/** gzip level for spooled logs: fast enough to keep up with a process writing at full speed. */
const SPOOL_GZIP_LEVEL = 3;
/**
 * Above this much data queued in the compressor, the step is paused until it drains. Every queued write is a
 * buffer of its own (a pipe read's text), malloc'd and freed in the order the compressor and the garbage
 * collector get to them, and glibc's heap keeps what such a backlog fragments: with 8 MiB the 500 MiB budget
 * build's malloc heap reached 75 MiB and its peak RSS 140 MiB; with 2 MiB 43 and 106 MiB, with the same CPU and
 * wall time (scripts/bench/run --protocol pb --only budget --smaps). gzip level 3 drains 2 MiB in ~30 ms.
 */
export const SPOOL_HIGH_WATER = 2 * 1024 * 1024;
/**
 * How long closing a spool may take (compressing and writing at most SPOOL_HIGH_WATER of backlog takes well
 * under a second): the step's `complete` waits for it, so a disk that stops answering must not hold it up.
 */
export const SPOOL_CLOSE_TIMEOUT_MS = 3000;
/**
 * A backlog above SPOOL_HIGH_WATER that the disk has not taken a byte of for this long fails the spool: the
 * step is paused meanwhile, and a hung disk must not pause it for ever.
 */
export const SPOOL_STALL_MS = 30_000;

export interface SpoolLimits {
  maxBytes: number;
  maxAgeS: number;
}

/** Deletes the oldest spools until the rest fit the limits. */
export function pruneSpools(dir: string, limits: SpoolLimits, now: number, logger: Logger): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.log.gz'));
  } catch {
    return; // no spool directory yet (or it was removed): nothing to prune
  }
  const entries: { file: string; size: number; mtime: number }[] = [];
  for (const f of names) {
    try {
      const st = statSync(path.join(dir, f));
      entries.push({ file: path.join(dir, f), size: st.size, mtime: st.mtimeMs });
    } catch {
      // removed meanwhile
    }
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  let total = 0;
  for (const e of entries) {
    total += e.size;
    if (total > limits.maxBytes || now - e.mtime > limits.maxAgeS * 1000) {
      try {
        unlinkSync(e.file);
        logger.info(`removed old spooled log ${e.file}`);
      } catch {
        // already gone
      }
    }
  }
}

export interface SpoolOptions {
  logger: Logger;
  /** Called once when the spool fails (the full output will not be kept), with the reason. */
  onFailure?: (reason: string) => void;
  /** Default SPOOL_CLOSE_TIMEOUT_MS. */
  closeTimeoutMs?: number;
  /** Default SPOOL_STALL_MS. */
  stallMs?: number;
  /** Milliseconds clock for the stall check (default Date.now). */
  nowMs?: () => number;
}

/** How a spool ended: kept at `path`, or not kept, and why. */
export type SpoolOutcome = { kept: true; path: string } | { kept: false; path: string; reason: string };

/**
 * node:zlib, loaded when the first spool opens (a step over its output budget), not at every start: the agent
 * needs it for nothing else before then (about 1 MiB of RSS). process.getBuiltinModule (Node >= 20.16) also
 * works inside the single executable; a require serves older Node.
 */
function loadZlib(): typeof import('node:zlib') {
  const get = (process as { getBuiltinModule?: (id: 'node:zlib') => typeof import('node:zlib') }).getBuiltinModule;
  return get?.call(process, 'node:zlib') ?? (createRequire(path.join(process.cwd(), 'noop.js'))('node:zlib') as typeof import('node:zlib'));
}
export class Spool {
  readonly path: string;
  private readonly partPath: string;
  private readonly gzip: Gzip | undefined;
  private readonly out: WriteStream | undefined;
  private bytes = 0;
  private failure: string | undefined;
  private closing: Promise<SpoolOutcome> | undefined;
  /** Settles a close() in progress when the spool fails meanwhile. */
  private settleClose: (() => void) | undefined;
  private progress = { written: 0, atMs: 0 };
  private readonly nowMs: () => number;

  constructor(
    private readonly dir: string,
    name: string,
    private readonly opts: SpoolOptions,
  ) {
    this.path = path.join(dir, `${name}.log.gz`);
    this.partPath = `${this.path}.part`;
    this.nowMs = opts.nowMs ?? Date.now;
    try {
      // BASEDIR exists: this creates only the spool directory (again, when something removed it)
      makedirs(dir, { existOk: true });
    } catch (err) {
      this.fail(`cannot create the spool directory ${dir}`, err);
      return;
    }
    this.gzip = loadZlib().createGzip({ level: SPOOL_GZIP_LEVEL });
    this.out = createWriteStream(this.partPath);
    // Without these listeners an ENOSPC or EACCES would be an uncaught exception: the whole agent would die.
    this.gzip.on('error', (err) => this.fail('cannot compress the spool', err));
    this.out.on('error', (err) => this.fail(`cannot write ${this.partPath}`, err));
    this.gzip.pipe(this.out);
  }

  /** Why the spool failed; undefined while it works. */
  get failed(): string | undefined {
    return this.failure;
  }

  write(text: string): void {
    if (this.closing || this.failure || !this.gzip) return;
    this.bytes += Buffer.byteLength(text);
    this.gzip.write(text);
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** Bytes waiting in the compressor: the caller slows the step down above SPOOL_HIGH_WATER. */
  get backlog(): number {
    if (this.failure || !this.gzip || !this.out) return 0;
    const n = this.gzip.writableLength + this.out.writableLength;
    const now = this.nowMs();
    if (n <= SPOOL_HIGH_WATER || this.out.bytesWritten !== this.progress.written) {
      this.progress = { written: this.out.bytesWritten, atMs: now };
      return n;
    }
    const stallMs = this.opts.stallMs ?? SPOOL_STALL_MS;
    if (now - this.progress.atMs >= stallMs) {
      this.fail(`cannot write ${this.partPath}`, new Error(`the disk took nothing for ${stallMs / 1000} s`));
      return 0;
    }
    return n;
  }

  /**
   * Finishes the file and moves it into place (readers never see a half-written spool). Never rejects, and
   * settles within the close timeout: a spool that failed or could not be finished is removed.
   */
  close(): Promise<SpoolOutcome> {
    this.closing ??= new Promise<SpoolOutcome>((resolve) => {
      const outcome = (): SpoolOutcome =>
        this.failure === undefined ? { kept: true, path: this.path } : { kept: false, path: this.path, reason: this.failure };
      if (this.failure || !this.gzip || !this.out) {
        resolve(outcome());
        return;
      }
      const timeoutMs = this.opts.closeTimeoutMs ?? SPOOL_CLOSE_TIMEOUT_MS;
      const timer = setTimeout(() => this.fail(`cannot finish ${this.partPath}`, new Error(`not done within ${timeoutMs / 1000} s`)), timeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        this.settleClose = undefined;
        resolve(outcome());
      };
      this.settleClose = settle;
      // 'close': the file descriptor is closed too (an error on close is an error on the data).
      this.out.once('close', () => {
        if (this.failure) return; // fail() settled it
        try {
          renameSync(this.partPath, this.path);
        } catch (err) {
          this.fail(`cannot move ${this.partPath} into place`, err);
          return;
        }
        settle();
      });
      this.gzip.end();
    });
    return this.closing;
  }

  private fail(what: string, err: unknown): void {
    if (this.failure) return;
    let reason = `${what}: ${errorMessage(err)}`;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(this.dir)) reason += ` (the spool directory ${this.dir} was removed)`;
    this.failure = reason;
    this.opts.logger.warn(`spool ${this.path}: the full output cannot be kept: ${reason}`);
    // Stop the streams (their error listeners stay, so a late error is harmless) and drop the partial file.
    // The partial file goes once its descriptor is closed (an open still pending would create it again).
    this.gzip?.unpipe();
    this.gzip?.destroy();
    const removePart = (): void => unlink(this.partPath, () => {});
    if (!this.out || this.out.closed) removePart();
    else {
      this.out.once('close', removePart);
      this.out.destroy();
    }
    try {
      this.opts.onFailure?.(reason);
    } finally {
      this.settleClose?.();
    }
  }
}
