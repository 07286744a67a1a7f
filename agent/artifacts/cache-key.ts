// Cache keys and where their entries live: an entry is named by the hash algorithm and the digest of the
// downloaded file, and the extracted tree of that file is a second entry with its own name beside it.
//
//   ROOT/sha256/ab/abcdef…              the file (its sha256 is abcdef…)
//   ROOT/sha256/ab/abcdef….complete     its marker, written last (JSON, see cache-marker.ts)
//   ROOT/sha256/ab/abcdef….extracted/   the tree extracted from that file
//   ROOT/sha256/ab/abcdef….extracted.complete
//   ROOT/.tmp/                          temp names of entries being produced or removed (emptied at start-up)
//   ROOT/.lock                          the pid of the agent process that has the cache open

import path from 'node:path';
import { AgentError } from '../errors.js';

export type HashAlgorithm = 'sha256' | 'sha512';
export type EntryKind = 'file' | 'extracted';

export interface CacheKey {
  readonly algorithm: HashAlgorithm;
  /** Lower-case hex digest of the file (of the archive, for an extracted tree). */
  readonly digest: string;
  readonly kind: EntryKind;
}

/** Hex length of each algorithm's digest. */
export const DIGEST_HEX_LENGTH: Readonly<Record<HashAlgorithm, number>> = { sha256: 64, sha512: 128 };
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['sha256', 'sha512'];

export const TMP_DIR = '.tmp';
export const LOCK_FILE = '.lock';
export const MARKER_SUFFIX = '.complete';
export const EXTRACTED_SUFFIX = '.extracted';

/** A key for a downloaded file; throws E_CACHE_KEY for an unknown algorithm or a digest that is not hex of its length. */
export function fileKey(algorithm: string, digest: string): CacheKey {
  return makeKey(algorithm, digest, 'file');
}

/** The key of the tree extracted from the file with this hash. */
export function extractedKey(algorithm: string, digest: string): CacheKey {
  return makeKey(algorithm, digest, 'extracted');
}

function makeKey(algorithm: string, digest: string, kind: EntryKind): CacheKey {
  if (!HASH_ALGORITHMS.includes(algorithm as HashAlgorithm)) {
    throw new AgentError('E_CACHE_KEY', `cache key: unknown hash algorithm '${algorithm}' (expected ${HASH_ALGORITHMS.join(' or ')})`);
  }
  const algo = algorithm as HashAlgorithm;
  const hex = digest.toLowerCase();
  if (hex.length !== DIGEST_HEX_LENGTH[algo] || !/^[0-9a-f]+$/.test(hex)) {
    throw new AgentError('E_CACHE_KEY', `cache key: '${digest}' is not a ${algo} digest (${DIGEST_HEX_LENGTH[algo]} hex digits)`);
  }
  return { algorithm: algo, digest: hex, kind };
}

/** One string per key, for maps and logs: `sha256:abcd…` or `sha256:abcd…+extracted`. */
export function keyString(key: CacheKey): string {
  return `${key.algorithm}:${key.digest}${key.kind === 'extracted' ? '+extracted' : ''}`;
}

/** The entry's data path (the file, or the tree's directory). */
export function entryPath(root: string, key: CacheKey): string {
  const base = path.join(root, key.algorithm, key.digest.slice(0, 2), key.digest);
  return key.kind === 'extracted' ? base + EXTRACTED_SUFFIX : base;
}

export function markerPath(root: string, key: CacheKey): string {
  return entryPath(root, key) + MARKER_SUFFIX;
}

/**
 * The key an entry name in ROOT/<algorithm>/<xx>/ stands for (without the marker suffix), or undefined for a
 * name the cache never writes there: the start-up sweep removes those.
 */
export function keyFromEntryName(algorithm: string, prefix: string, name: string): CacheKey | undefined {
  const kind: EntryKind = name.endsWith(EXTRACTED_SUFFIX) ? 'extracted' : 'file';
  const digest = kind === 'extracted' ? name.slice(0, -EXTRACTED_SUFFIX.length) : name;
  if (!HASH_ALGORITHMS.includes(algorithm as HashAlgorithm)) return undefined;
  if (digest.length !== DIGEST_HEX_LENGTH[algorithm as HashAlgorithm] || !/^[0-9a-f]+$/.test(digest) || !digest.startsWith(prefix)) return undefined;
  return { algorithm: algorithm as HashAlgorithm, digest, kind };
}
