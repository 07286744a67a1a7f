// LRU eviction to a free-disk floor on a real tmpfs: the least recently used entries go first, a pinned one
// never, the order survives a restart, and a floor that cannot be met fails before produce runs. Also an eviction
// racing a get of the entry it removes, and two concurrent misses sharing the free space (free space from an
// injected statfs).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileKey } from '../../agent/artifacts/cache.js';
import { entryPath, markerPath } from '../../agent/artifacts/cache-key.js';
import { cleanUpAfterEach, openCache, producer, scratch, sha256 } from '../helpers/artifacts-cache.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

cleanUpAfterEach();

const TMPFS = tmpfsSupport();
if (!TMPFS.ok) console.warn(`artifacts-cache: skipping the LRU floor tests: ${TMPFS.why}`);
const MiB = 1024 * 1024;

describe.skipIf(!TMPFS.ok)('artifact cache: LRU eviction to a free-disk floor on a real tmpfs', () => {
  it('evicts the least recently used entries first, never a pinned one, and fails before produce when the floor cannot be met', async () => {
    const mount = path.join(scratch(), 'small');
    mountTmpfs(mount, 8 * MiB);
    try {
      let clock = 1_000_000;
      const { cache, log } = await openCache(mount, { floor: { bytes: 3 * MiB, percent: 0 }, now: () => (clock += 1000) });
      const blobs = new Map<string, Buffer>();
      const put = async (name: string, pin = false): Promise<void> => {
        const content = randomBytes(MiB);
        blobs.set(name, content);
        const key = fileKey('sha256', sha256(content));
        if (pin) await cache.acquire(key); // held for the rest of the test
        await cache.get(key, { produce: producer(content).produce, expectedBytes: MiB });
      };
      const keyOf = (name: string) => fileKey('sha256', sha256(blobs.get(name)!));
      const present = (): string[] =>
        [...blobs.keys()].filter((n) => cache.entries().some((e) => e.key.digest === keyOf(n).digest) && existsSync(entryPath(mount, keyOf(n))));

      await put('A');
      await put('B');
      await put('C', true);
      await put('D');
      await cache.get(keyOf('A'), { produce: producer(blobs.get('A')!).produce }); // A: most recently used
      expect(cache.entries().map((e) => [...blobs.keys()].find((n) => keyOf(n).digest === e.key.digest))).toEqual(['B', 'C', 'D', 'A']);

      // 4 MiB used of 8: 1 MiB more needs ~4 MiB free above the 3 MiB floor, so the oldest (B) goes
      await put('E');
      expect(present()).toEqual(['A', 'C', 'D', 'E']);
      expect(log.lines.some((l) => l.includes(`evicted sha256:${keyOf('B').digest}`))).toBe(true);

      // 2 MiB more: C is older but pinned, so D then A go
      const big = randomBytes(2 * MiB);
      blobs.set('F', big);
      await cache.get(fileKey('sha256', sha256(big)), { produce: producer(big).produce, expectedBytes: 2 * MiB });
      expect(present()).toEqual(['C', 'E', 'F']);

      // everything left pinned: no room for 6 MiB, an error naming the floor, and produce never runs
      await cache.acquire(keyOf('E'));
      await cache.acquire(keyOf('F'));
      const p = producer(Buffer.alloc(1));
      const err = await cache.get(fileKey('sha256', 'ee'.repeat(32)), { produce: p.produce, expectedBytes: 6 * MiB }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_CACHE_DISK_FLOOR', message: expect.stringMatching(/disk floor: .* 3 entries in use/) });
      expect(p.calls).toBe(0);
      expect(present()).toEqual(['C', 'E', 'F']);
      await cache.close();

      // the LRU order survives a restart (the markers' mtimes)
      const again = await openCache(mount, { floor: { bytes: 3 * MiB, percent: 0 } });
      expect(again.cache.entries().map((e) => e.key.digest)).toEqual(['C', 'E', 'F'].map((n) => keyOf(n).digest));
      await again.cache.close();
    } finally {
      unmount(mount);
    }
  });

  it('a lease released makes the entry evictable again', async () => {
    const mount = path.join(scratch(), 'small');
    mountTmpfs(mount, 4 * MiB);
    try {
      const { cache } = await openCache(mount, { floor: { bytes: 2 * MiB, percent: 0 } });
      const a = randomBytes(MiB);
      const keyA = fileKey('sha256', sha256(a));
      const lease = await cache.acquire(keyA);
      await cache.get(keyA, { produce: producer(a).produce });
      const b = randomBytes(MiB);
      const getB = () => cache.get(fileKey('sha256', sha256(b)), { produce: producer(b).produce, expectedBytes: MiB });
      await expect(getB()).rejects.toMatchObject({ code: 'E_CACHE_DISK_FLOOR' });
      lease.release();
      lease.release(); // twice: no effect
      expect((await getB()).cached).toBe(false);
      expect(existsSync(entryPath(mount, keyA))).toBe(false);
      await cache.close();
    } finally {
      unmount(mount);
    }
  });
});

describe('artifact cache: eviction racing a get of the same key', () => {
  it('at every interleaving the get returns a complete, verified entry and the cache stays consistent', async () => {
    const root = path.join(scratch(), 'cache');
    const content = randomBytes(64 * 1024);
    const key = fileKey('sha256', sha256(content));
    // free space is short exactly while the entry exists: every eviction wants it gone
    const statfs = async (): Promise<{ free: number; total: number }> => ({ free: existsSync(entryPath(root, key)) ? 0 : 10 * 2 ** 30, total: 100 * 2 ** 30 });
    const { cache } = await openCache(root, { floor: { bytes: 2 ** 30, percent: 0 }, statfs });
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    for (let delay = 0; delay < 12; delay++) {
      const p = producer(content);
      await cache.get(key, { produce: p.produce }); // present (or produced) before the race
      const eviction = cache.evictToFloor(0).catch((e: unknown) => e);
      for (let i = 0; i < delay; i++) await tick();
      const r = await cache.get(key, { produce: p.produce });
      await eviction;
      expect(existsSync(r.path) && existsSync(markerPath(root, key)), `delay ${delay}`).toBe(true);
      expect(readFileSync(r.path).equals(content)).toBe(true);
      expect((await cache.get(key, { produce: () => Promise.reject(new Error('must hit')) })).cached).toBe(true);
    }
  });
});

describe('artifact cache: concurrent misses share the free space', () => {
  it('a second miss counts what the first still has to write, and fails the floor instead of both passing', async () => {
    const root = path.join(scratch(), 'cache');
    const GiB = 2 ** 30;
    // 1.5 GiB above the floor, whatever is written (the injected statfs does not see the files)
    const statfs = async (): Promise<{ free: number; total: number }> => ({ free: 3.5 * GiB, total: 100 * GiB });
    const { cache } = await openCache(root, { floor: { bytes: 2 * GiB, percent: 0 }, statfs });
    const a = randomBytes(1000);
    let openGate!: () => void;
    const gate = new Promise<void>((r) => (openGate = r));
    let started!: () => void;
    const aStarted = new Promise<void>((r) => (started = r));
    const first = cache.get(fileKey('sha256', sha256(a)), {
      expectedBytes: GiB,
      produce: async (tmp) => {
        started();
        await gate;
        await writeFile(tmp, a);
      },
    });
    await aStarted;
    const b = producer(randomBytes(1000));
    const second = await cache.get(fileKey('sha256', 'bb'.repeat(32)), { produce: b.produce, expectedBytes: GiB }).catch((e: unknown) => e);
    expect(second).toMatchObject({ code: 'E_CACHE_DISK_FLOOR', message: expect.stringContaining('1024.0 MiB still to come for entries being produced') });
    expect(b.calls).toBe(0);
    openGate();
    expect((await first).cached).toBe(false);
    // the first one is done: its reservation is gone, and the same request now fits
    const c = randomBytes(1000);
    expect((await cache.get(fileKey('sha256', sha256(c)), { produce: producer(c).produce, expectedBytes: GiB })).cached).toBe(false);
  });
});
