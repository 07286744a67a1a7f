// Opening a regular member: without following a link or waiting on a FIFO, checked to be the file lstat saw
// (the archive then reads exactly the size in the header: tar-buffer.ts). Synchronous, like tarfile in
// buildbot-worker's reactor: on a directory of small files every await (a thread-pool round trip per
// open/fstat/read/close) cost more than the system calls themselves, three times the CPU.

import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { fileKind } from '../fs/file-kind.js';
import { O_NOFOLLOW, O_NONBLOCK, sameFile } from '../fs/open-flags.js';
import { PyError } from '../py/exceptions.js';
import { isSystemError, toPyError } from '../py/os-error.js';
import { fsPath } from '../py/fsencoding.js';

/**
 * Opening a member that lstat found regular: never following a link, never waiting on a FIFO, so a file swapped
 * for either between lstat and open is refused instead of archived from elsewhere or blocking a thread for ever.
 */
const OPEN_MEMBER_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing was written through it
  }
}

/**
 * The member for reading, checked (fstat, after open) to still be a regular file. Where O_NOFOLLOW is missing
 * (Windows) the open follows a link swapped in after lstat: the dev and inode then differ from what lstat saw,
 * and a path that is a link by now is refused as O_NOFOLLOW would have refused it. A regular file replaced by
 * another one is archived, as tarfile does.
 */
export function openMember(name: string, seen: BigIntStats): number {
  let fd: number;
  try {
    fd = openSync(fsPath(name), OPEN_MEMBER_FLAGS);
  } catch (err) {
    // O_NOFOLLOW on a link: ELOOP (EMLINK on some BSDs)
    if (isSystemError(err) && (err.code === 'ELOOP' || err.code === 'EMLINK')) {
      if (lstatQuietly(name)?.isSymbolicLink()) throw changedWhileArchived(name, 'a symbolic link');
    }
    throw toPyError(err, name);
  }
  let st: BigIntStats;
  let now: BigIntStats | null = null;
  try {
    st = fstatSync(fd, { bigint: true });
    if (!sameFile(st, seen)) now = lstatQuietly(name);
  } catch (err) {
    closeQuietly(fd);
    throw toPyError(err, name);
  }
  if (now?.isSymbolicLink() || !st.isFile()) {
    closeQuietly(fd);
    throw changedWhileArchived(name, now?.isSymbolicLink() ? 'a symbolic link' : fileKind(st));
  }
  return fd;
}

function lstatQuietly(name: string): BigIntStats | null {
  try {
    return lstatSync(fsPath(name), { bigint: true });
  } catch {
    return null;
  }
}

function changedWhileArchived(name: string, kind: string): PyError {
  return new PyError('OSError', `'${name}' changed while it was archived: it is now ${kind}, not a regular file`, 'E_FILE_CHANGED');
}
