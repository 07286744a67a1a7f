// The one way bbagent creates a directory with its parents: os.makedirs's walk, one component at a time.
// Node's own `mkdir(p, {recursive: true})` loops forever where mkdir fails with ENOENT under an existing parent
// (anything under /proc), so it is banned by lint (eslint.config.js) everywhere; platforms/ uses makedirs()
// below, the agent agent/fs/makedirs.ts (the same walk with Python's paths and errors).

import { mkdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * At most this many missing levels are created for one path. CPython's makedirs recurses once per missing
 * level and stops with RecursionError near its default limit of 1000; no real tree needs more.
 */
export const MAX_MAKEDIRS_LEVELS = 1000;

export interface MakedirsOptions {
  /** Python's exist_ok: an existing directory at `name` is not an error (EEXIST otherwise). */
  existOk?: boolean;
  /** Mode of every directory created (before the umask). Default 0o777, Python's default. */
  mode?: number;
}

/** The file-system calls of the walk; the agent's makedirs passes Python's (os.path.split, PyOSError, ...). */
export interface DirectoryOps {
  /** os.path.split: [head, tail], tail '' for a path ending in a separator. */
  split(p: string): [string, string];
  exists(p: string): boolean;
  isdir(p: string): boolean;
  /** One non-recursive mkdir; throws an error whose `code` names the errno (EEXIST, ENOENT, ...). */
  mkdir(p: string, mode: number): void;
  /** The error for a path with more than MAX_MAKEDIRS_LEVELS missing levels. */
  tooDeep(name: string): Error;
}

/** One level of Python's recursion: `name`, and whether its missing parent was made first. */
interface Level {
  name: string;
  tail: string;
  parentMissing: boolean;
}

/**
 * os.makedirs(name, mode, exist_ok) with Python's checks and order, but iteratively and bounded: at most
 * MAX_MAKEDIRS_LEVELS levels, each one non-recursive mkdir. Throws what `ops` throws.
 */
export function makedirsWith(ops: DirectoryOps, name: string, opts: MakedirsOptions = {}): void {
  const mode = opts.mode ?? 0o777;
  const existOk = opts.existOk ?? false;

  // Walk up as Python's recursion does: a level recurses into its parent while that parent does not exist.
  const levels: Level[] = [];
  let current = name;
  for (;;) {
    let [head, tail] = ops.split(current);
    if (!tail) [head, tail] = ops.split(head);
    const parentMissing = Boolean(head && tail && !ops.exists(head));
    levels.push({ name: current, tail, parentMissing });
    if (!parentMissing) break;
    if (levels.length >= MAX_MAKEDIRS_LEVELS) throw ops.tooDeep(name);
    current = head;
  }

  // Then back down, each level doing what its Python frame does after the recursive call returned or raised.
  let pending: unknown = null;
  for (let i = levels.length - 1; i >= 0; i--) {
    const level = levels[i]!;
    if (level.parentMissing) {
      // a parent that exists by now (made by someone else meanwhile) is fine; any other error goes up
      if (pending !== null && (pending as { code?: unknown }).code !== 'EEXIST') throw pending;
      pending = null;
      // 'xxx/newdir/.' exists once 'xxx/newdir' does
      if (level.tail === '.') continue;
    }
    try {
      ops.mkdir(level.name, mode);
    } catch (err) {
      // not only EEXIST: the OS may report EACCES or EROFS first for a directory that exists
      if (!existOk || !ops.isdir(level.name)) pending = err;
    }
  }
  if (pending !== null) throw pending;
}

function stats(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined; // ENOENT, ENOTDIR, EACCES...: os.path.exists is False
  }
}

/** Node's paths and errors: what platforms/ needs (a service file's directory, the extraction cache). */
const NODE_OPS: DirectoryOps = {
  // dirname/basename skip a trailing separator, which os.path.split keeps as an empty tail: the walk splits
  // such a path once more anyway, so both arrive at the same levels.
  split: (p) => [path.dirname(p), path.basename(p)],
  exists: (p) => stats(p) !== undefined,
  isdir: (p) => stats(p)?.isDirectory() === true,
  mkdir: (p, mode) => mkdirSync(p, mode),
  tooDeep: (name) => Object.assign(new Error(`more than ${MAX_MAKEDIRS_LEVELS} missing directories above '${name}'`), { code: 'E_MAKEDIRS_DEPTH' }),
};

/** Creates `name` and its missing parents with Node's errors (ENOENT under /proc at once, never a loop). */
export function makedirs(name: string, opts: MakedirsOptions = {}): void {
  makedirsWith(NODE_OPS, name, opts);
}
