// Keeps a step's full output compressed on the worker (BASEDIR/spool) when its live output is over budget,
// so nothing the process wrote is lost: the master gets a marker naming the file, which an ordinary
// FileUpload can fetch. Old spools are pruned by total size and age.

import { createWriteStream, readdirSync, renameSync, statSync, unlinkSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createGzip, type Gzip } from 'node:zlib';
import { makedirs } from '../fs/makedirs.js';
import type { Logger } from '../log.js';

/** gzip level for spooled logs: fast enough to keep up with a process writing at full speed. */
const SPOOL_GZIP_LEVEL = 3;
/** Above this much data queued in the compressor, the step is paused until it drains. */
export const SPOOL_HIGH_WATER = 8 * 1024 * 1024;

export interface SpoolLimits {
  maxBytes: number;
  maxAgeS: number;
}

/** Deletes the oldest spools until the rest fit the limits. */
export function pruneSpools(dir: string, limits: SpoolLimits, now: number, logger: Logger): void {
  let entries: { file: string; size: number; mtime: number }[];
  try {
    entries = readdirSync(dir)
      .filter((f) => f.endsWith('.log.gz'))
      .map((f) => {
        const st = statSync(path.join(dir, f));
        return { file: path.join(dir, f), size: st.size, mtime: st.mtimeMs };
      })
      .sort((a, b) => b.mtime - a.mtime);
  } catch {
    return;
  }
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

export class Spool {
  readonly path: string;
  private readonly partPath: string;
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  private bytes = 0;
  private closed: Promise<void> | undefined;

  constructor(dir: string, name: string) {
    makedirs(dir, { existOk: true });
    this.path = path.join(dir, `${name}.log.gz`);
    this.partPath = `${this.path}.part`;
    this.gzip = createGzip({ level: SPOOL_GZIP_LEVEL });
    this.out = createWriteStream(this.partPath);
    this.gzip.pipe(this.out);
  }

  write(text: string): void {
    if (this.closed) return;
    this.bytes += Buffer.byteLength(text);
    this.gzip.write(text);
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** Bytes waiting in the compressor: the caller slows the step down above SPOOL_HIGH_WATER. */
  get backlog(): number {
    return this.gzip.writableLength + this.out.writableLength;
  }

  /** Finishes the file and moves it into place (readers never see a half-written spool). */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve, reject) => {
      this.out.once('finish', () => {
        try {
          renameSync(this.partPath, this.path);
          resolve();
        } catch (err) {
          reject(err as Error);
        }
      });
      this.out.once('error', reject);
      this.gzip.end();
    });
    return this.closed;
  }
}
