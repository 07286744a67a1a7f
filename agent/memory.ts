// Gives memory back to the OS when the agent has nothing to do. Start-up (loading and compiling the agent,
// connecting) and a build's output leave the JavaScript heap larger than an idle worker needs, and V8 only
// shrinks it when it collects garbage, which an idle process seldom triggers. After a quiet period with no
// command running, one full collection in its memory-reducing mode returns the unused heap pages (about
// 3 MiB after start-up). It runs once per quiet period, never while a command runs, and costs ~15 ms of CPU.
//
// While commands run, it bounds the garbage a fast output stream leaves: the stream's batches and encoded
// messages are large strings and buffers, which V8 allocates outside its young generation (large-object space,
// and ArrayBuffer memory from malloc). Only a full collection frees them, and V8 starts one for external memory
// only after ~64 MiB of growth: a 50 MiB step left 20-30 MiB of dead buffers and strings resident at its peak
// (scripts/bench/run --smaps). So every GARBAGE_CHECK_MS it reads how much of both there is, and collects when
// that grew by GARBAGE_BOUND_BYTES since the last collection it saw.

import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './log.js';

/** How long the agent must have run no command before the heap is compacted. */
export const COMPACT_AFTER_QUIET_MS = 3000;
/** While a command runs: how often the large objects and buffers are measured (~10 µs each time). */
export const GARBAGE_CHECK_MS = 250;
/** A full collection when large objects and buffers grew this much since the last one (one costs ~5-10 ms). */
export const GARBAGE_BOUND_BYTES = 8 * 1024 * 1024;
/** At most one such collection per this long: a 50 MiB step at full speed then pays for ~5, not ~10. */
export const GARBAGE_MIN_INTERVAL_MS = 1000;

type GcOptions = { type: 'major'; execution: 'sync'; flavor?: 'last-resort' };
let gcFunction: ((o?: GcOptions) => void) | null | undefined;
/** gc()'s options with flavor 'last-resort' (V8 12, Node 22): a full collection that also releases free pages. */
const LAST_RESORT = Number(process.versions.v8.split('.')[0]) >= 12;

/** V8's gc() (the --expose-gc function), obtained without starting Node with that flag; null when unavailable. */
function v8Gc(): ((o?: GcOptions) => void) | null {
  if (gcFunction !== undefined) return gcFunction;
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    gcFunction = typeof fn === 'function' ? (fn as (o?: GcOptions) => void) : null;
  } catch {
    gcFunction = null;
  }
  return gcFunction;
}

/** Bytes of ArrayBuffers (Buffers) and of V8's large-object space: what fast output leaves as garbage. */
export function bulkBytes(): number {
  const large = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'large_object_space')?.space_used_size ?? 0;
  return process.memoryUsage().arrayBuffers + large;
}

/** One full collection (not memory-reducing: that one also gives free pages back, which a busy agent reuses). */
export function collectGarbage(): boolean {
  const gc = v8Gc();
  if (!gc) return false;
  if (LAST_RESORT) gc({ type: 'major', execution: 'sync' });
  else gc();
  return true;
}

/** One full, memory-reducing collection; false when this runtime offers none. */
export function compactHeap(): boolean {
  const gc = v8Gc();
  if (!gc) return false;
  // Older V8 (Node 20) ignores these options and would run a minor collection: plain gc() is a full one there.
  if (LAST_RESORT) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else gc();
  return true;
}

export interface IdleCompactorOptions {
  /** True while a command runs. */
  busy: () => boolean;
  /** A counter that changes whenever a command starts (commands started so far). */
  activity: () => number;
  logger: Logger;
  quietMs?: number;
  /** The compaction itself (tests replace it). */
  compact?: () => boolean;
  /** While busy: the bytes to bound (bulkBytes) and the collection (collectGarbage); tests replace them. */
  bulk?: () => number;
  collect?: () => boolean;
  checkMs?: number;
  boundBytes?: number;
  minIntervalMs?: number;
  now?: () => number;
}

/** Compacts the heap once the agent has been quiet for quietMs after each poke (start-up, a command's end). */
export class IdleCompactor {
  private timer: NodeJS.Timeout | undefined;
  private mark = -1;
  private compactedAt = -1;
  private stopped = false;
  private readonly guard: NodeJS.Timeout;
  /** bulkBytes() after the last collection (or the lowest seen since): growth above it is garbage. */
  private bulkBase = Infinity;
  /** Full collections run to bound garbage while busy (for the debug log and tests). */
  collections = 0;
  private lastCollection = -Infinity;

  constructor(private readonly o: IdleCompactorOptions) {
    this.guard = setInterval(() => this.check(), o.checkMs ?? GARBAGE_CHECK_MS);
    this.guard.unref();
  }

  /** While a command runs: one full collection when large objects and buffers grew by the bound. */
  check(): void {
    if (this.stopped || !this.o.busy()) {
      this.bulkBase = Infinity;
      return;
    }
    const bulk = (this.o.bulk ?? bulkBytes)();
    // V8's own collections lower it too: the base follows them down
    if (bulk < this.bulkBase) this.bulkBase = bulk;
    if (bulk - this.bulkBase < (this.o.boundBytes ?? GARBAGE_BOUND_BYTES)) return;
    const now = (this.o.now ?? performance.now.bind(performance))();
    if (now - this.lastCollection < (this.o.minIntervalMs ?? GARBAGE_MIN_INTERVAL_MS)) return;
    if (!(this.o.collect ?? collectGarbage)()) return;
    this.lastCollection = now;
    this.collections++;
    this.bulkBase = (this.o.bulk ?? bulkBytes)();
  }

  /** Something happened (connected, a command ended): compact after the next quiet period. */
  poke(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.mark = this.o.activity();
    this.timer = setTimeout(() => this.fire(), this.o.quietMs ?? COMPACT_AFTER_QUIET_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.guard);
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.o.activity();
    // A command ran or runs: its end pokes again. Nothing ran since the last compaction: nothing to give back.
    if (this.o.busy() || now !== this.mark || now === this.compactedAt) return;
    this.compactedAt = now;
    const before = process.memoryUsage();
    if (!(this.o.compact ?? compactHeap)()) return;
    const after = process.memoryUsage();
    const mib = (n: number): string => (n / 1048576).toFixed(1);
    this.o.logger.debug(`idle: heap compacted, ${mib(before.heapTotal)} -> ${mib(after.heapTotal)} MiB (rss ${mib(before.rss)} -> ${mib(after.rss)} MiB)`);
  }
}
