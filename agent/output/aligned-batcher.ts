// Batches a command's items into messages shaped for how a Buildbot master stores logs, so that storing them
// costs the master as little as possible (Buildbot 3.7, buildbot/db/logs.py and buildbot/process/log.py):
// - every text item of a message becomes one `appendLog` call, one database transaction;
// - the master prefixes each line with its channel character ('o', 'e', 'h'), drops the last newline, and cuts
//   the text into chunks at the last newline before 64 KiB (`_splitBigChunk`), each gzipped and inserted;
// - when the log finishes, `compressLog` merges neighbouring chunks whose line span is at most 1,000 lines and
//   whose compressed sizes add up to at most 64 KiB, decompressing and gzipping them again.
// An item whose lines fill whole master chunks leaves no short chunk behind for compaction to merge and
// re-gzip; several whole chunks in one item cost one transaction instead of several. So this batcher:
// - counts each line as the master will store it (channel character + UTF-8 bytes + newline) and groups the
//   lines of the last queued item into master chunks the way the master will cut them;
// - sends whole chunks before they add up to more than `maxBatch` (512 KiB by default: Twisted's Banana
//   refuses strings over 640 KiB, so a PB update stays under it), keeping the last, partly filled chunk back;
// - a timer runs from the first line of each batch: the step's first output goes after `firstTimeoutMs`
//   (0.25 s: live view), later batches after `latencyMs` (1 s, or the master's buffer_timeout if shorter).
//   When it fires, everything goes, except when output is sustained (whole chunks came since the last update):
//   then the whole chunks go and the partly filled last chunk stays to fill up, and the next timer fires when
//   that chunk's first line has waited two periods. A sustained stream so sends about one update per two
//   periods, each ending on a master chunk boundary, instead of one per period (every update costs the master
//   a transaction, a read and an event whatever its size); slow output still goes once per period. No line
//   waits more than two periods; flush (end of the command) sends everything.
// The stored log is the same line for line as with buildbot-worker's batching (BufferManager, buffer.ts); only
// where the master's chunks start and how many transactions it runs differ.

import type { LineChunk, UpdateItem } from './types.js';
import { joinChunks, type MessageSender, realTimers, rebased, sameStream, type Timers, withChunk } from './buffer.js';

/** A master chunk holds at most this many stored bytes, counting each line's channel character and newline. */
export const MASTER_CHUNK_BYTES = 65536;
/** The timer period: a line waits at most two periods (LATENCY_CAP_MS × 2) for its chunk to fill before it is sent anyway. */
export const LATENCY_CAP_MS = 1000;
/** A message holds at most this many stored bytes of whole chunks (unless one line is longer). */
export const ALIGNED_MAX_BATCH = 512 * 1024;
/** The size a status item is counted as (buildbot-worker's rule). */
const STATUS_SIZE = 20;
/** A partly filled chunk is held for the next update only if its first line may wait at least this much longer. */
const MIN_HOLD_MS = 100;

type TextItem = Exclude<UpdateItem, { kind: 'status' }>;

/** The stored size of each line of `chunk` on the master: its channel character, its UTF-8 text and its newline. */
export function storedLineBytes(chunk: LineChunk): number[] {
  const out = new Array<number>(chunk.indexes.length);
  const ascii = Buffer.byteLength(chunk.text, 'utf8') === chunk.text.length;
  let start = 0;
  for (let i = 0; i < chunk.indexes.length; i++) {
    const end = chunk.indexes[i]! + 1;
    out[i] = 1 + (ascii ? end - start : Buffer.byteLength(chunk.text.slice(start, end), 'utf8'));
    start = end;
  }
  return out;
}

/** Lines [from, to) of `chunk`, indexes rebased. */
export function sliceLines(chunk: LineChunk, from: number, to: number): LineChunk {
  if (from === 0 && to === chunk.indexes.length) return chunk;
  const textStart = from === 0 ? 0 : chunk.indexes[from - 1]! + 1;
  const textEnd = chunk.indexes[to - 1]! + 1;
  return {
    text: chunk.text.slice(textStart, textEnd),
    indexes: rebased(chunk.indexes, from, to, textStart),
    times: chunk.times.slice(from, to),
  };
}

/** How the lines of the last queued item fall into master chunks: whole ones, then one partly filled. */
interface Tail {
  fullLines: number;
  partialLines: number;
  partialBytes: number;
  /** When the partly filled chunk got its first line (the batcher's clock). */
  startedAt: number;
}

/** What CommandOutput needs from a batcher (BufferManager has the same shape). */
export interface Batcher {
  beforeFlush: (() => void) | undefined;
  append(item: UpdateItem): void;
  flush(): void;
  dispose(): void;
  touch(): void;
}

export class AlignedBatcher implements Batcher {
  private queue: UpdateItem[] = [];
  /** Stored bytes of everything queued. */
  private queueBytes = 0;
  /** Set while the last queued item is text. */
  private tail: Tail | undefined;
  private timer: unknown = undefined;
  private flushedOnce = false;
  private flushing = false;
  beforeFlush: (() => void) | undefined;

  constructor(
    private readonly send: MessageSender,
    private readonly maxBatch = ALIGNED_MAX_BATCH,
    private readonly latencyMs = LATENCY_CAP_MS,
    private readonly timers: Timers = realTimers,
    private readonly firstTimeoutMs = latencyMs,
    private readonly now: () => number = () => performance.now(),
  ) {}

