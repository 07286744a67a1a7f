// Streaming tar writer for upload_directory: the same PAX archive Python 3.11's
// tarfile.open(mode='w'|'w|gz'|'w|bz2').add(path, '') produces, generated chunk by chunk (files of any size).

import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';
import { fileKind } from '../fs/file-kind.js';
import { O_NOFOLLOW, O_NONBLOCK, sameFile } from '../fs/open-flags.js';
import { PyError } from '../py/exceptions.js';
import { isSystemError, toPyError } from '../py/os-error.js';
import { fsPath, fsdecode, fsencode } from '../py/fsencoding.js';
import { pathJoin } from '../py/os-path.js';
import { scandirRaw, timeFloat } from '../py/os.js';
import { pyFloatRepr, roundHalfEven } from '../py/float.js';

const BLOCKSIZE = 512;
const RECORDSIZE = BLOCKSIZE * 20;
const LENGTH_NAME = 100;
const LENGTH_LINK = 100;
/** Python's tarfile.copybufsize default (16 KiB) is small; larger reads cost nothing here. */
const DEFAULT_READ_CHUNK = 128 * 1024;

export type TarCompress = 'gz' | 'bz2' | null;

/** A tar archive as a sequence of byte chunks; `return()` stops it early and releases files / processes. */
export type TarStream = AsyncGenerator<Buffer, void, undefined>;

export interface TarOptions {
  /** Bytes read from a file at a time. */
  readChunkSize?: number;
  /** The worker's environment: PATH to find bzip2 in, and bzip2's environment. Default: process.env. */
  environ?: Record<string, string | undefined>;
}

export const BZIP2_MISSING = 'bz2 compression needs the bzip2 program on this worker';

/**
 * Starts the archive of `root` (stored as member '', its contents as relative members). Throws at once, before
 * any byte, when Python's tarfile would have failed at the root (FileNotFoundError etc.) or when bz2 is
 * requested and no bzip2 program is available. Any value of `compress` other than 'gz'/'bz2' means no
 * compression, as in buildbot-worker.
 */
export async function openTarStream(root: string, compress: string | null, opts: TarOptions = {}): Promise<TarStream> {
  let rootStat: BigIntStats;
  try {
    rootStat = await lstat(fsPath(root), { bigint: true });
  } catch (err) {
    throw toPyError(err, root);
  }
  let bzip2: string | null = null;
  if (compress === 'bz2') {
    bzip2 = findProgram('bzip2', opts.environ ?? process.env);
    if (!bzip2) throw new PyError('RuntimeError', BZIP2_MISSING, 'E_NO_BZIP2');
  }
  const tar = tarArchive(root, rootStat, opts);
  if (compress === 'gz') return gzipStream(tar);
  if (bzip2) return bzip2Stream(tar, bzip2, opts.environ ?? process.env);
  return tar;
}

// ---------------------------------------------------------------------------------------------------------
// The uncompressed archive

interface Writer {
  offset: number;
  inodes: Map<string, string>;
  users: Map<number, string> | null;
  groups: Map<number, string> | null;
  readChunk: number;
}

/** The plain tar stream (tarfile 'w' mode, PAX format). */
export async function* tarArchive(root: string, rootStat: BigIntStats, opts: TarOptions = {}): TarStream {
  const w: Writer = { offset: 0, inodes: new Map(), users: null, groups: null, readChunk: opts.readChunkSize ?? DEFAULT_READ_CHUNK };
  for await (const chunk of addMember(w, root, '', rootStat)) {
    w.offset += chunk.length;
    yield chunk;
  }
  // two zero blocks, then zero-fill to a whole record (like tar -b20)
  let end = BLOCKSIZE * 2;
  const rem = (w.offset + end) % RECORDSIZE;
  if (rem > 0) end += RECORDSIZE - rem;
  yield Buffer.alloc(end);
}

const REGTYPE = '0';
const LNKTYPE = '1';
const SYMTYPE = '2';
const CHRTYPE = '3';
const BLKTYPE = '4';
const DIRTYPE = '5';
const FIFOTYPE = '6';

