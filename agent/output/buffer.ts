// Batches a command's status items into messages, as buildbot-worker's BufferManager does: a message goes out
// when the buffered size would exceed buffer_size, buffer_timeout after the first buffered item, and on flush.
// The sender is injected, so tests pass a recording one.

import type { LineChunk, UpdateItem } from './types.js';
import { startDelay, type DelayTimer } from '../timers.js';

export type MessageSender = (items: UpdateItem[]) => void;

export interface Timers {
  setTimeout(cb: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The master's buffer_timeout may be any number of seconds: startDelay keeps 2^31 ms and more from firing at once. */
export const realTimers: Timers = {
  setTimeout: (cb, ms) => startDelay(cb, ms),
  clearTimeout: (h) => (h as DelayTimer).cancel(),
};

/**
 * Size of an item by buildbot-worker's rule: text length plus 8 per index and time; 20 for other items.
 * With lean updates (no per-line lists on the wire) a line costs only its text.
 */
export function itemSize(item: UpdateItem, lean = false): number {
  if (item.kind === 'status') return 20;
  return chunkSize(item.chunk, lean);
}

function chunkSize(c: LineChunk, lean: boolean): number {
  return c.text.length + (lean ? 0 : 8 * (c.indexes.length + c.times.length));
}

/**
 * indexes[from..to) less `by`. A plain loop, not `.map` with a callback: the callback runs once per line, and on a
 * 2 MiB trickle its ~16,000 calls made it the one function V8 sent to TurboFan, which cost 23-27 ms of compiling
 * and paged in 5.3 MiB of the compiler's code (--trace-opt; the executable's resident pages before and after).
 */
export function rebased(indexes: readonly number[], from: number, to: number, by: number): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = indexes[i]! - by;
  return out;
}

/** The longest run of whole first lines of `chunk` whose size is at most `limit`, and the rest. */
export function splitHead(chunk: LineChunk, limit: number, lean: boolean): [LineChunk | undefined, LineChunk | undefined] {
  const per = lean ? 0 : 16;
  let k = 0;
  while (k < chunk.indexes.length && chunk.indexes[k]! + 1 + per * (k + 1) <= limit) k++;
  if (k === 0) return [undefined, chunk];
  if (k === chunk.indexes.length) return [chunk, undefined];
  const cut = chunk.indexes[k - 1]! + 1;
  return [
    { text: chunk.text.slice(0, cut), indexes: chunk.indexes.slice(0, k), times: chunk.times.slice(0, k) },
    { text: chunk.text.slice(cut), indexes: rebased(chunk.indexes, k, chunk.indexes.length, cut), times: chunk.times.slice(k) },
  ];
}

/** Chunks joinChunks made: nothing outside the batcher that queued them holds their arrays. */
const joined = new WeakSet<LineChunk>();

/**
 * `a` followed by `b`. A chunk an earlier join made grows in place: a batcher that joins every read of a fast
 * step into its last queued item then copies each line's index and time once, not once per later read (copying
 * them anew each time allocated 560 of the 783 MiB a 50 MiB step of 40-byte lines cost, and kept the young
 * generation full of arrays that survived into the old one). A chunk that came from elsewhere is never changed.
 */
export function joinChunks(a: LineChunk, b: LineChunk): LineChunk {
  const shift = a.text.length;
  const out = joined.has(a) ? a : { text: a.text, indexes: a.indexes.slice(), times: a.times.slice() };
  // plain loops: on a slow step this runs in V8's unoptimised tiers, where a callback per line costs most
  for (const i of b.indexes) out.indexes.push(i + shift);
  for (const t of b.times) out.times.push(t);
  out.text += b.text;
  joined.add(out);
  return out;
}

export function sameStream(a: UpdateItem, b: UpdateItem): boolean {
  if (a.kind === 'text' && b.kind === 'text') return a.key === b.key;
  if (a.kind === 'log' && b.kind === 'log') return a.name === b.name;
  return false;
}

export function withChunk(item: UpdateItem, chunk: LineChunk): UpdateItem {
  if (item.kind === 'status') return item;
  return { ...item, chunk };
}

/** Cuts a chunk at line boundaries into pieces of at most `limit` (by the size rule); a single longer line stays whole. */
export function splitChunk(chunk: LineChunk, limit: number, lean = false): LineChunk[] {
  const out: LineChunk[] = [];
  const n = chunk.indexes.length;
  const per = lean ? 0 : 16;
  let start = 0;
  while (start < n) {
    const textStart = start === 0 ? 0 : chunk.indexes[start - 1]! + 1;
    let end = start + 1;
    while (end < n) {
      const size = chunk.indexes[end]! + 1 - textStart + per * (end + 1 - start);
      if (size > limit) break;
      end++;
    }
    const textEnd = chunk.indexes[end - 1]! + 1;
    out.push({
      text: chunk.text.slice(textStart, textEnd),
      indexes: rebased(chunk.indexes, start, end, textStart),
      times: chunk.times.slice(start, end),
    });
    start = end;
  }
  return out;
}

export class BufferManager {
  private buffered: UpdateItem[] = [];
  private buflen = 0;
  private timer: unknown = undefined;
  private flushedOnce = false;
  private flushing = false;
  /** Called before each flush (e.g. to add the latest progress state). */
  beforeFlush: (() => void) | undefined;

