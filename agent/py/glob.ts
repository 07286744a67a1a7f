// A port of Python 3.11's glob.glob(pattern, recursive=True), which the glob command must reproduce exactly
// (hidden-file rules, '**', trailing slashes, os.scandir order). Unlike Python's, the walk gives the event loop
// a turn whenever the caller's slicer says so, and is bounded where Python's would never end.

import { opendirSync, statSync } from 'node:fs';
import type { Dir, Dirent } from 'node:fs';
import { PyError } from './exceptions.js';
import { compilePattern } from './fnmatch.js';
import { fsPath, fsdecode } from './fsencoding.js';
import { checkNul } from './os.js';
import { isdir, lexists, pathJoin, pathSplit } from './os-path.js';

const MAGIC = /[*?[]/;

/**
 * Entries a '**' walk may yield from inside symbolic link loops. Python's glob follows a link back to an
 * ancestor until the path has 40 links (ELOOP): one loop costs 40 copies of its subtree, two loops in one
 * directory 2^40 paths (Python never returns). 50000 keeps every single-loop result Python gives for a
 * tree of up to ~1250 entries, and fails a runaway walk within a second or two.
 */
export const MAX_GLOB_LOOP_ENTRIES = 50_000;
/** Directory entries one glob may read in all: a backstop far above any real checkout (a few million files). */
export const MAX_GLOB_ENTRIES = 5_000_000;
/** The walk offers a turn to the event loop every this many directory entries (a stat or two each). */
const TICK_ENTRIES = 64;

/** glob.has_magic. */
export function hasMagic(s: string): boolean {
  return MAGIC.test(s);
}

const isHidden = (name: string): boolean => name[0] === '.';
const isRecursive = (pattern: string): boolean => pattern === '**';

/** glob's _join: plain concatenation when one side is empty. */
function join2(a: string, b: string): string {
  if (!a || !b) return a || b;
  return pathJoin(a, b);
}

/** A point where the walk may pause: the generators yield it between results. */
const TICK = Symbol('tick');
type Step = string | typeof TICK;

export interface GlobLimits {
  loopEntries: number;
  entries: number;
}

export interface GlobOptions {
  /** Python's recursive=: '**' spans directories. Default true (the glob command's). */
  recursive?: boolean;
  /** Checked between slices: true stops the walk (it then rejects with E_GLOB_STOPPED). */
  stopped?: () => boolean;
  limits?: Partial<GlobLimits>;
  /** Says when the walk has run long enough to give the event loop a turn (fs/time-slice.ts's TimeSlicer). */
  slicer: WorkSlicer;
}

/** Cooperative time slicing, as the caller paces long file work. */
export interface WorkSlicer {
  /** True when the current slice is used up. */
  due(): boolean;
  /** Lets the event loop run, then starts a new slice. */
  pause(): Promise<void>;
}

/** Budgets and counters of one walk. */
class Walk {
  entries = 0;
  loopEntries = 0;
  constructor(
    readonly pattern: string,
    readonly limits: GlobLimits,
  ) {}

  countEntry(): void {
    if (++this.entries > this.limits.entries) {
      throw new PyError('RuntimeError', `glob '${this.pattern}': gave up after reading ${this.limits.entries} directory entries`, 'E_GLOB_LIMIT');
    }
  }

  countLoopEntry(loopAt: string): void {
    if (++this.loopEntries > this.limits.loopEntries) {
      throw new PyError(
        'RuntimeError',
        `glob '${this.pattern}': more than ${this.limits.loopEntries} paths found through a symbolic link loop at '${loopAt}'`,
        'E_GLOB_LOOP',
      );
    }
  }
}

/**
 * glob.glob(pathname, recursive=...): the matching paths in the order Python yields them (os.scandir order,
 * not sorted). Filesystem errors are swallowed like Python's glob does; a NUL in the pattern is ValueError.
 * Runs in the caller's slices; throws PyError E_GLOB_LOOP / E_GLOB_LIMIT past the budgets.
 */
export async function pyGlob(pathname: string, opts: GlobOptions): Promise<string[]> {
  const recursive = opts.recursive ?? true;
  const walk = new Walk(pathname, { loopEntries: MAX_GLOB_LOOP_ENTRIES, entries: MAX_GLOB_ENTRIES, ...opts.limits });
  const { slicer } = opts;
  const it = iglob(pathname, '', recursive, false, walk);
  const out: string[] = [];
  let first = true;
  try {
    for (;;) {
      if (slicer.due()) {
        await slicer.pause();
        if (opts.stopped?.()) throw new PyError('RuntimeError', `glob '${pathname}' was interrupted`, 'E_GLOB_STOPPED');
      }
      const r = it.next();
      if (r.done) break;
      const p = r.value;
      if (p === TICK) continue;
      // Python skips the '' that '**' (or an empty pattern) yields first for the current directory
      if (first && (!pathname || (recursive && isRecursive(pathname.slice(0, 2)))) && !p) {
        first = false;
        continue;
      }
      first = false;
      out.push(p);
    }
  } finally {
    it.return(undefined); // closes a directory left open mid-listing
  }
  return out;
}

function* iglob(pathname: string, rootDir: string, recursive: boolean, dironly: boolean, walk: Walk): Generator<Step> {
  const [dirname, basename] = pathSplit(pathname);
  if (!hasMagic(pathname)) {
    if (basename) {
      if (lexists(join2(rootDir, pathname))) yield pathname;
    } else if (isdir(join2(rootDir, dirname))) {
      // patterns ending with a slash match only directories
      yield pathname;
    }
    return;
  }
  if (!dirname) {
    if (recursive && isRecursive(basename)) yield* glob2(rootDir, basename, dironly, walk);
    else yield* glob1(rootDir, basename, dironly, walk);
    return;
  }
  const dirs: Iterable<Step> = dirname !== pathname && hasMagic(dirname) ? iglob(dirname, rootDir, recursive, true, walk) : [dirname];
  const globInDir = hasMagic(basename) ? (recursive && isRecursive(basename) ? glob2 : glob1) : glob0;
  for (const d of dirs) {
    if (d === TICK) {
      yield TICK;
      continue;
    }
    for (const name of globInDir(join2(rootDir, d), basename, dironly, walk)) yield name === TICK ? TICK : pathJoin(d, name);
  }
}

function* glob1(dirname: string, pattern: string, dironly: boolean, walk: Walk): Generator<Step> {
  const names = yield* listdirNames(dirname, dironly, walk);
  const match = compilePattern(pattern);
  const hidden = isHidden(pattern);
  for (const { name } of names) if ((hidden || !isHidden(name)) && match.test(name)) yield name;
}

function* glob0(dirname: string, basename: string, _dironly: boolean, _walk: Walk): Generator<Step> {
  if (basename) {
    if (lexists(join2(dirname, basename))) yield basename;
  } else if (isdir(dirname)) {
    // 'q*x/' should match only directories
    yield basename;
  }
}

function* glob2(dirname: string, _pattern: string, dironly: boolean, walk: Walk): Generator<Step> {
  yield '';
  yield* rlistdir(dirname, dironly, walk, new Map(), null);
}

/**
 * glob._rlistdir, which follows links to directories as Python does. `ancestors` counts the directories
 * (device:inode) on the way down; a directory that is its own ancestor is a symbolic link loop, and what is
 * found below it (`loopAt` set) is counted against the loop budget.
 */
function* rlistdir(dirname: string, dironly: boolean, walk: Walk, ancestors: Map<string, number>, loopAt: string | null): Generator<Step> {
  const names = yield* listdirNames(dirname, dironly, walk);
  if (names.length === 0) return;
  const id = dirIdentity(dirname || '.');
  const loop = loopAt ?? (id !== null && ancestors.has(id) ? dirname : null);
  if (id !== null) ancestors.set(id, (ancestors.get(id) ?? 0) + 1);
  try {
    for (const { name: x, notDir } of names) {
      if (isHidden(x)) continue;
      if (loop !== null) walk.countLoopEntry(loop);
      yield x;
      // listing what readdir says is a file gives [] in Python too: no need to try
      if (notDir) continue;
      const p = dirname ? join2(dirname, x) : x;
      for (const y of rlistdir(p, dironly, walk, ancestors, loop)) yield y === TICK ? TICK : join2(x, y);
    }
  } finally {
    if (id !== null) {
      const n = ancestors.get(id)! - 1;
      if (n === 0) ancestors.delete(id);
      else ancestors.set(id, n);
    }
  }
}

/** device:inode of a directory (following links, as listing it does), or null when it cannot be stat'ed. */
function dirIdentity(dir: string): string | null {
  try {
    const st = statSync(fsPath(dir), { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/**
 * glob._listdir: names of a directory (only directories, following links, when dironly); [] on errors. Python
 * reads the whole directory before using it (one open directory at a time); this does too, pausing on the way.
 */
/** A name from a directory listing; `notDir` when its type (d_type) says it cannot be listed itself. */
interface Entry {
  name: string;
  notDir: boolean;
}

function* listdirNames(dirname: string, dironly: boolean, walk: Walk): Generator<typeof TICK, Entry[]> {
  const dir = dirname || '.';
  checkNul(dir); // ValueError (NUL in path) is not swallowed by Python either
  let handle: Dir;
  try {
    // opendir keeps readdir(3) order; fs.readdir would sort the names, which Python does not
    handle = opendirSync(fsPath(dir) as string, { encoding: 'buffer' as BufferEncoding });
  } catch {
    return [];
  }
  const out: Entry[] = [];
  try {
    let n = 0;
    for (;;) {
      let e: Dirent<Buffer> | null;
      try {
        e = handle.readSync() as unknown as Dirent<Buffer> | null;
      } catch {
        return [];
      }
      if (e === null) break;
      walk.countEntry();
      const name = fsdecode(e.name);
      if (!dironly || direntIsDir(dir, name, e)) out.push({ name, notDir: !e.isDirectory() && !e.isSymbolicLink() && !isUnknownType(e) });
      if (++n % TICK_ENTRIES === 0) yield TICK;
    }
  } finally {
    handle.closeSync();
  }
  return out;
}

/** d_type was not given (some file systems): the entry may be anything. */
function isUnknownType(e: Dirent<Buffer>): boolean {
  return !(e.isFile() || e.isDirectory() || e.isSymbolicLink() || e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice());
}

/** DirEntry.is_dir(): d_type when it is known, stat (following links) for links and unknown types. */
function direntIsDir(dir: string, name: string, e: Dirent<Buffer>): boolean {
  if (e.isDirectory()) return true;
  const known = e.isFile() || e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice();
  if (known) return false;
  try {
    return statSync(fsPath(pathJoin(dir, name))).isDirectory();
  } catch {
    return false;
  }
}
