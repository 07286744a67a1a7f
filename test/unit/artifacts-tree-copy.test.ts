// fetch --cache --extract hands a build a copy of the cache's extracted tree (tree-copy.ts): the copy equals a
// fresh extraction of the archive (modes, symlinks, mtimes, content), is the build's to write into without
// touching the cache, a tampered cached tree is caught by the full check and made again, and copyTree itself
// refuses an occupied target, a link out of the tree, and an abort, leaving nothing at the target.
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache, extractedKey } from '../../agent/artifacts/cache.js';
import { entryPath } from '../../agent/artifacts/cache-key.js';
import { extractArchive } from '../../agent/artifacts/extract.js';
import { fetchArtifact, type FetchOptions } from '../../agent/artifacts/fetch.js';
import { copyTree } from '../../agent/artifacts/tree-copy.js';
import { describeTree, makeTree, type TreeEntry } from '../helpers/archives.js';
import { HttpOrigin, sha256 } from '../helpers/http-origin.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const NO_FLOOR = { bytes: 0, percent: 0 };

/** A tree's description without inode numbers (the copy's hardlinked members are separate files). */
function shape(root: string): Record<string, Omit<TreeEntry, 'ino'>> {
  const out: Record<string, Omit<TreeEntry, 'ino'>> = {};
  for (const [rel, e] of describeTree(root)) {
    const { ino: _ino, ...rest } = e;
    out[rel] = rest;
  }
  return out;
}

