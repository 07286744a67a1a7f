// open(2) flags that not every platform has, in one place. Windows (libuv) defines neither O_NONBLOCK nor
// O_NOFOLLOW: fs.constants lacks them there, and a flag that is missing must read as 0, never as undefined.

import { constants as fsConstants } from 'node:fs';

/**
 * Opening (or reading) never waits: a FIFO without a writer, or a device that has nothing to read yet.
 * Without it (Windows) nothing is lost: there are no FIFOs in the file system (named pipes live under
 * \\.\pipe\, not where a build writes files) and no /dev/zero.
 */
export const O_NONBLOCK: number = fsConstants.O_NONBLOCK ?? 0;

/**
 * Opening a symbolic link fails (ELOOP; EMLINK on some BSDs) instead of opening what it points to. Where it
 * is missing (Windows) the open follows a link: a caller that must not read through a link also compares the
 * dev and inode of what it opened (fstat) with what lstat saw before (see `sameFile`), which works everywhere.
 */
export const O_NOFOLLOW: number = fsConstants.O_NOFOLLOW ?? 0;

/** The dev and inode of two stat results name the same file (the one lstat saw is the one that was opened). */
export function sameFile(a: { dev: number | bigint; ino: number | bigint }, b: { dev: number | bigint; ino: number | bigint }): boolean {
  return BigInt(a.dev) === BigInt(b.dev) && BigInt(a.ino) === BigInt(b.ino);
}
