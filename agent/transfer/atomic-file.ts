// Replaces a file all at once: the new content goes to a temp file beside the destination, is fsynced and
// renamed over it. Readers (and a crash, a kill, a full disk) see the old file or the whole new one, never
// part of it; a discarded or crashed write leaves no temp file (journal: temp-journal.ts).

import { syncDir } from '../fs/sync-dir.js';
import { constants as fsConstants } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { access, open, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { NotRegularFileError } from '../fs/file-kind.js';
import { resolveFollowingLinks } from '../fs/follow-links.js';
import { O_NONBLOCK } from '../fs/open-flags.js';
import { isSystemError, pyOSError, toPyError } from '../py/os-error.js';
import { fsPath } from '../py/fsencoding.js';
import type { JournalEntry, TempFileJournal } from './temp-journal.js';
import { tempPathBeside } from './temp-journal.js';

/** Writing to a device must not wait on it (a FIFO is refused before this). */
const DEVICE_FLAGS = fsConstants.O_WRONLY | O_NONBLOCK;
/** open(path, 'wb') of an existing file. */
const IN_PLACE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_TRUNC;

export interface AtomicWriteOptions {
  /** Mode for the new file (chmod right after creating it, as buildbot-worker does). Null: the old file's mode, else the umask's. */
  mode: number | null;
  journal: TempFileJournal;
  /** Told why the destination is written in place after all (not atomically): a line for the agent's log. */
  onInPlace?: (why: string) => void;
}

/** Where the bytes go: a temp file renamed over the destination, or (as Python writes them) the destination itself. */
export interface FileSink {
  write(data: Uint8Array): Promise<void>;
  /** Makes the new content the destination's (fsync, rename); throws Python's OSError on failure. */
  commit(): Promise<void>;
  /** Drops what was written: the destination keeps its old content. Never throws. */
  discard(): Promise<void>;
}

/**
 * Opens a sink for `path`, following links to the file they name (buildbot-worker's open(path, 'wb') writes
 * through them). Throws a system error when Python's open would fail (directory, permissions, missing
 * directory), NotRegularFileError for a FIFO or socket (Python would wait for a reader forever).
 */
export async function openFileSink(path: string, opts: AtomicWriteOptions): Promise<FileSink> {
  // where open(path, 'wb') would write: through every link, a dangling last one too, '..' applied after the
  // links before it (so not path.resolve, which applies it first)
  const target = resolveFollowingLinks(nodePath.isAbsolute(path) ? path : `${process.cwd()}${nodePath.sep}${path}`);
  let old: BigIntStats | null = null;
  try {
    old = await stat(fsPath(target), { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (old?.isDirectory()) throw pyOSError('EISDIR', path);
  if (old && (old.isCharacterDevice() || old.isBlockDevice())) return openInPlace(target, DEVICE_FLAGS, opts.mode);
  if (old && !old.isFile()) throw new NotRegularFileError(path, old);
  // open('wb') fails on a file the worker may not write; a rename would replace it all the same
  if (old) await access(fsPath(target), fsConstants.W_OK);

  const temp = tempPathBeside(nodePath.dirname(target));
  const entry = await opts.journal.record(temp);
  let fh: FileHandle;
  try {
    // 0o666 less the umask, as open(path, 'wb') creates a file; O_EXCL: never an existing file
    fh = await open(fsPath(temp), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o666);
  } catch (err) {
    await entry.forget();
    // a writable file in a directory where no file can be made: buildbot-worker writes it, so does this
    if (old && isSystemError(err) && (err.code === 'EACCES' || err.code === 'EPERM')) {
      opts.onInPlace?.(`cannot create a temporary file beside ${target} (${err.code}): writing it in place`);
      return openInPlace(target, IN_PLACE_FLAGS, opts.mode);
    }
    throw err;
  }
  const sink = new TempFileSink(fh, temp, target, entry);
  try {
    if (opts.mode !== null) {
      await fh.chmod(opts.mode);
    } else if (old) {
      // open('wb') on an existing file keeps its mode and owner; a new file must look the same
      await fh.chmod(Number(old.mode) & 0o7777);
      await fh.chown(Number(old.uid), Number(old.gid)).catch(() => undefined); // only root may give a file away
    }
  } catch (err) {
    await sink.discard();
    throw err;
  }
  return sink;
}

class TempFileSink implements FileSink {
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly temp: string,
    private readonly target: string,
    private readonly entry: JournalEntry,
  ) {}

  write(data: Uint8Array): Promise<void> {
    return writeAll(this.fh, data);
  }

  async commit(): Promise<void> {
    try {
      await this.fh.sync();
      this.closed = true;
      await this.fh.close();
      await rename(fsPath(this.temp), fsPath(this.target));
    } catch (err) {
      await this.discard();
      throw toPyError(err); // Python's close errors name no file
    }
    await syncDir(fsPath(nodePath.dirname(this.target)));
    await this.entry.forget();
  }

  async discard(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
    await unlink(fsPath(this.temp)).catch(() => undefined);
    await this.entry.forget();
  }
}

/**
 * Writing the destination itself, as buildbot-worker does: a device (/dev/null; nothing to make atomic), or a
 * writable file in a directory that takes no new file.
 */
async function openInPlace(target: string, flags: number, mode: number | null): Promise<FileSink> {
  const fh = await open(fsPath(target), flags);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  try {
    if (mode !== null) await fh.chmod(mode);
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  return {
    write: (data) => writeAll(fh, data),
    commit: async () => {
      try {
        await close();
      } catch (err) {
        throw toPyError(err);
      }
    },
    discard: () => close().catch(() => undefined),
  };
}

/** The whole of `data` at the file's position. */
async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    try {
      off += (await fh.write(data, off, data.length - off)).bytesWritten;
    } catch (err) {
      throw toPyError(err); // Python's write errors name no file
    }
  }
}
