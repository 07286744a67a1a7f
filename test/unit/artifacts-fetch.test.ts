// The fetch job (fetchArtifact) against the in-test origin: through a cache a hit sends no request, a miss one;
// --extract-style extraction of a real tar.gz from the cache and without one; a wrong digest fails naming the URL
// and both hashes; without a cache nothing but the result is left in the directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactCache } from '../../agent/artifacts/cache.js';
import { fetchArtifact } from '../../agent/artifacts/fetch.js';
import { AgentError } from '../../agent/errors.js';
import { HttpOrigin, sha256, sha512 } from '../helpers/http-origin.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

describe('fetchArtifact', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bbagent-fetch-'));
  const src = path.join(scratch, 'src');
  mkdirSync(path.join(src, 'tests'), { recursive: true });
  writeFileSync(path.join(src, 'build.bin'), Buffer.alloc(200_000, 7));
  writeFileSync(path.join(src, 'tests', 'run.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const archivePath = path.join(scratch, 'build.tar.gz');
  execFileSync('tar', ['-czf', archivePath, '-C', src, '.']);
  const archive = readFileSync(archivePath);
  const digest = sha256(archive);
  let origin: HttpOrigin;
  let n = 0;
  const fresh = (name: string): string => {
    const d = path.join(scratch, `${name}-${n++}`);
    mkdirSync(d);
    return d;
  };

  beforeAll(async () => {
    origin = await HttpOrigin.start(archive);
  });
  afterAll(async () => {
    await origin.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('through a cache: a miss sends one request, a hit none, and --dest gets a copy', async () => {
    const logger = new RecordingLogger();
    const cache = await ArtifactCache.open({ root: fresh('cache'), floor: { bytes: 0, percent: 0 } });
    try {
      const before = origin.log.length;
      const miss = await fetchArtifact({ url: origin.url('/b.tar.gz'), expected: { algorithm: 'sha256', digest }, cache, logger });
      expect(miss).toMatchObject({ cached: false, attempts: 1, bytes: archive.length, algorithm: 'sha256', digest });
      expect(readFileSync(miss.path).equals(archive)).toBe(true);
      expect(origin.log.length).toBe(before + 1);

      const out = fresh('out');
      const hit = await fetchArtifact({
        url: origin.url('/b.tar.gz'),
        expected: { algorithm: 'sha256', digest },
        cache,
        logger,
        dest: path.join(out, 'b.tar.gz'),
      });
      expect(hit).toMatchObject({ cached: true, attempts: 0, bytes: archive.length, path: path.join(out, 'b.tar.gz') });
      expect(readFileSync(hit.path).equals(archive)).toBe(true);
      expect(readdirSync(out)).toEqual(['b.tar.gz']);
      expect(origin.log.length).toBe(before + 1);
    } finally {
      await cache.close();
    }
  });

  it('extracts a real tar.gz into a directory, from the cache on the second fetch (0 requests)', async () => {
    const cache = await ArtifactCache.open({ root: fresh('cache'), floor: { bytes: 0, percent: 0 } });
    const logger = new RecordingLogger();
    try {
      const first = fresh('x');
      const a = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, cache, logger, extract: path.join(first, 'tree') });
      expect(a.path).toBe(path.join(first, 'tree'));
      expect(readFileSync(path.join(a.path, 'tests', 'run.sh'), 'utf8')).toContain('exit 0');
      const before = origin.log.length;
      const second = fresh('x');
      const b = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, cache, logger, extract: path.join(second, 'tree') });
      expect(b).toMatchObject({ cached: true, attempts: 0 });
      expect(readFileSync(path.join(b.path, 'build.bin')).length).toBe(200_000);
      expect(origin.log.length).toBe(before);
    } finally {
      await cache.close();
    }
  });

  it('without a cache: extracts and leaves nothing but the tree; a plain fetch leaves only the file', async () => {
    const logger = new RecordingLogger();
    const dir = fresh('nocache');
    const r = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha512', digest: sha512(archive) }, logger, extract: path.join(dir, 'tree') });
    expect(r).toMatchObject({ cached: false, attempts: 1, algorithm: 'sha512' });
    expect(readdirSync(dir)).toEqual(['tree']);
    expect(readdirSync(path.join(dir, 'tree')).sort()).toEqual(['build.bin', 'tests']);

    const dir2 = fresh('nocache');
    const f = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, logger, dest: path.join(dir2, 'f') });
    expect(f.path).toBe(path.join(dir2, 'f'));
    expect(readdirSync(dir2)).toEqual(['f']);
  });

  it('a wrong digest fails naming the URL and both hashes, and leaves nothing (cache or not)', async () => {
    const wrong = 'ab'.repeat(32);
    const dir = fresh('bad');
    const logger = new RecordingLogger();
    const err = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest: wrong }, logger, extract: path.join(dir, 'tree') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('E_FETCH_HASH_MISMATCH');
    expect((err as AgentError).message.startsWith(origin.url())).toBe(true);
    expect((err as AgentError).message).toContain(wrong);
    expect((err as AgentError).message).toContain(digest);
    expect(readdirSync(dir)).toEqual([]);

    const cacheRoot = fresh('cache');
    const cache = await ArtifactCache.open({ root: cacheRoot, floor: { bytes: 0, percent: 0 } });
    try {
      const e2 = await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest: wrong }, cache, logger }).catch((e: unknown) => e);
      expect((e2 as AgentError).code).toBe('E_FETCH_HASH_MISMATCH');
    } finally {
      await cache.close();
    }
    expect(readdirSync(cacheRoot).filter((x) => x !== '.tmp')).toEqual([]);
    expect(readdirSync(path.join(cacheRoot, '.tmp'))).toEqual([]);
  });

  it('an extraction error names the URL; a 404 is E_FETCH_HTTP; no destination at all is E_FETCH_DEST', async () => {
    const logger = new RecordingLogger();
    const dir = fresh('exists');
    mkdirSync(path.join(dir, 'tree'));
    writeFileSync(path.join(dir, 'tree', 'keep'), 'x');
    const e1 = (await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, logger, extract: path.join(dir, 'tree') }).catch(
      (e: unknown) => e,
    )) as AgentError;
    expect(e1.code).toBe('E_EXTRACT_TARGET_EXISTS');
    expect(e1.message.startsWith(`${origin.url()}: `)).toBe(true);
    expect(readdirSync(dir)).toEqual(['tree']);

    origin.plan({ kind: 'status', status: 404 });
    const e2 = (await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, logger, dest: path.join(dir, 'f') }).catch(
      (e: unknown) => e,
    )) as AgentError;
    expect(e2.code).toBe('E_FETCH_HTTP');
    expect(e2.message).toContain('404');

    const e3 = (await fetchArtifact({ url: origin.url(), expected: { algorithm: 'sha256', digest }, logger }).catch((e: unknown) => e)) as AgentError;
    expect(e3.code).toBe('E_FETCH_DEST');
  });
});
