// Safe, atomic extraction of a downloaded archive (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip) in process, with no
// `tar` program (Windows has none we can count on). Used by `bbagent fetch --extract`, the `fetch` remote command
// and the cache, which share this API:
//
//   const r = await extractArchive(archive, target, { logger, signal, limits });   // -> { format, entries, bytes }
//   await markComplete(target, { sha256 });      // the cache's step, after it has recorded the entry
//   await sweepExtractTemps(cacheDir, { logger }); // at start-up: what a crash left behind
//
// Atomic: members go into `<target>.extracting-<pid>-<random>` beside the target, which is renamed to the target
// only when every member is written and checked; any failure removes it, so the target either does not exist or
// is whole. `<target>.complete` is written last, by markComplete (atomically, fsynced): a cache trusts a directory
// only with its marker. A crash (kill -9) leaves a temp directory that sweepExtractTemps removes.
//
// Safety (extract-writer.ts, extract-model.ts, safe-path.ts): a member named with `..` or an absolute path, a
// symlink whose target leaves the root (alone or through other symlinks), a hardlink that is not to an earlier
// regular file, or a member written through a symlink of the archive fails the whole extraction with
// E_EXTRACT_UNSAFE naming the archive, the member and why. Devices, FIFOs and sockets are skipped with a warning.
// Limits (bytes, members) stop archive bombs while streaming (E_EXTRACT_LIMIT); a tar member's declared size is
// checked before its data. Modes: permission bits less `modeMask` (0o022), never setuid/setgid/sticky; mtimes of
// files and directories as the archive has them. A symlink on Windows needs the right to create one, else
// E_EXTRACT_IO. Other codes: E_EXTRACT_FORMAT (not an archive), E_EXTRACT_CORRUPT (truncated, bad checksum),
// E_EXTRACT_UNSUPPORTED (sparse tar members, encrypted zip entries), E_EXTRACT_TARGET_EXISTS, E_EXTRACT_ABORTED.

