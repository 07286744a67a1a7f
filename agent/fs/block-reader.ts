// Exact-size reads over a file or a chunked byte stream, like Python's buffered fp.read(n): the transfer
// commands send blocks of exactly min(blocksize, remaining) bytes, whatever sizes the source produces.

import type { FileHandle } from 'node:fs/promises';

/** A source of blocks: `read(n)` gives n bytes, fewer only at the end, an empty buffer at EOF. */
export interface BlockSource {
  read(n: number): Promise<Uint8Array>;
}

/** Blocks from an async iterator of arbitrary-size chunks (e.g. a compressed tar stream). */
export class IteratorBlockReader implements BlockSource {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  async read(n: number): Promise<Buffer> {
    while (this.pendingBytes < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
      } else if (r.value.length > 0) {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
        this.pending.push(b);
        this.pendingBytes += b.length;
      }
    }
    return this.take(Math.min(n, this.pendingBytes));
  }

  /** Stops the underlying iterator (releases its files / processes) unless it already ended. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.pending = [];
    this.pendingBytes = 0;
    await this.it.return?.();
  }

  private take(n: number): Buffer {
    if (n <= 0) return Buffer.alloc(0);
    const first = this.pending[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const b = this.pending[0]!;
        const k = Math.min(b.length, n - off);
        b.copy(out, off, 0, k);
        off += k;
        if (k === b.length) this.pending.shift();
        else this.pending[0] = b.subarray(k);
      }
    }
    this.pendingBytes -= n;
    return out;
  }
}

/** Blocks from an open file, read at its current position. */
export class FileBlockReader implements BlockSource {
  constructor(private readonly fh: FileHandle) {}

  async read(n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }
}
