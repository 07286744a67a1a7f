// Gives memory back to the OS when the agent has nothing to do. Start-up (loading and compiling the agent,
// connecting) and a build's output leave the JavaScript heap larger than an idle worker needs, and V8 only
// shrinks it when it collects garbage, which an idle process seldom triggers. After a quiet period with no
// command running, one full collection in its memory-reducing mode returns the unused heap pages (about
// 3 MiB after start-up). It runs once per quiet period, never while a command runs, and costs ~15-25 ms of CPU
// (V8 runs two full collections for it). The first one comes COMPACT_AFTER_START_MS after the first connection,
// later ones COMPACT_AFTER_QUIET_MS after the last command ended; one that falls due while a command runs waits
// for its end. The first one used to come 250 ms after connecting, before a fresh worker's first build could
// begin: the heap it left then grew again at the first transfer, and a 50 MiB download peaked 10 MiB higher
// (79-83 MiB against 66-69; scripts/bench/run --protocol pb --only download), so it waits 3 s again.
//
// V8's own memory reducer followed the first of these 8 s later with two more full collections (~15-20 ms with
// their concurrent marking, --trace-gc and --trace-memory-reducer) that found nothing left to give back: inside
// a fresh worker's first build. agent/v8-tuning.ts turns its collections off (memoryReducerFlags): an agent's
// heap goes back to the OS here, 3 s after each command, and a long quiet step keeps what its output grew
// until it ends (the bound below keeps that growth small).
//
// While commands run, it bounds the garbage a fast output stream leaves: the stream's batches and encoded
// messages are large strings and buffers, which V8 allocates outside its young generation (large-object space,
// and ArrayBuffer memory from malloc). Only a full collection frees them, and V8 starts one for external memory
// only after ~64 MiB of growth: a 50 MiB step left 20-30 MiB of dead buffers and strings resident at its peak
// (scripts/bench/run --smaps). So it reads how much of both there is after every GARBAGE_CHECK_BUSY_MS of the
// event loop's work (LoopMonitor's samples; the garbage grows with the output handled, and the loop's work with
// it), and collects when that grew by GARBAGE_BOUND_BYTES since the last collection it saw. A step that prints
// little never gets there: it costs no wake-up and no reading (every 250 ms, as it was, cost a quiet 10 s step
// 40 wake-ups and 40 reads of /proc/self/stat); one printing at full speed is checked every ~100-200 ms.
// LoopMonitor samples once a second while the loop was quiet, so a short, fast command (a 50 MiB download is
// over in 0.4 s) could end before its first sample: its garbage went unbounded (peak RSS 69 -> 79 MiB). So a
// command's start also arms a guard that samples the loop's work itself after GARBAGE_GUARD_MS, again every
// GARBAGE_GUARD_MS while the loop works, and backing off (doubling, up to GARBAGE_GUARD_MAX_MS) while it is
// quiet: a quiet 10 s step costs it 6-7 wake-ups.

import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './log.js';

/** How long the agent must have run no command before the heap is compacted. */
export const COMPACT_AFTER_QUIET_MS = 3000;
/** After the first connection (a first build that starts sooner defers it to its end). */
export const COMPACT_AFTER_START_MS = 3000;
/** While a command runs: the large objects and buffers are measured after this much of the loop's work (~20 µs each time). */
export const GARBAGE_CHECK_BUSY_MS = 100;
/** A full collection when large objects and buffers grew this much since the last one (one costs ~5-10 ms). */
export const GARBAGE_BOUND_BYTES = 8 * 1024 * 1024;
/** At most one such collection per this long: a 50 MiB step at full speed then pays for ~5, not ~10. */
export const GARBAGE_MIN_INTERVAL_MS = 1000;
/** While a command runs and the loop works: how often the guard samples the loop's work itself. */
export const GARBAGE_GUARD_MS = 250;
/** The guard's longest period, while the loop is quiet. */
export const GARBAGE_GUARD_MAX_MS = 2000;

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
  /** The quiet period before the first compaction (after start-up). */
  startQuietMs?: number;
  /** The compaction itself (tests replace it). */
  compact?: () => boolean;
  /** While busy: the bytes to bound (bulkBytes) and the collection (collectGarbage); tests replace them. */
  bulk?: () => number;
  collect?: () => boolean;
  checkBusyMs?: number;
  boundBytes?: number;
  minIntervalMs?: number;
  now?: () => number;
  /** Milliseconds the loop has worked since some fixed point (default: Node's event-loop utilisation `active`). */
  activeMs?: () => number;
  guardMs?: number;
  guardMaxMs?: number;
}

/** Compacts the heap once the agent has been quiet for quietMs after each poke (start-up, a command's end). */
export class IdleCompactor {
  private timer: NodeJS.Timeout | undefined;
  private mark = -1;
  private compactedAt = -1;
  private stopped = false;
  private poked = false;
  /** The loop's work (ms) since the last measurement of the garbage. */
  private work = 0;
  /** bulkBytes() after the last collection (or the lowest seen since): growth above it is garbage. */
  private bulkBase = Infinity;
  /** Full collections run to bound garbage while busy (for the debug log and tests). */
  collections = 0;
  private lastCollection = -Infinity;
  private guard: NodeJS.Timeout | undefined;
  private guardPeriod = 0;
  private guardActive = 0;

  constructor(private readonly o: IdleCompactorOptions) {}

  /** The loop's work since the last sample (LoopMonitor's onSample): while a command runs, bound the garbage. */
  sample(busyMs: number): void {
    if (this.stopped || !this.o.busy()) {
      this.bulkBase = Infinity;
      this.work = 0;
      return;
    }
    this.work += busyMs;
    if (this.work < (this.o.checkBusyMs ?? GARBAGE_CHECK_BUSY_MS)) return;
    this.work = 0;
    this.check();
  }

  /** One full collection when large objects and buffers grew by the bound since the last one. */
  private check(): void {
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
    const quiet = this.poked ? (this.o.quietMs ?? COMPACT_AFTER_QUIET_MS) : (this.o.startQuietMs ?? COMPACT_AFTER_START_MS);
    this.poked = true;
    this.timer = setTimeout(() => this.fire(), quiet);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.guard);
    this.guard = undefined;
  }

  /** A command started: the guard samples the loop's work until no command runs (see the top of this file). */
  commandStarted(): void {
    if (this.stopped) return;
    this.guardPeriod = this.o.guardMs ?? GARBAGE_GUARD_MS;
    if (this.guard) return;
    this.guardActive = this.activeMs();
    this.armGuard();
  }

  private activeMs(): number {
    return (this.o.activeMs ?? (() => performance.eventLoopUtilization().active))();
  }

  private armGuard(): void {
    this.guard = setTimeout(() => this.guardFired(), this.guardPeriod);
    this.guard.unref();
  }

  private guardFired(): void {
    this.guard = undefined;
    if (this.stopped || !this.o.busy()) return;
    const active = this.activeMs();
    const work = active - this.guardActive;
    this.guardActive = active;
    this.sample(work);
    // a tenth of the period's time at work: the loop works, sample again soon; else back off
    const min = this.o.guardMs ?? GARBAGE_GUARD_MS;
    this.guardPeriod = work >= this.guardPeriod / 10 ? min : Math.min(this.o.guardMaxMs ?? GARBAGE_GUARD_MAX_MS, this.guardPeriod * 2);
    this.armGuard();
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
