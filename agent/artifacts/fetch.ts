// The fetch job: one URL, verified, through the cache when there is one, and optionally extracted. It composes
// the downloader (download.ts), the cache (cache.ts) and extraction (extract.ts); it is what `bbagent fetch` runs
// and what the `fetch` remote command runs.
//
// Where the result lands (`FetchResult.path`):
// - `extract: DIR`: the archive's tree in DIR (made atomically; DIR must not exist or be empty). With a cache the
//   tree is the cache's extracted tree (cache-tree.ts: a tree hit verifies the tree's manifest and needs neither
//   the archive nor the network), copied into DIR (tree-copy.ts: reflinks where the file system has them); a tree
//   miss extracts the cached (or downloaded) archive into the cache first. The tree is cached from the archive's
//   second use on: an archive the cache has never seen is downloaded into the cache and extracted straight into
//   DIR (a one-shot archive costs neither a copy nor the tree's disk space). Without a cache the archive is
//   downloaded to a temp file beside DIR, extracted, and removed. Either way the tree in DIR is the caller's to
//   write into: the cache's own tree is never handed out, unless the caller opts in with `link`: then DIR is
//   made a symlink to the cache's tree (no copy: the hit costs the tree's check), which is read-only (a write is
//   found by the next check, and the tree made again under any other build using it) and pinned for LINK_PIN_MS.
// - `dest: PATH`: the file at PATH. With a cache it is copied from the cache entry (temp name, fsync, rename);
//   without one it is downloaded there directly.
// - neither, with a cache: the cache entry itself. It is read-only: a change is found on the next hit and the
//   entry fetched again.
// Temp names carry the pid: what a killed fetch leaves beside `dest` or `extract` is removed by the next fetch
// there (fetch-sweep.ts).
// Errors are AgentErrors whose message starts with the URL (codes of download.ts, cache.ts and extract.ts, plus
// E_FETCH_DEST when there is nowhere to put the file).

import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { publishFile } from '../fs/publish-file.js';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ArtifactCache, CacheResult } from './cache.js';
import { extractedKey, fileKey } from './cache-key.js';
import { getExtractedTree } from './cache-tree.js';
import { copyTree, linkTree } from './tree-copy.js';
import { download, type DownloadResult, type ExpectedDigest, type ProgressCallback, type ProxyEnv } from './download.js';
import { extractArchive } from './extract.js';
import { sweepFetchLeftovers } from './fetch-sweep.js';
import { checkDigest, type DigestAlgorithm } from './hashing.js';

export interface FetchOptions {
  url: string;
  expected: ExpectedDigest;
  /** The file to create or replace (its directory must exist). */
  dest?: string;
  /** Extract the archive into this directory instead (it must not exist, or be empty). */
  extract?: string;
  /** Fetch through this cache (a hit sends no request). */
  cache?: ArtifactCache;
  /**
   * With `extract` and a cache: make `extract` a symlink to the cache's tree instead of a copy (opt-in, read-only:
   * see the module comment). The tree stays pinned against eviction for LINK_PIN_MS after each such fetch.
   */
  link?: boolean;
  env?: ProxyEnv;
  logger: Logger;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** The file, or the extracted directory. */
  path: string;
  algorithm: DigestAlgorithm;
  digest: string;
  /** Bytes of the downloaded (or cached) file. */
  bytes: number;
  /** The file came from the cache: no request was sent. */
  cached: boolean;
  /** Requests made (0 on a cache hit). */
  attempts: number;
  /** With `extract` and a cache: the cache's extracted tree was a hit (copied, not extracted). */
  treeCached?: boolean;
  /** With `link`: `path` is a symlink to the cache's tree. */
  linked?: boolean;
  seconds: number;
}