import { lstat, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { AgentError, errorMessage } from '../errors.js';
import { ensureDir } from '../fs/makedirs.js';
import type { Logger } from '../log.js';
import { detectFormat, type ArchiveFormat } from './archive-kind.js';
import { plainStream } from './decompress.js';
import { extractTarStream } from './extract-tar.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MODE_MASK, TreeWriter, type ExtractLimits } from './extract-writer.js';
import { extractZip } from './extract-zip.js';
import { tempPathFor } from './extract-publish.js';
import { syncDir } from '../fs/sync-dir.js';

export { DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MODE_MASK, type ExtractLimits } from './extract-writer.js';
export { formatOf, type ArchiveFormat } from './archive-kind.js';
export { completeMarkerPath, isComplete, markComplete, sweepExtractTemps, tempPathFor, TEMP_INFIX, type SweepOptions } from './extract-publish.js';

export interface ExtractOptions {
  logger: Logger;
  /** Aborting stops the extraction and removes the temp directory (E_EXTRACT_ABORTED). */
  signal?: AbortSignal;
  /** Caps against archive bombs; each defaults to DEFAULT_MAX_BYTES / DEFAULT_MAX_ENTRIES. */
  limits?: Partial<ExtractLimits>;
  /** Bits removed from every mode (setuid, setgid and sticky always are). Default DEFAULT_MODE_MASK (0o022). */
  modeMask?: number;
  /** fsync every file before the rename (default true): a power loss cannot publish empty files. */
  durable?: boolean;
  /**
   * What to do when the target exists and is not an empty directory: false (default) fails with
   * E_EXTRACT_TARGET_EXISTS; true swaps the new tree in and removes the old one.
   */
  replace?: boolean;
  /** sha256 each regular file while writing it (ExtractResult.fileHashes), for a cache's manifest. */
  hashFiles?: boolean;
  /** Called after each member with the running totals (the caller rate-limits what it shows). */
  onProgress?: (progress: Readonly<ExtractProgress>) => void;
}

export interface ExtractProgress {
  entries: number;
  bytes: number;
}

export interface ExtractResult {
  /** The absolute path of the extracted tree. */
  path: string;
  format: ArchiveFormat;
  /** Members of the archive (directories and links included, skipped ones too). */
  entries: number;
  /** Bytes of file data written. */
  bytes: number;
  /** Devices, FIFOs and sockets not extracted. */
  skipped: number;
  /** With `hashFiles`: the sha256 of each regular file by its '/'-separated path (hardlinked members left out). */
  fileHashes?: ReadonlyMap<string, string>;
}

/** Extracts `archivePath` into `targetDir` (made by this call; see the module comment). */
export async function extractArchive(archivePath: string, targetDir: string, opts: ExtractOptions): Promise<ExtractResult> {
  const target = path.resolve(targetDir);
  const format = await detectFormat(archivePath);
  try {
    ensureDir(path.dirname(target));
  } catch (err) {
    throw new AgentError('E_EXTRACT_IO', `${archivePath}: cannot make the parent of ${target}: ${errorMessage(err)}`);
  }
  if (!opts.replace && (await occupied(target))) throw targetExists(archivePath, target);
  const temp = tempPathFor(target);
  await mkdir(temp, { mode: 0o700 });
  const limits: ExtractLimits = { maxBytes: opts.limits?.maxBytes ?? DEFAULT_MAX_BYTES, maxEntries: opts.limits?.maxEntries ?? DEFAULT_MAX_ENTRIES };
  const writer = new TreeWriter(temp, archivePath, {
    logger: opts.logger,
    limits,
    modeMask: opts.modeMask ?? DEFAULT_MODE_MASK,
    durable: opts.durable ?? true,
    ...(opts.hashFiles ? { hashFiles: true } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    if (format === 'zip') await extractZip(archivePath, writer, opts.signal);
    else await extractTarStream(plainStream(archivePath, format, opts.signal), writer, archivePath);
    opts.signal?.throwIfAborted();
    await writer.finish();
    await publish(archivePath, temp, target, opts.replace ?? false);
  } catch (err) {
    await rm(temp, { recursive: true, force: true, maxRetries: 3 });
    if (opts.signal?.aborted) throw new AgentError('E_EXTRACT_ABORTED', `${archivePath}: extraction into ${target} was aborted`);
    if (err instanceof AgentError) throw err;
    throw new AgentError('E_EXTRACT_IO', `${archivePath}: extraction into ${target} failed: ${errorMessage(err)}`);
  }
  const { entries, bytes, skipped } = writer.stats;
  opts.logger.info(`extracted ${archivePath} (${format}) into ${target}: ${entries} members, ${bytes} bytes${skipped ? `, ${skipped} skipped` : ''}`);
  return { path: target, format, entries, bytes, skipped, ...(opts.hashFiles ? { fileHashes: writer.fileHashes } : {}) };
}

function targetExists(archive: string, target: string): AgentError {
  return new AgentError('E_EXTRACT_TARGET_EXISTS', `${archive}: cannot extract into ${target}: it exists and is not an empty directory`);
}

/** True when `target` exists and is not an empty directory. */
export async function occupied(target: string): Promise<boolean> {
  try {
    const st = await lstat(target);
    return !st.isDirectory() || (await readdir(target)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Renames the finished temp tree to the target (an empty target directory is replaced; see `replace`). */
async function publish(archive: string, temp: string, target: string, replace: boolean): Promise<void> {
  let old: string | null = null;
  if (await occupied(target)) {
    if (!replace) throw targetExists(archive, target);
    old = tempPathFor(target, '-old');
    await rename(target, old);
  } else {
    await rmdir(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  await rename(temp, target);
  await syncDir(path.dirname(target));
  if (old) await rm(old, { recursive: true, force: true, maxRetries: 3 });
}
