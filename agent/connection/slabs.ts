// A few reused buffers (slabs) per connection for the bytes of large outgoing messages: output updates and
// transfer blocks. A fresh buffer per message is malloc'd outside V8's heap and freed only when V8 collects its
// (by then promoted) Buffer object; once glibc has freed one such chunk it raises its mmap threshold, so the
// later ones come from the brk heap, which keeps the memory: a 50 MiB stdout step grew the malloc heap from
// 2.5 to 9-12 MiB. A slab goes back to the pool only when the socket has written it (its write callback, also
// called with an error when the socket is destroyed), so it is never reused while the socket may still read it.

/**
 * One slab: Banana's longest string (640 KiB, the most a PB update can carry) and room for the message and frame
 * headers around it. Output updates are at most 512 KiB of text (the aligned batcher), so one fits in a slab.
 */
export const SLAB_BYTES = 640 * 1024 + 16 * 1024;
/**
 * Slabs per connection, at most. A fast step keeps a few updates in flight (the socket writes one while the next
 * is encoded and the master reads). Measured with the benchmark's 50 MiB steps (Buildbot 3.7 master): a step of
 * 40-byte lines used 4 slabs over PB and 3 over msgpack with permessage-deflate, and none of its ~100 updates
 * took a fresh buffer; the malloc heap stayed at 2.6-2.8 MiB (9-14 MiB before). Four slabs hold 2.6 MiB for the
 * connection's life.
 */
export const MAX_SLABS = 4;

export interface SlabPoolOptions {
  slabBytes?: number;
  maxSlabs?: number;
}

/** The slabs of one connection. Not thread-safe (there are no threads): take and give on the event loop. */
export class SlabPool {
  readonly slabBytes: number;
  private readonly maxSlabs: number;
  private readonly slabs = new Set<Buffer>();
  private readonly idle: Buffer[] = [];
  private closed = false;
  /** Requests for a buffer (take, tryTake). */
  requests = 0;
  /** Requests not served with a slab (all busy, or the message larger than a slab). */
  fallbacks = 0;

  constructor(opts: SlabPoolOptions = {}) {
    this.slabBytes = opts.slabBytes ?? SLAB_BYTES;
    this.maxSlabs = opts.maxSlabs ?? MAX_SLABS;
  }

  /** A free slab (made if fewer than maxSlabs exist), or undefined when all are busy or the pool is closed. */
  tryTake(): Buffer | undefined {
    this.requests++;
    if (this.closed) return undefined;
    const slab = this.idle.pop();
    if (slab) return slab;
    if (this.slabs.size >= this.maxSlabs) {
      this.fallbacks++;
      return undefined;
    }
    // not from Node's shared pool: a slab is ours alone
    const made = Buffer.allocUnsafeSlow(this.slabBytes);
    this.slabs.add(made);
    return made;
  }

  /** A buffer of at least `bytes`: a slab when one is free and large enough, else a fresh one (give() ignores it). */
  take(bytes: number): Buffer {
    if (bytes > this.slabBytes) {
      this.requests++;
      this.fallbacks++;
    } else {
      const slab = this.tryTake();
      if (slab) return slab;
    }
    return Buffer.allocUnsafeSlow(bytes);
  }

  /** The socket is done with `buf`: a slab becomes free again; anything else is left to the garbage collector. */
  give(buf: Buffer): void {
    if (!this.slabs.has(buf)) return;
    if (this.closed) {
      this.slabs.delete(buf);
      return;
    }
    if (!this.idle.includes(buf)) this.idle.push(buf);
  }

  /** Slabs handed out and not given back yet. */
  get busy(): number {
    return this.slabs.size - this.idle.length;
  }

  /** Slabs that exist (busy or idle). */
  get size(): number {
    return this.slabs.size;
  }

  /**
   * The connection is gone: idle slabs are dropped now, busy ones when their writes call back (a destroyed socket
   * calls back every pending write), and nothing is handed out any more.
   */
  close(): void {
    this.closed = true;
    for (const s of this.idle) this.slabs.delete(s);
    this.idle.length = 0;
  }
}

/**
 * Packs the UTF-8 bytes of one message's larger texts into one slab (PB: jelly's `unicode` strings), so that the
 * message's bytes need no buffer of their own. Texts that do not fit, or when no slab is free, get their own
 * buffer as before. Call done() once the socket has written the message (or it was never sent).
 */
export class SlabText {
  private slab: Buffer | undefined;
  private used = 0;
  private tried = false;

  constructor(
    private readonly pool: SlabPool,
    /** Shorter texts take a buffer of their own (Node's shared pool serves those under 4 KiB). */
    private readonly minChars = 1024,
  ) {}

  /** The UTF-8 bytes of `text`, as Buffer.from(text, 'utf8') makes them (U+FFFD for a lone surrogate). */
  bytes(text: string): Buffer {
    if (text.length < this.minChars) return Buffer.from(text, 'utf8');
    if (!this.tried) {
      this.tried = true;
      this.slab = this.pool.tryTake();
    }
    const slab = this.slab;
    if (!slab) return Buffer.from(text, 'utf8');
    // UTF-8 is at most 3 bytes per UTF-16 unit: only count the bytes when the text might not fit
    const room = slab.length - this.used;
    if (text.length * 3 > room && Buffer.byteLength(text, 'utf8') > room) return Buffer.from(text, 'utf8');
    const start = this.used;
    this.used += slab.write(text, start, 'utf8');
    return slab.subarray(start, this.used);
  }

  /** Whether a slab holds some of the message's bytes. */
  get usesSlab(): boolean {
    return this.slab !== undefined;
  }

  /** The message is written (or dropped): its slab goes back. */
  done(): void {
    if (this.slab) this.pool.give(this.slab);
    this.slab = undefined;
  }
}
