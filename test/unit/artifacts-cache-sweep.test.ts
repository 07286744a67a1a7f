// The artifact cache's process lock (one agent process per cache directory) and its start-up sweep (partials,
// temp directories, unmarked entries and unknown files go, with their bytes counted; complete entries stay), and
// the removal of trees with read-only directories by an unprivileged user.
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ArtifactCache, extractedKey, fileKey } from '../../agent/artifacts/cache.js';
import { entryPath, markerPath } from '../../agent/artifacts/cache-key.js';
import { cleanUpAfterEach, openCache, producer, scratch, sha256, treeProducer } from '../helpers/artifacts-cache.js';

cleanUpAfterEach();

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

  it('takeover leftovers: a dead takeover guard is removed and the stale lock taken; the sweep spares live temp locks only', async () => {
    const root = path.join(scratch(), 'cache');
    mkdirSync(root);
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid whose process has exited
    writeFileSync(path.join(root, '.lock'), `${gone}\n`);
    writeFileSync(path.join(root, '.lock.takeover'), `${gone}\n`); // a process killed inside its takeover
    writeFileSync(path.join(root, `.lock.${process.pid}-0123456789ab`), `${process.pid}\n`); // this one's, being created
    writeFileSync(path.join(root, `.lock.takeover.${gone}-0123456789ab`), `${gone}\n`); // a dead one's
    const { cache } = await openCache(root);
    expect(readFileSync(path.join(root, '.lock'), 'utf8')).toBe(`${process.pid}\n`);
    expect(readdirSync(root).sort()).toEqual(['.lock', `.lock.${process.pid}-0123456789ab`, '.tmp']);
    expect(cache.sweepReport.removed).toEqual([
      `cache sweep: removed '.lock.takeover.${gone}-0123456789ab' (${`${gone}\n`.length} bytes): not something the cache writes`,
    ]);
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

const IS_ROOT = process.getuid?.() === 0;
/** The uid and gid of `nobody` on Debian. */
const NOBODY = 65534;

describe.skipIf(!IS_ROOT)('removing trees with read-only directories (as an unprivileged user)', () => {
  it('removeAll makes them writable and removes everything', async () => {
    const dir = scratch();
    chmodSync(dir, 0o755);
    const parent = path.join(dir, 'owned'); // the user's own directory, as the cache's are the agent's
    const tree = path.join(parent, 'tree');
    mkdirSync(path.join(tree, 'ro', 'deeper'), { recursive: true });
    writeFileSync(path.join(tree, 'ro', 'deeper', 'f'), 'x');
    writeFileSync(path.join(tree, 'ro', 'g'), 'y');
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, parent]);
    chmodSync(path.join(tree, 'ro', 'deeper'), 0o555);
    chmodSync(path.join(tree, 'ro'), 0o555);
    const bundle = path.join(dir, 'remove.cjs');
    const out = buildSync({
      stdin: {
        contents: `import { removeAll } from './cache-remove.js'; removeAll(process.argv[2]).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`,
        resolveDir: path.join(__dirname, '..', '..', 'agent', 'artifacts'),
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      write: false,
      logLevel: 'silent',
    });
    writeFileSync(bundle, out.outputFiles[0]!.text);
    // a plain rm -r fails for that user (the reason removeAll exists) ...
    expect(() => execFileSync('rm', ['-rf', tree], { uid: NOBODY, gid: NOBODY, stdio: 'pipe' })).toThrow();
    // ... removeAll does not
    execFileSync(process.execPath, [bundle, tree], { uid: NOBODY, gid: NOBODY, stdio: 'pipe' });
    expect(existsSync(tree)).toBe(false);
  });
});
