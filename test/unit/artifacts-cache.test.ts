// The artifact cache on real files: a hit runs no produce and is re-verified (hash for a file, manifest for a
// tree, fingerprint on the opt-in fast path), a corrupted entry is removed and produced again, concurrent gets
// share one produce and its error, and a bad produce publishes nothing.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { extractedKey, fileKey } from '../../agent/artifacts/cache.js';
import { entryPath } from '../../agent/artifacts/cache-key.js';
import { Singleflight } from '../../agent/artifacts/cache-singleflight.js';
import { hashFile } from '../../agent/artifacts/cache-verify.js';
import { AGENT_OWNED_DIRS } from '../../agent/layout.js';
import { cleanUpAfterEach, flipByte, openCache, producer, scratch, sha256, treeProducer } from '../helpers/artifacts-cache.js';

cleanUpAfterEach();

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

describe('hashFile', () => {
  it('matches a one-shot hash at every size around its read-buffer boundary', async () => {
    const dir = scratch();
    const MiB4 = 4 * 1024 * 1024;
    const big = randomBytes(2 * MiB4 + 1);
    for (const size of [0, 1, 1000, MiB4 - 1, MiB4, MiB4 + 1, 2 * MiB4, 2 * MiB4 + 1]) {
      const file = path.join(dir, `f${size}`);
      writeFileSync(file, big.subarray(0, size));
      for (const algo of ['sha256', 'sha512'] as const) {
        expect(await hashFile(file, algo), `${algo} of ${size} bytes`).toBe(createHash(algo).update(big.subarray(0, size)).digest('hex'));
      }
    }
  });
});
