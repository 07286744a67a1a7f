// The content-addressed artifact cache: downloaded files keyed by their sha256/sha512, and the trees extracted
// from them, under BASEDIR/cache (cache-key.ts has the layout, docs/artifacts.md the design). One ArtifactCache
// object per agent process, shared by all its workers and steps:
//
//   const cache = await ArtifactCache.open({ root: defaultCacheRoot(basedir), logger });  // lock + sweep
//   const key = fileKey('sha256', hex);
//   const lease = await cache.acquire(key);          // pin first: a pinned entry is never evicted
//   try {
//     const r = await cache.get(key, { produce: (tmpPath) => download(url, tmpPath), expectedBytes });
//     use(r.path);                                   // r.cached: a hit (no produce, no request)
//   } finally { lease.release(); }
//   await cache.close();
//
// A hit runs no `produce` and is trusted only once re-verified (file: hash; tree: manifest), unless the
// fingerprint fast path is on (`fastPath`, off by default). A failed check removes the entry and produces it
// again. Concurrent gets of one key share one produce (and its error). A miss first evicts LRU entries not in
// use down to the free-disk floor, or fails with E_CACHE_DISK_FLOOR before calling produce. Errors:
// E_CACHE_KEY, E_CACHE_LOCKED, E_CACHE_DISK_FLOOR, E_CACHE_PRODUCE, E_CACHE_HASH_MISMATCH, E_CACHE_CLOSED,
// and whatever produce throws (unchanged).

import { lstat } from 'node:fs/promises';
import { removeAll } from './cache-remove.js';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import { BASEDIR_LAYOUT } from '../layout.js';
import { makedirs } from '../fs/makedirs.js';
import { silentLogger, type Logger } from '../log.js';
import { entryPath, keyString, markerPath, TMP_DIR, type CacheKey } from './cache-key.js';
import { CacheIndex, type IndexEntry } from './cache-index.js';
import { lockCache, type CacheLock } from './cache-lock.js';
import { readEntryMarker, touchMarker, writeEntryMarker, type EntryMarker } from './cache-marker.js';
import { evictToFloor, realStatFs, Reservations, type EvictionDeps, type EvictionResult, type FloorOptions, type StatFs } from './cache-eviction.js';
import { produceAndPublish, tempPathFor, type Produce } from './cache-publish.js';
import { Singleflight } from './cache-singleflight.js';
import { sweepCache, type SweepReport } from './cache-sweep.js';
import { checkTree, fingerprintOf, hashFile, sameFingerprint } from './cache-verify.js';

export { extractedKey, fileKey, keyString, type CacheKey, type HashAlgorithm } from './cache-key.js';
export { DEFAULT_FLOOR_BYTES, DEFAULT_FLOOR_PERCENT, type FloorOptions, type DiskSpace, type StatFs } from './cache-eviction.js';
export type { Produce, ProduceResult } from './cache-publish.js';
export type { SweepReport } from './cache-sweep.js';

/** With the fast path on, a full re-hash at least once every this many hits of an entry (and on its first hit in a process). */
export const FAST_PATH_REHASH_EVERY = 20;

export interface CacheOptions {
  root: string;
  logger?: Logger;
  /** The free-disk floor (defaults in cache-eviction.ts). */
  floor?: FloorOptions;
  /** Trust a matching stat fingerprint instead of re-hashing (threat model: docs/artifacts.md). Default off. */
  fastPath?: boolean | { rehashEvery?: number };
  /** Free space of the cache's file system (tests, or a platform without statfs). */
  statfs?: StatFs;
  /** Wall clock in ms for last-use times (tests give a strictly increasing one: same-ms uses would tie). */
  now?: () => number;
}

export interface GetOptions {
  /** Writes the entry on a miss; never called on a hit. */
  produce: Produce;
  /** Bytes the entry will take, if known: the floor check before produce makes room for them. */
  expectedBytes?: number;
}

export interface CacheResult {
  key: CacheKey;
  /** The file, or the tree's directory. Read-only: any change is found on the next hit and re-produced. */
  path: string;
  bytes: number;
  /** Bytes of what the entry was made from (an extracted tree: its archive), when its producer said. */
  sourceBytes?: number;
  /** A hit: produce was not called (by this get or the one it shared). */
  cached: boolean;
  /** How the entry was checked: its hash or manifest, its fingerprint (fast path), or produced just now. */
  verified: 'hash' | 'fingerprint' | 'produced';
}

export interface Lease {
  readonly key: CacheKey;
  /** Unpins the key (once; later calls do nothing). */
  release(): void;
}

/** The cache root of an agent: BASEDIR/cache. */
export function defaultCacheRoot(basedir: string): string {
  return path.join(basedir, BASEDIR_LAYOUT.cache);
}

