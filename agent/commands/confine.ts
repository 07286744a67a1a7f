// Path checks that keep the master's file commands inside BASEDIR: `confineToBasedir` (every path a file or
// transfer command names, and a shell step's workdir, must lead into BASEDIR), and rmdir's guard of BASEDIR itself.

import path from 'node:path';
import { AgentError } from '../errors.js';
import { type LinkOps, osLinkOps, resolveFollowingLinks } from '../fs/follow-links.js';
import { AGENT_OWNED_DIRS } from '../layout.js';

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

/** True when `p` is `dir` or below it (both absolute, same kind of resolution). */
export function isWithin(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!path.isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${path.sep}`));
}

/** Where `p` leads (resolveFollowingLinks), or `p` as text when that cannot be told. */
function realOr(p: string, ops: LinkOps): string {
  try {
    return resolveFollowingLinks(p, ops);
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
 * and '..' are resolved (resolveFollowingLinks). The final component is followed too, dangling or not: a file
 * command opens (or creates) what a symlink points to.
 * An empty path names nothing and passes (the command fails on it by itself, as buildbot-worker's does).
 */
export function checkConfined(basedir: string, p: string, ops: LinkOps = osLinkOps): void {
  if (p === '' || p.includes('\0')) return; // nothing to open: the command reports the bad path itself
  const base = path.resolve(basedir);
  const realBase = realOr(base, ops);
  const refuse = (why: string): never => {
    throw new ConfinementError(p, `confineToBasedir: refusing '${p}': ${why} (the worker's base directory is ${base})`);
  };
  // Not path.resolve: that would apply '..' before the symlinks in front of it are followed.
  const abs = path.isAbsolute(p) ? p : `${base}${path.sep}${p}`;
  let real: string;
  try {
    real = resolveFollowingLinks(abs, ops);
  } catch (err) {
    return refuse(`it cannot be resolved to check where it leads (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (isWithin(realBase, real)) return;
  const lexical = path.resolve(base, p);
  if (isWithin(base, lexical) || isWithin(realBase, lexical)) return refuse(`a symlink in it leads out of the base directory, to ${real}`);
  return refuse(hasDotDot(p) ? "'..' leads out of the base directory" : 'it is outside the base directory');
}

/** Why rmdir must not remove `p`: it is BASEDIR or above it (an error), or it is one of the agent's own directories (skipped). */
export type Protection = { kind: 'basedir'; why: string } | { kind: 'agent'; why: string };

/**
 * Whether removing `p` would remove BASEDIR (p is BASEDIR or one of its ancestors, by text or through a
 * symlink) or one of the agent's own directories (agent/layout.ts) as a whole. What is inside those may be
 * removed: a builder whose directory is `spool` or `info` keeps its rmdir (buildbot-worker reserves no name).
 */
export function removalProtection(basedir: string, p: string, ops: LinkOps = osLinkOps): Protection | undefined {
  const base = path.resolve(basedir);
  const bases = [...new Set([base, realOr(base, ops)])];
  const abs = path.isAbsolute(p) ? p : `${base}${path.sep}${p}`;
  const targets = [...new Set([path.resolve(abs), realOr(abs, ops)])];
  for (const target of targets) {
    for (const b of bases) {
      if (isWithin(target, b)) {
        const what = path.relative(target, b) === '' ? "the worker's base directory" : "an ancestor of the worker's base directory";
        return { kind: 'basedir', why: `rmdir: refusing to remove '${p}': it is ${what} ${base}` };
      }
      const rel = path.relative(b, target);
      if (AGENT_OWNED_DIRS.includes(rel)) {
        return { kind: 'agent', why: `rmdir: not removing '${p}': ${path.join(base, rel)} is the agent's own directory` };
      }
    }
  }
  return undefined;
}
