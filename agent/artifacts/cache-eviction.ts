// The free-disk floor and LRU eviction: before producing an entry (and after publishing one) the cache evicts
// its least recently used entries that no step is using until free space on the cache's file system is above
// the floor; a floor it cannot reach even with every unpinned entry gone is an error before any download.

import { lstat, statfs } from 'node:fs/promises';
import { AgentError } from '../errors.js';
import type { Logger } from '../log.js';
import { keyString } from './cache-key.js';
import type { IndexEntry } from './cache-index.js';

/** Default floor in bytes: room for the step's own output and logs besides the cache. */
export const DEFAULT_FLOOR_BYTES = 2 * 1024 * 1024 * 1024;
/** Default floor as a percentage of the file system's size: on a big disk 2 GiB alone is too little. */
export const DEFAULT_FLOOR_PERCENT = 5;

export interface FloorOptions {
  /** Keep at least this many bytes free (default DEFAULT_FLOOR_BYTES). */
  bytes?: number;
  /** Keep at least this percentage of the file system free (default DEFAULT_FLOOR_PERCENT). */
  percent?: number;
}

export interface DiskSpace {
  /** Bytes available to this (unprivileged) process. */
  free: number;
  total: number;
}

export type StatFs = (dir: string) => Promise<DiskSpace>;

export const realStatFs: StatFs = async (dir) => {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
};

/** The floor in bytes on a file system of `total` bytes: the larger of the two limits. */
export function floorBytes(total: number, opts: FloorOptions = {}): number {
  const bytes = opts.bytes ?? DEFAULT_FLOOR_BYTES;
  const percent = opts.percent ?? DEFAULT_FLOOR_PERCENT;
  return Math.max(bytes, Math.ceil((total * percent) / 100));
}

export interface EvictionDeps {
  root: string;
  floor: FloorOptions;
  statfs: StatFs;
  logger: Logger;
  /** Entries from least to most recently used. */
  lruOrder(): IndexEntry[];
  /** A step holds it, or a get is working on it. */
  inUse(entry: IndexEntry): boolean;
  remove(entry: IndexEntry): Promise<void>;
}

export interface EvictionResult {
  evicted: number;
  evictedBytes: number;
  free: number;
  floor: number;
}

const mib = (n: number): string => `${(n / (1024 * 1024)).toFixed(1)} MiB`;

/**
 * Evicts LRU entries not in use until `own` bytes (and `pending`, what produces in flight have yet to write) fit above the floor. Throws E_CACHE_DISK_FLOOR (after
 * evicting what it could) when even that is not enough. Callers serialize calls (one eviction at a time).
 */
export async function evictToFloor(deps: EvictionDeps, own: number, pending = 0): Promise<EvictionResult> {
  const need = own + pending;
  let space = await deps.statfs(deps.root);
  const floor = floorBytes(space.total, deps.floor);
  let evicted = 0;
  let evictedBytes = 0;
  for (const entry of deps.lruOrder()) {
    if (space.free - need >= floor) break;
    if (deps.inUse(entry)) continue;
    await deps.remove(entry);
    evicted++;
    evictedBytes += entry.bytes;
    deps.logger.info(
      `cache: evicted ${keyString(entry.key)} (${entry.bytes} bytes, last used ${new Date(entry.lastUsedMs).toISOString()}) to keep free space above ${mib(floor)}`,
    );
    space = await deps.statfs(deps.root);
  }
  if (space.free - need < floor) {
    const pinned = deps.lruOrder().filter((e) => deps.inUse(e));
    const pinnedBytes = pinned.reduce((s, e) => s + e.bytes, 0);
    throw new AgentError(
      'E_CACHE_DISK_FLOOR',
      `cache '${deps.root}': disk floor: ${mib(space.free)} free, ${mib(own)} needed` +
        (pending > 0 ? ` (and ${mib(pending)} still to come for entries being produced)` : '') +
        ` above the floor of ${mib(floor)}, ` +
        `after evicting ${evicted} entries (${mib(evictedBytes)}); ${pinned.length} entries in use (${mib(pinnedBytes)}) cannot be evicted`,
    );
  }
  return { evicted, evictedBytes, free: space.free, floor };
}

/**
 * Space promised to produces in flight, so that two concurrent misses do not both count the same free space:
 * what each still has to write, its expected size less what its temp file holds so far (a tree's temp directory
 * is not measured: its whole expected size counts, which for a tree is the archive's size, a lower bound).
 */
export class Reservations {
  private readonly items = new Set<{ bytes: number; tmp: string; file: boolean }>();

  /** Reserves `bytes` for the produce writing `tmp`; returns the release. */
  add(bytes: number, tmp: string, file: boolean): () => void {
    const item = { bytes, tmp, file };
    if (bytes > 0) this.items.add(item);
    return () => this.items.delete(item);
  }

  async outstanding(): Promise<number> {
    let sum = 0;
    for (const it of this.items) {
      const written = it.file ? ((await lstat(it.tmp).catch(() => undefined))?.size ?? 0) : 0;
      sum += Math.max(0, it.bytes - written);
    }
    return sum;
  }
}
