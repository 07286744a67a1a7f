// Exact-size reads over a file or a chunked byte stream, like Python's buffered fp.read(n): the transfer
// commands send blocks of exactly min(blocksize, remaining) bytes, whatever sizes the source produces.

import type { FileHandle } from 'node:fs/promises';

/**
 * A source of blocks: `read(n)` gives n bytes, fewer only at the end, an empty buffer at EOF. `release(block)`,
 * when there, takes back a block nothing refers to any more (its write was answered), for the next read to fill.
 */
export interface BlockSource {
  read(n: number): Promise<Uint8Array>;
  release?(block: Uint8Array): void;
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

/** Blocks released and kept for reuse, at most this many bytes (a write window's worth and a little more). */
const SPARE_BYTES = 2 * 1024 * 1024;

/**
 * Blocks from an open file, read at its current position. Released blocks are filled again: a fresh buffer per
 * block leaves the ones already sent for the garbage collector, which runs when the JavaScript heap fills, not
 * when these (outside it) do; a 50 MiB upload held 23-32 MiB of them, measured.
 */
export class FileBlockReader implements BlockSource {
  private spare: Buffer[] = [];
  /** The memory of the blocks handed out and not released: only these are taken back, each once. */
  private readonly lent = new Set<ArrayBufferLike>();

  constructor(private readonly fh: FileHandle) {}

  release(block: Uint8Array): void {
    const size = block.buffer.byteLength;
    if (!this.lent.delete(block.buffer) || block.byteOffset !== 0) return;
    if (this.spare.length > 0 && (this.spare.length + 1) * size > SPARE_BYTES) return;
    // one size at a time (the block size); a shorter last block is a view of a full one
    if (this.spare.length > 0 && this.spare[0]!.length !== size) this.spare = [];
    this.spare.push(Buffer.from(block.buffer, 0, size));
  }

  async read(n: number): Promise<Buffer> {
    const buf = this.take(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  private take(n: number): Buffer {
    const i = this.spare.findIndex((b) => b.length === n);
    // its own ArrayBuffer: allocUnsafe hands small sizes out of a pool shared with everything else
    const buf = i >= 0 ? this.spare.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(n);
    this.lent.add(buf.buffer);
    return buf;
  }
}
