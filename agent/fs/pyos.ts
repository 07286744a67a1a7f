// Small ports of Python's os / os.path behaviour the file commands depend on (isdir, listdir order,
// st_*time floats, surrogateescape file names), so results match buildbot-worker's byte for byte.

import { lstatSync, statSync } from 'node:fs';
import { opendir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import * as nodePath from 'node:path';
import { PyError } from './pyerrors.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Length of the valid UTF-8 sequence at `i`, or 0 when the byte there starts no valid sequence. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/**
 * os.fsdecode: UTF-8 with surrogateescape, so a name that is not valid UTF-8 keeps its bytes
 * (each bad byte becomes a lone U+DC80..U+DCFF) and can be turned back into the same path by fsencode.
 */
export function fsdecode(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // fall through: some bytes are not UTF-8
  }
  let out = '';
  let start = 0;
  let i = 0;
  while (i < bytes.length) {
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > start) out += strictUtf8.decode(bytes.subarray(start, i));
    out += String.fromCharCode(0xdc00 + bytes[i]!);
    i += 1;
    start = i;
  }
  if (i > start) out += strictUtf8.decode(bytes.subarray(start, i));
  return out;
}

/** os.fsencode: the inverse of fsdecode (lone U+DC80..U+DCFF become the raw bytes again). */
export function fsencode(s: string): Buffer {
  if (!/[\uDC80-\uDCFF]/.test(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) {
      if (run) parts.push(Buffer.from(run, 'utf8'));
      run = '';
      parts.push(Buffer.from([c - 0xdc00]));
    } else {
      run += ch;
    }
  }
  if (run) parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/** A path for Node's fs calls that keeps surrogate-escaped bytes intact. */
export function fsPath(p: string): string | Buffer {
  return /[\uDC80-\uDCFF]/.test(p) ? fsencode(p) : p;
}

/** Python raises ValueError('embedded null byte') before any syscall when a path holds a NUL. */
export function checkNul(p: string): void {
  if (p.includes('\0')) throw new PyError('ValueError', 'embedded null byte', 'E_NUL_IN_PATH');
}

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

/** Entries read from the OS per call when listing a directory (libuv's default is 32). */
const LIST_BUFFER_ENTRIES = 256;

/**
 * The directory's entries (names as raw bytes) in the OS order, as os.listdir / os.scandir return them. Read in
 * the thread pool a batch at a time, so a directory of a million entries never holds the event loop.
 */
export async function scandirRaw(p: string): Promise<Dirent<Buffer>[]> {
  checkNul(p);
  // opendir keeps readdir(3) order; fs.readdir would sort the names, which Python does not
  const dir = await opendir(fsPath(p) as string, { encoding: 'buffer' as BufferEncoding, bufferSize: LIST_BUFFER_ENTRIES });
  const out: Dirent<Buffer>[] = [];
  try {
    for (let e = await dir.read(); e !== null; e = await dir.read()) out.push(e as unknown as Dirent<Buffer>);
  } finally {
    await dir.close().catch(() => undefined);
  }
  return out;
}

/** os.listdir(path) as str names (surrogateescape for names that are not UTF-8). */
export async function listdir(p: string): Promise<string[]> {
  return (await scandirRaw(p)).map((e) => fsdecode(e.name));
}

const NS = 1_000_000_000n;

/** Whole seconds of a nanosecond timestamp (tv_sec: floor, also before 1970). */
export function timeSeconds(ns: bigint): number {
  let q = ns / NS;
  if (ns < 0n && q * NS !== ns) q -= 1n;
  return Number(q);
}

/** Python's float st_mtime/st_atime: computed as sec + nsec * 1e-9 exactly as CPython does. */
export function timeFloat(ns: bigint): number {
  const sec = timeSeconds(ns);
  const nsec = ns - BigInt(sec) * NS;
  return sec + Number(nsec) * 1e-9;
}
