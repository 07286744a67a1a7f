// How the cache checks that an entry is still what was published: a file is streamed through its hash; a tree
// is compared with the manifest (type, mode, size and sha256 of each file, target of each link) written when it
// was published. The optional fast path compares a stat fingerprint instead (see docs/artifacts.md for what it
// does and does not catch).

import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { TimeSlicer } from '../fs/time-slice.js';
import type { HashAlgorithm } from './cache-key.js';

/** Read size for hashing: large enough that the hash, not the syscalls, is the cost. */
const HASH_READ_BYTES = 4 * 1024 * 1024;

/**
 * Streams a file through `algorithm`; the lower-case hex digest. Two buffers: the next block is read (in the
 * thread pool) while the current one is hashed (on this thread), so reading and hashing overlap.
 */
export async function hashFile(file: string, algorithm: HashAlgorithm): Promise<string> {
  const hash = createHash(algorithm);
  const fh = await open(file, 'r');
  let pending: Promise<{ bytesRead: number }> | undefined;
  try {
    // small files (most of a tree) get small buffers; +1 so the first read can already see the end
    const size = Math.min(HASH_READ_BYTES, (await fh.stat()).size + 1);
    const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    let turn = 0;
    pending = fh.read(bufs[0]!, 0, size, null);
    for (;;) {
      const { bytesRead } = await pending;
      pending = undefined;
      if (bytesRead === 0) break;
      const current = bufs[turn]!;
      turn ^= 1;
      pending = fh.read(bufs[turn]!, 0, size, null);
      hash.update(current.subarray(0, bytesRead));
    }
  } finally {
    await pending?.catch(() => undefined); // never close under a read in flight
    await fh.close();
  }
  return hash.digest('hex');
}

/**
 * What the fast path compares: a rewrite in place changes mtime and ctime, a replacement changes the inode,
 * and ctime cannot be set by a user (utimes sets it to now). Nanosecond strings: JSON has no bigint.
 */
export interface Fingerprint {
  size: number;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
}

export async function fingerprintOf(file: string): Promise<Fingerprint> {
  const st = await stat(file, { bigint: true });
  return { size: Number(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** One item of an extracted tree, by its path relative to the tree's root ('/' separators). */
export interface ManifestItem {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Files: size in bytes and sha256 of the content. */
  size?: number;
  sha256?: string;
  /** Symlinks: the target as stored. */
  target?: string;
  /** Files: the stat fingerprint, for the fast path. */
  fp?: Fingerprint;
}

/** Files up to this size are hashed from one synchronous read (a tree of small files: a round trip each costs more). */
const SMALL_HASH_BYTES = 256 * 1024;

/**
 * Walks a tree (iteratively, in sorted order) without following links; `hash` adds each file's sha256, taken from
 * `known` (hashes computed while the files were written) where it has the path. The walk and the hashes of small
 * files use synchronous calls in time slices (fs/time-slice.ts): a tree of thousands of small files costs a few
 * microseconds per file instead of a thread-pool round trip per call.
 */
async function walkTree(root: string, hash: boolean, known?: ReadonlyMap<string, string>): Promise<ManifestItem[]> {
  const items: ManifestItem[] = [];
  const pending: string[] = [''];
  const slicer = new TimeSlicer();
  while (pending.length > 0) {
    const rel = pending.pop()!;
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      if (slicer.due()) await slicer.pause();
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, childRel);
      const st = lstatSync(abs, { bigint: true });
      const mode = Number(st.mode & 0o7777n);
      if (st.isDirectory()) {
        items.push({ path: childRel, type: 'dir', mode });
        pending.push(childRel);
      } else if (st.isSymbolicLink()) {
        items.push({ path: childRel, type: 'symlink', mode, target: readlinkSync(abs) });
      } else if (st.isFile()) {
        const fp: Fingerprint = { size: Number(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
        const item: ManifestItem = { path: childRel, type: 'file', mode, size: fp.size, fp };
        if (hash) {
          item.sha256 =
            known?.get(childRel) ??
            (fp.size <= SMALL_HASH_BYTES ? createHash('sha256').update(readFileSync(abs)).digest('hex') : await hashFile(abs, 'sha256'));
        }
        items.push(item);
      } else {
        // A FIFO, socket or device: the extractor never makes one, so it cannot be checked; the tree is refused.
        throw new Error(`'${abs}' is neither a file, a directory nor a symlink`);
      }
    }
  }
  items.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return items;
}

/** The manifest of a freshly produced tree: every file hashed, or its hash taken from `known` (see walkTree). */
export function buildManifest(root: string, known?: ReadonlyMap<string, string>): Promise<ManifestItem[]> {
  return walkTree(root, true, known);
}

/** Sum of the file sizes of a manifest (what eviction frees, less the directories' blocks). */
export function manifestBytes(items: readonly ManifestItem[]): number {
  return items.reduce((sum, it) => sum + (it.size ?? 0), 0);
}

/**
 * Compares a tree with its manifest; undefined when it matches, else the first difference (for the log).
 * `fast`: stat fingerprints instead of content hashes. Any added, missing or changed item is a difference.
 */
export async function checkTree(root: string, manifest: readonly ManifestItem[], fast: boolean): Promise<string | undefined> {
  let now: ManifestItem[];
  try {
    now = await walkTree(root, !fast);
  } catch (err) {
    return `cannot walk the tree: ${(err as Error).message}`;
  }
  if (now.length !== manifest.length) return `${now.length} items on disk, ${manifest.length} in the manifest`;
  for (let i = 0; i < now.length; i++) {
    const a = now[i]!;
    const b = manifest[i]!;
    if (a.path !== b.path || a.type !== b.type) return `'${b.path}' (${b.type}) is now '${a.path}' (${a.type})`;
    if (a.mode !== b.mode) return `'${b.path}': mode ${a.mode.toString(8)}, published ${b.mode.toString(8)}`;
    if (a.type === 'symlink' && a.target !== b.target) return `'${b.path}': link to '${a.target}', published '${b.target}'`;
    if (a.type !== 'file') continue;
    if (a.size !== b.size) return `'${b.path}': ${a.size} bytes, published ${b.size}`;
    if (fast ? !b.fp || !sameFingerprint(a.fp!, b.fp) : a.sha256 !== b.sha256) return `'${b.path}': content changed`;
  }
  return undefined;
}