/** Fetches `opts.url` as the module comment describes. */
export async function fetchArtifact(opts: FetchOptions): Promise<FetchResult> {
  const started = performance.now();
  try {
    const expected = checkDigest(opts.expected);
    if (opts.dest !== undefined && opts.extract !== undefined) {
      throw new AgentError('E_FETCH_DEST', `${opts.url}: give a destination file or a directory to extract into, not both`);
    }
    if (opts.link && (opts.extract === undefined || !opts.cache)) {
      throw new AgentError('E_FETCH_DEST', `${opts.url}: link needs a directory to extract into and a cache (it links to the cache's tree)`);
    }
    // what a killed fetch to the same place left (partial files, temp trees) goes first
    const target = opts.extract ?? opts.dest;
    if (target !== undefined) await sweepFetchLeftovers(target, opts.logger);
    const got = opts.cache ? await viaCache(opts, opts.cache, expected) : await direct(opts, expected);
    return { ...got, algorithm: expected.algorithm, digest: expected.digest, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    throw withUrl(opts.url, err);
  }
}

type Fetched = Pick<FetchResult, 'path' | 'bytes' | 'cached' | 'attempts' | 'treeCached' | 'linked'>;

/**
 * How long a tree handed out by `link` stays pinned against eviction: the agent does not see a build end, so a
 * linked tree is kept at least this long after its last hand-out (and for the life of the process at most).
 */
export const LINK_PIN_MS = 12 * 60 * 60 * 1000;

async function direct(opts: FetchOptions, expected: ExpectedDigest): Promise<Fetched> {
  if (opts.extract === undefined) {
    if (opts.dest === undefined) throw new AgentError('E_FETCH_DEST', `${opts.url}: no destination file, directory to extract into, or cache`);
    const r = await download(downloadOptions(opts, expected, opts.dest));
    return { path: r.path, bytes: r.bytes, cached: false, attempts: r.attempts };
  }
  const target = path.resolve(opts.extract);
  const archive = `${target}.fetch-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    const r = await download(downloadOptions(opts, expected, archive));
    const tree = await extractArchive(archive, target, { logger: opts.logger, signal: opts.signal });
    return { path: tree.path, bytes: r.bytes, cached: false, attempts: r.attempts };
  } finally {
    await rm(archive, { force: true });
  }
}

async function viaCache(opts: FetchOptions, cache: ArtifactCache, expected: ExpectedDigest): Promise<Fetched> {
  if (opts.extract !== undefined) {
    const unseen = !cache.has(fileKey(expected.algorithm, expected.digest)) && !cache.has(extractedKey(expected.algorithm, expected.digest));
    return unseen && !opts.link ? viaCachedArchive(opts, opts.extract, cache, expected) : viaCachedTree(opts, opts.extract, cache, expected);
  }
  const key = fileKey(expected.algorithm, expected.digest);
  const lease = await cache.acquire(key); // pinned while it is copied
  try {
    const { entry, attempts } = await archiveEntry(opts, cache, expected);
    const fetched = { bytes: entry.bytes, cached: entry.cached, attempts };
    if (opts.dest !== undefined) {
      await copyAtomically(entry.path, opts.dest);
      return { ...fetched, path: opts.dest };
    }
    return { ...fetched, path: entry.path };
  } finally {
    lease.release();
  }
}

/** The archive's cache entry: a verified hit, or downloaded into the cache (the caller pins the key). */
async function archiveEntry(opts: FetchOptions, cache: ArtifactCache, expected: ExpectedDigest): Promise<{ entry: CacheResult; attempts: number }> {
  let produced: DownloadResult | undefined;
  const entry = await cache.get(fileKey(expected.algorithm, expected.digest), {
    produce: async (tmp) => {
      produced = await download(downloadOptions(opts, expected, tmp));
      return { digest: produced.digest };
    },
  });
  return { entry, attempts: produced?.attempts ?? 0 };
}

/** An archive's first use: downloaded into the cache (pinned meanwhile) and extracted straight into `extract`. */
async function viaCachedArchive(opts: FetchOptions, extract: string, cache: ArtifactCache, expected: ExpectedDigest): Promise<Fetched> {
  const lease = await cache.acquire(fileKey(expected.algorithm, expected.digest));
  try {
    const { entry, attempts } = await archiveEntry(opts, cache, expected);
    const tree = await extractArchive(entry.path, path.resolve(extract), { logger: opts.logger, signal: opts.signal });
    return { path: tree.path, bytes: entry.bytes, cached: entry.cached, attempts, treeCached: false };
  } finally {
    lease.release();
  }
}

/**
 * The cache's extracted tree (made on a miss), copied (or linked) into `extract`; pinned meanwhile. The tree's key
 * is the archive's digest alone: its extraction options are fixed (the defaults of extract.ts), and an option that
 * changed the tree would have to become part of the key.
 */
async function viaCachedTree(opts: FetchOptions, extract: string, cache: ArtifactCache, expected: ExpectedDigest): Promise<Fetched> {
  const lease = await cache.acquire(extractedKey(expected.algorithm, expected.digest));
  try {
    let produced: DownloadResult | undefined;
    const got = await getExtractedTree(cache, {
      algorithm: expected.algorithm,
      digest: expected.digest,
      download: async (tmp) => {
        produced = await download(downloadOptions(opts, expected, tmp));
        return { digest: produced.digest };
      },
      // Not fsynced file by file (thousands of syncs cost seconds): a power loss restarts the agent, whose first
      // hit of each entry is a full check (docs/artifacts.md), so a torn file under a complete marker is found
      // and the tree made again before anyone gets it.
      extract: (archive, dir) => extractArchive(archive, dir, { logger: opts.logger, signal: opts.signal, hashFiles: true, durable: false }),
    });
    let handed: string;
    if (opts.link) {
      handed = await linkTree(got.tree.path, extract);
      const pin = await cache.acquire(got.tree.key);
      setTimeout(() => pin.release(), LINK_PIN_MS).unref();
      opts.logger.info(`linked ${handed} to the cached tree ${got.tree.path} (read-only)`);
    } else {
      const copy = await copyTree(got.tree.path, extract, opts.signal ? { signal: opts.signal } : {});
      handed = copy.path;
      opts.logger.info(`copied the cached tree (${copy.files} files, ${copy.bytes} bytes) into ${copy.path}`);
    }
    return {
      path: handed,
      ...(opts.link ? { linked: true } : {}),
      bytes: got.archive?.bytes ?? got.tree.sourceBytes ?? got.tree.bytes,
      cached: got.tree.cached || got.archive?.cached === true,
      attempts: produced?.attempts ?? 0,
      treeCached: got.tree.cached,
    };
  } finally {
    lease.release();
  }
}

function downloadOptions(opts: FetchOptions, expected: ExpectedDigest, dest: string): Parameters<typeof download>[0] {
  return {
    url: opts.url,
    expected,
    dest,
    logger: opts.logger,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

/** Copies to a temp name beside `dest`, fsyncs, renames over `dest`; the temp name never outlives the call. */
async function copyAtomically(from: string, dest: string): Promise<void> {
  try {
    await publishFile(`${dest}.copy-${process.pid}-${randomBytes(6).toString('hex')}`, dest, (tmp) => copyFile(from, tmp, fsc.COPYFILE_FICLONE));
  } catch (err) {
    throw new AgentError('E_FETCH_WRITE', `cannot copy ${from} to ${dest}: ${errorMessage(err)}`);
  }
}

/** Every message starts with the URL (the extraction's and the cache's name paths only). */
function withUrl(url: string, err: unknown): unknown {
  if (!(err instanceof AgentError) || err.message.startsWith(url)) return err;
  const wrapped = new AgentError(err.code, `${url}: ${err.message}`);
  wrapped.cause = err;
  return wrapped;
}