describe('fetch through the cached tree', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-tree-copy-'));
  const archivePath = path.join(scratch, 'build.tar.gz');
  let archive: Buffer;
  let digest: string;
  let reference: Record<string, Omit<TreeEntry, 'ino'>>;
  let origin: HttpOrigin;
  let n = 0;
  const fresh = (name: string): string => path.join(scratch, `${name}-${n++}`);

  beforeAll(async () => {
    const src = makeTree(path.join(scratch, 'src'));
    execFileSync('tar', ['-czf', archivePath, '-C', src, '.']);
    archive = readFileSync(archivePath);
    digest = sha256(archive);
    // what extraction gives (modes less 0o022, no setuid, the archive's mtimes): the copy must give the same
    const direct = fresh('direct');
    await extractArchive(archivePath, direct, { logger: new RecordingLogger() });
    reference = shape(direct);
    origin = await HttpOrigin.start(archive);
  });
  afterAll(async () => {
    await origin.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const fetchInto = (cache: ArtifactCache, extract: string, extra: Partial<FetchOptions> = {}) =>
    fetchArtifact({ url: origin.url('/build.tar.gz'), expected: { algorithm: 'sha256', digest }, cache, extract, logger: new RecordingLogger(), ...extra });

  it('a hit copies the cached tree: equal to an extraction, no request, and the build may write into it', async () => {
    const root = fresh('cache');
    const cache = await ArtifactCache.open({ root, floor: NO_FLOOR });
    try {
      const before = origin.log.length;
      const miss = await fetchInto(cache, fresh('build'));
      expect(miss).toMatchObject({ cached: false, treeCached: false, attempts: 1, bytes: archive.length });
      expect(shape(miss.path)).toEqual(reference);
      // an archive's first use caches the archive only; its second caches the tree (from the cached archive)
      expect(existsSync(entryPath(root, extractedKey('sha256', digest)))).toBe(false);
      const second = await fetchInto(cache, fresh('build'));
      expect(second).toMatchObject({ cached: true, treeCached: false, attempts: 0 });
      expect(shape(second.path)).toEqual(reference);

      const build = fresh('build');
      const hit = await fetchInto(cache, build);
      expect(hit).toMatchObject({ path: build, cached: true, treeCached: true, attempts: 0, bytes: archive.length });
      expect(origin.log.length).toBe(before + 1);
      expect(shape(build)).toEqual(reference);
      expect(readdirSync(path.dirname(build)).filter((f) => f.startsWith(path.basename(build)))).toEqual([path.basename(build)]);

      // the build writes, chmods, adds and removes in its copy: the cache's tree is not the copy
      const cachedTree = entryPath(root, extractedKey('sha256', digest));
      const cachedBefore = shape(cachedTree);
      appendFileSync(path.join(build, 'README.md'), 'written by the build\n');
      chmodSync(path.join(build, 'bin', 'run.sh'), 0o700);
      writeFileSync(path.join(build, 'lib', 'new.pyc'), 'x');
      rmSync(path.join(build, 'big.bin'));
      expect(shape(cachedTree)).toEqual(cachedBefore);
    } finally {
      await cache.close();
    }
    // and a full check in a new process's cache (no fast path: a full re-hash) still finds the tree whole
    const again = await ArtifactCache.open({ root, floor: NO_FLOOR });
    try {
      const before = origin.log.length;
      const build = fresh('build');
      const hit = await fetchInto(again, build);
      expect(hit).toMatchObject({ treeCached: true, attempts: 0 });
      expect(shape(build)).toEqual(reference);
      expect(origin.log.length).toBe(before);
    } finally {
      await again.close();
    }
  });

  it("a tampered cached tree is caught by the full check (an agent's first hit) and made again from the cached archive", async () => {
    const root = fresh('cache');
    const first = await ArtifactCache.open({ root, floor: NO_FLOOR, fastPath: true });
    // the second use caches the tree
    await fetchInto(first, fresh('build'))
      .then(() => fetchInto(first, fresh('build')))
      .finally(() => first.close());
    const readme = path.join(entryPath(root, extractedKey('sha256', digest)), 'README.md');
    // same size, mtime put back: only the content differs
    writeFileSync(readme, 'HELLO\n');
    utimesSync(readme, 1_500_000_000, 1_500_000_000);
    // a new agent process: its first hit of the entry is a full check even with the fast path on
    const logger = new RecordingLogger();
    const cache = await ArtifactCache.open({ root, floor: NO_FLOOR, fastPath: true, logger });
    try {
      const before = origin.log.length;
      const build = fresh('build');
      const r = await fetchInto(cache, build);
      expect(r).toMatchObject({ treeCached: false, cached: true, attempts: 0 });
      expect(logger.lines.some((l) => /failed verification \('README\.md': content changed\)/.test(l))).toBe(true);
      expect(shape(build)).toEqual(reference);
      expect(readFileSync(readme, 'utf8')).toBe('hello\n');
      expect(origin.log.length).toBe(before);
      // the tree made again is trusted again
      expect((await fetchInto(cache, fresh('build'))).treeCached).toBe(true);
    } finally {
      await cache.close();
    }
  });

  it('link: the build gets a symlink to the cached tree, which stays pinned against eviction', async () => {
    const root = fresh('cache');
    const roomy = await ArtifactCache.open({ root, floor: NO_FLOOR });
    const build = fresh('build');
    try {
      const r = await fetchInto(roomy, build, { link: true });
      expect(r).toMatchObject({ path: build, linked: true, treeCached: false, attempts: 1 });
      const tree = entryPath(root, extractedKey('sha256', digest));
      expect(readlinkSync(build)).toBe(tree);
      expect(shape(build + '/')).toEqual(reference);
      // pinned: an eviction to an unreachable floor takes the archive, not the linked tree
      await expect(roomy.evictToFloor(Number.MAX_SAFE_INTEGER)).rejects.toMatchObject({ code: 'E_CACHE_DISK_FLOOR' });
      expect(roomy.entries().map((e) => e.key.kind)).toEqual(['extracted']);
      const again = await fetchInto(roomy, fresh('build'), { link: true });
      expect(again).toMatchObject({ linked: true, treeCached: true, cached: true, attempts: 0 });
    } finally {
      await roomy.close();
    }
    await expect(
      fetchArtifact({
        url: origin.url('/build.tar.gz'),
        expected: { algorithm: 'sha256', digest },
        dest: fresh('x'),
        link: true,
        logger: new RecordingLogger(),
      }),
    ).rejects.toMatchObject({ code: 'E_FETCH_DEST' });
  });

  it('a tampered tree is caught on a cache without the fast path too (every hit re-hashes)', async () => {
    const root = fresh('cache');
    const cache = await ArtifactCache.open({ root, floor: NO_FLOOR });
    try {
      await fetchInto(cache, fresh('build'));
      await fetchInto(cache, fresh('build'));
      expect((await fetchInto(cache, fresh('build'))).treeCached).toBe(true);
      const leaf = path.join(entryPath(root, extractedKey('sha256', digest)), 'lib', 'deep', 'deeper', 'leaf.txt');
      writeFileSync(leaf, 'LEAF\n');
      const build = fresh('build');
      const r = await fetchInto(cache, build);
      expect(r.treeCached).toBe(false);
      expect(shape(build)).toEqual(reference);
    } finally {
      await cache.close();
    }
  });
});

describe('extraction with hashFiles (the manifest of a cached tree without a second read)', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-hash-files-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.each(['tar.gz', 'zip'])('gives each regular file of a %s its sha256; hardlinked members are left to the manifest', async (kind) => {
    const src = makeTree(path.join(scratch, `src-${kind}`));
    const archivePath = path.join(scratch, `a.${kind}`);
    if (kind === 'zip') execFileSync('zip', ['-q', '-r', '--symlinks', archivePath, '.'], { cwd: src });
    else execFileSync('tar', ['-czf', archivePath, '-C', src, '.']);
    const out = path.join(scratch, `out-${kind}`);
    const r = await extractArchive(archivePath, out, { logger: new RecordingLogger(), hashFiles: true });
    const files = [...describeTree(out)].filter(([, e]) => e.kind === 'file');
    expect(r.fileHashes?.size).toBeGreaterThan(5);
    for (const [rel, hex] of r.fileHashes ?? []) expect(hex, rel).toBe(sha256(readFileSync(path.join(out, rel))));
    // every file but the second name of the hardlink pair (tar stores it as a link; zip as a second copy)
    expect(r.fileHashes?.size).toBe(kind === 'zip' ? files.length : files.length - 1);
  });
});

