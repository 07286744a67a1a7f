// Python's os.makedirs for the agent: the bounded, level-by-level walk of platforms/common/makedirs.ts (Node's
// recursive mkdir loops forever under /proc and is banned by lint) with Python's paths, checks and errors.

import { mkdirSync } from 'node:fs';
import { MAX_MAKEDIRS_LEVELS, makedirsWith, type DirectoryOps, type MakedirsOptions } from '../../platforms/common/makedirs.js';
import { PyError } from '../py/exceptions.js';
import { pyOSError, toPyError } from '../py/os-error.js';
import { fsPath } from '../py/fsencoding.js';
import { checkNul } from '../py/os.js';
import { exists, isdir, pathSplit } from '../py/os-path.js';

export { MAX_MAKEDIRS_LEVELS, type MakedirsOptions } from '../../platforms/common/makedirs.js';

/**
 * Paths longer than this (UTF-16 units) fail with ENAMETOOLONG before any system call: no supported OS takes a
 * longer path (Windows' extended-length paths stop at 32767), and every level would copy the whole string.
 */
export const MAX_PATH_CHARS = 32767;

/** os.path's split and tests, mkdir on surrogate-escaped names, and the OSError naming the level that failed. */
const PY_OPS: DirectoryOps = {
  split: pathSplit,
  exists,
  isdir,
  mkdir(p, mode) {
    try {
      mkdirSync(fsPath(p), mode);
    } catch (err) {
      throw toPyError(err, p);
    }
  },
  tooDeep: (name) =>
    new PyError('RecursionError', `maximum recursion depth exceeded: more than ${MAX_MAKEDIRS_LEVELS} missing directories above '${name}'`, 'E_MAKEDIRS_DEPTH'),
};

/**
 * os.makedirs(name, mode, exist_ok): creates the missing parents, then `name`, with Python's checks, order and
 * errors (an OSError naming the component that failed, ValueError for a NUL), but iteratively and bounded:
 * at most MAX_MAKEDIRS_LEVELS levels, each one non-recursive mkdir. Throws PyOSError / PyError.
 */
export function makedirs(name: string, opts: MakedirsOptions = {}): void {
  checkNul(name);
  if (name.length > MAX_PATH_CHARS) throw pyOSError('ENAMETOOLONG', name);
  makedirsWith(PY_OPS, name, opts);
}

/**
 * os.makedirs(dir) when it is not a directory yet (a shell step's workdir); a failure is the OSError Python
 * raises (naming the level that could not be made), never a hang: Node's recursive mkdir loops forever under /proc.
 */
export function ensureDir(dir: string): void {
  if (!isdir(dir)) makedirs(dir);
}
