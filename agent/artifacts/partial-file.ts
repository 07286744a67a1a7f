// The partial file a download writes into, beside its destination: bytes are appended in batches (one write per
// WRITE_BATCH_BYTES, not one per network chunk), and publish() makes it the destination atomically (fsync, rename,
// fsync of the directory). Whoever holds a PartialFile either publishes or discards it: no partial outlives a
// download that failed.

import { syncDir } from '../fs/sync-dir.js';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';

/** Network chunks are gathered up to this size before one write: fewer system calls at a gigabyte a second. */
export const WRITE_BATCH_BYTES = 1024 * 1024;

export class PartialFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes on disk (written); `bytes` adds what is queued. */
  private written = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private fh: FileHandle,
  ) {}

  /** Creates `file` (which must not exist: a partial name is unique to its download). */
  static async create(file: string, mode = 0o644): Promise<PartialFile> {
    try {
      return new PartialFile(file, await open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode));
    } catch (err) {
      throw ioError('create', file, err);
    }
  }

  /** Every byte appended so far, on disk or queued. */
  get bytes(): number {
    return this.written + this.pendingBytes;
  }

  /** Queues `chunk` (the caller no longer changes it); writes the batch once it is big enough. */
  async append(chunk: Buffer): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH_BYTES) await this.flush();
  }

  /** Writes what is queued. Throws E_FETCH_WRITE naming the file; after that the content is unknown (not resumable). */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let off = 0;
    try {
      while (off < data.length) off += (await this.fh.write(data, off, data.length - off, this.written + off)).bytesWritten;
    } catch (err) {
      throw ioError('write', this.path, err);
    } finally {
      this.written += off;
    }
  }

  /** Empties the file: the download starts again from byte 0. */
  async restart(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    try {
      await this.fh.truncate(0);
    } catch (err) {
      throw ioError('truncate', this.path, err);
    }
    this.written = 0;
  }

  /** Flushes, fsyncs and closes the file, renames it over `dest`, then fsyncs the directory. */
  async publish(dest: string): Promise<void> {
    await this.flush();
    try {
      await this.fh.sync();
    } catch (err) {
      throw ioError('fsync', this.path, err);
    }
    await this.close();
    try {
      await rename(this.path, dest);
    } catch (err) {
      throw ioError('rename', `${this.path} -> ${dest}`, err);
    }
    await syncDir(path.dirname(dest));
  }

  /** Closes and removes the file (nothing is kept); never throws. */
  async discard(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

function ioError(op: string, file: string, err: unknown): AgentError {
  return new AgentError('E_FETCH_WRITE', `cannot ${op} ${file}: ${errorMessage(err)}`);
}
