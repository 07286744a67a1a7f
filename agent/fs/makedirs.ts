// The one way the agent creates a directory with its parents: Python's os.makedirs, one component at a time.
// Node's own `mkdir(p, {recursive: true})` loops forever where mkdir fails with ENOENT on an existing parent
// (anything under /proc), so it is banned by lint (eslint.config.js) everywhere but here.

import { mkdirSync } from 'node:fs';
import { PyError } from '../py/exceptions.js';
import { PyOSError, pyOSError, toPyError } from '../py/os-error.js';
import { fsPath } from '../py/fsencoding.js';
import { checkNul } from '../py/os.js';
import { exists, isdir, pathSplit } from '../py/os-path.js';

/**
 * At most this many missing levels are created for one path. CPython's makedirs recurses once per missing
 * level and stops with RecursionError near its default limit of 1000; no real tree needs more.
 */
export const MAX_MAKEDIRS_LEVELS = 1000;
/**
 * Paths longer than this (UTF-16 units) fail with ENAMETOOLONG before any system call: no supported OS takes a
 * longer path (Windows' extended-length paths stop at 32767), and every level would copy the whole string.
 */
export const MAX_PATH_CHARS = 32767;

export interface MakedirsOptions {
  /** Python's exist_ok: an existing directory at `name` is not an error (FileExistsError otherwise). */
  existOk?: boolean;
  /** Mode of every directory created (before the umask). Default 0o777, Python's default. */
  mode?: number;
}

/** One level of Python's recursion: `name`, and whether its missing parent was made first. */
interface Level {
  name: string;
  tail: string;
  parentMissing: boolean;
}

/**
 * os.makedirs(name, mode, exist_ok): creates the missing parents, then `name`, with Python's checks, order and
 * errors (an OSError naming the component that failed, ValueError for a NUL), but iteratively and bounded:
 * at most MAX_MAKEDIRS_LEVELS levels, each one non-recursive mkdir. Throws PyOSError / PyError.
 */
export function makedirs(name: string, opts: MakedirsOptions = {}): void {
  checkNul(name);
  if (name.length > MAX_PATH_CHARS) throw pyOSError('ENAMETOOLONG', name);
  const mode = opts.mode ?? 0o777;
  const existOk = opts.existOk ?? false;

  // Walk up as Python's recursion does: a level recurses into its parent while that parent does not exist.
  const levels: Level[] = [];
  let current = name;
  for (;;) {
    let [head, tail] = pathSplit(current);
    if (!tail) [head, tail] = pathSplit(head);
    const parentMissing = Boolean(head && tail && !exists(head));
    levels.push({ name: current, tail, parentMissing });
    if (!parentMissing) break;
    if (levels.length >= MAX_MAKEDIRS_LEVELS) {
      throw new PyError(
        'RecursionError',
        `maximum recursion depth exceeded: more than ${MAX_MAKEDIRS_LEVELS} missing directories above '${name}'`,
        'E_MAKEDIRS_DEPTH',
      );
    }
    current = head;
  }

  // Then back down, each level doing what its Python frame does after the recursive call returned or raised.
  let pending: unknown = null;
  for (let i = levels.length - 1; i >= 0; i--) {
    const level = levels[i]!;
    if (level.parentMissing) {
      // a parent that exists by now (made by someone else meanwhile) is fine; any other error goes up
      if (pending !== null && !(pending instanceof PyOSError && pending.code === 'EEXIST')) throw pending;
      pending = null;
      // 'xxx/newdir/.' exists once 'xxx/newdir' does
      if (level.tail === '.') continue;
    }
    try {
      mkdirSync(fsPath(level.name), mode);
    } catch (err) {
      // not only EEXIST: the OS may report EACCES or EROFS first for a directory that exists
      if (!existOk || !isdir(level.name)) pending = toPyError(err, level.name);
    }
  }
  if (pending !== null) throw pending;
}

/**
 * os.makedirs(dir) when it is not a directory yet (a shell step's workdir); a failure is the OSError Python
 * raises (naming the level that could not be made), never a hang: Node's recursive mkdir loops forever under /proc.
 */
export function ensureDir(dir: string): void {
  if (!isdir(dir)) makedirs(dir);
}
