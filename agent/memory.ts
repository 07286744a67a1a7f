// Gives memory back to the OS when the agent has nothing to do. Start-up (loading and compiling the agent,
// connecting) and a build's output leave the JavaScript heap larger than an idle worker needs, and V8 only
// shrinks it when it collects garbage, which an idle process seldom triggers. After a quiet period with no
// command running, one full collection in its memory-reducing mode returns the unused heap pages (about
// 3 MiB after start-up). It runs once per quiet period, never while a command runs, and costs ~15 ms of CPU.

import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './log.js';

/** How long the agent must have run no command before the heap is compacted. */
export const COMPACT_AFTER_QUIET_MS = 3000;

type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };
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
}

/** Compacts the heap once the agent has been quiet for quietMs after each poke (start-up, a command's end). */
export class IdleCompactor {
  private timer: NodeJS.Timeout | undefined;
  private mark = -1;
  private compactedAt = -1;
  private stopped = false;

  constructor(private readonly o: IdleCompactorOptions) {}

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
