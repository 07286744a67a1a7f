// The artifact cache on real files: a hit runs no produce and is re-verified (hash for a file, manifest for a
// tree, fingerprint on the opt-in fast path), a corrupted entry is removed and produced again, concurrent gets
// share one produce and its error, a bad produce publishes nothing, the process lock, and the start-up sweep.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ArtifactCache, extractedKey, fileKey, type CacheOptions } from '../../agent/artifacts/cache.js';
import { entryPath, markerPath } from '../../agent/artifacts/cache-key.js';
import { Singleflight } from '../../agent/artifacts/cache-singleflight.js';
import { AGENT_OWNED_DIRS } from '../../agent/layout.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** No floor: these tests are not about disk space (the LRU tests are, on a tmpfs). */
const NO_FLOOR = { bytes: 0, percent: 0 };

const opened: ArtifactCache[] = [];
const scratches: string[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) await c.close();
  for (const d of scratches.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cache-'));
  scratches.push(d);
  return d;
}

async function openCache(root: string, extra: Partial<CacheOptions> = {}): Promise<{ cache: ArtifactCache; log: RecordingLogger }> {
  const log = new RecordingLogger();
  const cache = await ArtifactCache.open({ root, logger: log, floor: NO_FLOOR, ...extra });
  opened.push(cache);
  return { cache, log };
}

/** A produce that writes `content` and counts its calls. */
function producer(content: Buffer): { calls: number; produce: (p: string) => Promise<void> } {
  const p = {
    calls: 0,
    produce: async (tmp: string) => {
      p.calls++;
      await writeFile(tmp, content);
    },
  };
  return p;
}

function flipByte(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = b[at]! ^ 0xff;
  writeFileSync(file, b);
}

describe('artifact cache: files', () => {
  it('is an agent-owned BASEDIR directory (never removed by --delete-leftover-dirs)', () => {
    expect(AGENT_OWNED_DIRS).toContain('cache');
  });

  it('a hit calls produce 0 times and re-verifies the hash', async () => {
    const { cache, log } = await openCache(path.join(scratch(), 'cache'));
    const content = randomBytes(300_000);
    const key = fileKey('sha256', sha256(content));
    const p = producer(content);
    const first = await cache.get(key, { produce: p.produce });
    expect(first).toMatchObject({ cached: false, verified: 'produced', bytes: content.length });
    const again = await cache.get(key, { produce: p.produce });
    expect(again).toMatchObject({ cached: true, verified: 'hash', path: first.path });
    expect(p.calls).toBe(1);
    expect(readFileSync(again.path).equals(content)).toBe(true);
    expect(log.lines.some((l) => l.startsWith('info cache: hit sha256:'))).toBe(true);
  });

  it('detects a flipped byte on a hit, removes the entry and produces it again', async () => {
    const { cache, log } = await openCache(path.join(scratch(), 'cache'));
    const content = randomBytes(100_000);
    const key = fileKey('sha256', sha256(content));
    const p = producer(content);
    const { path: file } = await cache.get(key, { produce: p.produce });
    flipByte(file, 54_321);
    const r = await cache.get(key, { produce: p.produce });
    expect(r).toMatchObject({ cached: false, verified: 'produced' });
    expect(p.calls).toBe(2);
    expect(readFileSync(file).equals(content)).toBe(true);
    expect(log.lines.some((l) => l.startsWith('warn ') && l.includes('failed verification'))).toBe(true);
  });

  it('sha512 keys, and a digest given by produce saves the second read', async () => {
    const { cache } = await openCache(path.join(scratch(), 'cache'));
    const content = randomBytes(5000);
    const digest = createHash('sha512').update(content).digest('hex');
    const key = fileKey('sha512', digest.toUpperCase());
    const r = await cache.get(key, { produce: async (tmp) => (await writeFile(tmp, content), { digest }) });
    expect(r.path.split(path.sep).slice(-3)).toEqual(['sha512', digest.slice(0, 2), digest]);
    expect((await cache.get(key, { produce: () => Promise.reject(new Error('not called')) })).cached).toBe(true);
  });

  it('10 concurrent gets of one key run 1 produce and all get its entry', async () => {
    const { cache } = await openCache(path.join(scratch(), 'cache'));
    const content = randomBytes(200_000);
    const key = fileKey('sha256', sha256(content));
    const p = producer(content);
    const results = await Promise.all(Array.from({ length: 10 }, () => cache.get(key, { produce: p.produce })));
    expect(p.calls).toBe(1);
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
  });

  it('a failing produce gives every waiter its error, and the next get tries again', async () => {
    const { cache } = await openCache(path.join(scratch(), 'cache'));
    const content = randomBytes(1000);
    const key = fileKey('sha256', sha256(content));
    let calls = 0;
    const failing = async (): Promise<void> => {
      calls++;
      throw new Error('503 from the server');
    };
    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => cache.get(key, { produce: failing })));
    expect(calls).toBe(1);
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === '503 from the server')).toBe(true);
    const p = producer(content);
    expect((await cache.get(key, { produce: p.produce })).cached).toBe(false);
    expect(p.calls).toBe(1);
  });

  it('a produced file whose hash is not the key is refused and nothing is left', async () => {
    const root = path.join(scratch(), 'cache');
    const { cache } = await openCache(root);
    const key = fileKey('sha256', sha256(Buffer.from('expected')));
    await expect(cache.get(key, { produce: (tmp) => writeFile(tmp, 'something else') })).rejects.toMatchObject({
      code: 'E_CACHE_HASH_MISMATCH',
      message: expect.stringContaining(sha256(Buffer.from('something else'))),
    });
    await expect(cache.get(key, { produce: async () => {} })).rejects.toMatchObject({ code: 'E_CACHE_PRODUCE' });
    expect(readdirSync(path.join(root, '.tmp'))).toEqual([]);
    expect(existsSync(entryPath(root, key))).toBe(false);
    expect(cache.entries()).toEqual([]);
  });

  it('refuses malformed keys', () => {
    expect(() => fileKey('md5', 'ab')).toThrow(expect.objectContaining({ code: 'E_CACHE_KEY' }));
    expect(() => fileKey('sha256', 'zz'.repeat(32))).toThrow(expect.objectContaining({ code: 'E_CACHE_KEY' }));
    expect(() => fileKey('sha256', 'ab'.repeat(31))).toThrow(/64 hex digits/);
  });

  it('fast path: a full re-hash on the first hit and every N hits; a rewrite in place is still caught', async () => {
    const { cache } = await openCache(path.join(scratch(), 'cache'), { fastPath: { rehashEvery: 3 } });
    const content = randomBytes(50_000);
    const key = fileKey('sha256', sha256(content));
    const p = producer(content);
    const { path: file } = await cache.get(key, { produce: p.produce });
    const how: string[] = [];
    for (let i = 0; i < 6; i++) how.push((await cache.get(key, { produce: p.produce })).verified);
    // just produced: known good, so fingerprints until the 3rd, then a re-hash, and so on
    expect(how).toEqual(['fingerprint', 'fingerprint', 'fingerprint', 'hash', 'fingerprint', 'fingerprint']);
    flipByte(file, 7); // same size, new mtime/ctime: the fingerprint differs
    expect((await cache.get(key, { produce: p.produce })).verified).toBe('produced');
    expect(p.calls).toBe(2);
  });

  it('after a restart the first hit re-hashes even with the fast path on', async () => {
    const root = path.join(scratch(), 'cache');
    const first = await openCache(root, { fastPath: true });
    const content = randomBytes(10_000);
    const key = fileKey('sha256', sha256(content));
    await first.cache.get(key, { produce: producer(content).produce });
    await first.cache.close();
    const { cache } = await openCache(root, { fastPath: true });
    expect((await cache.get(key, { produce: producer(content).produce })).verified).toBe('hash');
    expect((await cache.get(key, { produce: producer(content).produce })).verified).toBe('fingerprint');
  });
});