  append(item: UpdateItem): void {
    // the timer runs from the first line of a batch, so a chunk begun under it is known to be younger
    if (this.timer === undefined) this.armIn(this.flushedOnce ? this.latencyMs : this.firstTimeoutMs);
    if (item.kind === 'status') {
      this.queue.push(item);
      this.queueBytes += STATUS_SIZE;
      this.tail = undefined;
    } else {
      this.appendText(item);
    }
    if (this.queue.length === 0) this.cancelTimer();
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
    this.cancelTimer();
    this.sendAll();
  }

  dispose(): void {
    this.cancelTimer();
    this.queue = [];
    this.queueBytes = 0;
    this.tail = undefined;
  }

  /** Something is pending upstream (a held progress state): make sure a flush comes. */
  touch(): void {
    if (this.timer === undefined) this.armIn(this.flushedOnce ? this.latencyMs : this.firstTimeoutMs);
  }

  private appendText(item: TextItem): void {
    const last = this.queue[this.queue.length - 1];
    if (!this.tail || !last || !sameStream(last, item)) this.tail = { fullLines: 0, partialLines: 0, partialBytes: 0, startedAt: 0 };
    if (this.fitsPartial(this.tail, item.chunk)) return this.push(item, item.chunk);
    const sizes = storedLineBytes(item.chunk);
    let from = 0;
    for (let i = 0; i < sizes.length; i++) {
      const size = sizes[i]!;
      // line i would close the partly filled chunk (everything queued is then whole): send before another
      // chunk could take the message over maxBatch; with maxBatch under one chunk, send by size alone
      const closes = this.tail.partialBytes > 0 && this.tail.partialBytes + size > MASTER_CHUNK_BYTES;
      const small = this.maxBatch < MASTER_CHUNK_BYTES && this.queueBytes > 0 && this.queueBytes + size > this.maxBatch;
      if ((closes && this.queueBytes > this.maxBatch - MASTER_CHUNK_BYTES) || small) {
        if (i > from) this.push(item, sliceLines(item.chunk, from, i));
        from = i;
        this.sendAll();
        this.tail = { fullLines: 0, partialLines: 0, partialBytes: 0, startedAt: 0 };
      }
      this.countLine(this.tail, size);
    }
    if (from < sizes.length) this.push(item, sliceLines(item.chunk, from, sizes.length));
  }

  /**
   * The common case of a slow step: all of `chunk`'s lines fit in the partly filled master chunk, so none of
   * them closes a chunk or sends anything, and they are counted at once instead of line by line.
   */
  private fitsPartial(tail: Tail, chunk: LineChunk): boolean {
    if (this.maxBatch < MASTER_CHUNK_BYTES) return false;
    const lines = chunk.indexes.length;
    const bytes = lines + Buffer.byteLength(chunk.text, 'utf8');
    if (tail.partialBytes + bytes > MASTER_CHUNK_BYTES) return false;
    if (tail.partialBytes === 0) tail.startedAt = this.now();
    tail.partialBytes += bytes;
    tail.partialLines += lines;
    this.queueBytes += bytes;
    return true;
  }

  /** Counts one more line of the tail: it closes the partly filled chunk when it would not fit in it. */
  private countLine(tail: Tail, size: number): void {
    if (tail.partialBytes > 0 && tail.partialBytes - 1 + size > MASTER_CHUNK_BYTES - 1) {
      tail.fullLines += tail.partialLines;
      tail.partialLines = 0;
      tail.partialBytes = 0;
    }
    if (tail.partialBytes === 0) tail.startedAt = this.now();
    tail.partialBytes += size;
    tail.partialLines++;
    this.queueBytes += size;
  }

  /** Queues lines already counted in the tail, joined to the last item of the same stream. */
  private push(item: TextItem, chunk: LineChunk): void {
    const last = this.queue[this.queue.length - 1];
    if (last && last.kind !== 'status' && sameStream(last, item)) this.queue[this.queue.length - 1] = withChunk(last, joinChunks(last.chunk, chunk));
    else this.queue.push(withChunk(item, chunk));
  }

  /** Sends everything but the partly filled chunk at the end, which stays queued. */
  private sendWhole(): void {
    const tail = this.tail;
    const last = this.queue[this.queue.length - 1];
    if (!tail || tail.partialLines === 0 || !last || last.kind === 'status') {
      this.sendAll();
      return;
    }
    const lines = last.chunk.indexes.length;
    const items = this.queue.slice(0, -1);
    if (lines > tail.partialLines) items.push(withChunk(last, sliceLines(last.chunk, 0, lines - tail.partialLines)));
    this.queue = [withChunk(last, sliceLines(last.chunk, lines - tail.partialLines, lines))];
    this.queueBytes = tail.partialBytes;
    tail.fullLines = 0;
    this.emit(items);
  }

  private sendAll(): void {
    const items = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    this.tail = undefined;
    this.emit(items);
  }

  private emit(items: UpdateItem[]): void {
    if (items.length === 0) return;
    this.flushedOnce = true;
    this.send(items);
  }

  private onTimer(): void {
    this.timer = undefined;
    const tail = this.tail;
    if (this.flushedOnce && tail && tail.partialLines > 0 && this.queueBytes > tail.partialBytes) {
      // output is sustained (whole chunks came since the last update): they go; the partly filled chunk stays
      // until its first line has waited two periods, unless that time is (nearly) up (slow output all goes)
      const left = tail.startedAt + 2 * this.latencyMs - this.now();
      if (left >= MIN_HOLD_MS) {
        this.sendWhole();
        this.armIn(left);
        return;
      }
    }
    this.flush();
  }

  private armIn(ms: number): void {
    this.cancelTimer();
    this.timer = this.timers.setTimeout(() => this.onTimer(), Math.max(0, ms));
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
