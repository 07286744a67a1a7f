// Where the tar writer puts the archive: straight into chunks of a fixed size, which go to the master as they
// are (no copy between the file system and the socket). Headers are written in place and file data is read
// into the chunk with readSync; a full chunk moves to `ready` and the next one is allocated.

import { readSync } from 'node:fs';
import type { BlockPool } from '../fs/block-reader.js';
import { PyError } from '../py/exceptions.js';
import { toPyError } from '../py/os-error.js';

export class ArchiveBuffer {
  private chunk: Buffer;
  private pos = 0;
  /** Bytes in the chunks already handed to `ready`. */
  private before = 0;
  /** Full chunks, oldest first: the caller takes them out (and yields them) between members. */
  readonly ready: Buffer[] = [];

  /** `chunkBytes`: the size of every chunk but the last; `pool`: where chunks come from (sent ones go back). */
  constructor(
    private readonly chunkBytes: number,
    private readonly pool?: BlockPool,
  ) {
    this.chunk = this.newChunk();
  }

  /** Archive bytes written so far. */
  get offset(): number {
    return this.before + this.pos;
  }

  /**
   * Room for `n` contiguous bytes in the current chunk: the buffer and offset to write them at, or null when
   * the chunk has less room (the caller then writes elsewhere and `put`s the result). `advance(n)` commits them.
   */
  span(n: number): [Buffer, number] | null {
    return this.chunk.length - this.pos >= n ? [this.chunk, this.pos] : null;
  }

  advance(n: number): void {
    this.pos += n;
    if (this.pos === this.chunk.length) this.nextChunk();
  }

  put(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      const k = Math.min(this.chunk.length - this.pos, b.length - off);
      b.copy(this.chunk, this.pos, off, off + k);
      off += k;
      this.advance(k);
    }
  }

  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(this.chunk.length - this.pos, n);
      Uint8Array.prototype.fill.call(this.chunk, 0, this.pos, this.pos + k);
      n -= k;
      this.advance(k);
    }
  }

  /**
   * Reads at most `n` (> 0) bytes of the open file `fd` into the archive, no more than the current chunk
   * holds; returns how many. A file with fewer bytes than its header said fails the archive as tarfile does.
   */
  read(fd: number, n: number, name: string): number {
    const k = Math.min(this.chunk.length - this.pos, n);
    let got: number;
    try {
      got = readSync(fd, this.chunk, this.pos, k, null);
    } catch (err) {
      throw toPyError(err, name);
    }
    // the file shrank after its size was taken: tarfile.copyfileobj raises the same
    if (got === 0) throw new PyError('OSError', 'unexpected end of data', 'E_FILE_SHRANK');
    this.advance(got);
    return got;
  }

  /** The last, partly filled chunk (null when the archive ended on a chunk boundary). */
  finish(): Buffer | null {
    if (this.pos === 0) return null;
    const last = this.chunk.subarray(0, this.pos);
    this.before += this.pos;
    this.pos = 0;
    return last;
  }

  private nextChunk(): void {
    this.ready.push(this.chunk);
    this.before += this.chunk.length;
    this.chunk = this.newChunk();
    this.pos = 0;
  }

  private newChunk(): Buffer {
    return this.pool ? this.pool.take(this.chunkBytes) : Buffer.allocUnsafe(this.chunkBytes);
  }
}