describe('copyTree', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-copy-tree-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('refuses an occupied target and a link out of the tree, leaving no temp directory', async () => {
    const src = path.join(scratch, 'src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'sub', 'a.txt'), 'a');
    const occupied = path.join(scratch, 'occupied');
    mkdirSync(occupied);
    writeFileSync(path.join(occupied, 'mine'), 'mine');
    await expect(copyTree(src, occupied)).rejects.toMatchObject({ code: 'E_EXTRACT_TARGET_EXISTS' });
    expect(readdirSync(occupied)).toEqual(['mine']);

    symlinkSync('../../outside', path.join(src, 'sub', 'escape'));
    const target = path.join(scratch, 'target');
    await expect(copyTree(src, target)).rejects.toMatchObject({ code: 'E_EXTRACT_UNSAFE', message: expect.stringContaining('escape') });
    expect(readdirSync(scratch).sort()).toEqual(['occupied', 'src']);
  });

  it('an aborted copy leaves nothing at the target', async () => {
    const src = path.join(scratch, 'many');
    mkdirSync(src);
    for (let i = 0; i < 200; i++) writeFileSync(path.join(src, `f${i}`), String(i));
    const abort = new AbortController();
    const target = path.join(scratch, 'aborted');
    const copying = copyTree(src, target, { signal: abort.signal });
    abort.abort();
    await expect(copying).rejects.toMatchObject({ code: 'E_FETCH_ABORTED' });
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(scratch).filter((f) => f.startsWith('aborted'))).toEqual([]);
  });
});