  constructor(
    private readonly send: MessageSender,
    private readonly bufferSize: number,
    private readonly bufferTimeoutMs: number,
    private readonly timers: Timers = realTimers,
    /** The timeout of the first flush (a step's first output should show quickly); later ones use bufferTimeoutMs. */
    private readonly firstTimeoutMs: number = bufferTimeoutMs,
    /** Lines carry no index/time lists on the wire (msgpack lean updates): size them by their text only. */
    private readonly lean = false,
  ) {}

  append(item: UpdateItem): void {
    const size = itemSize(item, this.lean);
    const space = this.bufferSize - this.buflen;
    if (size <= space) {
      this.pushJoined(item);
      this.buflen += size;
      this.armTimer();
      return;
    }
    if (item.kind !== 'status' && this.buflen > 0) {
      // Fill this message with the item's first lines before sending it: every message but the last of a
      // stream is then full, so the master handles as few messages as the master's buffer_size allows.
      // (buildbot-worker sends the buffer as it is and starts a new one; the stored log is the same.)
      const [head, rest] = splitHead(item.chunk, space, this.lean);
      if (head) this.pushJoined(withChunk(item, head));
      this.flush();
      if (rest) this.append(withChunk(item, rest));
      return;
    }
    this.flush();
    if (size <= this.bufferSize) {
      this.buffered.push(item);
      this.buflen += size;
      this.armTimer();
      return;
    }
    if (item.kind === 'status') {
      this.send([item]);
      return;
    }
    for (const piece of splitChunk(item.chunk, this.bufferSize, this.lean)) this.send([withChunk(item, piece)]);
  }

  flush(): void {
    if (this.beforeFlush && !this.flushing) {
      this.flushing = true;
      try {
        this.beforeFlush();
      } finally {
        this.flushing = false;
      }
    }
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.buffered.length === 0) return;
    this.flushedOnce = true;
    const items = this.buffered;
    this.buffered = [];
    this.buflen = 0;
    this.send(items);
  }

  /** Stops the timer without sending (the command was abandoned). */
  dispose(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.buffered = [];
    this.buflen = 0;
  }

  private pushJoined(item: UpdateItem): void {
    const last = this.buffered[this.buffered.length - 1];
    if (last && last.kind !== 'status' && item.kind !== 'status' && sameStream(last, item)) {
      this.buffered[this.buffered.length - 1] = withChunk(last, joinChunks(last.chunk, item.chunk));
      return;
    }
    this.buffered.push(item);
  }

  /** Something is pending upstream (a held progress state): make sure a flush comes. */
  touch(): void {
    this.armTimer();
  }

  private armTimer(): void {
    if (this.timer === undefined) {
      this.timer = this.timers.setTimeout(
        () => {
          this.timer = undefined;
          this.flush();
        },
        this.flushedOnce ? this.bufferTimeoutMs : this.firstTimeoutMs,
      );
    }
  }
}
