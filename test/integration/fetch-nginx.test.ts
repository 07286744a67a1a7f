// Fetching through the artifact cache from a real nginx (scripts/harness/nginx.ts), counted from nginx's own
// access log:
// - 10 concurrent fetches of one key in one process (several steps of one agent) are 1 request, for the file and
//   for its extracted tree;
// - 10 concurrent `bbagent fetch --cache DIR --cache-wait` processes sharing one cache directory are 1 request
//   too: the cache is one process's at a time, the others wait for it and then hit;
// - on a small tmpfs, the LRU floor evicts the least recently used entry that no step uses: an entry pinned by two
//   concurrent steps stays until the last of them lets go.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache, fileKey, type CacheKey } from '../../agent/artifacts/cache.js';
import { entryPath } from '../../agent/artifacts/cache-key.js';
import { getExtractedTree } from '../../agent/artifacts/cache-tree.js';
import { download } from '../../agent/artifacts/download.js';
import { extractArchive } from '../../agent/artifacts/extract.js';
import { fetchArtifact } from '../../agent/artifacts/fetch.js';
import { silentLogger } from '../../agent/log.js';
import { BUNDLE } from '../../scripts/harness/bbagent-worker.js';
import { Nginx, findNginx } from '../../scripts/harness/nginx.js';
import { sha256 } from '../helpers/http-origin.js';
import { mountTmpfs, tmpfsSupport, unmount } from '../helpers/tmpfs.js';

const MiB = 1024 * 1024;
const haveNginx = findNginx() !== undefined; // scripts/test installs it (scripts/ensure-nginx)
const TMPFS = tmpfsSupport();
if (!TMPFS.ok) console.warn(`fetch-nginx: skipping the LRU floor test: ${TMPFS.why}`);
const NO_FLOOR = { bytes: 0, percent: 0 };

