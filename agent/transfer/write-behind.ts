// Received blocks gathered into larger file writes, one write in flight while the next blocks arrive: a
// download's 16 KiB blocks cost one thread-pool round trip each when written one by one.

/** Where the gathered bytes go (a FileSink's write). */
export type WriteFn = (data: Buffer) => Promise<void>;

/** Queues blocks in order and writes them `limit` bytes at a time; a write's error comes out of a later call. */
export class WriteBehind {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | null = null;
  /**
   * The buffer blocks are gathered in, filled again once its write is done: a fresh one per write is left for
   * the garbage collector, which runs when the JavaScript heap fills, not when these (outside it) do.
   */
  private gather: Buffer | null = null;

  constructor(
    private readonly write: WriteFn,
    private readonly limit: number,
  ) {}

  /** Queues `data`; once `limit` bytes are queued, waits for the write before (throwing its error) and starts theirs. */
  async push(data: Uint8Array): Promise<void> {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes >= this.limit) await this.startNext();
  }

  /** Writes what is queued and waits for every write; throws the first failure. */
  async flush(): Promise<void> {
    await this.startNext();
    await this.settle();
  }

  /** After a failure elsewhere: lets the write in flight finish, its own error aside; drops what is queued. */
  async abandon(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    const w = this.writing;
    this.writing = null;
    if (w) await w.catch(() => undefined);
  }

  private async startNext(): Promise<void> {
    await this.settle();
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : this.gathered();
    this.pending = [];
    this.pendingBytes = 0;
    const w = this.write(data);
    // a failed write is reported by the next call; never as an unhandled rejection meanwhile
    w.catch(() => undefined);
    this.writing = w;
  }

  private async settle(): Promise<void> {
    const w = this.writing;
    this.writing = null;
    if (w) await w;
  }

  /** The pending blocks copied into one buffer; the write before, which used it, is done (settle). */
  private gathered(): Buffer {
    if (this.gather === null || this.gather.length < this.pendingBytes) {
      this.gather = Buffer.allocUnsafeSlow(Math.max(this.pendingBytes, 2 * this.limit));
    }
    let off = 0;
    for (const b of this.pending) off += b.copy(this.gather, off);
    return this.gather.subarray(0, off);
  }
}
