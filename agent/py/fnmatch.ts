// A port of Python 3.11's fnmatch.translate, emitted as a JavaScript RegExp with the same meaning (code points,
// bracket ranges as Python's re reads them, its errors for bad ranges), for glob's matching of names.

import { PyError } from './exceptions.js';

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
