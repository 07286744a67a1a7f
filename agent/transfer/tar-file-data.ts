// The bytes of a regular member: opened without following a link or waiting on a FIFO, checked to be the file
// lstat saw, read to exactly the size in the header (a file that shrank fails the archive, as in tarfile).

import { constants as fsConstants } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { fileKind } from '../fs/file-kind.js';
import { O_NOFOLLOW, O_NONBLOCK, sameFile } from '../fs/open-flags.js';
import { PyError } from '../py/exceptions.js';
import { isSystemError, toPyError } from '../py/os-error.js';
import { fsPath } from '../py/fsencoding.js';
import { BLOCKSIZE } from './tar-header.js';

/**
 * Opening a member that lstat found regular: never following a link, never waiting on a FIFO, so a file swapped
 * for either between lstat and open is refused instead of archived from elsewhere or blocking a thread for ever.
 */
const OPEN_MEMBER_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** The file's bytes, exactly `size` of them, zero-padded to a whole block. */
export async function* fileData(name: string, seen: BigIntStats, size: number, readChunk: number): AsyncGenerator<Buffer> {
  const fh = await openMember(name, seen);
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(readChunk, left));
      let got = 0;
      while (got < buf.length) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, got, buf.length - got, null));
        } catch (err) {
          throw toPyError(err, name);
        }
        // the file shrank after its size was taken: tarfile.copyfileobj raises the same
        if (n === 0) throw new PyError('OSError', 'unexpected end of data', 'E_FILE_SHRANK');
        got += n;
      }
      left -= got;
      yield buf;
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
  const rem = size % BLOCKSIZE;
  if (rem > 0) yield Buffer.alloc(BLOCKSIZE - rem);
}

/**
 * The member for reading, checked (fstat, after open) to still be a regular file. Where O_NOFOLLOW is missing
 * (Windows) the open follows a link swapped in after lstat: the dev and inode then differ from what lstat saw,
 * and a path that is a link by now is refused as O_NOFOLLOW would have refused it. A regular file replaced by
 * another one is archived, as tarfile does.
 */
async function openMember(name: string, seen: BigIntStats): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(fsPath(name), OPEN_MEMBER_FLAGS);
  } catch (err) {
    // O_NOFOLLOW on a link: ELOOP (EMLINK on some BSDs)
    if (isSystemError(err) && (err.code === 'ELOOP' || err.code === 'EMLINK')) {
      const now = await lstat(fsPath(name)).catch(() => null);
      if (now?.isSymbolicLink()) throw changedWhileArchived(name, 'a symbolic link');
    }
    throw toPyError(err, name);
  }
  let st: BigIntStats;
  let now: BigIntStats | null = null;
  try {
    st = await fh.stat({ bigint: true });
    if (!sameFile(st, seen)) now = await lstat(fsPath(name), { bigint: true }).catch(() => null);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw toPyError(err, name);
  }
  if (now?.isSymbolicLink() || !st.isFile()) {
    await fh.close().catch(() => undefined);
    throw changedWhileArchived(name, now?.isSymbolicLink() ? 'a symbolic link' : fileKind(st));
  }
  return fh;
}

function changedWhileArchived(name: string, kind: string): PyError {
  return new PyError('OSError', `'${name}' changed while it was archived: it is now ${kind}, not a regular file`, 'E_FILE_CHANGED');
}
