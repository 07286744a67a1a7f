// The in-memory list of the cache's complete entries with their size and last use: built by the start-up sweep
// from the markers (their mtime is the last use), kept up to date by publish, hit and removal, and read by
// eviction, so choosing what to evict never walks the disk. The process lock (cache-lock.ts) makes it
// authoritative: no other process changes the directory while it is open.

import { keyString, type CacheKey } from './cache-key.js';

export interface IndexEntry {
  key: CacheKey;
  /** Bytes of the entry's data (the file, or the sum of the tree's files). */
  bytes: number;
  /** Last use, ms since the epoch (the marker's mtime). */
  lastUsedMs: number;
}

export class CacheIndex {
  private readonly entries = new Map<string, IndexEntry>();

  set(entry: IndexEntry): void {
    this.entries.set(keyString(entry.key), entry);
  }

  touch(key: CacheKey, atMs: number): void {
    const e = this.entries.get(keyString(key));
    if (e) e.lastUsedMs = atMs;
  }

  delete(key: CacheKey): void {
    this.entries.delete(keyString(key));
  }

  get(key: CacheKey): IndexEntry | undefined {
    return this.entries.get(keyString(key));
  }

  get size(): number {
    return this.entries.size;
  }

  totalBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.bytes;
    return sum;
  }

  /** Entries from least to most recently used (ties: by key, so the order is stable). */
  lruOrder(): IndexEntry[] {
    return [...this.entries.values()].sort((a, b) => a.lastUsedMs - b.lastUsedMs || (keyString(a.key) < keyString(b.key) ? -1 : 1));
  }
}