interface MemberInfo {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** TarFile.add(name, arcname): the member, then (directories) its sorted entries, recursively. */
async function* addMember(w: Writer, name: string, arcname: string, known?: BigIntStats): AsyncGenerator<Buffer> {
  let st: BigIntStats;
  try {
    st = known ?? (await lstat(fsPath(name), { bigint: true }));
  } catch (err) {
    throw toPyError(err, name);
  }
  const info = await tarInfo(w, name, arcname, st);
  if (!info) return; // sockets and other unsupported types are skipped, as tarfile does

  yield paxHeader(info);
  if (info.type === REGTYPE) {
    yield* fileData(w, name, st, info.size);
  } else if (info.type === DIRTYPE) {
    let names: string[];
    try {
      names = (await scandirRaw(name)).map((e) => fsdecode(e.name));
    } catch (err) {
      throw toPyError(err, name);
    }
    names.sort(compareCodePoints);
    for (const f of names) yield* addMember(w, pathJoin(name, f), arcname ? pathJoin(arcname, f) : f);
  }
}

/** TarFile.gettarinfo: the member's header fields from lstat (links are stored, not followed). */
async function tarInfo(w: Writer, name: string, arcname: string, st: BigIntStats): Promise<MemberInfo | null> {
  let type: string;
  let linkname = '';
  if (st.isFile()) {
    const inode = `${st.ino}:${st.dev}`;
    const first = w.inodes.get(inode);
    if (st.nlink > 1n && first !== undefined && arcname !== first) {
      // a hard link to a file already in the archive
      type = LNKTYPE;
      linkname = first;
    } else {
      type = REGTYPE;
      if (st.ino !== 0n) w.inodes.set(inode, arcname);
    }
  } else if (st.isDirectory()) {
    type = DIRTYPE;
  } else if (st.isFIFO()) {
    type = FIFOTYPE;
  } else if (st.isSymbolicLink()) {
    type = SYMTYPE;
    try {
      linkname = fsdecode((await readlink(fsPath(name), { encoding: 'buffer' })) as Buffer);
    } catch (err) {
      throw toPyError(err, name);
    }
  } else if (st.isCharacterDevice()) {
    type = CHRTYPE;
  } else if (st.isBlockDevice()) {
    type = BLKTYPE;
  } else {
    return null;
  }
  const stripped = arcname.replace(/^\/+/, '');
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const [devmajor, devminor] = type === CHRTYPE || type === BLKTYPE ? splitDev(st.rdev) : [0, 0];
  return {
    // arcname.lstrip('/'); a directory's name gets a trailing '/' (the root directory becomes '/')
    name: stripped + (type === DIRTYPE && !stripped.endsWith('/') ? '/' : ''),
    mode: Number(st.mode) & 0o7777,
    uid,
    gid,
    size: type === REGTYPE ? Number(st.size) : 0,
    mtime: timeFloat(st.mtimeNs),
    type,
    linkname,
    uname: userName(w, uid),
    gname: groupName(w, gid),
    devmajor,
    devminor,
  };
}

/**
 * Opening a member that lstat found regular: never following a link, never waiting on a FIFO, so a file swapped
 * for either between lstat and open is refused instead of archived from elsewhere or blocking a thread for ever.
 */
const OPEN_MEMBER_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** The file's bytes, exactly `size` of them, zero-padded to a whole block. */
async function* fileData(w: Writer, name: string, seen: BigIntStats, size: number): AsyncGenerator<Buffer> {
  const fh = await openMember(name, seen);
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(w.readChunk, left));
      let got = 0;
      while (got < buf.length) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, got, buf.length - got, null));
        } catch (err) {
          throw toPyError(err, name);
        }
        // the file shrank after its size was taken: tarfile.copyfileobj raises the same
        if (n === 0) throw new PyError('OSError', 'unexpected end of data', 'E_FILE_SHRANK');
        got += n;
      }
      left -= got;
      yield buf;
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
  const rem = size % BLOCKSIZE;
  if (rem > 0) yield Buffer.alloc(BLOCKSIZE - rem);
}

/**
 * The member for reading, checked (fstat, after open) to still be a regular file. Where O_NOFOLLOW is missing
 * (Windows) the open follows a link swapped in after lstat: the dev and inode then differ from what lstat saw,
 * and a path that is a link by now is refused as O_NOFOLLOW would have refused it. A regular file replaced by
 * another one is archived, as tarfile does.
 */
