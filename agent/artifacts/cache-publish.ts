// Producing and publishing one entry: the caller's `produce` writes the file (or extracts the tree) at a temp
// name in ROOT/.tmp; the cache checks it (the file's hash against the key, the tree's manifest), fsyncs the
// file, renames it into place and writes the `.complete` marker last. Any failure removes what was written, and
// a kill at any point leaves only things the start-up sweep removes: a temp name, or data without a marker.

import { lstat, mkdir, open, rename } from 'node:fs/promises';
import { removeAll } from './cache-remove.js';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { entryPath, keyString, TMP_DIR, type CacheKey } from './cache-key.js';
import { tempName, writeEntryMarker } from './cache-marker.js';
import { syncDir } from '../fs/sync-dir.js';
import { buildManifest, fingerprintOf, hashFile, manifestBytes } from './cache-verify.js';

/** What `produce` may return: the digest it computed while writing saves the cache a second read. */
export interface ProduceResult {
  /** Hex digest (the key's algorithm) of the file written; file entries only. */
  digest?: string;
  /** Bytes of what the entry was made from (an extracted tree: its archive), kept in the marker for hits. */
  sourceBytes?: number;
  /**
   * Tree entries: the sha256 of files, by '/'-separated path, computed while `produce` wrote them (extraction's
   * `hashFiles`), so the manifest does not read them again. Files it lacks are hashed.
   */
  fileHashes?: ReadonlyMap<string, string>;
}

/**
 * Writes the entry at `tmpPath`: a file (file keys), or the tree's content inside the empty directory
 * `tmpPath` (extracted keys). May throw: its error reaches every caller waiting for the key.
 */
export type Produce = (tmpPath: string) => Promise<ProduceResult | void>;

export interface Published {
  path: string;
  bytes: number;
  sourceBytes?: number;
}

async function mkdirIfMissing(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Checks a produced file against its key; its size. */
async function checkProducedFile(key: CacheKey, tmp: string, result: ProduceResult | void): Promise<number> {
  const st = await lstat(tmp).catch(() => undefined);
  if (!st?.isFile()) throw new AgentError('E_CACHE_PRODUCE', `cache: producing ${keyString(key)} wrote no regular file at '${tmp}'`);
  const digest = result?.digest?.toLowerCase() ?? (await hashFile(tmp, key.algorithm));
  if (digest !== key.digest) {
    throw new AgentError('E_CACHE_HASH_MISMATCH', `cache: the file produced for ${keyString(key)} has ${key.algorithm} ${digest}, expected ${key.digest}`);
  }
  await fsyncFile(tmp);
  return st.size;
}

/** A fresh temp name in ROOT/.tmp for producing `key`. */
export function tempPathFor(root: string, key: CacheKey): string {
  return path.join(root, TMP_DIR, tempName(key.kind === 'file' ? '.part' : '.tree'));
}

/** Runs `produce` at `tmp` (from tempPathFor) and publishes the result as `key`'s entry (replacing leftover data). */
export async function produceAndPublish(root: string, key: CacheKey, produce: Produce, tmp: string): Promise<Published> {
  const final = entryPath(root, key);
  let placed = false;
  try {
    if (key.kind === 'extracted') await mkdir(tmp, 0o755);
    const result = await produce(tmp);
    let bytes: number;
    let manifest;
    if (key.kind === 'file') {
      bytes = await checkProducedFile(key, tmp, result);
    } else {
      manifest = await buildManifest(tmp, result?.fileHashes);
      bytes = manifestBytes(manifest);
    }
    await mkdirIfMissing(path.join(root, key.algorithm));
    await mkdirIfMissing(path.dirname(final));
    await removeAll(final); // data without a marker (removed by hand, or a failed removal)
    await rename(tmp, final);
    placed = true;
    await syncDir(path.dirname(final));
    const fp = key.kind === 'file' ? await fingerprintOf(final) : undefined;
    const sourceBytes = result?.sourceBytes;
    await writeEntryMarker(root, key, { bytes, publishedAt: new Date().toISOString(), fp, manifest, ...(sourceBytes !== undefined ? { sourceBytes } : {}) });
    return { path: final, bytes, ...(sourceBytes !== undefined ? { sourceBytes } : {}) };
  } catch (err) {
    await removeAll(tmp);
    if (placed) await removeAll(final);
    throw err;
  }
}