export class ArtifactCache {
  readonly root: string;
  /** What the start-up sweep removed and kept. */
  readonly sweepReport: SweepReport;
  private readonly logger: Logger;
  private readonly floor: FloorOptions;
  private readonly statfs: StatFs;
  private readonly rehashEvery: number;
  private readonly now: () => number;
  private readonly index = new CacheIndex();
  private readonly flights = new Singleflight<CacheResult>();
  private readonly pins = new Map<string, number>();
  /** Removals in progress: a get or acquire of the key waits for them. */
  private readonly removing = new Map<string, Promise<void>>();
  /** Fast path: hits since the last full check, per key (absent: the next hit re-hashes). */
  private readonly fastHits = new Map<string, number>();
  private readonly reservations = new Reservations();
  /** Evictions run one at a time. */
  private evictionChain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    opts: CacheOptions,
    private readonly lock: CacheLock,
    report: SweepReport,
  ) {
    this.root = opts.root;
    this.logger = opts.logger ?? silentLogger;
    this.floor = opts.floor ?? {};
    this.statfs = opts.statfs ?? realStatFs;
    this.now = opts.now ?? Date.now;
    const fast = opts.fastPath;
    this.rehashEvery = fast === true ? FAST_PATH_REHASH_EVERY : fast ? (fast.rehashEvery ?? FAST_PATH_REHASH_EVERY) : 0;
    this.sweepReport = report;
    for (const e of report.entries) this.index.set(e);
  }

  /** Creates the root if missing, takes the process lock (E_CACHE_LOCKED) and sweeps. */
  static async open(opts: CacheOptions): Promise<ArtifactCache> {
    const logger = opts.logger ?? silentLogger;
    makedirs(opts.root, { existOk: true, mode: 0o755 });
    const lock = await lockCache(opts.root);
    try {
      const report = await sweepCache(opts.root, logger);
      makedirs(path.join(opts.root, TMP_DIR), { existOk: true, mode: 0o755 });
      return new ArtifactCache(opts, lock, report);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** Releases the process lock. Gets in flight finish; new ones fail with E_CACHE_CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lock.release();
  }

  /**
   * Pins `key` (present or not yet) against eviction until release. Not against a failed check: a get that finds
   * the entry damaged replaces it even while pinned (a damaged entry is never handed out).
   */
  async acquire(key: CacheKey): Promise<Lease> {
    const ks = keyString(key);
    await this.removing.get(ks);
    this.pins.set(ks, (this.pins.get(ks) ?? 0) + 1);
    let released = false;
    return {
      key,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.pins.get(ks) ?? 1) - 1;
        if (n > 0) this.pins.set(ks, n);
        else this.pins.delete(ks);
      },
    };
  }

  /** The entry for `key`: a verified hit, or what `produce` wrote (one produce for concurrent gets of a key). */
  async get(key: CacheKey, opts: GetOptions): Promise<CacheResult> {
    if (this.closed) throw new AgentError('E_CACHE_CLOSED', `cache '${this.root}' is closed`);
    const { promise } = this.flights.do(keyString(key), () => this.getOnce(key, opts));
    return promise;
  }

  /**
   * Evicts unpinned LRU entries until `needBytes`, and what produces in flight have yet to write, fit above the
   * floor (E_CACHE_DISK_FLOOR when they cannot).
   */
  evictToFloor(needBytes = 0): Promise<EvictionResult> {
    return this.serialized(async () => evictToFloor(this.evictionDeps(), needBytes, await this.reservations.outstanding()));
  }

  /** evictToFloor for a produce, then (in the same turn of the queue) a reservation of its bytes; its release. */
  private makeRoom(bytes: number, tmp: string, file: boolean): Promise<() => void> {
    return this.serialized(async () => {
      await evictToFloor(this.evictionDeps(), bytes, await this.reservations.outstanding());
      return this.reservations.add(bytes, tmp, file);
    });
  }

  /** Runs `fn` after every eviction queued before it: one eviction at a time. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.evictionChain.then(fn);
    this.evictionChain = run.catch(() => undefined);
    return run;
  }

  private evictionDeps(): EvictionDeps {
    return {
      root: this.root,
      floor: this.floor,
      statfs: this.statfs,
      logger: this.logger,
      lruOrder: () => this.index.lruOrder(),
      inUse: (e) => this.inUse(e.key),
      remove: (e) => this.removeEntry(e.key),
    };
  }

  /** Whether a complete entry for `key` is in the index (not checked: a get checks it). */
  has(key: CacheKey): boolean {
    return this.index.get(key) !== undefined;
  }

  /** Complete entries (from the index), least recently used first. */
  entries(): IndexEntry[] {
    return this.index.lruOrder();
  }

  private inUse(key: CacheKey): boolean {
    const ks = keyString(key);
    return (this.pins.get(ks) ?? 0) > 0 || this.flights.has(ks) || this.removing.has(ks);
  }

  private async getOnce(key: CacheKey, opts: GetOptions): Promise<CacheResult> {
    const ks = keyString(key);
    await this.removing.get(ks);
    const hit = await this.tryHit(key);
    if (hit) return hit;
    const tmp = tempPathFor(this.root, key);
    const release = await this.makeRoom(opts.expectedBytes ?? 0, tmp, key.kind === 'file');
    const started = performance.now();
    const published = await produceAndPublish(this.root, key, opts.produce, tmp).finally(release);
    const now = this.now();
    await touchMarker(this.root, key, new Date(now)); // the marker's mtime is the last use, on this clock
    this.index.set({ key, bytes: published.bytes, lastUsedMs: now });
    this.fastHits.set(ks, 0);
    this.logger.info(`cache: published ${ks} (${published.bytes} bytes) in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    await this.evictToFloor(0).catch((err: unknown) => this.logger.warn(`cache: after publishing ${ks}: ${errorMessage(err)}`));
    const source = published.sourceBytes !== undefined ? { sourceBytes: published.sourceBytes } : {};
    return { key, path: published.path, bytes: published.bytes, ...source, cached: false, verified: 'produced' };
  }

  /** A verified hit, or undefined (absent, or failed its check and removed). */
  private async tryHit(key: CacheKey): Promise<CacheResult | undefined> {
    const ks = keyString(key);
    const marker = await readEntryMarker(this.root, key);
    if (!marker) {
      const known = this.index.get(key);
      if (known) {
        this.logger.warn(`cache: ${ks} lost its marker: removing it and producing it again`);
        await this.removeEntry(key);
      }
      return undefined;
    }
    const started = performance.now();
    const check = await this.verify(key, marker).catch((err: unknown) => ({ problem: `cannot read it: ${errorMessage(err)}`, how: 'hash' as const }));
    if (check.problem !== undefined) {
      this.logger.warn(`cache: ${ks} failed verification (${check.problem}): removing it and producing it again`);
      await this.removeEntry(key);
      return undefined;
    }
    const at = new Date(this.now());
    await touchMarker(this.root, key, at);
    this.index.set({ key, bytes: marker.bytes, lastUsedMs: at.getTime() });
    const ms = (performance.now() - started).toFixed(0);
    this.logger.info(`cache: hit ${ks} (${marker.bytes} bytes, verified by ${check.how} in ${ms} ms)`);
    const source = marker.sourceBytes !== undefined ? { sourceBytes: marker.sourceBytes } : {};
    return { key, path: entryPath(this.root, key), bytes: marker.bytes, ...source, cached: true, verified: check.how };
  }

  /** Checks an entry against its marker: the fast path when allowed, else the full hash or manifest. */
  private async verify(key: CacheKey, marker: EntryMarker): Promise<{ problem?: string; how: 'hash' | 'fingerprint' }> {
    const ks = keyString(key);
    const data = entryPath(this.root, key);
    const hits = this.fastHits.get(ks);
    const fastAllowed = this.rehashEvery > 0 && hits !== undefined && hits < this.rehashEvery;
    if (key.kind === 'extracted') {
      const problem = await checkTree(data, marker.manifest ?? [], fastAllowed);
      return this.counted(ks, problem, fastAllowed);
    }
    const st = await lstat(data).catch(() => undefined);
    if (!st?.isFile()) return { problem: 'its file is missing', how: 'hash' };
    if (st.size !== marker.bytes) return { problem: `${st.size} bytes, published ${marker.bytes}`, how: 'hash' };
    const fp = await fingerprintOf(data);
    if (fastAllowed && marker.fp && sameFingerprint(fp, marker.fp)) return this.counted(ks, undefined, true);
    const digest = await hashFile(data, key.algorithm);
    if (digest !== key.digest) return { problem: `${key.algorithm} is now ${digest}`, how: 'hash' };
    // Content verified: a changed fingerprint (touched, copied back) is recorded, so the fast path can resume.
    if (this.rehashEvery > 0 && (!marker.fp || !sameFingerprint(fp, marker.fp))) {
      await writeEntryMarker(this.root, key, { bytes: marker.bytes, publishedAt: marker.publishedAt, fp });
    }
    return this.counted(ks, undefined, false);
  }

  private counted(ks: string, problem: string | undefined, fast: boolean): { problem?: string; how: 'hash' | 'fingerprint' } {
    if (problem !== undefined) this.fastHits.delete(ks);
    else this.fastHits.set(ks, fast ? (this.fastHits.get(ks) ?? 0) + 1 : 0);
    return { problem, how: fast ? 'fingerprint' : 'hash' };
  }

  /** Removes an entry: marker first (the entry is gone from then on), then its data. */
  private removeEntry(key: CacheKey): Promise<void> {
    const ks = keyString(key);
    const running = this.removing.get(ks);
    if (running) return running;
    const work = (async () => {
      this.index.delete(key);
      this.fastHits.delete(ks);
      await removeAll(markerPath(this.root, key));
      await removeAll(entryPath(this.root, key));
    })().finally(() => this.removing.delete(ks));
    this.removing.set(ks, work);
    return work;
  }
}
