// The path the OS would open for a given path: every symlink followed, a dangling last one included (open(2)
// with O_CREAT creates the file where it points), and '..' applied after the links before it, as the kernel
// does. confineToBasedir judges paths with it, and download_file writes where it says.

import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { pyOSError } from '../py/os-error.js';
import { fsPath, fsdecode } from '../py/fsencoding.js';

/** Dangling links followed before giving up with ELOOP (Linux's MAXSYMLINKS, as the kernel counts). */
export const MAX_LINK_HOPS = 40;

/** The file-system calls the resolution makes (the OS's by default; a test may pass its own). */
export interface LinkOps {
  /** The OS's realpath(3) of a path that exists; throws ENOENT / ENOTDIR (and others) as the OS does. */
  realpath(p: string): string;
  /** Where `p` points when it is a symbolic link (its text, unresolved); null when it is not one or is missing. */
  readLink(p: string): string | null;
}

/** The OS's own realpath(3): unlike fs.realpathSync, it does not collapse '..' before following symlinks. */
export const osLinkOps: LinkOps = {
  realpath: (p) => fsdecode(realpathSync.native(fsPath(p), { encoding: 'buffer' })),
  readLink: (p) => {
    const st = lstatSync(fsPath(p), { throwIfNoEntry: false });
    if (!st?.isSymbolicLink()) return null;
    return fsdecode(readlinkSync(fsPath(p), { encoding: 'buffer' }));
  },
};

const isMissing = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * The path the OS would open for `p` (absolute): its longest existing prefix resolved by realpath; when the
 * first missing component is a dangling symlink, the resolution goes on from where it points (at most
 * MAX_LINK_HOPS times, then ELOOP); parts below a component that does not exist are appended as text (they
 * cannot be symlinks). Throws the OS error when a prefix exists but cannot be resolved (ELOOP, EACCES), and
 * Python's OSError(ELOOP) naming `p` past the hop limit.
 */
export function resolveFollowingLinks(p: string, ops: LinkOps = osLinkOps): string {
  if (!path.isAbsolute(p)) throw new TypeError(`resolveFollowingLinks needs an absolute path, got '${p}'`);
  let cur = p;
  for (let hops = 0; ; hops++) {
    // the longest prefix of `cur` that exists, resolved; `rest` is what follows it
    let head = cur;
    const rest: string[] = [];
    let real: string;
    for (;;) {
      try {
        real = ops.realpath(head);
        break;
      } catch (err) {
        if (!isMissing(err)) throw err;
        const parent = path.dirname(head);
        if (parent === head) return path.resolve(head, ...rest); // not even the root exists (a test's fake OS)
        rest.unshift(path.basename(head));
        head = parent;
      }
    }
    const [first, ...below] = rest;
    if (first === undefined) return real;
    let to: string | null;
    try {
      to = ops.readLink(path.join(real, first));
    } catch (err) {
      if (!isMissing(err)) throw err;
      to = null;
    }
    if (to === null) return path.resolve(real, ...rest);
    if (hops >= MAX_LINK_HOPS) throw pyOSError('ELOOP', p);
    // Not path.resolve / path.join: they would apply a '..' of the link before the links in front of it
    // are followed. The next round resolves the whole text again, as the kernel does.
    const base = path.isAbsolute(to) ? to : `${real}${path.sep}${to}`;
    cur = below.length ? `${base}${path.sep}${below.join(path.sep)}` : base;
  }
}