async function openMember(name: string, seen: BigIntStats): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(fsPath(name), OPEN_MEMBER_FLAGS);
  } catch (err) {
    // O_NOFOLLOW on a link: ELOOP (EMLINK on some BSDs)
    if (isSystemError(err) && (err.code === 'ELOOP' || err.code === 'EMLINK')) {
      const now = await lstat(fsPath(name)).catch(() => null);
      if (now?.isSymbolicLink()) throw changedWhileArchived(name, 'a symbolic link');
    }
    throw toPyError(err, name);
  }
  let st: BigIntStats;
  let now: BigIntStats | null = null;
  try {
    st = await fh.stat({ bigint: true });
    if (!sameFile(st, seen)) now = await lstat(fsPath(name), { bigint: true }).catch(() => null);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw toPyError(err, name);
  }
  if (now?.isSymbolicLink() || !st.isFile()) {
    await fh.close().catch(() => undefined);
    throw changedWhileArchived(name, now?.isSymbolicLink() ? 'a symbolic link' : fileKind(st));
  }
  return fh;
}

function changedWhileArchived(name: string, kind: string): PyError {
  return new PyError('OSError', `'${name}' changed while it was archived: it is now ${kind}, not a regular file`, 'E_FILE_CHANGED');
}

// ---------------------------------------------------------------------------------------------------------
// Headers (tarfile.TarInfo.create_pax_header / _create_header)

/** Python str facts about a name that may hold surrogate-escaped bytes. */
const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const pyLen = (s: string): number => [...s].length;

/** s.encode('ascii', 'replace'): one '?' per non-ASCII code point. */
function asciiReplace(s: string): Buffer {
  let out = '';
  for (const ch of s) out += ch.codePointAt(0)! < 0x80 ? ch : '?';
  return Buffer.from(out, 'latin1');
}

/** The member's header blocks: a PAX extended header when needed (always, for the float mtime), then ustar. */
export function paxHeader(info: MemberInfo): Buffer {
  const pax: [string, string][] = [];
  const fields = { ...info };
  for (const [key, hname, length] of [
    ['name', 'path', LENGTH_NAME],
    ['linkname', 'linkpath', LENGTH_LINK],
    ['uname', 'uname', 32],
    ['gname', 'gname', 32],
  ] as const) {
    const v = fields[key];
    if (!isAscii(v) || pyLen(v) > length) pax.push([hname, v]);
  }
  for (const [key, digits] of [
    ['uid', 8],
    ['gid', 8],
    ['size', 12],
    ['mtime', 12],
  ] as const) {
    const val = fields[key];
    const isFloat = key === 'mtime'; // st_mtime is a Python float; the others are ints
    const valInt = isFloat ? roundHalfEven(val) : val;
    let needsPax = false;
    if (!(valInt >= 0 && valInt < 8 ** (digits - 1))) {
      fields[key] = 0;
      needsPax = true;
    } else if (isFloat) {
      // rounded value in the ustar header, full precision in the pax header
      fields[key] = valInt;
      needsPax = true;
    }
    if (needsPax) pax.push([key, isFloat ? pyFloatRepr(val) : String(val)]);
  }
  const head = pax.length ? paxGenericHeader(pax) : Buffer.alloc(0);
  return Buffer.concat([head, ustarBlock(fields)]);
}

/** tarfile._create_pax_generic_header: an 'x' member whose data are the "len key=value\n" records. */
function paxGenericHeader(pax: [string, string][]): Buffer {
  const binary = pax.some(([, v]) => LONE_SURROGATE.test(v));
  const records: Buffer[] = [];
  if (binary) records.push(Buffer.from('21 hdrcharset=BINARY\n'));
  for (const [k, v] of pax) {
    const keyword = Buffer.from(k, 'utf8');
    // with hdrcharset=BINARY the original bytes are restored (surrogateescape)
    const value = binary ? fsencode(v) : Buffer.from(v, 'utf8');
    const l = keyword.length + value.length + 3; // ' ' + '=' + '\n'
    let p = 0;
    for (;;) {
      const n = l + String(p).length;
      if (n === p) break;
      p = n;
    }
    records.push(Buffer.from(`${p} `), keyword, Buffer.from('='), value, Buffer.from('\n'));
  }
  const data = Buffer.concat(records);
  const header = ustarBlock({
    name: '././@PaxHeader',
    mode: 0,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    type: 'x',
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  const pad = data.length % BLOCKSIZE ? BLOCKSIZE - (data.length % BLOCKSIZE) : 0;
  return Buffer.concat([header, data, Buffer.alloc(pad)]);
}

/** tarfile._create_header(info, USTAR_FORMAT, 'ascii', 'replace'). */
function ustarBlock(info: MemberInfo): Buffer {
  const b = Buffer.alloc(BLOCKSIZE);
  const str = (s: string, off: number, len: number): void => {
    asciiReplace(s).copy(b, off, 0, len);
  };
  const num = (n: number, off: number, digits: number): void => {
    b.write(itn(n, digits), off, 'latin1');
  };
  const dev = info.type === CHRTYPE || info.type === BLKTYPE;
  str(info.name, 0, 100);
  num(info.mode & 0o7777, 100, 8);
  num(info.uid, 108, 8);
  num(info.gid, 116, 8);
  num(info.size, 124, 12);
  num(info.mtime, 136, 12);
  b.write('        ', 148, 'latin1');
  b.write(info.type, 156, 'latin1');
  str(info.linkname, 157, 100);
  b.write('ustar\x0000', 257, 'latin1');
  str(info.uname, 265, 32);
  str(info.gname, 297, 32);
  if (dev) {
    num(info.devmajor, 329, 8);
    num(info.devminor, 337, 8);
  }
  // prefix (345, 155) stays empty in PAX format
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'latin1');
  return b;
}

/** tarfile.itn for POSIX formats: zero-padded octal and a NUL. */
function itn(n: number, digits: number): string {
  const v = Math.trunc(n);
  if (!(v >= 0 && v < 8 ** (digits - 1))) throw new PyError('ValueError', 'overflow in number field', 'E_TAR_FIELD');
  return `${v.toString(8).padStart(digits - 1, '0')}\0`;
}

/** os.major / os.minor of st_rdev (glibc encoding). */
function splitDev(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

/** uid/gid -> name from the passwd/group files (tarfile uses pwd/grp; '' when unknown). */
function loadNames(file: string): Map<number, string> {
  const map = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      const id = Number(f[2]);
      if (f[0] && f.length >= 3 && f[2] !== '' && Number.isInteger(id) && !map.has(id)) map.set(id, f[0]);
    }
  } catch {
    // no such database on this system: names stay empty
  }
  return map;
}

