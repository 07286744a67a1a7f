// Path checks that keep the master's file commands inside BASEDIR: `confineToBasedir` (every path a file or
// transfer command names, and a shell step's workdir, must lead into BASEDIR), and rmdir's guard of BASEDIR itself.

import { realpathSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../errors.js';
import { AGENT_OWNED_DIRS } from '../layout.js';

/** Resolves a path to a canonical one, as the OS does (symlinks followed, '..' applied after them). */
export type Realpath = (p: string) => string;

/** The OS's own realpath(3): unlike fs.realpathSync, it does not collapse '..' before following symlinks. */
const osRealpath: Realpath = (p) => realpathSync.native(p);

/** A path the confinement refuses; Python's PermissionError, so the master shows what kind of refusal it is. */
export class ConfinementError extends AgentError {
  readonly pyType = 'PermissionError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super('E_CONFINED', message);
  }
}

/**
 * Where `p` really leads: the canonical form of its longest existing prefix, then the rest of it (parts that
 * do not exist yet cannot be symlinks, so '..' among them is applied as text). Throws the OS error when a
 * prefix exists but cannot be resolved (ELOOP, EACCES).
 */
export function resolveReal(p: string, realpath: Realpath = osRealpath): string {
  if (!path.isAbsolute(p)) throw new AgentError('E_CONFINED', `resolveReal needs an absolute path, got '${p}'`);
  let head = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.resolve(realpath(head), ...rest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const parent = path.dirname(head);
      if (parent === head) return path.resolve(head, ...rest);
      rest.unshift(path.basename(head));
      head = parent;
    }
  }
}

/** True when `p` is `dir` or below it (both absolute, same kind of resolution). */
export function isWithin(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!path.isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${path.sep}`));
}

function realOr(p: string, realpath: Realpath): string {
  try {
    return resolveReal(p, realpath);
  } catch {
    return path.resolve(p);
  }
}

/** '..' as a path component. */
function hasDotDot(p: string): boolean {
  return p.split(/[\\/]/).includes('..');
}

/**
 * Throws ConfinementError unless `p` (absolute, as a command will use it) leads into `basedir` once symlinks
 * and '..' are resolved. The final component is followed too: a file command opens what a symlink points to.
 * An empty path names nothing and passes (the command fails on it by itself, as buildbot-worker's does).
 */
export function checkConfined(basedir: string, p: string, realpath: Realpath = osRealpath): void {
  if (p === '' || p.includes('\0')) return; // nothing to open: the command reports the bad path itself
  const base = path.resolve(basedir);
  const realBase = realOr(base, realpath);
  const refuse = (why: string): never => {
    throw new ConfinementError(p, `confineToBasedir: refusing '${p}': ${why} (the worker's base directory is ${base})`);
  };
  // Not path.resolve: that would apply '..' before the symlinks in front of it are followed.
  const abs = path.isAbsolute(p) ? p : `${base}${path.sep}${p}`;
  let real: string;
  try {
    real = resolveReal(abs, realpath);
  } catch (err) {
    return refuse(`it cannot be resolved to check where it leads (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (isWithin(realBase, real)) return;
  const lexical = path.resolve(base, p);
  if (isWithin(base, lexical) || isWithin(realBase, lexical)) return refuse(`a symlink in it leads out of the base directory, to ${real}`);
  return refuse(hasDotDot(p) ? "'..' leads out of the base directory" : 'it is outside the base directory');
}

/** Why rmdir must not remove `p`: it is BASEDIR or above it (an error), or it belongs to the agent (skipped). */
export type Protection = { kind: 'basedir'; why: string } | { kind: 'agent'; why: string };

/**
 * Whether removing `p` would remove BASEDIR (p is BASEDIR or one of its ancestors, by text or through a
 * symlink) or one of the agent's own directories (agent/layout.ts) or something in them.
 */
export function removalProtection(basedir: string, p: string, realpath: Realpath = osRealpath): Protection | undefined {
  const base = path.resolve(basedir);
  const bases = [...new Set([base, realOr(base, realpath)])];
  const abs = path.isAbsolute(p) ? p : `${base}${path.sep}${p}`;
  const targets = [...new Set([path.resolve(abs), realOr(abs, realpath)])];
  for (const target of targets) {
    for (const b of bases) {
      if (isWithin(target, b)) {
        const what = path.relative(target, b) === '' ? "the worker's base directory" : "an ancestor of the worker's base directory";
        return { kind: 'basedir', why: `rmdir: refusing to remove '${p}': it is ${what} ${base}` };
      }
      const first = isWithin(b, target) ? path.relative(b, target).split(path.sep)[0] : undefined;
      if (first !== undefined && AGENT_OWNED_DIRS.includes(first)) {
        return { kind: 'agent', why: `rmdir: not removing '${p}': ${path.join(base, first)} belongs to the agent, not to a builder` };
      }
    }
  }
  return undefined;
}
