// An extracted tree through the cache (getExtractedTree) with an archive made by the real tar program: a tree hit
// downloads nothing, a damaged tree is extracted again from the cached archive without a download, and a damaged
// tree over a damaged archive downloads once more; concurrent requests download and extract once.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { getExtractedTree, type TreeSource } from '../../agent/artifacts/cache-tree.js';

describe('getExtractedTree', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-cache-tree-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const src = path.join(scratch, 'src');
  mkdirSync(path.join(src, 'tests'), { recursive: true });
  writeFileSync(path.join(src, 'build.bin'), Buffer.alloc(100_000, 3));
  writeFileSync(path.join(src, 'tests', 'run.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const archive = path.join(scratch, 'build.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', src, '.']);
  const digest = createHash('sha256').update(readFileSync(archive)).digest('hex');

  const counts = { downloads: 0, extracts: 0 };
  const source: TreeSource = {
    algorithm: 'sha256',
    digest,
    download: async (tmp) => {
      counts.downloads++;
      copyFileSync(archive, tmp);
    },
    extract: async (file, dir) => {
      counts.extracts++;
      execFileSync('tar', ['-xzf', file, '-C', dir]);
    },
  };

  it('extracts once, hits without the archive, re-extracts a damaged tree from the cached archive', async () => {
    const cache = await ArtifactCache.open({ root: path.join(scratch, 'cache'), floor: { bytes: 0, percent: 0 } });
    try {
      const all = await Promise.all(Array.from({ length: 5 }, () => getExtractedTree(cache, source)));
      expect(counts).toEqual({ downloads: 1, extracts: 1 });
      const treeDir = all[0]!.tree.path;
      expect(readFileSync(path.join(treeDir, 'tests', 'run.sh'), 'utf8')).toContain('exit 0');

      const hit = await getExtractedTree(cache, source);
      expect(hit.tree.cached).toBe(true);
      expect(hit.archive).toBeUndefined();
      expect(counts).toEqual({ downloads: 1, extracts: 1 });

      writeFileSync(path.join(treeDir, 'build.bin'), 'damaged');
      const again = await getExtractedTree(cache, source);
      expect(again.tree.verified).toBe('produced');
      expect(again.archive).toMatchObject({ cached: true, verified: 'hash' });
      expect(counts).toEqual({ downloads: 1, extracts: 2 });

      writeFileSync(path.join(treeDir, 'build.bin'), 'damaged');
      writeFileSync(again.archive!.path, 'damaged too');
      const third = await getExtractedTree(cache, source);
      expect(third.archive).toMatchObject({ cached: false });
      expect(counts).toEqual({ downloads: 2, extracts: 3 });
      expect(readFileSync(path.join(treeDir, 'build.bin')).length).toBe(100_000);
    } finally {
      await cache.close();
    }
  });
});