function userName(w: Writer, uid: number): string {
  w.users ??= loadNames('/etc/passwd');
  return w.users.get(uid) ?? '';
}

function groupName(w: Writer, gid: number): string {
  w.groups ??= loadNames('/etc/group');
  return w.groups.get(gid) ?? '';
}

/** Python sorts str by code point (JavaScript's default sort compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Compression

/** 'w|gz': one gzip member, as Python's tarfile stream mode reads it. */
async function* gzipStream(tar: TarStream): TarStream {
  const gz = createGzip();
  // Readable.from closes the generator (open files) when the pipeline is torn down early
  pipeline(Readable.from(tar, { objectMode: false }), gz, () => {
    // errors reach the consumer through gz; an early stop makes this report a premature close
  });
  try {
    for await (const chunk of gz) yield chunk as Buffer;
  } finally {
    gz.destroy();
  }
}

/** 'w|bz2': node has no bzip2, so the archive goes through `bzip2 -c`. */
async function* bzip2Stream(tar: TarStream, exe: string, environ: Record<string, string | undefined>): TarStream {
  const child = spawn(exe, ['-c'], { stdio: ['pipe', 'pipe', 'pipe'], env: environ, windowsHide: true });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 64) stderr.push(c);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let feedError: unknown = null;
  let done = false;
  pipeline(Readable.from(tar, { objectMode: false }), child.stdin, (err) => {
    if (err && !done) {
      feedError = err;
      // a failed archive must not reach the master as a shorter, valid-looking bz2 stream
      child.kill();
    }
  });
  try {
    for await (const chunk of child.stdout) {
      if (feedError) throw feedError;
      yield chunk as Buffer;
    }
    const res = await exited;
    done = true;
    if (feedError) throw feedError;
    if (res.error) throw new PyError('OSError', `bzip2 could not run: ${res.error.message}`, 'E_BZIP2');
    if (res.code !== 0) {
      const msg = Buffer.concat(stderr).toString('utf8').trim();
      throw new PyError('OSError', `bzip2 failed (${res.signal ?? `exit code ${res.code}`})${msg ? `: ${msg}` : ''}`, 'E_BZIP2');
    }
  } finally {
    if (!done) {
      done = true;
      child.stdin.destroy();
      child.stdout.destroy();
      child.kill();
    }
  }
}

/** The program's path when it is an executable file on PATH (PATHEXT variants where that is set). */
function findProgram(name: string, environ: Record<string, string | undefined>): string | null {
  const exts = environ.PATHEXT ? ['', ...environ.PATHEXT.split(nodePath.delimiter)] : [''];
  for (const dir of (environ.PATH ?? '').split(nodePath.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = nodePath.join(dir, name + ext);
      try {
        if (!statSync(p).isFile()) continue;
        accessSync(p, fsConstants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return null;
}
