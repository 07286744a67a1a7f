// A port of Python 3.11's glob.glob(pattern, recursive=True) and fnmatch.translate, which the glob command
// must reproduce exactly (hidden-file rules, '**', trailing slashes, os.scandir order). Unlike Python's, the
// walk gives the event loop a turn every few milliseconds and is bounded where Python's would never end.

import { opendirSync, statSync } from 'node:fs';
import type { Dir, Dirent } from 'node:fs';
import { PyError } from './pyerrors.js';
import { checkNul, fsPath, fsdecode, isdir, lexists, pathJoin, pathSplit } from './pyos.js';
import { TimeSlicer } from './time-slice.js';

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
  slicer?: TimeSlicer;
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
 * Runs in slices of a few milliseconds; throws PyError E_GLOB_LOOP / E_GLOB_LIMIT past the budgets.
 */
export async function pyGlob(pathname: string, opts: GlobOptions = {}): Promise<string[]> {
  const recursive = opts.recursive ?? true;
  const walk = new Walk(pathname, { loopEntries: MAX_GLOB_LOOP_ENTRIES, entries: MAX_GLOB_ENTRIES, ...opts.limits });
  const slicer = opts.slicer ?? new TimeSlicer();
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

// ---------------------------------------------------------------------------------------------------------
// fnmatch.translate, emitted as a JavaScript RegExp with the same meaning.

const STAR = Symbol('star');
type Token = string | typeof STAR;

const cache = new Map<string, RegExp>();

/** fnmatch's compiled matcher for a pattern (full match, case-sensitive as on POSIX). */
export function compilePattern(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(translate(pattern), 'su');
    if (cache.size > 1000) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

/** fnmatch.fnmatchcase(name, pattern). */
export function fnmatchcase(name: string, pattern: string): boolean {
  return compilePattern(pattern).test(name);
}

function lit(c: string): string {
  return /^[A-Za-z0-9]$/.test(c) ? c : `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** fnmatch.translate, producing JavaScript regex source (for flags 'su'). */
export function translate(patStr: string): string {
  const pat = [...patStr]; // Python indexes code points
  const res: Token[] = [];
  let i = 0;
  const n = pat.length;
  while (i < n) {
    const c = pat[i]!;
    i += 1;
    if (c === '*') {
      // compress consecutive '*' into one
      if (res.length === 0 || res[res.length - 1] !== STAR) res.push(STAR);
    } else if (c === '?') {
      res.push('.');
    } else if (c === '[') {
      let j = i;
      if (j < n && pat[j] === '!') j += 1;
      if (j < n && pat[j] === ']') j += 1;
      while (j < n && pat[j] !== ']') j += 1;
      if (j >= n) {
        res.push(lit('['));
      } else {
        const stuff = bracketStuff(pat, i, j);
        i = j + 1;
        if (stuff.length === 0) {
          res.push('(?!)'); // empty range: never match
        } else if (stuff.length === 1 && stuff[0] === '!') {
          res.push('.'); // negated empty range: any character
        } else {
          if (stuff[0] === '!') stuff[0] = '^';
          else if (stuff[0] === '^' || stuff[0] === '[') stuff.unshift('\\');
          res.push(pyClassToJs(stuff));
        }
      }
    } else {
      res.push(lit(c));
    }
  }

  // Deal with STARs like Python: '(?>.*?fixed)' for interior pieces. JavaScript has no atomic groups;
  // '(?=(.*?fixed))\k' is the usual equivalent (a lookahead does not backtrack into).
  const out: string[] = [];
  let k = 0;
  let group = 0;
  while (k < res.length && res[k] !== STAR) out.push(res[k++] as string);
  while (k < res.length) {
    k += 1; // the STAR
    if (k === res.length) {
      out.push('.*');
      break;
    }
    const fixed: string[] = [];
    while (k < res.length && res[k] !== STAR) fixed.push(res[k++] as string);
    if (k === res.length) {
      out.push('.*', fixed.join(''));
    } else {
      group += 1;
      out.push(`(?=(.*?${fixed.join('')}))\\${group}`);
    }
  }
  return `^(?:${out.join('')})$`;
}

/** The body of a bracket expression as fnmatch.translate hands it to Python's re (as code points). */
function bracketStuff(pat: string[], start: number, j: number): string[] {
  let i = start;
  const slice = (a: number, b: number): string[] => pat.slice(a, b);
  const escBackslash = (s: string[]): string[] => s.flatMap((c) => (c === '\\' ? ['\\', '\\'] : [c]));
  let stuff: string[];
  const raw = slice(i, j);
  if (!raw.includes('-')) {
    stuff = escBackslash(raw);
  } else {
    const chunks: string[][] = [];
    let k = pat[i] === '!' ? i + 2 : i + 1;
    for (;;) {
      k = findIndex(pat, '-', k, j);
      if (k < 0) break;
      chunks.push(slice(i, k));
      i = k + 1;
      k = k + 3;
    }
    const chunk = slice(i, j);
    if (chunk.length) chunks.push(chunk);
    else last(chunks).push('-');
    // Remove empty ranges -- invalid in RE.
    for (let m = chunks.length - 1; m > 0; m--) {
      const prev = chunks[m - 1]!;
      const cur = chunks[m]!;
      const a = prev[prev.length - 1];
      const b = cur[0];
      if (a === undefined || b === undefined) throw new PyError('IndexError', 'string index out of range', 'E_GLOB_PATTERN');
      if (a.codePointAt(0)! > b.codePointAt(0)!) {
        chunks[m - 1] = [...prev.slice(0, -1), ...cur.slice(1)];
        chunks.splice(m, 1);
      }
    }
    // Escape backslashes and hyphens for set difference (--); hyphens that create ranges stay.
    stuff = [];
    chunks.forEach((s, idx) => {
      if (idx > 0) stuff.push('-');
      for (const c of s) {
        if (c === '\\') stuff.push('\\', '\\');
        else if (c === '-') stuff.push('\\', '-');
        else stuff.push(c);
      }
    });
  }
  // Escape set operations (&&, ~~ and ||).
  return stuff.flatMap((c) => (c === '&' || c === '~' || c === '|' ? ['\\', c] : [c]));
}

function last<T>(a: T[][]): T[] {
  const x = a[a.length - 1];
  if (!x) throw new PyError('IndexError', 'list index out of range', 'E_GLOB_PATTERN');
  return x;
}

function findIndex(a: string[], v: string, from: number, to: number): number {
  for (let x = Math.max(from, 0); x < to; x++) if (a[x] === v) return x;
  return -1;
}

/** Parses a Python re character-class body (as fnmatch builds it) and renders it as a JS class. */
function pyClassToJs(body: string[]): string {
  let p = 0;
  let negate = false;
  if (body[0] === '^') {
    negate = true;
    p = 1;
  }
  const items: string[] = [];
  const next = (): string => {
    const c = body[p++]!;
    // every backslash fnmatch leaves in a class escapes a literal punctuation character
    if (c === '\\' && p < body.length) return body[p++]!;
    return c;
  };
  while (p < body.length) {
    const thisRaw = body[p]!;
    const lo = next();
    if (body[p] === '-') {
      if (p + 1 >= body.length) {
        // '-' right before the closing ']' is a literal
        items.push(lit(lo), lit('-'));
        p += 1;
        break;
      }
      p += 1;
      const thatRaw = body[p]!;
      const hi = next();
      if (hi.codePointAt(0)! < lo.codePointAt(0)!) {
        throw new PyError('re.error', `bad character range ${thisRaw === '\\' ? `\\${lo}` : lo}-${thatRaw === '\\' ? `\\${hi}` : hi}`, 'E_GLOB_PATTERN');
      }
      items.push(`${lit(lo)}-${lit(hi)}`);
    } else {
      items.push(lit(lo));
    }
  }
  return `[${negate ? '^' : ''}${items.join('')}]`;
}
