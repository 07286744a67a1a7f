// What kind of file a path is, in words, for errors that refuse anything but a regular file (a FIFO would
// block its reader, a device such as /dev/zero never ends).

import type { BigIntStats, Stats } from 'node:fs';
import { AgentError } from '../errors.js';

/** "a FIFO", "a character device", ... as a user would name the file type. */
export function fileKind(st: Stats | BigIntStats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** A command needed a regular file at `path` and found another kind (after following links). */
export class NotRegularFileError extends AgentError {
  /** e.g. "a FIFO". */
  readonly kind: string;
  constructor(
    readonly path: string,
    st: Stats | BigIntStats,
  ) {
    const kind = fileKind(st);
    super('E_NOT_REGULAR_FILE', `'${path}' is ${kind}, not a regular file`);
    this.kind = kind;
  }
}
