// Python's os functions the commands depend on: the NUL check every os call makes, os.listdir / os.scandir
// in the OS order, and st_*time as Python computes its floats.

import { opendir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { PyError } from './exceptions.js';
import { fsPath, fsdecode } from './fsencoding.js';

/** Python raises ValueError('embedded null byte') before any syscall when a path holds a NUL. */
export function checkNul(p: string): void {
  if (p.includes('\0')) throw new PyError('ValueError', 'embedded null byte', 'E_NUL_IN_PATH');
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