/** A produce for a tree: a few files, a subdirectory, a relative link; counts its calls. */
function treeProducer(): { calls: number; produce: (dir: string) => Promise<void> } {
  const p = {
    calls: 0,
    produce: async (dir: string) => {
      p.calls++;
      mkdirSync(path.join(dir, 'bin'));
      writeFileSync(path.join(dir, 'bin', 'run'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      writeFileSync(path.join(dir, 'data.bin'), Buffer.alloc(40_000, 7));
      symlinkSync('bin/run', path.join(dir, 'run'));
    },
  };
  return p;
}

describe('artifact cache: extracted trees', () => {
  const key = extractedKey('sha256', 'ab'.repeat(32));

  it('a hit checks the manifest and runs no produce', async () => {
    const { cache } = await openCache(path.join(scratch(), 'cache'));
    const p = treeProducer();
    const r = await cache.get(key, { produce: p.produce });
    expect(r.path.endsWith('.extracted')).toBe(true);
    expect(r.bytes).toBe(40_000 + 18);
    expect(await cache.get(key, { produce: p.produce })).toMatchObject({ cached: true, verified: 'hash' });
    expect(p.calls).toBe(1);
  });

  const changes: [string, (dir: string) => void][] = [
    ['a changed byte', (dir) => flipByte(path.join(dir, 'data.bin'), 100)],
    ['an added file', (dir) => writeFileSync(path.join(dir, 'bin', 'extra.pyc'), 'x')],
    ['a removed file', (dir) => rmSync(path.join(dir, 'bin', 'run'))],
    ['a changed mode', (dir) => chmodSync(path.join(dir, 'bin', 'run'), 0o700)],
  ];
  it.each(changes)('%s is found on the next hit and the tree is produced again', async (_name, change) => {
    const { cache, log } = await openCache(path.join(scratch(), 'cache'));
    const p = treeProducer();
    const { path: dir } = await cache.get(key, { produce: p.produce });
    change(dir);
    expect((await cache.get(key, { produce: p.produce })).verified).toBe('produced');
    expect(p.calls).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['bin', 'data.bin', 'run']);
    expect(log.lines.some((l) => l.includes('failed verification'))).toBe(true);
  });
});

describe('artifact cache: process lock', () => {
  it('a second open of one root fails with E_CACHE_LOCKED, in this process or while another live process holds it', async () => {
    const root = path.join(scratch(), 'cache');
    const { cache } = await openCache(root);
    await expect(ArtifactCache.open({ root })).rejects.toMatchObject({ code: 'E_CACHE_LOCKED' });
    await cache.close();
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(root, '.lock'), `${sleeper.pid}\n`);
      await expect(ArtifactCache.open({ root })).rejects.toMatchObject({ code: 'E_CACHE_LOCKED', message: expect.stringContaining(`process ${sleeper.pid}`) });
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    // its holder is gone (as after kill -9): the lock is taken over
    const again = await openCache(root);
    expect(readFileSync(path.join(root, '.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await again.cache.close();
    expect(existsSync(path.join(root, '.lock'))).toBe(false);
  });
});

describe('artifact cache: start-up sweep', () => {
  it('removes partials, temp dirs, unmarked entries and unknown files, counts their bytes, keeps verified entries', async () => {
    const root = path.join(scratch(), 'cache');
    const first = await openCache(root);
    const content = randomBytes(20_000);
    const key = fileKey('sha256', sha256(content));
    await first.cache.get(key, { produce: producer(content).produce });
    const tree = extractedKey('sha256', sha256(content));
    await first.cache.get(tree, { produce: treeProducer().produce });
    await first.cache.close();

    const junk: [string, number][] = [];
    const put = (rel: string, bytes: number): void => {
      mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      writeFileSync(path.join(root, rel), Buffer.alloc(bytes, 1));
      junk.push([rel, bytes]);
    };
    put('.tmp/123-abc.part', 1000); // a partial download
    put('.tmp/123-def.tree/a/b/file', 2000); // a tree being extracted
    put('.tmp/123-0ff.marker', 30); // a marker being written
    const unmarked = 'cd'.repeat(32);
    put(`sha256/cd/${unmarked}`, 4000); // renamed into place, killed before its marker
    put(`sha256/cd/${unmarked}.extracted/x`, 500); // the same, for a tree
    put(`sha256/ef/${'ef'.repeat(32)}.complete`, 60); // a marker whose data is gone
    put('sha256/zz/whatever', 70); // not a prefix
    put('sha256/ab/not-a-digest', 80);
    put('sha1/ab/old', 90); // an algorithm the cache does not use
    put('stray.txt', 100);
    // an entry whose marker records another size (a truncated file, say)
    const other = randomBytes(3000);
    const otherKey = fileKey('sha256', sha256(other));
    put(path.relative(root, entryPath(root, otherKey)), 2999);
    writeFileSync(markerPath(root, otherKey), JSON.stringify({ v: 1, key: `sha256:${otherKey.digest}`, bytes: 3000, publishedAt: '' }));

    const markerBytes = readFileSync(markerPath(root, otherKey)).length;
    const { cache, log } = await openCache(root);
    const report = cache.sweepReport;
    expect(report.removedBytes).toBe(junk.reduce((s, [, b]) => s + b, 0) + markerBytes);
    expect(report.entries.map((e) => e.key)).toEqual(expect.arrayContaining([key, tree]));
    expect(report.entries).toHaveLength(2);
    for (const [rel] of junk) expect(existsSync(path.join(root, rel))).toBe(false);
    expect(readdirSync(path.join(root, '.tmp'))).toEqual([]);
    expect(readdirSync(root).sort()).toEqual(['.lock', '.tmp', 'sha256']);
    expect(log.lines.some((l) => /removed \d+ items \(\d+ bytes\); kept 2 entries/.test(l))).toBe(true);
    const none = async (): Promise<void> => {
      throw new Error('produce must not run');
    };
    expect((await cache.get(key, { produce: none })).cached).toBe(true);
    expect((await cache.get(tree, { produce: none })).cached).toBe(true);
  });
});

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

describe('Singleflight', () => {
  it('frees the key even when fn throws synchronously, and shares one call per wave', async () => {
    const sf = new Singleflight<number>();
    let calls = 0;
    const boom = (): Promise<number> => {
      calls++;
      throw new Error('sync');
    };
    const a = sf.do('k', boom);
    const b = sf.do('k', boom);
    expect([a.shared, b.shared]).toEqual([false, true]);
    await expect(a.promise).rejects.toThrow('sync');
    await expect(b.promise).rejects.toThrow('sync');
    expect(calls).toBe(1);
    expect(sf.has('k')).toBe(false);
    expect(await sf.do('k', async () => 7).promise).toBe(7);
  });
});
