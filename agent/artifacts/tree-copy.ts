// A build's own copy of a cached tree: what `fetch --cache --extract DIR` hands out on a hit instead of
// extracting the archive again. Files are copied with COPYFILE_FICLONE (a reflink, sharing the blocks until either
// side writes, where the file system has them: btrfs, XFS, APFS, ReFS; a plain in-kernel copy elsewhere), symlinks
// are re-made with the same target (never followed), and modes and mtimes are those of the cached tree, which are
// the archive's as extraction set them. The copy is made in `<target>.extracting-<pid>-<hex>` beside the target
// and renamed into place when whole, exactly like an extraction, so a failure or an abort removes it and a kill -9
// leaves only a temp name that the next fetch there sweeps (fetch-sweep.ts).
//
// Not durable on purpose: the cache's own tree is (fsynced at publish); a build's working copy is scratch that no
// one trusts after a power loss (FetchBuild clobbers the directory first), and fsyncing every file would cost more
// than the copy. Hardlinked members of the archive become separate files in the copy.

import { chmodSync, constants as fsc, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, utimesSync, type Stats } from 'node:fs';
import { copyFile, lutimes, mkdir, rename, rm, rmdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import { ensureDir } from '../fs/makedirs.js';
import { syncDir } from '../fs/sync-dir.js';
import { TimeSlicer } from '../fs/time-slice.js';
import { tempPathFor } from './extract-publish.js';
import { occupied } from './extract.js';
import { resolveLinkTarget } from './safe-path.js';

/** Big files copied at a time in the thread pool (4 threads by default): enough to keep it busy. */
const COPY_PARALLEL = 8;
/** Files up to this size are copied with synchronous calls, between turns of the event loop (see copyItems). */
const SMALL_COPY_BYTES = 1024 * 1024;
/** A reflink where the file system can; never over an existing file. */
const COPY_FLAGS = fsc.COPYFILE_FICLONE | fsc.COPYFILE_EXCL;

export interface CopyTreeOptions {
  /** Aborting stops the copy and removes the temp directory (E_FETCH_ABORTED). */
  signal?: AbortSignal;
}

export interface CopyTreeResult {
  /** The absolute path of the copy. */
  path: string;
  files: number;
  /** Bytes of file data copied. */
  bytes: number;
}

interface Item {
  /** Relative to the tree's root, '/'-separated ('' is the root). */
  rel: string;
  st: Stats;
}

/** Copies the tree at `src` to `target` (which must not exist, or be an empty directory). */
export async function copyTree(src: string, targetDir: string, opts: CopyTreeOptions = {}): Promise<CopyTreeResult> {
  const target = path.resolve(targetDir);
  try {
    ensureDir(path.dirname(target));
  } catch (err) {
    throw new AgentError('E_FETCH_WRITE', `cannot make the parent of ${target}: ${errorMessage(err)}`);
  }
  if (await occupied(target)) throw new AgentError('E_EXTRACT_TARGET_EXISTS', `cannot copy ${src} into ${target}: it exists and is not an empty directory`);
  const temp = tempPathFor(target);
  try {
    const slicer = new TimeSlicer();
    const items = await listTree(src, slicer);
    await mkdir(temp, { mode: 0o700 });
    const stats = await copyItems(src, temp, items, opts.signal, slicer);
    opts.signal?.throwIfAborted();
    await rmdir(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(temp, target);
    await syncDir(path.dirname(target));
    return { path: target, ...stats };
  } catch (err) {
    await rm(temp, { recursive: true, force: true, maxRetries: 3 });
    if (opts.signal?.aborted) throw new AgentError('E_FETCH_ABORTED', `the copy of ${src} into ${target} was aborted`);
    if (err instanceof AgentError) throw err;
    throw new AgentError('E_FETCH_WRITE', `cannot copy ${src} into ${target}: ${errorMessage(err)}`);
  }
}

/**
 * Makes `target` (absent, or an empty directory) a symlink to the tree `src` (absolute): the opt-in `link` of a
 * fetch. Made at a temp name and renamed into place, like a copy. Returns the target's absolute path.
 */
export async function linkTree(src: string, targetDir: string): Promise<string> {
  const target = path.resolve(targetDir);
  try {
    ensureDir(path.dirname(target));
  } catch (err) {
    throw new AgentError('E_FETCH_WRITE', `cannot make the parent of ${target}: ${errorMessage(err)}`);
  }
  if (await occupied(target)) throw new AgentError('E_EXTRACT_TARGET_EXISTS', `cannot link ${target} to ${src}: it exists and is not an empty directory`);
  const temp = tempPathFor(target);
  try {
    symlinkSync(src, temp, 'dir');
    await rmdir(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(temp, target);
    return target;
  } catch (err) {
    await rm(temp, { force: true });
    throw new AgentError('E_FETCH_WRITE', `cannot link ${target} to ${src}: ${errorMessage(err)}`);
  }
}

/** Every item under `src` (the root first, parents before their children), lstat'ed: links are not followed. */
async function listTree(src: string, slicer: TimeSlicer): Promise<Item[]> {
  const items: Item[] = [{ rel: '', st: lstatSync(src) }];
  for (let i = 0; i < items.length; i++) {
    const dir = items[i]!;
    if (!dir.st.isDirectory()) continue;
    for (const name of readdirSync(path.join(src, dir.rel)).sort()) {
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
      items.push({ rel, st: lstatSync(path.join(src, rel)) });
      if (slicer.due()) await slicer.pause();
    }
  }
  return items;
}

/**
 * Makes the directories, copies files and links, then sets directory modes and mtimes (deepest first: making a
 * child changes its parent's mtime). Small files and links are done with synchronous calls in time slices (three
 * thread-pool round trips per file cost more than the copy); big files go to the thread pool, COPY_PARALLEL at a
 * time. copyFile gives the copy its source's permission bits; utimes its mtime.
 */
async function copyItems(
  src: string,
  dest: string,
  items: Item[],
  signal: AbortSignal | undefined,
  slicer: TimeSlicer,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const big = new Set<Promise<void>>();
  const copyBig = async (from: string, to: string, st: Stats): Promise<void> => {
    await copyFile(from, to, COPY_FLAGS);
    await utimes(to, st.atime, st.mtime);
  };
  try {
    for (const it of items) {
      if (slicer.due()) await slicer.pause();
      signal?.throwIfAborted();
      const from = path.join(src, it.rel);
      const to = it.rel === '' ? dest : path.join(dest, it.rel);
      if (it.st.isDirectory()) {
        if (it.rel !== '') mkdirSync(to, { mode: 0o700 });
      } else if (it.st.isFile()) {
        files++;
        bytes += it.st.size;
        if (it.st.size <= SMALL_COPY_BYTES) {
          copyFileSync(from, to, COPY_FLAGS);
          utimesSync(to, it.st.atime, it.st.mtime);
          continue;
        }
        const p = copyBig(from, to, it.st).finally(() => big.delete(p));
        p.catch(() => undefined); // handled (by race, or allSettled below) even while the loop runs on
        big.add(p);
        if (big.size >= COPY_PARALLEL) await Promise.race(big);
      } else if (it.st.isSymbolicLink()) {
        const linkTarget = readlinkSync(from);
        // the cache's check pins each link's target; this keeps a copy from ever pointing out of the tree
        const inside = resolveLinkTarget(it.rel.split('/'), linkTarget);
        if (!inside.ok) throw new AgentError('E_EXTRACT_UNSAFE', `${from}: link to '${linkTarget}' is not copied: ${inside.reason}`);
        symlinkSync(linkTarget, to);
        await lutimes(to, it.st.atime, it.st.mtime).catch(() => undefined); // cosmetic, as in extraction
      } else {
        throw new AgentError('E_FETCH_WRITE', `${from} is neither a file, a directory nor a symlink: not copied`);
      }
    }
  } finally {
    // every copy has stopped before the caller removes the temp directory
    const settled = await Promise.allSettled(big);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
  }
  for (let i = items.length - 1; i >= 0; i--) {
    const d = items[i]!;
    if (!d.st.isDirectory()) continue;
    const to = d.rel === '' ? dest : path.join(dest, d.rel);
    chmodSync(to, d.st.mode & 0o777);
    utimesSync(to, d.st.atime, d.st.mtime);
    if (slicer.due()) await slicer.pause();
  }
  return { files, bytes };
}
