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

import { constants as fsc, type Stats } from 'node:fs';
import { chmod, copyFile, lstat, lutimes, mkdir, readdir, readlink, rename, rm, rmdir, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import { ensureDir } from '../fs/makedirs.js';
import { syncDir } from '../fs/sync-dir.js';
import { tempPathFor } from './extract-publish.js';
import { resolveLinkTarget } from './safe-path.js';

/** Copies in flight: enough to keep libuv's thread pool busy on small files, few enough to bound open files. */
const COPY_PARALLEL = 16;

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
    const items = await listTree(src);
    await mkdir(temp, { mode: 0o700 });
    const stats = await copyItems(src, temp, items, opts.signal);
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

/** True when `target` exists and is not an empty directory. */
async function occupied(target: string): Promise<boolean> {
  try {
    const st = await lstat(target);
    return !st.isDirectory() || (await readdir(target)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Every item under `src` (the root first, parents before their children), lstat'ed: links are not followed. */
async function listTree(src: string): Promise<Item[]> {
  const items: Item[] = [{ rel: '', st: await lstat(src) }];
  for (let i = 0; i < items.length; i++) {
    const dir = items[i]!;
    if (!dir.st.isDirectory()) continue;
    const names = (await readdir(path.join(src, dir.rel))).sort();
    const rels = names.map((n) => (dir.rel === '' ? n : `${dir.rel}/${n}`));
    const stats = await Promise.all(rels.map((rel) => lstat(path.join(src, rel))));
    rels.forEach((rel, k) => items.push({ rel, st: stats[k]! }));
  }
  return items;
}

/** Makes the directories, copies files and links (COPY_PARALLEL at a time), then sets directory modes and mtimes. */
async function copyItems(src: string, dest: string, items: Item[], signal: AbortSignal | undefined): Promise<{ files: number; bytes: number }> {
  const dirs = items.filter((it) => it.st.isDirectory());
  for (const d of dirs) if (d.rel !== '') await mkdir(path.join(dest, d.rel), { mode: 0o700 });
  const rest = items.filter((it) => !it.st.isDirectory());
  let files = 0;
  let bytes = 0;
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < rest.length && !failed) {
      signal?.throwIfAborted();
      const it = rest[next++]!;
      const from = path.join(src, it.rel);
      const to = path.join(dest, it.rel);
      if (it.st.isFile()) {
        await copyFile(from, to, fsc.COPYFILE_FICLONE | fsc.COPYFILE_EXCL);
        await chmod(to, it.st.mode & 0o777);
        await utimes(to, it.st.atime, it.st.mtime);
        files++;
        bytes += it.st.size;
      } else if (it.st.isSymbolicLink()) {
        const linkTarget = await readlink(from);
        // the cache's check pins each link's target; this keeps a copy from ever pointing out of the tree
        const inside = resolveLinkTarget(it.rel.split('/'), linkTarget);
        if (!inside.ok) throw new AgentError('E_EXTRACT_UNSAFE', `${from}: link to '${linkTarget}' is not copied: ${inside.reason}`);
        await symlink(linkTarget, to);
        await lutimes(to, it.st.atime, it.st.mtime).catch(() => undefined); // cosmetic, as in extraction
      } else {
        throw new AgentError('E_FETCH_WRITE', `${from} is neither a file, a directory nor a symlink: not copied`);
      }
    }
  };
  // every worker has stopped before the caller removes the temp directory
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(COPY_PARALLEL, rest.length) }, () =>
      worker().catch((err: unknown) => {
        failed = true;
        throw err;
      }),
    ),
  );
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  // deepest first: making a child changes its parent's mtime
  for (let i = dirs.length - 1; i >= 0; i--) {
    const d = dirs[i]!;
    const to = d.rel === '' ? dest : path.join(dest, d.rel);
    await chmod(to, d.st.mode & 0o777);
    await utimes(to, d.st.atime, d.st.mtime);
  }
  return { files, bytes };
}
