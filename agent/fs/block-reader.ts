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

/**
 * Buffers handed out for blocks and taken back once nothing refers to them (their write was answered), to be
 * filled again: a fresh buffer per block leaves the ones already sent for the garbage collector, which runs when
 * the JavaScript heap fills, not when these (outside it) do; a 50 MiB upload held 23-32 MiB of them, measured.
 * Only whole buffers it handed out come back, each once; at most `spareBytes` of them are kept.
 */
export class BlockPool {
  private spare: Buffer[] = [];
  /** Handed out and not back (weakly: a buffer never given back costs nothing once dropped). */
  private readonly lent = new WeakSet<object>();

  constructor(private readonly spareBytes = 2 * 1024 * 1024) {}

  /** A buffer of `n` bytes, its own memory (allocUnsafe hands small sizes out of a pool shared with everything). */
  take(n: number): Buffer {
    const i = this.spare.findIndex((b) => b.length === n);
    const buf = i >= 0 ? this.spare.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(n);
    this.lent.add(buf.buffer);
    return buf;
  }

  /** Takes `block` back when it is the whole of a buffer this pool handed out (a view of a part is not). */
  release(block: Uint8Array): void {
    const size = block.buffer.byteLength;
    if (block.byteOffset !== 0 || block.byteLength !== size || !this.lent.delete(block.buffer)) return;
    if (this.spare.length > 0 && (this.spare.length + 1) * size > this.spareBytes) return;
    this.spare.push(Buffer.from(block.buffer, 0, size));
  }
}

/** Blocks from an open file, read at its current position, into buffers released blocks give back. */
export class FileBlockReader implements BlockSource {
  private readonly pool = new BlockPool();

  constructor(private readonly fh: FileHandle) {}

  release(block: Uint8Array): void {
    this.pool.release(block);
  }

  async read(n: number): Promise<Buffer> {
    const buf = this.pool.take(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }
}