describe.skipIf(!haveNginx)('fetch through the cache from nginx', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-nginx-'));
  const www = path.join(scratch, 'www');
  let nginx: Nginx;
  let n = 0;
  const fresh = (): string => {
    const d = path.join(scratch, `d${n++}`);
    mkdirSync(d);
    return d;
  };
  /** A file served by nginx under `name`; its digest. */
  const serve = (name: string, bytes: Buffer): string => {
    writeFileSync(path.join(www, name), bytes);
    return sha256(bytes);
  };
  const requestsFor = (uri: string): number => nginx.accessLog().filter((e) => e.uri === uri).length;

  beforeAll(async () => {
    mkdirSync(www);
    nginx = await Nginx.start({ root: www });
  });

  afterAll(async () => {
    await nginx?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('10 concurrent fetches of one key in one process: 1 request in the access log, 10 good copies', async () => {
    const content = randomBytes(4 * MiB);
    const digest = serve('one.bin', content);
    const dir = fresh();
    const cache = await ArtifactCache.open({ root: path.join(dir, 'cache'), floor: NO_FLOOR });
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          fetchArtifact({
            url: nginx.url('/one.bin'),
            expected: { algorithm: 'sha256', digest },
            dest: path.join(dir, `copy${i}`),
            cache,
            env: {},
            logger: silentLogger,
          }),
        ),
      );
      expect(requestsFor('/one.bin')).toBe(1);
      expect(results.reduce((sum, r) => sum + r.attempts, 0)).toBe(1); // the 9 others shared the one download
      for (const r of results) expect(readFileSync(r.path).equals(content)).toBe(true);
      // and a later fetch is a hit: still 1 request
      const hit = await fetchArtifact({ url: nginx.url('/one.bin'), expected: { algorithm: 'sha256', digest }, cache, env: {}, logger: silentLogger });
      expect(hit).toMatchObject({ cached: true, attempts: 0 });
      expect(requestsFor('/one.bin')).toBe(1);
    } finally {
      await cache.close();
    }
  });

  it('10 concurrent steps asking for one extracted tree: 1 request, 1 extraction, one tree for all', async () => {
    const src = fresh();
    for (let i = 0; i < 5; i++) writeFileSync(path.join(src, `t${i}.bin`), randomBytes(200_000));
    const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.'], { maxBuffer: 1 << 26 });
    const digest = serve('tree.tar.gz', tgz);
    const dir = fresh();
    const cache = await ArtifactCache.open({ root: path.join(dir, 'cache'), floor: NO_FLOOR });
    let extractions = 0;
    const url = nginx.url('/tree.tar.gz');
    try {
      const trees = await Promise.all(
        Array.from({ length: 10 }, () =>
          getExtractedTree(cache, {
            algorithm: 'sha256',
            digest,
            download: async (tmp) => ({
              digest: (await download({ url, expected: { algorithm: 'sha256', digest }, dest: tmp, logger: silentLogger, env: {} })).digest,
            }),
            extract: async (archive, into) => {
              extractions++;
              await extractArchive(archive, into, { logger: silentLogger });
            },
          }),
        ),
      );
      expect(requestsFor('/tree.tar.gz')).toBe(1);
      expect(extractions).toBe(1);
      expect(new Set(trees.map((t) => t.tree.path)).size).toBe(1);
      expect(readdirSync(trees[0]!.tree.path).sort()).toEqual(['t0.bin', 't1.bin', 't2.bin', 't3.bin', 't4.bin']);
    } finally {
      await cache.close();
    }
  });

  it.each([
    ['a cache directory nobody holds', false],
    ['the stale lock of a process killed -9', true],
  ])('10 concurrent bbagent fetch processes sharing one cache directory with --cache-wait (%s): 1 request, 9 hits', async (_, stale) => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "node scripts/build.mjs" first`);
    const content = randomBytes(2 * MiB);
    const uri = `/shared-${stale ? 'stale' : 'free'}.bin`;
    const digest = serve(uri.slice(1), content);
    const dir = fresh();
    if (stale) {
      // the lock of a process that is gone: all 10 find it stale at once, and exactly one may take it over
      const gone = spawnSync(process.execPath, ['-e', '0']).pid;
      mkdirSync(path.join(dir, 'cache'));
      writeFileSync(path.join(dir, 'cache', '.lock'), `${gone}\n`);
    }
    const run = (i: number): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const args = [BUNDLE, 'fetch', nginx.url(uri), '--sha256', digest, '--cache', 'cache', '--cache-wait', '60', '--dest', `out${i}`, '--json'];
        const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000 });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => run(i)));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const results = runs.map((r) => JSON.parse(r.stdout) as { cached: boolean; attempts: number; path: string });
    expect(requestsFor(uri)).toBe(1);
    expect(results.filter((r) => !r.cached)).toHaveLength(1);
    for (const r of results) expect(readFileSync(r.path).equals(content)).toBe(true);
    expect(readdirSync(path.join(dir, 'cache')).sort()).toEqual(['.tmp', 'sha256']); // no lock left behind
  });

  describe.skipIf(!TMPFS.ok)('on a small tmpfs', () => {
    it('the floor evicts the least recently used entry no step uses; one pinned by two steps stays until both let go', async () => {
      const root = path.join(fresh(), 'cache');
      mountTmpfs(root, 8 * MiB);
      const blobs = new Map<string, { digest: string; key: CacheKey }>();
      for (const name of ['A', 'B', 'C']) {
        const digest = serve(`${name}.bin`, randomBytes(2 * MiB));
        blobs.set(name, { digest, key: fileKey('sha256', digest) });
      }
      const cache = await ArtifactCache.open({ root, floor: { bytes: 3 * MiB, percent: 0 } });
      const fetch = (name: string) =>
        fetchArtifact({
          url: nginx.url(`/${name}.bin`),
          expected: { algorithm: 'sha256', digest: blobs.get(name)!.digest },
          cache,
          env: {},
          logger: silentLogger,
        });
      const present = (): string[] => [...blobs].filter(([, b]) => existsSync(entryPath(root, b.key))).map(([name]) => name);
      try {
        // two steps use A at once (each holds a lease for its duration, as the remote command does): 1 request
        const [step1, step2] = await Promise.all([cache.acquire(blobs.get('A')!.key), cache.acquire(blobs.get('A')!.key)]);
        await Promise.all([fetch('A'), fetch('A')]);
        await fetch('B'); // 4 MiB used of 8: still above the 3 MiB floor
        expect(present()).toEqual(['A', 'B']);
        step1.release();
        // C takes free space under the floor: A is the oldest but step 2 still uses it, so B goes
        await fetch('C');
        expect(present()).toEqual(['A', 'C']);
        step2.release();
        // B again: now A, unused and the oldest, goes
        await fetch('B');
        expect(present()).toEqual(['B', 'C']);
        expect(['A', 'B', 'C'].map((x) => requestsFor(`/${x}.bin`))).toEqual([1, 2, 1]);
      } finally {
        await cache.close();
        unmount(root);
      }
    });
  });
});
