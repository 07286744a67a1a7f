// Python's os.path functions the commands depend on (exists, lexists, isdir, split, dirname, join), with
// posixpath's rules, so paths come out as buildbot-worker's do.

import { lstatSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import { fsPath } from './fsencoding.js';

/** os.path.exists: stat (following links) succeeds. */
export function exists(p: string): boolean {
  if (p.includes('\0')) return false;
  try {
    statSync(fsPath(p));
    return true;
  } catch {
    return false;
  }
}

/** os.path.lexists: lstat succeeds. */
export function lexists(p: string): boolean {
  if (p.includes('\0')) return false;
  try {
    lstatSync(fsPath(p));
    return true;
  } catch {
    return false;
  }
}

/** os.path.isdir (follows symlinks). */
export function isdir(p: string): boolean {
  if (p.includes('\0')) return false;
  try {
    return statSync(fsPath(p)).isDirectory();
  } catch {
    return false;
  }
}

// Separators Python's os.path treats as such; posixpath only knows '/', ntpath also '\'.
const SEPS = nodePath.sep === '/' ? ['/'] : ['/', '\\'];
const isSep = (c: string | undefined): boolean => c !== undefined && SEPS.includes(c);

/** os.path.split (posixpath rules; also '\' where that is a separator). */
export function pathSplit(p: string): [string, string] {
  let i = p.length;
  while (i > 0 && !isSep(p[i - 1])) i--;
  let head = p.slice(0, i);
  const tail = p.slice(i);
  if (head && ![...head].every((c) => isSep(c))) {
    let j = head.length;
    while (j > 0 && isSep(head[j - 1])) j--;
    head = head.slice(0, j);
  }
  return [head, tail];
}

/** os.path.dirname. */
export function pathDirname(p: string): string {
  return pathSplit(p)[0];
}

/** os.path.join for two parts (posixpath rules). */
export function pathJoin(a: string, b: string): string {
  if (isSep(b[0])) return b;
  if (!a || isSep(a[a.length - 1])) return a + b;
  return `${a}/${b}`;
}
