// The `.complete` marker: written last, atomically (temp name in ROOT/.tmp, fsync, rename), so an entry exists
// exactly when its marker does. It records what a hit checks (size, fingerprint, tree manifest), and its mtime
// is the entry's last use (the LRU order), set by utimes on each hit: one atomic metadata update, no index file.
// Trees published outside the cache get theirs from markComplete (extract-publish.ts); the cache's entries use
// writeEntryMarker.

import { publishFile } from '../fs/publish-file.js';
import { randomBytes } from 'node:crypto';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Fingerprint, ManifestItem } from './cache-verify.js';
import { keyString, markerPath, TMP_DIR, type CacheKey } from './cache-key.js';

export const MARKER_VERSION = 1;

export interface EntryMarker {
  v: typeof MARKER_VERSION;
  /** keyString(key): a marker copied beside another entry's data is refused. */
  key: string;
  /** The file's size, or the sum of the tree's file sizes. */
  bytes: number;
  publishedAt: string;
  /** The file's stat fingerprint after publish (fast path). */
  fp?: Fingerprint;
  /** Bytes of what the entry was made from (an extracted tree: its archive), when the producer said. */
  sourceBytes?: number;
  /** The tree's manifest (extracted entries). */
  manifest?: ManifestItem[];
}

/** A short random name for temp files and directories (pid: which process left it, in the sweep's log). */
export function tempName(suffix: string): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}${suffix}`;
}

/** Writes `content` to `dest` atomically: `tmpDir`/temp name, fsync, rename, fsync of dest's directory. */
export async function writeFileAtomic(dest: string, tmpDir: string, content: string): Promise<void> {
  await publishFile(path.join(tmpDir, tempName('.marker')), dest, (tmp) => writeFile(tmp, content, { flag: 'wx', mode: 0o644 }));
}

export async function writeEntryMarker(root: string, key: CacheKey, marker: Omit<EntryMarker, 'v' | 'key'>): Promise<void> {
  const full: EntryMarker = { v: MARKER_VERSION, key: keyString(key), ...marker };
  await writeFileAtomic(markerPath(root, key), path.join(root, TMP_DIR), JSON.stringify(full));
}

/** The entry's marker, or undefined when it is missing, unreadable, or not this key's (the entry is then absent). */
export async function readEntryMarker(root: string, key: CacheKey): Promise<EntryMarker | undefined> {
  let text: string;
  try {
    text = await readFile(markerPath(root, key), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const m = JSON.parse(text) as Partial<EntryMarker>;
    if (m.v !== MARKER_VERSION || m.key !== keyString(key) || typeof m.bytes !== 'number') return undefined;
    if (key.kind === 'extracted' && !Array.isArray(m.manifest)) return undefined;
    return m as EntryMarker;
  } catch {
    return undefined;
  }
}

/** Records a use: the marker's mtime is the entry's place in the LRU order. */
export async function touchMarker(root: string, key: CacheKey, at: Date): Promise<void> {
  await utimes(markerPath(root, key), at, at);
}
